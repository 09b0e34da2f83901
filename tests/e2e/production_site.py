"""The production profile's stack, shared: PostgreSQL, Redis, two Rasa servers and a console.

Started once per test run (`production` in tests/e2e/conftest.py) for test_production.py and
test_publish.py's production test, one family (tests/conftest.py FAMILIES) that one worker runs in
a row: test_production.py's visitors first, then an admin publishes a model to both servers. The
console edits the project test_publish.py trains from (`publish_project`, the same files and model
store), so publishing there reuses that module's training instead of training again. Every server
reads a clinic.yml with live chat open at any hour (test_production.py's live chat test needs it).
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
from collections.abc import Iterator
from contextlib import ExitStack, closing, contextmanager
from dataclasses import dataclass
from pathlib import Path

import yaml
from rasa.engine.caching import CACHE_LOCATION_ENV, DEFAULT_CACHE_LOCATION, DEFAULT_CACHE_NAME

from common.clinic import load_settings
from common.paths import CLINIC_YML, PROJECT_ROOT
from devtools.services import PostgresServer, RedisServer, production_configs
from servers.launcher import Stack, free_port
from staff.service.candidate import rasa_cache
from staff.service.train import STAMP, inputs_digest
from tests.helpers import METRICS_TOKEN, Chat, project_copy

PULL_SECONDS = 2  # the servers ask the console for the live model this often (MODEL_PULL_SECONDS)
ZONE = "America/New_York"  # the publishing project's clinic time zone: never UTC, so a UTC time shows
ALL_DAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")


@dataclass
class PublishProject:
    """The project copy test_publish.py's consoles edit and train from, and their model store."""

    root: Path
    store: Path
    # The store's Rasa cache holds the checkout's training of these very files (make train's, just
    # before the tests): a training after a reword restores every part instead of training it.
    trained_before: bool = False


def publish_project(tmp: Path) -> PublishProject:
    """A project copy (a git repository) whose clinic is in ZONE, and an empty model store."""
    root = project_copy(tmp / "project")
    clinic = root / "clinic.yml"
    clinic.write_text(
        clinic.read_text(encoding="utf-8").replace('timezone: "Europe/London"', f'timezone: "{ZONE}"'),
        encoding="utf-8",
    )
    developer = ["-c", "user.name=Dee Veloper", "-c", "user.email=dee@example.test"]
    subprocess.run(
        ["git", *developer, "commit", "-qam", "The clinic is in New York"],
        cwd=root,
        check=True,
        capture_output=True,
    )
    store = tmp / "models"
    seeded = seed_rasa_cache(rasa_cache(store))
    up_to_date = STAMP.is_file() and STAMP.read_text(encoding="utf-8").strip() == inputs_digest()
    return PublishProject(root, store, seeded and up_to_date)


def seed_rasa_cache(target: Path) -> bool:
    """The checkout's Rasa training cache copied to `target`; whether there was one.

    `make test` runs `make train` first, which leaves Rasa's cache in the checkout (.rasa/cache,
    RASA_CACHE_DIRECTORY if set) trained on the very files the publish project copies: with it,
    a candidate's training restores what did not change instead of training it again (train once
    per test run). Rasa's cache.db names each result's folder by a path (relative to where Rasa
    ran, or absolute): here, the copy's. Without a cache in the checkout the trainings start
    empty, as before, only slower.
    """
    source = Path(os.environ.get(CACHE_LOCATION_ENV) or PROJECT_ROOT / DEFAULT_CACHE_LOCATION)
    if not (source / DEFAULT_CACHE_NAME).is_file():
        return False
    shutil.copytree(source, target)
    with closing(sqlite3.connect(target / DEFAULT_CACHE_NAME)) as cache, cache:
        rows = cache.execute(
            "SELECT rowid, result_location FROM cache_entry WHERE result_location IS NOT NULL"
        )
        for rowid, location in rows.fetchall():
            cache.execute(
                "UPDATE cache_entry SET result_location = ? WHERE rowid = ?",
                (str(target / Path(location).name), rowid),
            )
    return True


def console_env(root: Path, store: Path) -> dict[str, str]:
    """What every console and Rasa server of test_publish.py shares: the project, the store, the pulls."""
    return {
        "STAFF_SECRET_KEY": "test-only-console-key-" + "p" * 20,
        "CLINIC_SETTINGS": str(root / "clinic.yml"),
        "MODEL_PULL_SECONDS": str(PULL_SECONDS),
        "MODEL_STORE_DIR": str(store),
        "LOG_LEVEL": "INFO",  # Rasa's "Restored component" lines, which test_publish.py reads
    }


@dataclass
class Production:
    """The running production-profile stack: both servers (A, B), their stores, the console on A."""

    postgres: PostgresServer
    redis: RedisServer
    stacks: list[Stack]
    chats: list[Chat]
    console: str
    log_path: Path
    clinic_hours: str  # the opening hours the servers state (their own clinic.yml)

    @property
    def database_url(self) -> str:
        """The PostgreSQL database every server and the console use."""
        return self.postgres.url


@contextmanager
def running_production(tmp: Path, project: PublishProject) -> Iterator[Production]:
    """Start PostgreSQL, Redis, two Rasa + action server pairs and a console on the first; stop all."""
    log_path = tmp / "servers.log"
    clinic = yaml.safe_load(CLINIC_YML.read_text(encoding="utf-8"))
    clinic.update(opening_hours={day: "00:00-23:59" for day in ALL_DAYS}, closed_dates=[])
    (tmp / "clinic.yml").write_text(yaml.safe_dump(clinic), encoding="utf-8")
    console_port = free_port()
    shared = {
        **console_env(project.root, project.store),
        "CLINIC_SETTINGS": str(tmp / "clinic.yml"),
        "METRICS_TOKEN": METRICS_TOKEN,
        "MODEL_SERVER_URL": f"http://127.0.0.1:{console_port}/models/live.tar.gz",
        "STAFF_HTTPS": "0",  # loopback, no proxy in the test
    }
    with ExitStack() as running, log_path.open("w") as log:
        postgres = running.enter_context(PostgresServer())
        lock_store = running.enter_context(RedisServer())
        configs = production_configs(postgres, lock_store, 2, **shared)
        configs[0].console_port, configs[0].console_root = console_port, project.root
        stacks = [running.enter_context(Stack(config, log)) for config in configs]
        yield Production(
            postgres,
            lock_store,
            stacks,
            [Chat(stack.config.rasa_url) for stack in stacks],
            f"http://127.0.0.1:{console_port}",
            log_path,
            load_settings(tmp / "clinic.yml").hours,
        )
