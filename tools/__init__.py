"""Developer and staff tools: launcher, data checks, benchmark."""
