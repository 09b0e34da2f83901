"""Helpers the test modules share: a visitor on the REST channel, live servers, open days."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from common.clinic import load_settings
from servers.launcher import Stack, StackConfig, free_port


def clinic_values() -> dict[str, str]:
    """The slot values the answers are filled with (from clinic.yml)."""
    s = load_settings()
    return {
        "clinic_name": s.name,
        "clinic_phone": s.phone,
        "clinic_email": s.email,
        "clinic_hours": s.hours,
        "clinic_address": s.address,
        "emergency_number": s.emergency_number,
        "booking_link": s.booking_link,
        "retention_days": str(s.retention_days),
    }


def open_day(days_ahead: int = 2) -> date:
    """The first day the clinic is open, at least `days_ahead` days from now."""
    return load_settings().next_open_day(date.today() + timedelta(days=days_ahead))


class Chat:
    """A visitor talking to the REST channel of a running server."""

    def __init__(self, base_url: str) -> None:
        self.url = f"{base_url}/webhooks/rest/webhook"

    def post(self, body: bytes, content_type: str = "application/json") -> tuple[int, Any]:
        """POST a raw body; return the status and the decoded JSON (or text) answer."""
        request = urllib.request.Request(
            self.url, data=body, method="POST", headers={"Content-Type": content_type}
        )
        try:
            with urllib.request.urlopen(request, timeout=60) as response:
                return response.status, json.loads(response.read() or b"null")
        except urllib.error.HTTPError as error:
            text = error.read().decode("utf-8", "replace")
            try:
                return error.code, json.loads(text)
            except json.JSONDecodeError:
                return error.code, text

    def say(self, sender: str, text: str) -> list[dict[str, Any]]:
        """Send one message; return the bot's messages (asserting HTTP 200)."""
        status, messages = self.post(json.dumps({"sender": sender, "message": text}).encode())
        assert status == 200, messages
        return messages

    def conversation_id(self, sender: str) -> str:
        """The id the server stores `sender`'s conversation under (today: the sender name itself)."""
        return sender

    def texts(self, sender: str, text: str) -> list[str]:
        """Send one message; return the texts of the bot's messages."""
        return [m["text"] for m in self.say(sender, text) if "text" in m]


def make_pre_migration_database(url: str, references: list[str]) -> None:
    """A database as the code before migrations made it (BookingStore's create_all), with requests.

    The table is written out here as main's HEAD (2026-12-03) defined it, so the migration
    tests keep testing the upgrade from that schema whatever the current code says.
    """
    metadata = sa.MetaData()
    table = sa.Table(
        "booking_requests",
        metadata,
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("reference", sa.String(16), nullable=False, unique=True),
        sa.Column("dedupe_key", sa.String(64), nullable=False, unique=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("name", sa.Text, nullable=False),
        sa.Column("contact", sa.Text, nullable=False),
        sa.Column("contact_type", sa.String(8), nullable=False),
        sa.Column("preferred_date", sa.Date, nullable=False),
        sa.Column("time_of_day", sa.String(16), nullable=False),
        sa.Column("scar", sa.Text, nullable=False, default=""),
        sa.Column("consent_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("delivered_at", sa.DateTime(timezone=True)),
        sa.Column("delivery_attempts", sa.Integer, nullable=False, default=0),
        sa.Column("last_delivery_error", sa.String(200)),
    )
    engine = sa.create_engine(url, future=True)
    metadata.create_all(engine)
    now = datetime.now(timezone.utc)
    with engine.begin() as db:
        for number, reference in enumerate(references):
            db.execute(
                table.insert().values(
                    reference=reference,
                    dedupe_key=f"{number:064d}",
                    created_at=now - timedelta(days=number),
                    name=f"Siobhán O'Neill {number}",
                    contact=f"person{number}@example.com",
                    contact_type="email",
                    preferred_date=date.today() + timedelta(days=3),
                    time_of_day="morning",
                    scar="acne",
                    consent_at=now,
                    delivery_attempts=number,
                )
            )
    engine.dispose()


def stack_config(tmp_path: Path) -> StackConfig:
    """Servers on free ports with their own SQLite database in tmp_path."""
    return StackConfig(
        rasa_port=free_port(), action_port=free_port(), database_url=f"sqlite:///{tmp_path / 'clinic.db'}"
    )


class LiveAssistant(Chat):
    """The running servers: chat with them, read their log and their database."""

    def __init__(self, stack: Stack, log_path: Path) -> None:
        super().__init__(stack.config.rasa_url)
        self.database_url = stack.config.database_url
        self.action_server_url = f"http://127.0.0.1:{stack.config.action_port}"
        self.log_path = log_path


# What the console edits and what make validate's checks read: a copy of these is a project.
PROJECT_PARTS = (
    ".gitignore",
    "clinic.yml",
    "config.yml",
    "domain",
    "data",
    "content",
    "actions",
    "tests/heldout",
    "tests/stories",
)


def project_copy(target: Path) -> Path:
    """A copy of the project's content in `target`, as a git repository with one developer's commit.

    Tests that edit the project (the console's editing pages) work on this, never on the real files.
    """
    import shutil
    import subprocess

    from common.paths import PROJECT_ROOT

    for part in PROJECT_PARTS:
        source, copy = PROJECT_ROOT / part, target / part
        copy.parent.mkdir(parents=True, exist_ok=True)
        if source.is_dir():
            shutil.copytree(source, copy, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copyfile(source, copy)
    developer = ["-c", "user.name=Dee Veloper", "-c", "user.email=dee@example.test"]
    for command in (
        ["init", "-q", "-b", "main"],
        ["add", "-A"],
        [*developer, "commit", "-q", "-m", "The project"],
    ):
        subprocess.run(["git", *command], cwd=target, check=True, capture_output=True)
    return target
