"""Start the assistant's servers (action server + Rasa) on loopback, and stop them.

One launcher serves `make run` (clinic-run), the end-to-end tests, the browser test and the
benchmark, so all of them run the product exactly the same way. With `web_port` set, the
demo clinic page with the chat widget (servers/page.py) is served too; with `console_port`,
the staff console (staff/console/, its own process, as in production).
"""

from __future__ import annotations

import argparse
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from common import settings
from common.database import sqlite_file
from common.paths import MODEL, PROJECT_ROOT
from common.settings import DEFAULT_DATABASE_URL, SettingsError, page_origins
from servers.page import PageServer


def terminate(processes: Iterable[subprocess.Popen], grace: float = 15.0) -> None:
    """Stop each process's group: SIGTERM to all at once, then SIGKILL to any still up after `grace` s."""
    running = list(processes)
    for process in running:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
    for process in running:
        try:
            process.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def free_port() -> int:
    """A TCP port on loopback that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class StackConfig:
    """Everything that differs between a local run, a test run and a benchmark.

    The servers read their settings from the environment (servers/settings.py); these
    fields are written over whatever the environment says, the rest passes through.
    """

    rasa_port: int = settings.RASA_PORT
    action_port: int = settings.ACTION_SERVER_PORT
    database_url: str = DEFAULT_DATABASE_URL
    model: Path = MODEL
    host: str = "127.0.0.1"
    # Web origins allowed to use the HTTP routes and socket.io; empty: the demo page's.
    cors_origins: list[str] = field(default_factory=list)
    extra_env: dict[str, str] = field(default_factory=dict)
    web_port: int | None = None  # set: also serve the demo page (web/) on this port
    console_port: int | None = None  # set: also serve the staff console (staff/console/) on this port
    console_root: Path | None = None  # the project the console edits (STAFF_PROJECT_ROOT; default: this one)

    @property
    def rasa_url(self) -> str:
        """The Rasa server's base URL."""
        return f"http://{self.host}:{self.rasa_port}"

    @property
    def web_url(self) -> str | None:
        """The demo page's URL (None when it is not served)."""
        return f"http://{self.host}:{self.web_port}" if self.web_port else None

    @property
    def console_url(self) -> str | None:
        """The staff console's URL (None when it is not served)."""
        return f"http://{self.host}:{self.console_port}" if self.console_port else None

    @property
    def allowed_origins(self) -> list[str]:
        """cors_origins, or the demo page's origins when none are configured."""
        return list(self.cors_origins) or list(page_origins(self.web_port or settings.WEB_PORT))

    def environment(self) -> dict[str, str]:
        """Environment of both servers: ports, database, web origins, quiet TensorFlow, no telemetry.

        Without an ACTION_SERVER_TOKEN, a new random one is made for this run: even on this
        machine, only this run's Rasa server can call its action server. Likewise the
        MODEL_SERVER_TOKEN with which the Rasa server pulls the live model from this run's console.
        """
        env = dict(os.environ)
        for secret in ("ACTION_SERVER_TOKEN", "MODEL_SERVER_TOKEN"):
            if not env.get(secret) and not self.extra_env.get(secret):
                env[secret] = secrets.token_urlsafe(32)
        env.update(
            RASA_PORT=str(self.rasa_port),
            RASA_INTERFACE=self.host,
            RASA_MODEL=str(self.model),
            ACTION_SERVER_PORT=str(self.action_port),
            ACTION_SERVER_URL=f"http://127.0.0.1:{self.action_port}/webhook",
            DATABASE_URL=self.database_url,
            SANIC_REQUEST_MAX_SIZE=env.get("SANIC_REQUEST_MAX_SIZE", "65536"),
            CORS_ORIGINS=" ".join(self.allowed_origins),
            RASA_TELEMETRY_ENABLED="false",
            TF_CPP_MIN_LOG_LEVEL="3",
        )
        if self.console_port:
            env.update(STAFF_PORT=str(self.console_port), STAFF_HOST=self.host)
            env.update(MODEL_SERVER_URL=f"{self.console_url}{settings.MODEL_SERVER_PATH}")
            env.setdefault("STAFF_PUBLIC_URL", self.console_url or "")  # the links in staff's e-mails
            if self.console_root:
                env.update(STAFF_PROJECT_ROOT=str(self.console_root))
        env.update(self.extra_env)
        return env


ACTION_SERVER_COMMAND = [sys.executable, "-m", "servers.actions"]
RASA_SERVER_COMMAND = [sys.executable, "-m", "servers.chat"]


class Stack:
    """The running action server, Rasa server and (with web_port) page; a context manager that stops all."""

    def __init__(self, config: StackConfig, log: IO[str] | None = None) -> None:
        self.config = config
        self.log = log
        self.processes: list[subprocess.Popen] = []
        self.page: PageServer | None = None
        self.environment = config.environment()  # both servers', fixed for this run

    def start(self, timeout: float = 180.0) -> Stack:
        """Start both servers (and the page) and wait until Rasa answers on its REST channel."""
        if self.config.web_port:  # first: a missing widget install fails before the slow start
            self.page = PageServer(self.config.web_port, self.config.rasa_url, host=self.config.host).start()
        database_file = sqlite_file(self.config.database_url)
        if database_file is not None:
            database_file.parent.mkdir(parents=True, exist_ok=True)
        self.processes.append(self._spawn(ACTION_SERVER_COMMAND))
        if self.config.console_port:  # a process of its own, as in production
            # edits STAFF_PROJECT_ROOT (set above from console_root). Started before Rasa, whose
            # first question is which model is live (servers/model_pull.py).
            self.processes.append(self._spawn([sys.executable, "-m", "staff.console"]))
        self.processes.insert(1, self._spawn(RASA_SERVER_COMMAND))
        self.wait_until_ready(timeout)
        return self

    @property
    def action_server(self) -> subprocess.Popen:
        """The action server's process."""
        return self.processes[0]

    def restart_action_server(self, timeout: float = 60.0) -> None:
        """Start the action server again (after it was stopped or killed) and wait until it answers."""
        if self.action_server.poll() is None:
            os.killpg(self.action_server.pid, signal.SIGKILL)
            self.action_server.wait()
        self.processes[0] = self._spawn(ACTION_SERVER_COMMAND)
        self.wait_until_ready(timeout)

    def restart_rasa_server(self, timeout: float = 180.0) -> None:
        """Stop the Rasa server (SIGTERM; SIGKILL after 15 s), start it again, wait until it answers.

        The action server (and console) keep running: what a conversation remembers across the
        restart can only have come from the tracker store.
        """
        terminate([self.processes[1]])
        self.processes[1] = self._spawn(RASA_SERVER_COMMAND)
        self.wait_until_ready(timeout)

    def _spawn(self, command: list[str]) -> subprocess.Popen:
        return subprocess.Popen(
            command,
            cwd=PROJECT_ROOT,
            env=self.environment,
            stdout=self.log,
            stderr=subprocess.STDOUT if self.log else None,
            start_new_session=True,
        )

    def wait_until_ready(self, timeout: float) -> None:
        """Poll both health URLs; raise if a server dies or time runs out."""
        urls = [
            f"http://127.0.0.1:{self.config.action_port}/health",
            f"{self.config.rasa_url}/webhooks/rest/",
        ]
        if self.config.console_url:
            urls.insert(0, f"{self.config.console_url}/health")
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
        """Stop both servers (SIGTERM, then SIGKILL after 15 s) and the page."""
        if self.page is not None:
            self.page.stop()
            self.page = None
        terminate(self.processes)
        self.processes.clear()

    def __enter__(self) -> Stack:
        try:
            return self.start()
        except BaseException:  # a server that started must not outlive a failed start
            self.stop()
            raise

    def __exit__(self, *_: object) -> None:
        self.stop()


def main() -> None:
    """`make run`: start everything, print the URLs, stop both servers on Ctrl-C."""
    os.environ.update(settings.environment())  # .env fills in what the real environment leaves unset
    try:
        deployment = settings.Settings.from_env(os.environ)
    except SettingsError as error:
        sys.exit(f"{error}\n(see docs/deploy/configuration.md)")
    argparse.ArgumentParser(
        prog="clinic-run",
        description=main.__doc__,
        epilog="Ports, database and origins come from the environment " "(docs/deploy/configuration.md).",
    ).parse_args()
    config = StackConfig(
        rasa_port=deployment.rasa_port,
        action_port=deployment.action_server_port,
        database_url=deployment.database_url,
        model=deployment.model,
        web_port=deployment.web_port,
        console_port=deployment.staff_port,
        cors_origins=list(deployment.cors_origins),
    )
    for sig in (signal.SIGINT, signal.SIGTERM):  # Ctrl-C or `kill` stops both servers,
        signal.signal(sig, signal.default_int_handler)  # even if started with SIGINT ignored
    stack = Stack(config)
    try:
        stack.start()
        print(
            f"\nThe assistant is ready.\n  Open http://localhost:{config.web_port}  (the demo clinic page"
            f" with the chat)\n  Staff:     http://localhost:{config.console_port}  (the staff console; "
            "first admin: make staff-user NAME=... ROLE=admin)"
            f"\n  REST:      POST {config.rasa_url}/webhooks/rest/webhook"
            f"\n  socket.io: {config.rasa_url}/socket.io\nPress Ctrl-C to stop.",
            flush=True,
        )
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
