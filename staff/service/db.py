"""One migrated engine per database, and the times the console stores.

The tables themselves (the console's and those it shares with the action server) are defined
once, in common/records/tables.py.
"""

from __future__ import annotations

from datetime import datetime, timezone
from functools import lru_cache

import sqlalchemy as sa

from common import database, migrations


def now() -> datetime:
    """The current time, in UTC."""
    return datetime.now(timezone.utc)


def as_utc(moment: datetime | None) -> datetime | None:
    """A stored time as an aware UTC time (SQLite gives them back without a zone)."""
    if moment is None:
        return None
    return moment.replace(tzinfo=timezone.utc) if moment.tzinfo is None else moment.astimezone(timezone.utc)


@lru_cache(maxsize=4)
def engine(url: str) -> sa.engine.Engine:
    """The database at `url`, upgraded to the newest schema (once per process)."""
    migrations.upgrade(url)
    return database.create_engine(url)
