"""Helpers the test modules share: a visitor on the REST channel, live servers, open days."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import socketio
import sqlalchemy as sa
import yaml

from common.clinic import load_settings
from common.names import CONVERSATION_HEADER
from common.paths import MODEL, PROJECT_ROOT, WEB_ROOT
from servers.launcher import Stack, StackConfig, free_port

# The browser the e2e tests drive (Debian's Chromium through Playwright) and the chat widget's
# parts (web/chat.js), named once for every browser test. Debian's chromium-headless-shell is
# Chromium's own headless build (the same Blink and V8, the build Playwright itself uses when
# headless): it drew the same pages with about a third of the full browser's CPU (test_web.py:
# 8 CPU-seconds instead of 23), and `make test` is bound by the machine's two cores.
CHROMIUM = Path("/usr/bin/chromium-headless-shell")
CHROMIUM_PACKAGE = "chromium-headless-shell"
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
    "--disable-quic",
]
BROWSER_TIMEOUT_MS = 30_000
AXE = WEB_ROOT / "node_modules" / "axe-core" / "axe.min.js"
WIDGET_BOT = ".cc-log .cc-msg-bot .cc-text"
WIDGET_VISITOR = ".cc-log .cc-msg-user .cc-text"
WIDGET_LAUNCHER = "button.cc-launcher"
WIDGET_MESSAGE_BOX = "textarea.cc-input"
WIDGET_REPLY = ".cc-reply"
WIDGET_SUBTITLE = ".cc-subtitle"
WIDGET_TYPING = ".cc-typing"


def squash(text: str) -> str:
    """Text as a reader sees it, spacing aside."""
    return " ".join(text.split())


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


# The token the test servers' monitoring scrapers send (METRICS_TOKEN; common/metrics.py).
METRICS_TOKEN = "test-metrics-token-0123456789abcdefghijklmnop"


def read_metrics(base_url: str, token: str | None = METRICS_TOKEN) -> tuple[int, dict[tuple, float], str]:
    """GET base_url/metrics: the status, each sample by (name, sorted labels), and the raw text."""
    from prometheus_client.parser import text_string_to_metric_families

    headers = {"Authorization": f"Bearer {token}"} if token else {}
    request = urllib.request.Request(f"{base_url}/metrics", headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            status, text = response.status, response.read().decode("utf-8")
    except urllib.error.HTTPError as error:
        return error.code, {}, error.read().decode("utf-8", "replace")
    samples = {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }
    return status, samples, text


def json_log_lines(text: str) -> list[dict[str, Any]]:
    """The JSON log lines (LOG_FORMAT=json) in a servers' log, in order; other output is skipped."""
    lines = []
    for line in text.splitlines():
        if line.startswith("{"):
            lines.append(json.loads(line))  # a line that starts like JSON must be JSON
    return lines


# Logical sender name -> the conversation id the server issued for it, shared by every Chat, so
# one visitor can talk to two servers in turn (production) or to a restarted server.
ISSUED_IDS: dict[str, str] = {}


class Chat:
    """A visitor talking to the REST channel of a running server.

    Tests name their visitors ("visitor-1a2b"); the server issues conversation ids. The first
    message of a name is sent with that name as `sender` (not an id the server issued, so a new
    conversation starts) and the id in the reply's X-Conversation-Id header is used from then on.
    A server that sends no such header keeps the name as the id (as Rasa's own channel did).
    """

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url
        self.url = f"{base_url}/webhooks/rest/webhook"
        self.last_headers: dict[str, str] = {}

    def post(
        self,
        body: bytes,
        content_type: str = "application/json",
        headers: dict[str, str] | None = None,
        timeout: float = 60,
    ) -> tuple[int, Any]:
        """POST a raw body; return the status and the decoded JSON (or text) answer."""
        request = urllib.request.Request(
            self.url, data=body, method="POST", headers={"Content-Type": content_type, **(headers or {})}
        )
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                self.last_headers = dict(response.headers)
                return response.status, json.loads(response.read() or b"null")
        except urllib.error.HTTPError as error:
            self.last_headers = dict(error.headers)
            text = error.read().decode("utf-8", "replace")
            try:
                return error.code, json.loads(text)
            except json.JSONDecodeError:
                return error.code, text

    def send(self, sender: str, text: str) -> tuple[int, Any]:
        """Send one message as the visitor `sender`; return the status and the answer."""
        sent_id = ISSUED_IDS.get(sender, sender)
        status, answer = self.post(json.dumps({"sender": sent_id, "message": text}).encode())
        issued = self.last_headers.get(CONVERSATION_HEADER, sent_id)
        if sender in ISSUED_IDS and issued != sent_id:
            raise AssertionError(f"the server started a new conversation for {sender!r}")
        ISSUED_IDS[sender] = issued
        return status, answer

    def say(self, sender: str, text: str) -> list[dict[str, Any]]:
        """Send one message; return the bot's messages (asserting HTTP 200)."""
        status, messages = self.send(sender, text)
        assert status == 200, messages
        return messages

    def texts(self, sender: str, text: str) -> list[str]:
        """Send one message; return the texts of the bot's messages."""
        return [m["text"] for m in self.say(sender, text) if "text" in m]

    @staticmethod
    def conversation_id(sender: str) -> str:
        """The id the server issued for the visitor `sender` (their `sender_id` in the database)."""
        try:
            return ISSUED_IDS[sender]
        except KeyError:
            raise AssertionError(f"{sender!r} has not sent a message yet") from None


def handle_of(conversation_id: str) -> str:
    """The public handle staff see for a conversation (the servers of a test share this checkout's key)."""
    from common import conversation_ids, settings

    return conversation_ids.handle(conversation_id, settings.current().live_chat_key())


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
        self.stack = stack

    def query(self, sql: str, **params: object) -> list[tuple]:
        """Run one SQL query on the servers' database; return its rows."""
        engine = sa.create_engine(self.database_url)
        try:
            with engine.connect() as db:
                return [tuple(row) for row in db.execute(sa.text(sql), params)]
        finally:
            engine.dispose()

    def stored_events(self, sender: str) -> int:
        """How many events of the visitor's conversation are in the database."""
        if not sa.inspect(sa.create_engine(self.database_url)).has_table("events"):
            return 0
        conversation = self.conversation_id(sender)
        return self.query("SELECT COUNT(*) FROM events WHERE sender_id = :s", s=conversation)[0][0]

    def log(self) -> str:
        """What both servers have written to their log so far."""
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    @contextmanager
    def clinic_changed(self, **fields: Any) -> Iterator[Path]:
        """The servers' clinic.yml (CLINIC_SETTINGS) with these fields changed until the block ends.

        Every server reads the file again at its next request once it changes (common/clinic.py),
        as after a manager's edit in the console: a module can give shared servers a setting of
        its own (a booking system to send requests to, a booking link) for its tests only.
        """
        path = Path(self.stack.environment["CLINIC_SETTINGS"])
        before = path.read_text(encoding="utf-8")

        def replace(text: str) -> None:  # whole at once: a server re-reading it never sees it half-written
            draft = path.with_name(f".{path.name}.{os.getpid()}.tmp")
            draft.write_text(text, encoding="utf-8")
            os.replace(draft, path)

        replace(yaml.safe_dump({**yaml.safe_load(before), **fields}))
        try:
            yield path
        finally:
            replace(before)


class WidgetSession:
    """One socket.io connection, as the web widget (rasa-webchat) makes it; use in asyncio.

    The widget sends `session_request` with the id and resume proof it kept (or null), keeps
    whatever id and proof `session_confirm` returns, and sends each message as `user_uttered`
    with that id.
    """

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url
        self.client = socketio.AsyncClient()
        self.said: list[str] = []  # the text of every bot message received
        self.sources: list[dict[str, Any]] = []  # "Where is this from?": sent after an answer's text
        self.confirmed: list[Any] = []  # every confirmed id (session_confirm's session_id)
        self.proofs: list[Any] = []  # and its resume proof
        self.client.on("bot_uttered", self.heard)
        self.client.on("session_confirm", self.confirm)

    def heard(self, message: dict[str, Any]) -> None:
        """Keep a bot message's text; a source sent after an answer is kept apart, as the widget does."""
        custom = message.get("custom")
        if set(message) == {"custom"} and isinstance(custom, dict) and "source" in custom:
            self.sources.append(custom["source"])
        else:
            self.said.append(message.get("text", ""))

    def confirm(self, answer: Any) -> None:
        """Keep the confirmed id and its resume proof (an older server sent the id alone)."""
        self.proofs.append(answer.get("resume") if isinstance(answer, dict) else None)
        self.confirmed.append(answer.get("session_id") if isinstance(answer, dict) else answer)

    async def __aenter__(self) -> WidgetSession:
        await self.client.connect(self.base_url, socketio_path="socket.io", transports=["polling"])
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.client.disconnect()

    @property
    def session_id(self) -> Any:
        """The id the server confirmed last (None before any)."""
        return self.confirmed[-1] if self.confirmed else None

    @property
    def resume(self) -> Any:
        """The resume proof of the id the server confirmed last (None before any)."""
        return self.proofs[-1] if self.proofs else None

    async def request_session(self, session_id: Any = None, wait: float = 5.0, resume: Any = None) -> Any:
        """Ask for a session (as the widget does on connecting); the confirmed id, or None."""
        before = len(self.confirmed)
        await self.client.emit("session_request", {"session_id": session_id, "resume": resume})
        await wait_until(lambda: len(self.confirmed) > before, wait)
        return self.confirmed[-1] if len(self.confirmed) > before else None

    async def say(self, text: str, session_id: Any = None, replies: int = 1, wait: float = 30.0) -> list[str]:
        """Send a message with the confirmed id (or `session_id`); the bot's replies that arrive."""
        before = len(self.said)
        await self.client.emit("user_uttered", {"message": text, "session_id": session_id or self.session_id})
        await wait_until(lambda: len(self.said) >= before + replies, wait)
        return self.said[before:]


async def wait_until(condition: Callable[[], bool], timeout: float) -> bool:
    """Poll `condition` every 0.1 s for up to `timeout` seconds; whether it came true."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.1)
    return True


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


# This process's first project copy (made in a folder of its own): the later ones are copies of it,
# git history included, which takes a tenth of the time of copying the parts and committing them.
_PROJECT_TEMPLATE: list[Path] = []


def project_copy(target: Path) -> Path:
    """A copy of the project's content in `target`, as a git repository with one developer's commit.

    Tests that edit the project (the console's editing pages) work on this, never on the real files.
    """
    import atexit
    import shutil
    import tempfile

    if not _PROJECT_TEMPLATE:
        folder = Path(tempfile.mkdtemp(prefix="clinic-project-"))
        atexit.register(shutil.rmtree, folder, ignore_errors=True)
        _PROJECT_TEMPLATE.append(_new_project_copy(folder / "project"))
    shutil.copytree(_PROJECT_TEMPLATE[0], target, symlinks=True, dirs_exist_ok=True)
    return target


def _new_project_copy(target: Path) -> Path:
    """The project's parts copied into `target` and committed as a new git repository."""
    import shutil

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


WCAG_21_AA = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"]
# Animations that end (the chat panel's 160 ms fade-in); the typing dots blink for ever.
FINISHING_ANIMATIONS = (
    "() => Promise.all(document.getAnimations()"
    ".filter(a => a.effect && a.effect.getComputedTiming().iterations !== Infinity)"
    ".map(a => a.finished.catch(() => null)))"
)


def axe_violations(page: Any) -> list[str]:
    """Serious and critical WCAG 2.1 A/AA violations axe-core finds on the page as it settles.

    Waits for fade-ins first: axe measured the chat panel's title and buttons half-faded once on a
    busy machine and reported their colour contrast.
    """
    page.evaluate(FINISHING_ANIMATIONS)
    if not page.evaluate("() => !!window.axe"):
        page.add_script_tag(path=str(AXE))
    result = page.evaluate("tags => axe.run(document, {runOnly: {type: 'tag', values: tags}})", WCAG_21_AA)
    return [
        f"{v['id']} ({v['impact']}): {v['help']} at {[n['target'] for n in v['nodes']][:3]}"
        for v in result["violations"]
        if v["impact"] in ("serious", "critical")
    ]


def run_stories(stories: Path, out: Path) -> tuple[int, str]:
    """Run Rasa's story test (its command line, the servers' model load); exit code and failed stories."""
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "devtools.rasa_cli",
            "test",
            "core",
            "--e2e",
            "--stories",
            str(stories),
            "--model",
            str(MODEL),
            "--out",
            str(out),
            "--no-plot",
        ],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        env={**os.environ, "RASA_TELEMETRY_ENABLED": "false", "TF_CPP_MIN_LOG_LEVEL": "3"},
    )
    failed = out / "failed_test_stories.yml"
    return result.returncode, failed.read_text() if failed.exists() else result.stderr[-3000:]
