"""Start the test stacks' servers by forking a process that has already imported their libraries.

Each server start (`python -m servers.chat`, `servers.actions`, `staff.console`) spent its first
seconds importing Rasa, TensorFlow, Sanic, Flask and SQLAlchemy: about 5 CPU-seconds for a Rasa
server, 60 server starts in a test run. The zygote (`python -m tests.zygote`, one per test
worker) imports those third-party libraries once and then forks a child for each start, which
runs the same module as `python -m` would: its own process (session and process group), its
own environment, working folder, output file and exit status, the project's own modules
imported afresh in it. Nothing of the project is imported before the fork, so every setting is
read from the child's environment as in a real start.

`servers/launcher.py` still starts the servers with `python -m` everywhere else (`make run`,
the benchmark, the images); tests/conftest.py makes the test stacks use this (TEST_FORK_SERVERS=0:
not).
"""

from __future__ import annotations

import atexit
import contextlib
import importlib
import json
import os
import queue
import runpy
import selectors
import signal
import socket
import subprocess
import sys
import threading
import traceback
from pathlib import Path
from typing import IO, Any

# common.paths says the same, but importing it here would put the project in every child.
PROJECT_ROOT = Path(__file__).resolve().parents[1]
# The project's packages, which must be imported afresh in each child (tests: this module's own).
PROJECT_PACKAGES = ("actions", "channels", "common", "components", "devtools", "servers", "staff")
# The servers' third-party libraries (measured with -X importtime: those taking over 20 ms).
PRELOAD = (
    "tensorflow",
    "rasa.__main__",
    "rasa.cli.run",
    "rasa.core.run",
    "rasa.server",
    "rasa.core.agent",
    "rasa.core.processor",
    "rasa.core.channels.socketio",
    "rasa.core.channels.rest",
    "rasa.core.policies.ted_policy",
    "rasa.core.policies.rule_policy",
    "rasa.core.tracker_store",
    "rasa.core.lock_store",
    "rasa.engine.runner.dask",
    "rasa.engine.storage.local_model_storage",
    "rasa.nlu.utils.spacy_utils",
    "rasa.nlu.tokenizers.spacy_tokenizer",
    "rasa.nlu.featurizers.sparse_featurizer.count_vectors_featurizer",
    "rasa.nlu.classifiers.fallback_classifier",
    "rasa.validator",
    "rasa.shared.importers.rasa",
    "rasa_sdk.endpoint",
    "rasa_sdk.executor",
    "rasa_sdk.forms",
    "sanic",
    "socketio",
    "sqlalchemy",
    "sqlalchemy.dialects.sqlite",
    "sqlalchemy.dialects.postgresql",
    "alembic.command",
    "alembic.config",
    "alembic.runtime.migration",
    "alembic.operations",
    "flask",
    "flask_login",
    "flask_wtf",
    "matplotlib.figure",  # the console's charts
    "matplotlib.backends.backend_agg",
    "openpyxl",  # the console's spreadsheets
    "waitress",
    "jinja2",
    "dateparser",
    "dateparser.search",
    "phonenumbers",
    "redis",
    "spacy",
    "sklearn.linear_model",
    "scipy.special",
    "tokenizers",
    "safetensors.numpy",
    "prometheus_client",
)


# ---- the zygote ----------------------------------------------------------------------------
def preload(names: tuple[str, ...] = PRELOAD) -> None:
    """Import the servers' libraries (a missing one is only not preloaded), and none of the project."""
    for name in names:
        with contextlib.suppress(Exception):
            importlib.import_module(name)
    loaded = [name for name in sys.modules if name.split(".")[0] in PROJECT_PACKAGES]
    if loaded:  # a library imported the project: the children would not read their own settings
        raise RuntimeError(f"the preloaded libraries imported the project's {sorted(loaded)[:5]}")


def run_child(request: dict[str, Any], fds: list[int]) -> None:
    """In the forked child: become the requested `python -m` process, then exit with its status."""
    code: int = 1
    try:
        os.setsid()
        os.chdir(request["cwd"])
        if fds:
            os.dup2(fds[0], 1)
            os.dup2(fds[0], 2)
            os.close(fds[0])
        null = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null, 0)
        os.close(null)
        os.environ.clear()
        os.environ.update(request["env"])
        for number in (signal.SIGTERM, signal.SIGCHLD, signal.SIGHUP):
            signal.signal(number, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        sys.argv = [request["module"], *request["args"]]
        try:
            runpy.run_module(request["module"], run_name="__main__", alter_sys=True)
            code = 0
        except SystemExit as stop:
            if stop.code is None or isinstance(stop.code, int):
                code = stop.code or 0
            else:
                print(stop.code, file=sys.stderr)
                code = 1
        except BaseException:
            traceback.print_exc()
            code = 1
        atexit._run_exitfuncs()
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(Exception):
                stream.flush()
    finally:
        os._exit(code)


def send(sock: socket.socket, message: dict[str, Any], fds: list[int] | None = None) -> None:
    """One message (a JSON object), with file descriptors if any."""
    data = json.dumps(message).encode()
    if fds:
        socket.send_fds(sock, [data], fds)
    else:
        sock.send(data)


def exit_status(pid: int) -> int:
    """A dead child's status as Popen gives it (-N: killed by signal N), leaving it unreaped."""
    info = os.waitid(os.P_PID, pid, os.WEXITED | os.WNOWAIT)
    if info is None:  # not dead after all: cannot happen once its pidfd is readable
        raise ChildProcessError(pid)
    return info.si_status if info.si_code == os.CLD_EXITED else -info.si_status


def serve(sock: socket.socket) -> None:
    """Fork a child for each request; tell the test worker each child's pid and exit status.

    A dead child stays unreaped (its process group still there for `killpg`, as a Popen's
    child until it is waited for) until the worker says it has seen the status ("reap").
    """
    selector = selectors.DefaultSelector()
    selector.register(sock, selectors.EVENT_READ, None)
    pidfds: set[int] = set()  # one per running child, closed in the others
    children: dict[int, int] = {}  # request id -> pid, until reaped
    send(sock, {"ready": os.getpid()})
    while True:
        for key, _ in selector.select():
            if key.data is None:  # a request, or the worker gone
                data, fds, _, _ = socket.recv_fds(sock, 1 << 20, 4)
                if not data:
                    return
                request = json.loads(data)
                if "reap" in request:
                    pid = children.pop(request["reap"], None)
                    if pid is not None:
                        os.waitpid(pid, 0)
                    continue
                for stream in (sys.stdout, sys.stderr):  # nothing buffered is written twice
                    stream.flush()
                pid = os.fork()
                if pid == 0:
                    for fd in pidfds:
                        os.close(fd)
                    selector.close()
                    sock.close()
                    run_child(request, fds)
                for fd in fds:
                    os.close(fd)
                children[request["id"]] = pid
                pidfd = os.pidfd_open(pid)
                pidfds.add(pidfd)
                selector.register(pidfd, selectors.EVENT_READ, request["id"])
                send(sock, {"id": request["id"], "pid": pid})
            else:  # a child ended
                selector.unregister(key.fd)
                pidfds.discard(key.fd)
                os.close(key.fd)
                send(sock, {"exited": key.data, "returncode": exit_status(children[key.data])})


def main() -> None:
    """`python -m tests.zygote FD`: preload, then serve the test worker on socket FD."""
    sock = socket.socket(fileno=int(sys.argv[1]))
    stderr = os.dup(2)
    null = os.open(os.devnull, os.O_WRONLY)
    os.dup2(null, 2)  # the libraries' import-time notices about their own dependencies: not news
    try:
        preload()
    finally:
        sys.stderr.flush()
        os.dup2(stderr, 2)
        os.close(stderr)
        os.close(null)
    serve(sock)
    os._exit(0)  # no interpreter teardown of all it imported


# ---- the test worker's side ------------------------------------------------------------------
class ZygoteProcess:
    """A server forked by the zygote, used as launcher.py uses a subprocess.Popen."""

    def __init__(self, zygote: Zygote, request: int, pid: int, args: list[str]) -> None:
        self.zygote = zygote
        self.request = request  # its start's number: pids are reused, these are not
        self.pid = pid
        self.args = args
        self.returncode: int | None = None

    def poll(self) -> int | None:
        """The exit status, or None while it runs."""
        if self.returncode is None:
            self.returncode = self.zygote.returncode(self.request, self.pid)
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        """Wait for the exit status (subprocess.TimeoutExpired after `timeout` seconds)."""
        if self.returncode is not None:
            return self.returncode
        if not self.zygote.wait_for(self.request, self.pid, timeout):
            raise subprocess.TimeoutExpired(self.args, timeout or 0)
        return self.poll() or 0


class Zygote:
    """The test worker's zygote: started at the first request, stopped with the worker."""

    def __init__(self) -> None:
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        environment = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "RASA_TELEMETRY_ENABLED": "false"}
        self.process = subprocess.Popen(
            [sys.executable, "-m", "tests.zygote", str(theirs.fileno())],
            pass_fds=[theirs.fileno()],
            cwd=PROJECT_ROOT,
            env=environment,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        theirs.close()
        self.sock = ours
        self.replies: queue.Queue[dict[str, Any]] = queue.Queue()
        self.exits: dict[int, int] = {}  # request id -> exit status
        self.ended = threading.Condition()
        self.gone = False
        self.lock = threading.Lock()  # one message at a time, and one start
        self.next_id = 0
        threading.Thread(target=self._read, name="zygote", daemon=True).start()
        ready = self.replies.get(timeout=300)
        if "ready" not in ready:
            raise RuntimeError(f"the zygote did not start: {ready}")

    def _read(self) -> None:
        while True:
            try:
                data = self.sock.recv(1 << 16)
            except OSError:
                data = b""
            if not data:
                with self.ended:
                    self.gone = True
                    self.ended.notify_all()
                self.replies.put({"error": f"the zygote ended ({self.process.poll()})"})
                return
            message = json.loads(data)
            if "exited" in message:
                with self.ended:
                    self.exits[message["exited"]] = message["returncode"]
                    self.ended.notify_all()
            else:
                self.replies.put(message)

    def _send(self, message: dict[str, Any], fds: list[int] | None = None) -> None:
        with self.lock:
            send(self.sock, message, fds)

    def spawn(self, command: list[str], cwd: Path, env: dict[str, str], log: IO[str] | None) -> ZygoteProcess:
        """Start `command` (`python -m MODULE ARGS...`) as a child of the zygote."""
        if command[:2] != [sys.executable, "-m"]:
            raise ValueError(f"only `python -m` commands can be forked: {command[:3]}")
        if log is not None:
            log.flush()
        with self.lock:
            self.next_id += 1
            number = self.next_id
            request = {"id": number, "module": command[2], "args": command[3:], "cwd": str(cwd), "env": env}
            send(self.sock, request, [log.fileno()] if log is not None else None)
            while True:  # a reply to an earlier start that timed out is not this one's
                reply = self.replies.get(timeout=60)
                if "error" in reply or reply.get("id", 0) >= number:
                    break
        if reply.get("id") != number:
            raise RuntimeError(f"the zygote could not start {command[2]}: {reply}")
        return ZygoteProcess(self, number, reply["pid"], command)

    def returncode(self, request: int, pid: int) -> int | None:
        """A child's exit status (None while it runs; -9 if the zygote is gone and so is it).

        Once read, the zygote is told to reap the child (until then, like a Popen's child, it
        stays a zombie, so its process group can still be signalled).
        """
        with self.ended:
            if request in self.exits:
                status = self.exits.pop(request)
            elif self.gone and not _alive(pid):
                return -signal.SIGKILL
            else:
                return None
        with contextlib.suppress(OSError):
            self._send({"reap": request})
        return status

    def wait_for(self, request: int, pid: int, timeout: float | None) -> bool:
        """Whether the child ended within `timeout` seconds."""
        with self.ended:
            return self.ended.wait_for(
                lambda: request in self.exits or (self.gone and not _alive(pid)), timeout
            )

    def stop(self) -> None:
        """End the zygote (its running children are not touched: their stacks stop them)."""
        with contextlib.suppress(OSError):  # the end of the file for the zygote, and for _read
            self.sock.shutdown(socket.SHUT_RDWR)
        self.sock.close()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


_shared: list[Zygote] = []


def shared() -> Zygote:
    """This test worker's zygote, started at the first call (and again if it died)."""
    if _shared and _shared[0].gone:
        stop_shared()
    if not _shared:
        _shared.append(Zygote())
    return _shared[0]


def stop_shared() -> None:
    """End this worker's zygote, if it was started."""
    while _shared:
        _shared.pop().stop()


def _alive(pid: int) -> bool:
    """Whether a process with this pid exists (one of another user's counts)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    return True


if __name__ == "__main__":
    main()
