"""Start the assistant's servers (action server + Rasa) on loopback, and stop them.

One launcher serves `make run`, the end-to-end tests and the benchmark, so all three
run the product exactly the same way.
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Dict, List, Optional

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_MODEL = PROJECT_ROOT / "models" / "scar-faq.tar.gz"
BIN = Path(sys.executable).parent


def free_port() -> int:
    """A TCP port on loopback that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class StackConfig:
    """Everything that differs between a local run, a test run and a benchmark."""

    rasa_port: int = 5005
    action_port: int = 5055
    database_url: str = f"sqlite:///{PROJECT_ROOT / 'var' / 'clinic.db'}"
    model: Path = DEFAULT_MODEL
    host: str = "127.0.0.1"
    cors_origins: List[str] = field(default_factory=lambda: ["http://localhost:8080"])
    extra_env: Dict[str, str] = field(default_factory=dict)

    @property
    def rasa_url(self) -> str:
        return f"http://{self.host}:{self.rasa_port}"

    def environment(self) -> Dict[str, str]:
        """Environment of both servers: ports, database, quiet TensorFlow, no telemetry."""
        env = dict(os.environ)
        env.update(
            ACTION_PORT=str(self.action_port),
            DATABASE_URL=self.database_url,
            SANIC_HOST="127.0.0.1",  # the action server is never exposed
            SANIC_REQUEST_MAX_SIZE=env.get("SANIC_REQUEST_MAX_SIZE", "65536"),
            RASA_TELEMETRY_ENABLED="false",
            TF_CPP_MIN_LOG_LEVEL="3",
            PYTHONPATH=str(PROJECT_ROOT),
        )
        env.update(self.extra_env)
        return env


class Stack:
    """The running action server and Rasa server; a context manager that stops both."""

    def __init__(self, config: StackConfig, log: Optional[IO[str]] = None) -> None:
        self.config = config
        self.log = log
        self.processes: List[subprocess.Popen] = []

    def start(self, timeout: float = 180.0) -> "Stack":
        """Start both servers and wait until Rasa answers on its REST channel."""
        if self.config.database_url.startswith("sqlite:///"):
            Path(self.config.database_url[len("sqlite:///"):]).parent.mkdir(parents=True, exist_ok=True)
        self._spawn([str(BIN / "rasa"), "run", "actions", "--actions", "actions",
                     "--port", str(self.config.action_port)])
        self._spawn([str(BIN / "rasa"), "run", "--model", str(self.config.model),
                     "--endpoints", "endpoints.yml", "--credentials", "credentials.yml",
                     "--interface", self.config.host, "--port", str(self.config.rasa_port),
                     "--cors", *self.config.cors_origins])
        self.wait_until_ready(timeout)
        return self

    def _spawn(self, command: List[str]) -> None:
        self.processes.append(subprocess.Popen(
            command, cwd=PROJECT_ROOT, env=self.config.environment(),
            stdout=self.log, stderr=subprocess.STDOUT if self.log else None,
            start_new_session=True,
        ))

    def wait_until_ready(self, timeout: float) -> None:
        """Poll both health URLs; raise if a server dies or time runs out."""
        urls = [f"http://127.0.0.1:{self.config.action_port}/health",
                f"{self.config.rasa_url}/webhooks/rest/"]
        deadline = time.monotonic() + timeout
        while urls:
            for process in self.processes:
                if process.poll() is not None:
                    raise RuntimeError(f"{process.args[:3]} exited with {process.returncode}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"not ready after {timeout:.0f}s: {urls}")
            try:
                with urllib.request.urlopen(urls[0], timeout=2):
                    urls.pop(0)
            except OSError:
                time.sleep(0.5)

    def stop(self) -> None:
        """Stop both servers (SIGTERM, then SIGKILL after 15 s)."""
        for process in self.processes:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
        for process in self.processes:
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
        self.processes.clear()

    def __enter__(self) -> "Stack":
        try:
            return self.start()
        except BaseException:  # a server that started must not outlive a failed start
            self.stop()
            raise

    def __exit__(self, *_: object) -> None:
        self.stop()


def main() -> None:
    """`make run`: start everything, print the URLs, stop both servers on Ctrl-C."""
    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("--rasa-port", type=int, default=int(os.environ.get("RASA_PORT", 5005)))
    parser.add_argument("--action-port", type=int, default=int(os.environ.get("ACTION_PORT", 5055)))
    args = parser.parse_args()
    config = StackConfig(rasa_port=args.rasa_port, action_port=args.action_port)
    if os.environ.get("DATABASE_URL"):
        config.database_url = os.environ["DATABASE_URL"]
    if os.environ.get("CORS_ORIGINS"):
        config.cors_origins = os.environ["CORS_ORIGINS"].split()
    signal.signal(signal.SIGTERM, signal.default_int_handler)  # `kill` stops both too
    stack = Stack(config)
    try:
        stack.start()
        print(f"\nThe assistant is ready.\n  REST:      POST {config.rasa_url}/webhooks/rest/webhook"
              f"\n  socket.io: {config.rasa_url}/socket.io\nPress Ctrl-C to stop.", flush=True)
        while all(process.poll() is None for process in stack.processes):
            time.sleep(1)
        sys.exit("A server stopped unexpectedly; see its messages above.")
    except KeyboardInterrupt:
        print("\nStopping...", flush=True)
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):  # a second Ctrl-C must not orphan a server
            signal.signal(sig, signal.SIG_IGN)
        stack.stop()


if __name__ == "__main__":
    main()
