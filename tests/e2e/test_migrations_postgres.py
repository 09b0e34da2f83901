"""The migrations on a real PostgreSQL server (Debian's, started by devtools/services.py).

A database made by the code before migrations, with requests and a conversation in it, is
upgraded by the first process that starts; two processes starting at once wait for each
other (an advisory lock), and no row is lost.
"""

from __future__ import annotations

import multiprocessing
from collections.abc import Iterator

import pytest
import sqlalchemy as sa

from common import migrations
from common.records.bookings import BookingStore
from devtools.services import PostgresServer
from tests.helpers import make_pre_migration_database

pytestmark = pytest.mark.e2e

REFERENCES = ["SR-PGAAAAAA", "SR-PGBBBBBB"]


@pytest.fixture(scope="module")
def postgres() -> Iterator[PostgresServer]:
    with PostgresServer() as server:
        yield server


def _upgrade(url: str) -> None:
    migrations.upgrade(url)


def test_postgres_database_from_before_migrations_is_upgraded_by_two_processes_at_once(
    postgres: PostgresServer,
) -> None:
    url = postgres.url
    make_pre_migration_database(url, REFERENCES)
    engine = sa.create_engine(url)
    with engine.begin() as db:  # Rasa's conversations live in the same database: untouched
        db.execute(sa.text("CREATE TABLE events (id SERIAL PRIMARY KEY, sender_id TEXT, data TEXT)"))
        db.execute(sa.text("INSERT INTO events (sender_id, data) VALUES ('v', 'hello')"))
    context = multiprocessing.get_context("spawn")
    workers = [context.Process(target=_upgrade, args=(url,)) for _ in range(2)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(120)
    assert [worker.exitcode for worker in workers] == [0, 0]

    assert migrations.is_current(url)
    rows = {row["reference"]: row for row in BookingStore(url).list()}
    assert sorted(rows) == sorted(REFERENCES)
    assert rows["SR-PGBBBBBB"]["name"] == "Siobhán O'Neill 1"
    assert {row["status"] for row in rows.values()} == {"new"}
    with engine.connect() as db:
        assert db.execute(sa.text("SELECT data FROM events")).scalars().all() == ["hello"]
        assert (
            db.execute(sa.text("SELECT version_num FROM alembic_version")).scalar_one() == migrations.head()
        )
        tables = set(sa.inspect(db).get_table_names())
    assert {"staff_users", "login_attempts", "audit_log", "review_decisions"} <= tables
    engine.dispose()


def test_postgres_the_daily_limit_per_contact_survives_erasing_a_request(postgres: PostgresServer) -> None:
    """Issue 20: the limit counts keyed hashes of the contact (0008_privacy), not the requests."""
    from dataclasses import replace
    from datetime import date

    from common.records.bookings import BookingRequest, ContactLimitReached

    store = BookingStore(postgres.url, secret=b"postgres test secret")
    request = BookingRequest("Pat", "pat.pg@example.com", "email", date(2026, 12, 9), "morning", "acne")
    references = [
        store.save(replace(request, scar=str(n)), f"pg-{n}", max_per_contact_per_day=3)[0] for n in range(3)
    ]
    store.erase(references[:1])
    with pytest.raises(ContactLimitReached):
        store.save(request, "pg-4", max_per_contact_per_day=3)
