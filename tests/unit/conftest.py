"""The unit tests' own fixtures: what costs seconds per test without being what a test checks.

Three waits are taken out of every unit test, and none changes what the code under test does:
- A new SQLite database starts as a copy of one the migrations made at the start of the run
  (`migrations.upgrade` then finds it current): running all eleven migrations takes about 0.25 s
  on a busy machine, and about 180 stores and consoles are opened on new databases.
  test_migrations.py (REAL_MIGRATIONS) migrates each of its databases for real.
- Password and recovery-code hashes are Argon2id at the library's smallest cost. The console's
  own cost (argon2-cffi's defaults: 64 MiB, 3 passes, 4 lanes) takes about 0.25 s of CPU per
  hash, and setting up a second factor hashes 11 secrets; test_console_security.py checks once
  that a stored password has the console's own cost (`production_password_hashes`).
- The authenticator app's clock skips the wait for the next 30-second code (tests/two_factor.py
  sleeps until the console would accept a fresh code): it is the real time plus the waits skipped,
  read by the console's code check and the test's "phone" alike, so a code still works once,
  in its own step or the one either side, and nowhere else. The browser tests
  (tests/e2e/test_console_second_factor.py) wait on real time against a real console server.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from argon2 import PasswordHasher

from common import database, migrations
from staff.service import accounts, second_factor
from tests import two_factor

# The smallest cost argon2-cffi accepts: 8 KiB, one pass, one lane (still Argon2id).
QUICK_HASHER = PasswordHasher(time_cost=1, memory_cost=8, parallelism=1)
QUICK_DUMMY_HASH = QUICK_HASHER.hash("not a real password, only for timing")
PRODUCTION = {"_hasher": accounts._hasher, "_DUMMY_HASH": accounts._DUMMY_HASH}
UPGRADE = migrations.upgrade


@pytest.fixture(scope="session")
def migrated_database(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An SQLite file the migrations brought to the newest revision, made once per run."""
    path = tmp_path_factory.mktemp("schema") / "migrated.db"
    UPGRADE(f"sqlite:///{path}")
    return path


@pytest.fixture(autouse=True)
def new_databases_start_migrated(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch, migrated_database: Path
) -> None:
    """`migrations.upgrade` of a new SQLite file to the newest revision starts from a migrated copy."""
    if getattr(request.module, "REAL_MIGRATIONS", False):
        return

    def upgrade(url: str, revision: str = "head") -> None:
        file = database.sqlite_file(url)
        if revision == "head" and file is not None and not file.exists():
            file.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(migrated_database, file)
        UPGRADE(url, revision)

    monkeypatch.setattr(migrations, "upgrade", upgrade)


class SkippingClock:
    """The real time plus every wait skipped: `sleep` moves this clock on instead of waiting."""

    def __init__(self) -> None:
        self.skipped = 0.0

    def time(self) -> float:
        """Seconds since the epoch, as time.time(), plus the waits skipped so far."""
        return time.time() + self.skipped

    def sleep(self, seconds: float) -> None:
        """Skip `seconds`: the codes of that much later are valid at once."""
        self.skipped += max(0.0, seconds)


@pytest.fixture(autouse=True)
def quick_password_hashes(monkeypatch: pytest.MonkeyPatch) -> None:
    """Argon2id hashes at the smallest cost, with the unknown-name check as cheap as a real one."""
    monkeypatch.setattr(accounts, "_hasher", QUICK_HASHER)
    monkeypatch.setattr(accounts, "_DUMMY_HASH", QUICK_DUMMY_HASH)


@pytest.fixture
def production_password_hashes(monkeypatch: pytest.MonkeyPatch, quick_password_hashes: None) -> None:
    """The console's own Argon2 cost from here on, for the test that checks what it stores."""
    for name, value in PRODUCTION.items():
        monkeypatch.setattr(accounts, name, value)


@pytest.fixture(autouse=True)
def authenticator_clock(monkeypatch: pytest.MonkeyPatch) -> Iterator[SkippingClock]:
    """One clock for the console's code check and the test's authenticator app, skipping waits."""
    clock = SkippingClock()
    monkeypatch.setattr(second_factor, "time", clock)
    monkeypatch.setattr(two_factor, "time", clock)
    yield clock


@pytest.fixture(scope="session", autouse=True)
def sanic_apps_in_one_process() -> None:
    """Several Sanic apps may start in one test process (test_sanic_websockets.py, test_monitoring.py).

    Sanic 21.12 rewrites `handle_request` at each app's start (its TouchUp) from the method's
    source; the second start in a process reads the first rewrite's, which has none, and fails
    (KeyError: 'handle_request'). In test mode Sanic keeps the original to rewrite each time, and
    allows several apps of one name (test_monitoring.py starts the action server's more than once).
    """
    from sanic import Sanic

    Sanic.test_mode = True
