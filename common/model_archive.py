"""A trained model archive's fingerprint: the SHA-256 of its bytes.

The console's model server sends it as the ETag of the live model and every Rasa server
keeps it as its model's fingerprint (If-None-Match), so a server that has the live model
gets 304 and one that has another gets the live one (servers/model_pull.py,
staff/console/models.py).
"""

from __future__ import annotations

import hashlib
from functools import lru_cache
from pathlib import Path


@lru_cache(maxsize=16)
def _digest(path: str, size: int, modified_ns: int) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as archive:
        for block in iter(lambda: archive.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def sha256(path: Path) -> str:
    """The archive's SHA-256 (hex), computed once per version of the file."""
    stat = path.stat()
    return _digest(str(path.resolve()), stat.st_size, stat.st_mtime_ns)
