"""The production stack of deploy/compose.yml, started from the images `make images` built.

Containers cannot run here (podman's runtime needs CAP_SYS_RESOURCE), so each service is a
process in its image's own root file system (devtools/images.py Container: buildah from +
mount, then chroot as the image's user with its environment). What compose would give each
container is taken from deploy/compose.yml itself: its environment (interpolated from a .env
of test secrets) and its volumes (named volumes are host directories owned by the app user,
kept across restarts as compose keeps them). The compose network is loopback: each service
listens on 127.0.0.1 on a free port, and the service addresses in the environment
(postgres:5432, http://actions:5055...) are rewritten to those.

PostgreSQL and Redis are Debian's servers on this host (devtools/services.py): their official
images (postgres:15, redis:7) cannot be pulled without a registry.
"""

from __future__ import annotations

import os
import re
import secrets
import subprocess
import time
import urllib.request
from pathlib import Path
from typing import IO

import yaml

from common.paths import PROJECT_ROOT
from devtools.images import Container, image_name
from devtools.services import PostgresServer, RedisServer
from servers.launcher import free_port, terminate

DEPLOY = PROJECT_ROOT / "deploy"
COMPOSE_FILE = DEPLOY / "compose.yml"
APP_UID = 10001  # the images' USER
# Started in this order, as compose's depends_on says: the console fills the content volume first.
REPLICAS = {"console": 1, "actions": 1, "rasa": 2}
CONTAINER_PORTS = {"actions": 5055, "console": 8081, "rasa": 5005}
PORT_VARIABLES = {"actions": "ACTION_SERVER_PORT", "console": "STAFF_PORT", "rasa": "RASA_PORT"}
HEALTH = {"actions": "/health", "console": "/health", "rasa": "/webhooks/rest/"}
VARIABLE = re.compile(r"\$\$|\$\{(\w+)(?:(:?[-?])([^}]*))?\}|\$(\w+)")


def interpolate(text: str, variables: dict[str, str]) -> str:
    """Compose's interpolation: ${VAR}, ${VAR:-default}, ${VAR:?error}, $VAR and $$."""

    def value(match: re.Match) -> str:
        if match.group(0) == "$$":
            return "$"
        name = match.group(1) or match.group(4)
        operator, argument = match.group(2), match.group(3)
        found = variables.get(name)
        if operator in (":-", "-") and not found:
            return argument
        if operator in (":?", "?") and not found:
            raise KeyError(f"compose needs {name}: {argument}")
        return found or ""

    return VARIABLE.sub(value, text)


def compose_services() -> dict:
    """The services of deploy/compose.yml."""
    return yaml.safe_load(COMPOSE_FILE.read_text(encoding="utf-8"))["services"]


def dot_env() -> dict[str, str]:
    """A .env for the stack: fresh secrets, models published every 2 s."""
    return {
        "POSTGRES_USER": "clinic",
        "POSTGRES_DB": "clinic",
        "ACTION_SERVER_TOKEN": secrets.token_urlsafe(32),
        "CONVERSATION_SECRET": secrets.token_urlsafe(32),
        "LIVE_CHAT_SECRET": secrets.token_urlsafe(32),
        "STAFF_SECRET_KEY": secrets.token_urlsafe(32),
        "MODEL_SERVER_TOKEN": secrets.token_urlsafe(32),
        "CORS_ORIGINS": "https://www.clinic.example",
        "MODEL_PULL_SECONDS": "2",
    }


def owned_directory(path: Path) -> Path:
    """A directory the images' app user can write (a new named volume, as the image's chown gives)."""
    path.mkdir(parents=True, exist_ok=True)
    os.chown(path, APP_UID, APP_UID)
    return path


class ImageStack:
    """The action server, the console and two Rasa servers, each from its image, on loopback.

    Ports, secrets and volumes are fixed at creation, so `stop` and `start` again is a restart
    of the same deployment (containers made anew, volumes kept, as `compose down` / `up`).
    """

    def __init__(
        self, directory: Path, postgres: PostgresServer, redis: RedisServer, variables: dict[str, str]
    ) -> None:
        self.directory = directory
        self.postgres = postgres
        self.redis = redis
        self.variables = {
            **variables,
            "POSTGRES_PASSWORD": postgres.password,
            "REDIS_PASSWORD": redis.password,
        }
        self.services = compose_services()
        self.ports = {
            f"{kind}-{number}": free_port()
            for kind, count in REPLICAS.items()
            for number in range(1, count + 1)
        }
        self.containers: dict[str, Container] = {}
        self.processes: dict[str, subprocess.Popen] = {}
        self.extra_env: dict[str, dict[str, str]] = {}  # per compose service, what the test adds
        self.images: dict[str, str] = {}  # per compose service, another image (an upgrade)
        self.log: IO[str] | None = None
        self.started_seconds: dict[str, float] = {}

    def url(self, name: str) -> str:
        """The base URL of a running service (its name: actions-1, console-1, rasa-1, rasa-2)."""
        return f"http://127.0.0.1:{self.ports[name]}"

    def addresses(self) -> dict[str, str]:
        """Compose's service addresses -> where they listen here (the first replica for rasa)."""
        return {
            "postgres:5432": f"127.0.0.1:{self.postgres.port}",
            "actions:5055": f"127.0.0.1:{self.ports['actions-1']}",
            "console:8081": f"127.0.0.1:{self.ports['console-1']}",
            "rasa:5005": f"127.0.0.1:{self.ports['rasa-1']}",
        }

    def environment(self, name: str) -> dict[str, str]:
        """The service's environment from compose.yml, on the loopback network."""
        kind = name.rsplit("-", 1)[0]
        env = {
            key: interpolate(str(value), self.variables)
            for key, value in (self.services[kind].get("environment") or {}).items()
        }
        for key, value in env.items():
            for address, here in self.addresses().items():
                value = value.replace(f"@{address}", f"@{here}").replace(f"//{address}", f"//{here}")
            env[key] = "127.0.0.1" if value == "0.0.0.0" else value  # never all interfaces on a shared host
        if env.get("REDIS_HOST") == "redis":
            env.update(REDIS_HOST="127.0.0.1", REDIS_PORT=str(self.redis.port))
        env[PORT_VARIABLES[kind]] = str(self.ports[name])
        if "STAFF_HTTPS" in env:  # no HTTPS proxy in front here: session cookies over plain HTTP
            env["STAFF_HTTPS"] = "0"
        env.update(self.extra_env.get(kind, {}))
        return env

    def volumes(self, name: str) -> dict[Path, str]:
        """The service's volumes: bind mounts from compose.yml, named volumes as host directories."""
        kind = name.rsplit("-", 1)[0]
        mounts: dict[Path, str] = {}
        for entry in self.services[kind].get("volumes") or []:
            source, target = interpolate(entry, self.variables).split(":", 1)
            if source.startswith((".", "/")):
                mounts[(DEPLOY / source).resolve()] = target
            else:  # a named volume; each Rasa replica keeps its own copy of the last model
                volume = f"{source}-{name}" if source.startswith("rasa-") else source
                mounts[owned_directory(self.directory / "volumes" / volume)] = target
        return mounts

    def image(self, kind: str) -> str:
        """The service's image: compose's scar-faq-KIND:local, or the upgrade a test put in `images`."""
        return self.images.get(kind, image_name(kind))

    def container(self, name: str) -> Container:
        """A new container for the service from its image."""
        kind = name.rsplit("-", 1)[0]
        return Container.create(self.image(kind), f"scar-faq-test-{name}-{self.ports[name]}")

    def restart(self, name: str, log: IO[str], timeout: float = 600.0) -> None:
        """Stop one service and start it again from a new container of its (perhaps upgraded) image."""
        terminate([self.processes.pop(name)], grace=20)
        self.containers.pop(name).remove()
        self.containers[name] = self.container(name)
        log.write(f"\n==== {name} again ({self.containers[name].image}) ====\n")
        log.flush()
        self.processes[name] = self.containers[name].start(
            self.environment(name), self.volumes(name), log=log
        )
        self.wait_until_healthy([name], time.monotonic() + timeout)

    def start(self, log: IO[str], timeout: float = 600.0) -> ImageStack:
        """Start every service and wait until each answers its health check (the console before Rasa)."""
        self.log = log
        for name in self.ports:
            started = time.monotonic()
            self.containers[name] = self.container(name)
            log.write(f"\n==== {name} ({self.containers[name].image}) ====\n")
            log.flush()
            self.processes[name] = self.containers[name].start(
                self.environment(name), self.volumes(name), log=log
            )
            if not name.startswith("rasa"):  # both Rasa servers load their models together
                self.wait_until_healthy([name], started + timeout)
            self.started_seconds[name] = time.monotonic() - started
        started = time.monotonic()
        self.wait_until_healthy([n for n in self.ports if n.startswith("rasa")], started + timeout)
        for name in self.ports:
            if name.startswith("rasa"):
                self.started_seconds[name] = time.monotonic() - started
        return self

    def wait_until_healthy(self, names: list[str], deadline: float) -> None:
        """Poll the services' health URLs (the images' HEALTHCHECKs) until all answer 200."""
        waiting = list(names)
        while waiting:
            name = waiting[0]
            if self.processes[name].poll() is not None:
                raise RuntimeError(f"{name} exited with {self.processes[name].returncode} (see its log)")
            if time.monotonic() > deadline:
                raise TimeoutError(f"not healthy in time: {waiting}")
            kind = name.rsplit("-", 1)[0]
            try:
                with urllib.request.urlopen(self.url(name) + HEALTH[kind], timeout=3) as answer:
                    if answer.status == 200:
                        waiting.pop(0)
                        continue
            except OSError:
                pass
            time.sleep(1)

    def exec(
        self, kind: str, argv: list[str], stdin: str = "", volumes: dict[Path, str] | None = None
    ) -> subprocess.CompletedProcess:
        """Run a command in a new container of the service's image with its environment and volumes.

        As `docker compose run --rm KIND ...`: a container of its own, the service's settings and
        volumes (plus `volumes`), removed afterwards.
        """
        name = f"{kind}-1"
        container = Container.create(self.image(kind), f"scar-faq-test-exec-{kind}-{secrets.token_hex(3)}")
        try:
            return container.exec(
                self.environment(name), {**self.volumes(name), **(volumes or {})}, argv, stdin
            )
        finally:
            container.remove()

    def stop(self) -> None:
        """Stop every service (SIGTERM, then SIGKILL after 20 s) and delete the containers."""
        terminate(self.processes.values(), grace=20)
        self.processes.clear()
        for container in self.containers.values():
            container.remove()
        self.containers.clear()
