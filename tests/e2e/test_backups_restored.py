"""Backups that restore: back up running servers, delete everything, restore into a fresh stack.

Its own module: each test runs two stacks in turn (the one backed up and the fresh one the
backup is restored into), which no other module's single stack can give. The SQLite test is
the local profile with the console (bookings, conversations, staff accounts with their second
factor, a published model, a staff edit); the PostgreSQL test is the production profile with
pg_dump/pg_restore and Rasa's conversations continuing on the restored database.
"""

from __future__ import annotations

import gzip
import hashlib
import shutil
import subprocess
import sys
import urllib.request
import uuid
from contextlib import ExitStack
from datetime import date, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from playwright.sync_api import Browser

from common import migrations
from common.clinic import load_settings
from common.paths import MODEL, PROJECT_ROOT
from common.settings import MODEL_SERVER_PATH
from devtools.services import PostgresServer, RedisServer, production_configs
from servers.launcher import Stack, StackConfig, free_port
from staff.service import accounts, db, evaluate
from staff.service import models as model_service
from tests.e2e.console_site import APPS, LAPTOP, LAST_STEPS, PASSWORD, SESSIONS, Site, Staff, add_user
from tests.helpers import Chat, project_copy

pytestmark = pytest.mark.e2e
NAME, EMAIL = "Priya O'Sharma-Test", "priya.test@example.com"
SECRET_KEY = "test-only-console-key-" + "b" * 20  # not in a backup: the clinic keeps it with its secrets


def command(name: str, args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess:
    """Run clinic-backup or clinic-restore (this checkout's) as an operator would."""
    code = f"import sys; from staff.commands.backup import {name}; sys.exit({name}())"
    return subprocess.run(
        [sys.executable, "-c", code, *args],
        env=env,
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )


def book(chat: Chat, visitor: str) -> str:
    """A visitor books a consultation over REST; the reference they are given."""
    day = load_settings().next_open_day(date.today() + timedelta(days=2))
    for said in (
        "I'd like to book a consultation",
        NAME,
        EMAIL,
        f"{day.day} {day:%B}",
        "afternoon",
        "<i>knee</i> scar",
    ):
        chat.texts(visitor, said)
    chat.texts(visitor, "/affirm")  # consent
    said = " ".join(chat.texts(visitor, "/affirm"))  # the summary is right
    assert "Your reference is " in said, said
    return said.split("Your reference is ")[1][:11]


def publish_a_model(database_url: str, store: Path, work: Path) -> str:
    """Publish a model (the trained one, packed again: a new fingerprint) as the console records it."""
    engine = db.engine(database_url)
    live = model_service.live(engine, MODEL, store)
    again = work / "published.tar.gz"
    with gzip.open(MODEL, "rb") as source, gzip.GzipFile(str(again), "wb", mtime=1) as target:
        shutil.copyfileobj(source, target)
    run = model_service.start_run(engine, "anna")
    model_service.record_model(engine, run, again, "inputs", 1.0)
    comparison = evaluate.Comparison(10, 9, 9, [], [], 3, live_sha256=live.sha256 or "")
    report = {"comparison": comparison.as_dict(), "reasons": []}
    model_service.finish(engine, run, model_service.READY, "Ready to publish", report)
    model_service.publish(engine, run, "anna", MODEL, store)
    return model_service.live(engine, MODEL, store).sha256 or ""


def served_model(config: StackConfig, token: str) -> bytes:
    """The model the console's model server gives the Rasa servers."""
    request = urllib.request.Request(
        f"{config.console_url}{MODEL_SERVER_PATH}", headers={"Authorization": f"Bearer {token}"}
    )
    with urllib.request.urlopen(request, timeout=60) as answer:
        return answer.read()


def console_stack(where: Path, root: Path) -> StackConfig:
    """The local profile's servers and console on free ports, with everything under `where`."""
    return StackConfig(
        rasa_port=free_port(),
        action_port=free_port(),
        console_port=free_port(),
        console_root=root,
        database_url=f"sqlite:///{where / 'clinic.db'}",
        extra_env={
            "STAFF_SECRET_KEY": SECRET_KEY,
            "CLINIC_SETTINGS": str(root / "clinic.yml"),
            "MODEL_STORE_DIR": str(where / "models"),
        },
    )


def git_log(root: Path) -> str:
    return subprocess.run(
        ["git", "log", "--all", "--format=%H %an %s"], cwd=root, capture_output=True, text=True, check=True
    ).stdout


def test_sqlite_everything_is_back_after_deleting_it_all(browser: Browser, tmp_path: Path) -> None:
    old, new = tmp_path / "old", tmp_path / "new"
    root = project_copy(old / "project")
    config = console_stack(old, root)
    visitor, asker = f"backup-{uuid.uuid4().hex[:6]}", f"asker-{uuid.uuid4().hex[:6]}"
    with (tmp_path / "old.log").open("w") as log, Stack(config, log) as stack:
        chat = Chat(config.rasa_url)
        reference = book(chat, visitor)
        chat.texts(asker, "how much does it cost")
        add_user(config.database_url, "anna", "admin")
        add_user(config.database_url, "eddie", "editor")
        site = Site(stack, config.console_url or "", "", root, config.database_url, chat)
        contexts = [browser.new_context(viewport=LAPTOP) for _ in range(2)]
        admin, editor = Staff(contexts[0], site), Staff(contexts[1], site)
        admin.sign_in("anna")  # sets up her authenticator app: her second factor is in the database
        editor.sign_in("eddie")
        page = editor.open("/clinic/")
        page.get_by_label("Phone number").fill("020 7946 0111")
        page.get_by_role("button", name="Save").click()
        assert "no training and no restart needed" in editor.flash()
        published = publish_a_model(config.database_url, old / "models", tmp_path)
        live_before = admin.open("/models/").locator("#live-title + p").inner_text()
        assert "published by anna" in live_before
        assert not admin.problems and not editor.problems, admin.problems + editor.problems
        for context in contexts:
            context.close()
        # Backed up while every server runs, as a nightly job would.
        made = command("backup_main", ["--output", str(tmp_path / "backups")], stack.environment)
        assert made.returncode == 0, made.stderr
        events = {
            who: site_events(config.database_url, chat.conversation_id(who)) for who in (visitor, asker)
        }
    log_before = git_log(root)
    [archive] = (tmp_path / "backups").glob("clinic-backup-*.tar")
    assert archive.stat().st_mode & 0o777 == 0o600
    assert NAME not in made.stdout and EMAIL not in made.stdout and reference not in made.stdout
    shutil.rmtree(old)  # the database, the model store and the edited content: all gone

    fresh = console_stack(new, new / "project")
    fresh_env = Stack(fresh).environment
    restored = command("restore_main", [str(archive)], fresh_env)
    assert restored.returncode == 0, restored.stderr
    assert "Restored the backup made on" in restored.stdout and "1 consultation request(s)" in restored.stdout
    again = command("restore_main", [str(archive)], fresh_env)
    assert again.returncode == 1 and "--replace" in again.stderr  # never over data already there

    with (tmp_path / "new.log").open("w") as log, Stack(fresh, log) as stack:
        row = query(
            fresh.database_url, "SELECT name, contact FROM booking_requests WHERE reference = :r", reference
        )
        assert row == [(NAME, EMAIL)]
        chat = Chat(fresh.rasa_url)
        for who, count in events.items():
            assert site_events(fresh.database_url, chat.conversation_id(who)) == count
        chat.texts(asker, "where is the clinic")  # the same conversation goes on (Chat checks the id)
        assert site_events(fresh.database_url, chat.conversation_id(asker)) > events[asker]
        site = Site(stack, fresh.console_url or "", "", new / "project", fresh.database_url, chat)
        for key in [key for key in APPS if key[0] == config.console_url]:
            APPS[fresh.console_url, key[1]] = APPS[key]
            LAST_STEPS[fresh.console_url, key[1]] = LAST_STEPS[key]
        # No session kept from before (a fresh console may get the old one's port): a code is typed.
        for key in [key for key in SESSIONS if key[0] == fresh.console_url]:
            SESSIONS.pop(key)
        context = browser.new_context(viewport=LAPTOP)
        admin = Staff(context, site)
        page = admin.sign_in("anna")  # with the code from the app she set up before the backup
        assert "/login" not in page.url, page.url
        assert admin.open("/models/").locator("#live-title + p").inner_text() == live_before
        assert not admin.problems, admin.problems
        context.close()
        body = served_model(fresh, stack.environment["MODEL_SERVER_TOKEN"])
        assert hashlib.sha256(body).hexdigest() == published
    assert git_log(new / "project") == log_before
    assert load_settings(new / "project" / "clinic.yml").phone == "020 7946 0111"


def query(url: str, sql: str, value: str) -> list[tuple]:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as connection:
            return [tuple(row) for row in connection.execute(sa.text(sql), {"r": value})]
    finally:
        engine.dispose()


def site_events(url: str, conversation_id: str) -> int:
    return query(url, "SELECT COUNT(*) FROM events WHERE sender_id = :r", conversation_id)[0][0]


def test_postgresql_everything_is_back_in_a_fresh_database(tmp_path: Path) -> None:
    visitor = f"pg-backup-{uuid.uuid4().hex[:6]}"
    root = project_copy(tmp_path / "old-project")
    with ExitStack() as running:
        lock_store = running.enter_context(RedisServer())
        postgres = running.enter_context(PostgresServer())
        [config] = production_configs(
            postgres,
            lock_store,
            1,
            MODEL_STORE_DIR=str(tmp_path / "old-models"),
            STAFF_PROJECT_ROOT=str(root),
        )
        with (tmp_path / "old.log").open("w") as log, Stack(config, log) as stack:
            chat = Chat(config.rasa_url)
            reference = book(chat, visitor)
            accounts.create_user(db.engine(postgres.url), "rita", "reception", PASSWORD)
            made = command("backup_main", ["--output", str(tmp_path / "pg.tar")], stack.environment)
            assert made.returncode == 0, made.stderr
            environment = stack.environment
        count = site_events(postgres.url, chat.conversation_id(visitor))
        postgres.stop()  # the database server and its files are gone

        fresh = running.enter_context(PostgresServer())
        migrations.upgrade(fresh.url)  # as a fresh stack's first start leaves it: tables, no data
        env = {
            **environment,
            "DATABASE_URL": fresh.url,
            "MODEL_STORE_DIR": str(tmp_path / "new-models"),
            "STAFF_PROJECT_ROOT": str(tmp_path / "new-project"),
        }
        restored = command("restore_main", [str(tmp_path / "pg.tar")], env)
        assert restored.returncode == 0, restored.stderr
        assert migrations.is_current(fresh.url)
        assert query(fresh.url, "SELECT name FROM booking_requests WHERE reference = :r", reference) == [
            (NAME,)
        ]
        assert site_events(fresh.url, chat.conversation_id(visitor)) == count
        signed = accounts.sign_in(db.engine(fresh.url), "rita", PASSWORD, "127.0.0.1", b"s" * 32)
        assert signed.user is not None

        assert git_log(tmp_path / "new-project") == git_log(root)
        [config] = production_configs(
            fresh,
            lock_store,
            1,
            MODEL_STORE_DIR=str(tmp_path / "new-models"),
            CONVERSATION_SECRET=environment["CONVERSATION_SECRET"],  # the clinic's secrets are kept apart
        )
        with (tmp_path / "new.log").open("w") as log, Stack(config, log):
            chat = Chat(config.rasa_url)
            chat.texts(visitor, "how much does it cost")  # the restored conversation goes on
        assert site_events(fresh.url, chat.conversation_id(visitor)) > count
