"""The live chat queue's cap holds when many servers add requests at the same moment.

Each request is one conditional INSERT (common/records/live_chat.py `request`); on PostgreSQL it also
takes an advisory lock, since two transactions there can each count the queue before either
inserts. Many threads, each with its own connection (as several action servers would), ask
at once, on SQLite and on a real PostgreSQL server (devtools/services.py).
"""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import sqlalchemy as sa

from common.records import live_chat
from devtools.services import PostgresServer

pytestmark = pytest.mark.e2e

CAP = 4
ASKING = 20


@pytest.fixture(scope="module")
def postgres() -> Iterator[PostgresServer]:
    with PostgresServer() as server:
        yield server


def ask_at_once(url: str) -> tuple[int, int]:
    """ASKING conversations ask for a person at once; how many were queued, and how many wait."""
    live_chat.engine(url)  # migrated once
    engines = [sa.create_engine(url, poolclass=sa.pool.NullPool) for _ in range(ASKING)]
    with ThreadPoolExecutor(ASKING) as pool:
        queued = list(
            pool.map(lambda n: live_chat.request(engines[n], f"conversation-{n}", CAP), range(ASKING))
        )
    waiting = len(live_chat.open_chats(live_chat.engine(url)))
    return sum(chat is not None for chat in queued), waiting


def test_the_cap_holds_on_sqlite(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'clinic.db'}"
    assert ask_at_once(url) == (CAP, CAP)


def test_the_cap_holds_on_postgresql(postgres: PostgresServer) -> None:
    assert ask_at_once(postgres.url) == (CAP, CAP)


def test_a_conversation_already_waiting_keeps_its_place_when_the_queue_is_full(tmp_path: Path) -> None:
    db = live_chat.engine(f"sqlite:///{tmp_path / 'clinic.db'}")
    first = [live_chat.request(db, f"c-{n}", 2) for n in range(3)]
    assert [chat is not None for chat in first] == [True, True, False]
    again = live_chat.request(db, "c-0", 2)
    assert again is not None and again.id == first[0].id  # type: ignore[union-attr]
