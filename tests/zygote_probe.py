"""`python -m tests.zygote_probe`: what a forked server sees of its process (tests/unit/test_zygote.py).

Prints its settings as JSON, then sleeps PROBE_SLEEP seconds and exits with PROBE_EXIT.
"""

from __future__ import annotations

import json
import os
import sys
import time

print(
    json.dumps(
        {
            "argv": sys.argv[1:],
            "cwd": os.getcwd(),
            "setting": os.environ.get("PROBE_SETTING"),
            "leader": os.getpgid(0) == os.getpid() == os.getsid(0),
            "stdin": sys.stdin.read(),
        }
    ),
    flush=True,
)
time.sleep(float(os.environ.get("PROBE_SLEEP", "0")))
sys.exit(int(os.environ.get("PROBE_EXIT", "0")))
