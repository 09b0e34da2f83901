"""Developers' tools, not shipped in the images: benchmark, load test, throw-away servers."""
