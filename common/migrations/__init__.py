"""The project's database schema, upgraded by Alembic migrations (versions/), never by create_all.

`upgrade(url)` brings a database to the newest revision and is what every process that
uses the database calls at start (the action server through BookingStore, the console,
the staff commands). It is safe when several start at once: on PostgreSQL the upgrade runs
in one transaction under an advisory lock, on SQLite under a lock file beside the database,
so the second process waits and then finds nothing left to do.

A database made before migrations existed (it has `booking_requests` but no
`alembic_version`) is recognised: it is stamped with the baseline revision, whose schema is
exactly that table, and then upgraded, so no row is lost. Rasa's own `events` table lives
in the same database and is never touched here.
"""

from __future__ import annotations

import contextlib
import fcntl
from collections.abc import Iterator
from pathlib import Path

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

from common import database

HERE = Path(__file__).resolve().parent
BASELINE = "0001_baseline"  # booking_requests as the code before migrations created it
# Any constant: the key of the PostgreSQL advisory lock that serialises upgrades.
ADVISORY_LOCK_KEY = 0x5CA4_F00D


def config() -> Config:
    """Alembic's configuration for these migrations (no alembic.ini needed)."""
    cfg = Config()
    cfg.set_main_option("script_location", str(HERE))
    return cfg


def head() -> str:
    """The newest revision."""
    return ScriptDirectory.from_config(config()).get_current_head() or BASELINE


def current(connection: sa.engine.Connection) -> str | None:
    """The revision this database is at (None: never migrated)."""
    return MigrationContext.configure(connection).get_current_revision()


@contextlib.contextmanager
def _sqlite_lock(path: Path) -> Iterator[None]:
    """Hold an exclusive lock file beside the SQLite database (other processes wait)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_name(path.name + ".migrate-lock"), "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _upgrade(connection: sa.engine.Connection, revision: str) -> None:
    cfg = config()
    cfg.attributes["connection"] = connection
    if current(connection) is None and sa.inspect(connection).has_table("booking_requests"):
        command.stamp(cfg, BASELINE)  # made by the code before migrations: keep its rows
    command.upgrade(cfg, revision)


def upgrade(url: str, revision: str = "head") -> None:
    """Bring the database at `url` to `revision` (the newest by default), keeping every row."""
    engine = database.create_engine(url)
    try:
        file = database.sqlite_file(url)
        if file is not None:
            with _sqlite_lock(file), engine.begin() as connection:
                _upgrade(connection, revision)
        else:
            with engine.begin() as connection:
                if connection.dialect.name == "postgresql":
                    connection.execute(
                        sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": ADVISORY_LOCK_KEY}
                    )
                _upgrade(connection, revision)
    finally:
        engine.dispose()


def is_current(url: str) -> bool:
    """Whether the database is at the newest revision (False if it does not exist yet)."""
    if not database.exists(url):
        return False
    engine = database.create_engine(url)
    try:
        with engine.connect() as connection:
            return current(connection) == head()
    finally:
        engine.dispose()
