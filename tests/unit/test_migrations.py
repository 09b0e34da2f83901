"""The database schema comes from Alembic migrations (common/migrations/), on SQLite here.

PostgreSQL: tests/e2e/test_migrations_postgres.py runs the same upgrade on a real server.
"""

from __future__ import annotations

import multiprocessing
from pathlib import Path

import sqlalchemy as sa
from alembic import command

from common import migrations
from common.records.bookings import BookingStore
from tests.helpers import make_pre_migration_database

# These tests are the migrations: every database here is migrated for real (tests/unit/conftest.py
# starts other tests' new databases from a copy of one migrated database).
REAL_MIGRATIONS = True
REFERENCES = ["SR-AAAAAAAA", "SR-BBBBBBBB", "SR-CCCCCCCC"]
CONSOLE_TABLES = {"staff_users", "login_attempts", "audit_log", "review_decisions"}


def tables(url: str) -> set[str]:
    engine = sa.create_engine(url)
    try:
        return set(sa.inspect(engine).get_table_names())
    finally:
        engine.dispose()


def test_a_new_database_gets_every_table_at_the_newest_revision(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'new.db'}"
    migrations.upgrade(url)
    assert tables(url) >= {"booking_requests", "alembic_version", *CONSOLE_TABLES}
    assert migrations.is_current(url)


def test_a_database_made_before_migrations_is_upgraded_keeping_every_request(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'old.db'}"
    make_pre_migration_database(url, REFERENCES)
    assert "alembic_version" not in tables(url)

    store = BookingStore(url)  # what the action server and the console do at start

    assert migrations.is_current(url)
    rows = {row["reference"]: row for row in store.list()}
    assert sorted(rows) == sorted(REFERENCES)
    assert rows["SR-BBBBBBBB"]["name"] == "Siobhán O'Neill 1"
    assert rows["SR-CCCCCCCC"]["delivery_attempts"] == 2
    assert {row["status"] for row in rows.values()} == {"new"}  # not yet handled by staff
    assert tables(url) >= CONSOLE_TABLES


def test_upgrading_twice_changes_nothing(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'twice.db'}"
    make_pre_migration_database(url, REFERENCES[:1])
    migrations.upgrade(url)
    migrations.upgrade(url)
    assert [r["reference"] for r in BookingStore(url).list()] == REFERENCES[:1]


def test_the_baseline_is_the_schema_the_old_code_made(tmp_path: Path) -> None:
    old, baseline = f"sqlite:///{tmp_path / 'old.db'}", f"sqlite:///{tmp_path / 'baseline.db'}"
    make_pre_migration_database(old, [])
    migrations.upgrade(baseline, migrations.BASELINE)

    def columns(url: str) -> list[tuple[str, str, bool]]:
        engine = sa.create_engine(url)
        try:
            return [
                (c["name"], str(c["type"]), c["nullable"])
                for c in sa.inspect(engine).get_columns("booking_requests")
            ]
        finally:
            engine.dispose()

    assert columns(baseline) == columns(old)


def _upgrade(url: str) -> None:
    migrations.upgrade(url)


def test_two_processes_starting_at_once_both_succeed(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'race.db'}"
    make_pre_migration_database(url, REFERENCES)
    context = multiprocessing.get_context("spawn")
    workers = [context.Process(target=_upgrade, args=(url,)) for _ in range(2)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(60)
    assert [worker.exitcode for worker in workers] == [0, 0]
    assert migrations.is_current(url)
    assert len(BookingStore(url).list()) == len(REFERENCES)


def test_the_migrations_make_exactly_the_tables_the_code_defines(tmp_path: Path) -> None:
    """common/records/tables.py and the migrations agree: no table, column, type or index differs.

    A column added to a Table in code without a migration would fail only on a real database; a
    table a migration made that the code no longer defines would be left behind, unread.
    """
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    from common.records import tables

    url = f"sqlite:///{tmp_path / 'schema.db'}"
    migrations.upgrade(url)
    engine = sa.create_engine(url)
    try:
        with engine.connect() as connection:
            context = MigrationContext.configure(connection, opts={"compare_type": True})
            differences = [
                diff
                for diff in compare_metadata(context, tables.metadata)
                if not (diff[0] == "remove_table" and diff[1].name == "alembic_version")
            ]
    finally:
        engine.dispose()
    assert differences == []
    assert tables.events.name not in tables.metadata.tables  # Rasa's table: the migrations never make it


def test_each_requests_old_note_becomes_the_first_entry_of_its_history(tmp_path: Path) -> None:
    """0010_reception: the one note field each request had is kept, as its first history entry."""
    url = f"sqlite:///{tmp_path / 'notes.db'}"
    make_pre_migration_database(url, REFERENCES[:2])
    migrations.upgrade(url, "0009_two_factor")
    engine = sa.create_engine(url)
    try:
        with engine.begin() as db:
            db.execute(
                sa.text(
                    "UPDATE booking_requests SET status = 'contacted',"
                    " status_note = 'Rang, left a voicemail', status_changed_by = 'rita',"
                    " status_changed_at = '2026-12-01 10:00:00' WHERE reference = :r"
                ),
                {"r": REFERENCES[0]},
            )
        migrations.upgrade(url)
        with engine.connect() as db:
            entries = db.execute(sa.text("SELECT staff_name, status_to, note FROM booking_history")).all()
        assert [tuple(e) for e in entries] == [("rita", "contacted", "Rang, left a voicemail")]
        with engine.begin() as connection:  # and back: the note stays on the request
            cfg = migrations.config()
            cfg.attributes["connection"] = connection
            command.downgrade(cfg, "0009_two_factor")
        with engine.connect() as db:
            assert (
                db.execute(
                    sa.text("SELECT status_note FROM booking_requests WHERE reference = :r"),
                    {"r": REFERENCES[0]},
                ).scalar_one()
                == "Rang, left a voicemail"
            )
        assert "booking_history" not in tables(url)
    finally:
        engine.dispose()
