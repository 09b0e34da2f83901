"""Connections to the project's SQL database (SQLite by default, PostgreSQL in production)."""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa

SQLITE_PREFIX = "sqlite:///"


def sqlite_file(url: str) -> Path | None:
    """The file of an SQLite URL (None for any other database)."""
    return Path(url[len(SQLITE_PREFIX) :]) if url.startswith(SQLITE_PREFIX) else None


def create_engine(url: str) -> sa.engine.Engine:
    """An engine for `url`; an SQLite file's folder is created if it is missing."""
    path = sqlite_file(url)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
    return sa.create_engine(url, future=True, pool_pre_ping=True)


def exists(url: str) -> bool:
    """Whether the database is there to read (an SQLite file is not created by asking)."""
    path = sqlite_file(url)
    return path is None or path.exists()
