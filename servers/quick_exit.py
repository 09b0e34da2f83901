"""A server that has stopped serving leaves at once, without tearing its interpreter down piece by piece.

Once Sanic has stopped (SIGTERM, Ctrl-C) every request has been answered and every turn, booking
and action was committed while it was answered; the stores were closed by the servers' own
shutdown listeners. What Python still does is finalise TensorFlow, spaCy and thousands of modules
one object at a time: 4 to 6 s of a Rasa server's exit on 2 busy cores, with no Python code left
to run (py-spy shows no frame). `after_serving()` does what Python's exit does first (waits for
every thread that is not a daemon, e.g. a thread pool's running work, and runs the exit handlers,
logging's flush among them), then ends the process without the teardown: 0.2 s instead of 5-8 s.
"""

from __future__ import annotations

import atexit
import os
import sys
import threading


def after_serving(code: int = 0) -> None:
    """Do what Python does at exit but the teardown: wait for worker threads, run exit handlers, exit."""
    wait_for_threads = getattr(threading, "_shutdown", None)
    run_exit_handlers = getattr(atexit, "_run_exitfuncs", None)
    if wait_for_threads is None or run_exit_handlers is None:  # another Python: its own exit, slow or not
        return
    wait_for_threads()  # as at exit: running thread-pool work finishes, other threads are joined
    run_exit_handlers()  # logging's flush among them
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a closed or broken stream has nothing left to flush
            pass
    os._exit(code)
