"""Throw-away PostgreSQL and Redis servers on free loopback ports, for tests and the load test.

They are Debian's real servers (`make test` installs the packages), each in its own
temporary directory with a random password, started as a context manager and removed
afterwards. PostgreSQL refuses to run as root, so as root it runs as the `postgres` user.
"""

from __future__ import annotations

import glob
import os
import secrets
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import redis

from servers.launcher import StackConfig, free_port

USER = "clinic"
DATABASE = "clinic"


def postgres_bin(name: str) -> str:
    """Path of a PostgreSQL server program (Debian keeps them out of PATH)."""
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}")) or [shutil.which(name) or ""]
    if not found[-1]:
        raise FileNotFoundError(f"{name} not found: install PostgreSQL (apt-get install postgresql)")
    return found[-1]


class Service:
    """A server used as a context manager: started on entry (cleaned up if that fails), stopped on exit."""

    def start(self) -> Service:
        """Start the server; return self."""
        raise NotImplementedError

    def stop(self) -> None:
        """Stop the server and remove its files."""
        raise NotImplementedError

    def __enter__(self) -> Service:
        try:
            return self.start()
        except BaseException:
            self.stop()
            raise

    def __exit__(self, *_: object) -> None:
        self.stop()


class PostgresServer(Service):
    """A PostgreSQL cluster in a temp dir, with password auth, on a free loopback port."""

    def __init__(self) -> None:
        self.port = free_port()
        self.password = secrets.token_urlsafe(16)
        self.directory = Path(tempfile.mkdtemp(prefix="scar-faq-pg-"))
        self.as_owner: list[str] = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []

    @property
    def url(self) -> str:
        """The SQLAlchemy URL of the clinic's database."""
        return f"postgresql://{USER}:{self.password}@127.0.0.1:{self.port}/{DATABASE}"

    def _run(self, *command: str) -> None:
        subprocess.run(
            [*self.as_owner, *command],
            check=True,
            capture_output=True,
            env={**os.environ, "PGPASSWORD": self.password},
        )

    def start(self) -> PostgresServer:
        """initdb, start (fsync off: test data only), and create the clinic database."""
        data, pwfile = self.directory / "data", self.directory / "pw"
        pwfile.write_text(self.password)
        if self.as_owner:
            shutil.chown(self.directory, "postgres")
            shutil.chown(pwfile, "postgres")
        self._run(
            postgres_bin("initdb"),
            "-D",
            str(data),
            "-U",
            USER,
            f"--pwfile={pwfile}",
            "--auth=scram-sha-256",
            "-E",
            "UTF8",
            "--no-sync",
        )
        self.resume()
        self._run(postgres_bin("createdb"), "-h", "127.0.0.1", "-p", str(self.port), "-U", USER, DATABASE)
        return self

    def resume(self) -> None:
        """Start the server on its data directory (again, after `halt`)."""
        self._run(
            postgres_bin("pg_ctl"),
            "-D",
            str(self.directory / "data"),
            "-l",
            str(self.directory / "server.log"),
            "-w",
            "-o",
            f"-p {self.port} -k {self.directory} -c listen_addresses=127.0.0.1 "
            "-c fsync=off -c max_connections=200",
            "start",
        )

    def halt(self) -> None:
        """Stop the server but keep its data (a database outage; `resume` ends it)."""
        if (self.directory / "data" / "postmaster.pid").exists():
            self._run(postgres_bin("pg_ctl"), "-D", str(self.directory / "data"), "-m", "fast", "-w", "stop")

    def stop(self) -> None:
        """Stop the server and delete its files."""
        self.halt()
        shutil.rmtree(self.directory, ignore_errors=True)


class RedisServer(Service):
    """A password-protected Redis with no persistence on a free loopback port."""

    def __init__(self) -> None:
        self.port = free_port()
        self.password = secrets.token_urlsafe(16)
        self.directory = Path(tempfile.mkdtemp(prefix="scar-faq-redis-"))
        self.process: subprocess.Popen | None = None

    def environment(self) -> dict:
        """The settings Rasa's lock store reads (common/settings.py)."""
        return {
            "REDIS_HOST": "127.0.0.1",
            "REDIS_PORT": str(self.port),
            "REDIS_PASSWORD": self.password,
            "REDIS_DB": "0",
        }

    def start(self, timeout: float = 20.0) -> RedisServer:
        """Start redis-server and wait until it answers PING."""
        server = shutil.which("redis-server") or "/usr/bin/redis-server"
        config = self.directory / "redis.conf"  # the password stays out of the process list
        config.write_text(
            f"port {self.port}\nbind 127.0.0.1\nrequirepass {self.password}\n"
            f'save ""\nappendonly no\ndir {self.directory}\n'
        )
        self.process = subprocess.Popen(
            [server, str(config)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        client = redis.Redis(host="127.0.0.1", port=self.port, password=self.password)
        deadline = time.monotonic() + timeout
        while True:
            try:
                client.ping()
                return self
            except redis.exceptions.ConnectionError:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("redis-server did not start") from None
                time.sleep(0.1)

    def stop(self) -> None:
        """Stop the server and delete its directory."""
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=10)
        shutil.rmtree(self.directory, ignore_errors=True)


def production_configs(
    postgres: PostgresServer, redis_server: RedisServer, count: int, **extra_env: str
) -> list[StackConfig]:
    """`count` Rasa + action server pairs on free ports, on the production profile with these stores.

    Like replicas behind a load balancer, the Rasa servers share one CONVERSATION_SECRET (an
    id one issues is valid on the others); each pair shares its action server's token.
    """
    secret, model_token = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
    return [
        StackConfig(
            rasa_port=free_port(),
            action_port=free_port(),
            database_url=postgres.url,
            extra_env={
                "CLINIC_PROFILE": "production",
                **redis_server.environment(),
                "CONVERSATION_SECRET": secret,
                "MODEL_SERVER_TOKEN": model_token,  # the same for every server and the console
                "ACTION_SERVER_TOKEN": secrets.token_urlsafe(32),
                **extra_env,
            },
        )
        for _ in range(count)
    ]
