"""Container health check: exit 0 if the URL answers 200, else 1 (used by HEALTHCHECK).

Python's standard library only, because the slim image has no curl or wget. $VAR and
${VAR} in the URL are expanded here, since HEALTHCHECK's exec form runs no shell:

    python deploy/healthcheck.py 'http://127.0.0.1:${RASA_PORT}/webhooks/rest/'
"""

from __future__ import annotations

import http.client
import os
import sys
import urllib.request


def healthy(url: str, timeout: float = 4.0) -> bool:
    """True if a GET of url returns HTTP 200 within timeout seconds."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.status == 200
    except (OSError, http.client.HTTPException, ValueError):  # refused, timeout, error status, bad URL
        return False


def main(argv: list[str]) -> int:
    """The exit status Docker reads: 0 healthy, 1 unhealthy."""
    if len(argv) != 1:
        print("usage: healthcheck.py URL", file=sys.stderr)
        return 1
    return 0 if healthy(os.path.expandvars(argv[0])) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
