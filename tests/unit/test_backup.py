"""clinic-backup and clinic-restore on real SQLite files, a real model store and a real git workspace.

The end-to-end test with running servers (and PostgreSQL) is tests/e2e/test_backups_restored.py.
"""

from __future__ import annotations

import io
import json
import os
import stat
import subprocess
import tarfile
from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

from common import migrations
from common.records.bookings import BookingRequest, BookingStore
from devtools.services import PostgresServer
from staff.commands import backup as command
from staff.service import accounts, content, db
from staff.service import backup as service
from staff.service import models as model_service

PASSWORD = "correct horse battery staple"
NAME = "Siobhán Backup-Test"  # personal data: never printed by the commands
DEVELOPER = ["-c", "user.name=Dee Veloper", "-c", "user.email=dee@example.test"]


def git(root: Path, *args: str) -> str:
    done = subprocess.run(["git", *DEVELOPER, *args], cwd=root, check=True, capture_output=True, text=True)
    return done.stdout


def make_deployment(where: Path, revision: str = "head") -> service.Target:
    """A deployment with a request, a conversation, a staff account, an installed model and two edits."""
    where.mkdir(parents=True, exist_ok=True)
    target = service.Target(f"sqlite:///{where / 'clinic.db'}", where / "models", where / "content")
    if revision == "head":
        store = BookingStore(target.database_url, secret=b"k" * 32)
        store.save(
            BookingRequest(
                NAME, "siobhan@example.com", "email", date.today() + timedelta(days=3), "morning", "knee"
            ),
            "visitor-1",
        )
        engine = db.engine(target.database_url)
        accounts.create_user(engine, "anna", "admin", PASSWORD)
        base = where / "trained.tar.gz"
        base.write_bytes(os.urandom(4096))
        model_service.record_installed(engine, base, target.model_store)
    else:
        migrations.upgrade(target.database_url, revision)
        engine = sa.create_engine(target.database_url)
    with engine.begin() as connection:  # Rasa's tracker store table (made by Rasa in production)
        connection.execute(sa.text("CREATE TABLE events (id INTEGER PRIMARY KEY, sender_id TEXT, data TEXT)"))
        connection.execute(sa.text("INSERT INTO events (sender_id, data) VALUES ('visitor-1', 'hello')"))
    (target.model_store / "served").mkdir(parents=True, exist_ok=True)
    (target.model_store / "served" / "server-copy.tar.gz").write_bytes(b"a server's own copy")
    target.content_root.mkdir()
    git(target.content_root, "init", "-q", "-b", "main")
    for number in (1, 2):
        (target.content_root / "answers.yml").write_text(f"answer: version {number}\n")
        git(target.content_root, "add", "-A")
        git(target.content_root, "commit", "-q", "-m", f"Edit {number}")
    return target


def fresh(where: Path) -> service.Target:
    """Empty places for a restore (nothing exists yet)."""
    return service.Target(f"sqlite:///{where / 'clinic.db'}", where / "models", where / "content")


def rows(url: str, sql: str) -> list[tuple]:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as connection:
            return [tuple(row) for row in connection.execute(sa.text(sql))]
    finally:
        engine.dispose()


def rewrite_manifest(archive: Path, change: dict) -> None:
    """Write the archive again with these manifest fields changed (what a newer version would write)."""
    with tarfile.open(archive) as tar:
        members = [(m, tar.extractfile(m).read()) for m in tar]
    archive.unlink()
    with tarfile.open(archive, "w") as tar:
        for member, data in members:
            if member.name == service.MANIFEST:
                data = json.dumps({**json.loads(data), **change}).encode()
                member.size = len(data)
            tar.addfile(member, io.BytesIO(data))


def test_a_backup_restores_everything_into_empty_places(tmp_path: Path) -> None:
    source = make_deployment(tmp_path / "old")
    made = service.write_backup(source, tmp_path / "backups")
    assert stat.S_IMODE(made.path.stat().st_mode) == 0o600
    names = [part.name for part in made.manifest.parts]
    assert names[0] == service.SQLITE_PART and service.CONTENT_PART in names
    assert not any("served" in name for name in names)  # the servers fetch their copy again
    assert made.manifest.schema_revision == migrations.head()
    assert made.manifest.counts["consultation_requests"] == 1 and made.manifest.counts["conversations"] == 1
    with tarfile.open(made.path) as tar:
        assert tar.getnames()[0] == service.MANIFEST

    target = fresh(tmp_path / "new")
    restored = service.restore_backup(made.path, target)

    assert restored.counts == made.manifest.counts and restored.content_commits == 2
    assert rows(target.database_url, "SELECT name FROM booking_requests") == [(NAME,)]
    assert rows(target.database_url, "SELECT sender_id, data FROM events") == [("visitor-1", "hello")]
    signed = accounts.sign_in(db.engine(target.database_url), "anna", PASSWORD, "127.0.0.1", b"s" * 32)
    assert signed.user is not None and signed.user.name == "anna"
    live = model_service.live(db.engine(target.database_url), tmp_path / "no-model", target.model_store)
    old_live = model_service.live(db.engine(source.database_url), tmp_path / "no-model", source.model_store)
    assert live.sha256 == old_live.sha256 and live.archive.parent.parent == target.model_store
    assert service.sha256_of(live.archive) == live.sha256
    assert not (target.model_store / "served").exists()
    assert git(target.content_root, "log", "--format=%s") == "Edit 2\nEdit 1\n"
    assert git(target.content_root, "status", "--porcelain") == ""
    assert (target.content_root / "answers.yml").read_text() == "answer: version 2\n"


def test_a_restore_run_outside_any_git_repository_restores_the_content(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """As in the console image, whose working directory is no repository (issue 22's image test).

    Before: git 2.39 refused to verify the bundle there ("need a repository to verify a bundle")
    and the restore stopped half way, after the database.
    """
    made = service.write_backup(make_deployment(tmp_path / "old"), tmp_path / "backups")
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    monkeypatch.chdir(outside)
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path))  # no repository above it either
    target = fresh(tmp_path / "new")
    assert service.restore_backup(made.path, target).content_commits == 2
    assert (target.content_root / "answers.yml").read_text() == "answer: version 2\n"


def test_restore_refuses_data_already_there_unless_replace(tmp_path: Path) -> None:
    source = make_deployment(tmp_path / "old")
    made = service.write_backup(source, tmp_path / "backups")
    engine = db.engine(source.database_url)
    accounts.create_user(engine, "later", "editor", PASSWORD)  # made after the backup
    (source.content_root / "answers.yml").write_text("answer: version 3\n")
    git(source.content_root, "commit", "-qam", "Edit 3")

    with pytest.raises(service.BackupError, match="already holds the clinic's data.*--replace"):
        service.restore_backup(made.path, source)
    assert rows(source.database_url, "SELECT COUNT(*) FROM staff_users") == [(2,)]

    service.restore_backup(made.path, source, replace=True)
    assert rows(source.database_url, "SELECT name FROM staff_users") == [("anna",)]
    assert git(source.content_root, "log", "-1", "--format=%s") == "Edit 2\n"
    assert (source.content_root / "answers.yml").read_text() == "answer: version 2\n"


def test_a_non_empty_content_folder_is_refused_before_anything_changes(tmp_path: Path) -> None:
    made = service.write_backup(make_deployment(tmp_path / "old"), tmp_path / "backups")
    target = fresh(tmp_path / "new")
    target.content_root.mkdir(parents=True)
    (target.content_root / "notes.txt").write_text("someone's files")
    with pytest.raises(service.BackupError, match="not a git workspace"):
        service.restore_backup(made.path, target, replace=True)
    assert not Path(target.database_url.removeprefix("sqlite:///")).exists()


def test_a_newer_schema_or_format_is_refused_and_nothing_changes(tmp_path: Path) -> None:
    made = service.write_backup(make_deployment(tmp_path / "old"), tmp_path / "backups")
    target = fresh(tmp_path / "new")
    rewrite_manifest(made.path, {"schema_revision": "0099_from_the_future"})
    with pytest.raises(service.BackupError, match="newer version of the assistant"):
        service.restore_backup(made.path, target)
    rewrite_manifest(made.path, {"format": service.FORMAT + 1})
    with pytest.raises(service.BackupError, match="newer version"):
        service.restore_backup(made.path, target)
    assert not (tmp_path / "new").exists()


def test_a_damaged_archive_is_refused_and_nothing_changes(tmp_path: Path) -> None:
    made = service.write_backup(make_deployment(tmp_path / "old"), tmp_path / "backups")
    data = bytearray(made.path.read_bytes())
    data[-20_000] ^= 0xFF  # a byte of a part (the manifest is first), as a bad disk would
    made.path.write_bytes(bytes(data))
    target = fresh(tmp_path / "new")
    with pytest.raises(service.BackupError, match="damaged"):
        service.restore_backup(made.path, target)
    assert not Path(target.database_url.removeprefix("sqlite:///")).exists()
    assert not target.content_root.exists()
    (tmp_path / "other.tar").write_bytes(b"not an archive")
    with pytest.raises(service.BackupError, match="not a clinic backup"):
        service.restore_backup(tmp_path / "other.tar", target)


def test_uncommitted_edits_are_refused_or_left_out_when_asked(tmp_path: Path) -> None:
    source = make_deployment(tmp_path / "old")
    (source.content_root / "answers.yml").write_text("answer: typed on the server\n")
    with pytest.raises(service.BackupError, match="1 change.*answers.yml.*--skip-uncommitted"):
        service.write_backup(source, tmp_path / "backups")
    assert not list((tmp_path / "backups").glob("*.tar"))

    made = service.write_backup(source, tmp_path / "backups", skip_uncommitted=True)
    assert made.manifest.skipped == ["1 change(s) to the edited content that were not in its history"]
    target = fresh(tmp_path / "new")
    service.restore_backup(made.path, target)
    assert (target.content_root / "answers.yml").read_text() == "answer: version 2\n"


def test_an_older_schema_is_migrated_forward_after_restore(tmp_path: Path) -> None:
    source = make_deployment(tmp_path / "old", revision="0008_privacy")
    made = service.write_backup(source, tmp_path / "backups")
    assert made.manifest.schema_revision == "0008_privacy"
    target = fresh(tmp_path / "new")
    restored = service.restore_backup(made.path, target)
    assert restored.migrated_from == "0008_privacy"
    assert migrations.is_current(target.database_url)
    assert rows(target.database_url, "SELECT sender_id FROM events") == [("visitor-1",)]


def test_the_commands_say_what_they_did_in_words_without_personal_data(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    source = make_deployment(tmp_path / "old")
    for key, value in (
        ("DATABASE_URL", source.database_url),
        ("MODEL_STORE_DIR", str(source.model_store)),
        ("STAFF_PROJECT_ROOT", str(source.content_root)),
    ):
        monkeypatch.setenv(key, value)
    assert command.backup_main(["--output", str(tmp_path / "backups" / "nightly.tar")]) == 0
    said = capsys.readouterr().out
    assert "1 consultation request(s), 1 conversation(s), 1 staff account(s)" in said
    assert "readable by its owner only" in said and "personal data" in said
    assert command.backup_main(["--output", str(tmp_path / "backups" / "nightly.tar")]) == 1
    assert "already exists" in capsys.readouterr().err

    assert command.restore_main([str(tmp_path / "backups" / "nightly.tar")]) == 1
    assert "Nothing was restored" in capsys.readouterr().err
    (tmp_path / "a-file").write_text("")
    assert command.backup_main(["--output", str(tmp_path / "a-file" / "nightly.tar")]) == 1
    assert "No backup was made. A file could not be read or written" in capsys.readouterr().err
    monkeypatch.setenv("DATABASE_URL", f"postgresql://clinic:{'pw' * 8}@127.0.0.1:1/clinic")
    assert command.backup_main(["--output", str(tmp_path / "backups")]) == 1
    refused = capsys.readouterr().err
    assert "No backup was made. pg_dump failed" in refused and "pw" * 8 not in refused

    new = fresh(tmp_path / "new")
    monkeypatch.setenv("DATABASE_URL", new.database_url)
    monkeypatch.setenv("MODEL_STORE_DIR", str(new.model_store))
    monkeypatch.setenv("STAFF_PROJECT_ROOT", str(new.content_root))
    assert command.restore_main([str(tmp_path / "backups" / "nightly.tar")]) == 0
    said = capsys.readouterr().out
    assert "Restored the backup made on" in said and "2 saved change(s)" in said
    assert "erased after" in said
    assert NAME not in said and "siobhan" not in said.lower()


def test_a_restore_refuses_while_the_console_changes_the_content(tmp_path: Path) -> None:
    source = make_deployment(tmp_path / "old")
    made = service.write_backup(source, tmp_path / "backups")
    (source.content_root / "answers.yml").write_text("answer: version 3\n")
    git(source.content_root, "commit", "-qam", "Edit 3")

    with content.locked(source.content_root):  # what the running console holds while it edits
        with pytest.raises(service.BackupError, match="console is running.*stop the servers first"):
            service.restore_backup(made.path, source, replace=True)
    assert git(source.content_root, "log", "-1", "--format=%s") == "Edit 3\n"
    assert (source.content_root / "answers.yml").read_text() == "answer: version 3\n"

    service.restore_backup(made.path, source, replace=True)  # the console stopped: it goes ahead
    assert git(source.content_root, "log", "-1", "--format=%s") == "Edit 2\n"


@pytest.fixture(scope="module")
def postgres() -> Iterator[PostgresServer]:
    """A throw-away PostgreSQL server (the production profile's database)."""
    with PostgresServer() as server:
        yield server


def postgres_deployment(url: str, where: Path) -> service.Target:
    """The PostgreSQL database emptied, then migrated with one staff account; no content."""
    engine = sa.create_engine(url)
    with engine.begin() as connection:
        connection.execute(sa.text("DROP SCHEMA public CASCADE; CREATE SCHEMA public"))
    engine.dispose()
    migrations.upgrade(url)
    accounts.create_user(db.engine(url), "anna", "admin", PASSWORD)
    db.engine(url).dispose()
    return service.Target(url, where / "models", where / "content")


def use(monkeypatch: pytest.MonkeyPatch, target: service.Target) -> None:
    for key, value in (
        ("DATABASE_URL", target.database_url),
        ("MODEL_STORE_DIR", str(target.model_store)),
        ("STAFF_PROJECT_ROOT", str(target.content_root)),
    ):
        monkeypatch.setenv(key, value)


@pytest.mark.parametrize("failing", ["pg_restore", "psql"])
def test_a_failed_postgres_restore_leaves_the_database_as_it_was(
    failing: str,
    postgres: PostgresServer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    target = postgres_deployment(postgres.url, tmp_path)
    made = service.write_backup(target, tmp_path / "backups")
    accounts.create_user(db.engine(postgres.url), "later", "editor", PASSWORD)  # after the backup
    db.engine(postgres.url).dispose()
    # The program fails half way (a full disk, a dump it refuses): pg_restore as soon as it
    # restores (reading the dump's list works), psql after running every statement it was given.
    real = service.postgres_program(failing)
    wrapper = tmp_path / "bin" / failing
    wrapper.parent.mkdir()
    wrapper.write_text(
        '#!/bin/sh\ncase "$*" in *--list*) exec '
        + real
        + ' "$@";; esac\n'
        + (
            'echo "pg_restore: error: could not execute query" >&2; exit 1\n'
            if failing == "pg_restore"
            else f'exec {real} "$@" --command "SELECT 1/0"\n'
        )
    )
    wrapper.chmod(0o755)
    monkeypatch.setenv("PATH", f"{wrapper.parent}:{os.environ['PATH']}")
    use(monkeypatch, target)

    assert command.restore_main([str(made.path), "--replace"]) == 1
    said = capsys.readouterr().err
    assert "Nothing was restored" in said
    assert rows(postgres.url, "SELECT name FROM staff_users ORDER BY name") == [("anna",), ("later",)]


def test_a_postgres_restore_replaces_everything_and_refuses_while_others_are_connected(
    postgres: PostgresServer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    target = postgres_deployment(postgres.url, tmp_path)
    made = service.write_backup(target, tmp_path / "backups")
    engine = sa.create_engine(postgres.url)
    with engine.begin() as connection:  # what a newer version made after the backup
        connection.execute(sa.text("CREATE TABLE newer_table (id INTEGER PRIMARY KEY)"))
        connection.execute(sa.text("DELETE FROM staff_users"))
    use(monkeypatch, target)

    with engine.connect():  # a server still connected
        assert command.restore_main([str(made.path), "--replace"]) == 1
        said = capsys.readouterr().err
        assert "Nothing was restored" in said and "stop the servers first" in said
        assert rows(postgres.url, "SELECT COUNT(*) FROM staff_users") == [(0,)]
        assert command.restore_main([str(made.path), "--replace", "--force"]) == 0
    engine.dispose()
    assert rows(postgres.url, "SELECT name FROM staff_users") == [("anna",)]
    assert "newer_table" not in sa.inspect(sa.create_engine(postgres.url)).get_table_names()
