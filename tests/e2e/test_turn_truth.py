"""A visitor is told the truth: about their request, and /health about whether a message would work.

Issue 20, findings 4 and 5, on the real servers (SQLite; PostgreSQL and Redis:
tests/e2e/test_production.py). With the action server paused at the booking summary, "yes"
got the 503 apology after 5 s, yet 6 s after the action server resumed the request was
stored and sent to the booking system. And with the database's folder read-only every
message failed while GET /health said 200. Here a request is stored and sent only if the
visitor was told so, whatever step the action server is paused or killed at, and "yes"
after recovery sends it exactly once; and /health (the Rasa server's and the action
server's) answers 503 within 2 s whenever a message would fail: database folder or file
read-only, disk full, database locked, action server paused or dead.

As root the database lives on a small tmpfs of its own, so the disk can really be filled
(and emptied) without touching the machine's disks; otherwise that test is skipped.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import pytest
import yaml

from common import deadline
from common.paths import PROJECT_ROOT
from servers.launcher import Stack, StackConfig, free_port
from tests.helpers import LiveAssistant, open_day

pytestmark = pytest.mark.e2e

REPLY_WITHIN_S = 10.0
HEALTH_WITHIN_S = 2.0
# Longer than a paused request can take to be read and run once its action server resumes.
AFTER_RESUME_S = 8.0
# How long the Rasa server waits for an action (ACTION_SERVER_TIMEOUT_SECONDS): shorter than the
# product's 5 s, so each paused step costs 3 s, not 5 (the 5 s default, paused: test_faults.py).
ACTION_TIMEOUT_S = 3
# What the action server logs when it ends a call the Rasa server stopped waiting for, without
# committing anything (servers/actions.py): refused on arrival, or stopped before its commit.
GAVE_UP = ("came after the Rasa server stopped waiting for it", "stopped before committing")


class BookingSystem(BaseHTTPRequestHandler):
    """The clinic's booking system: records every JSON body it is sent."""

    received: ClassVar[list[dict[str, Any]]] = []

    def do_POST(self) -> None:
        """Keep the body; answer 201."""
        BookingSystem.received.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
        self.send_response(201)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        """Quiet."""


class Site(LiveAssistant):
    """The servers, the booking system they send requests to, and the database's own disk."""

    booking_system: list[dict[str, Any]]
    database_dir: Path
    own_disk: bool
    given_up_when_paused: int = 0  # calls the action server had given up on when it was last paused

    def given_up(self) -> int:
        """How many calls the action server has ended because the Rasa server stopped waiting (GAVE_UP)."""
        log = self.log()
        return sum(log.count(line) for line in GAVE_UP)

    def requested(self, name: str) -> list[dict[str, Any]]:
        """What the booking system received for requests in this name."""
        return [body for body in self.booking_system if body.get("name") == name]

    def stored(self, name: str) -> int:
        """How many requests in this name are stored."""
        return self.query("SELECT COUNT(*) FROM booking_requests WHERE name = :n", n=name)[0][0]

    @property
    def action_url(self) -> str:
        """The action server's base URL."""
        return f"http://127.0.0.1:{self.stack.config.action_port}"


@contextmanager
def own_disk(directory: Path) -> Iterator[bool]:
    """Mount a 32 MB tmpfs on `directory` (as root); whether it is mounted."""
    directory.mkdir()
    if os.geteuid() != 0:
        yield False
        return
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=32m,mode=0755", "tmpfs", str(directory)], capture_output=True
    )
    try:
        yield mounted.returncode == 0
    finally:
        if mounted.returncode == 0:
            subprocess.run(["umount", "-l", str(directory)], check=False)


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    """Servers of their own (these tests pause, kill and starve them), with a booking webhook."""
    tmp = tmp_path_factory.mktemp("truth")
    server = ThreadingHTTPServer(("127.0.0.1", 0), BookingSystem)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    clinic = yaml.safe_load((PROJECT_ROOT / "clinic.yml").read_text(encoding="utf-8"))
    clinic["booking_webhook_url"] = f"http://127.0.0.1:{server.server_port}/requests"
    (tmp / "clinic.yml").write_text(yaml.safe_dump(clinic), encoding="utf-8")
    log_path = tmp / "servers.log"
    with own_disk(tmp / "disk") as mounted, log_path.open("w") as log:
        database_dir = tmp / "disk" / "data"
        database_dir.mkdir()
        config = StackConfig(
            rasa_port=free_port(),
            action_port=free_port(),
            database_url=f"sqlite:///{database_dir / 'clinic.db'}",
            extra_env={
                "CLINIC_SETTINGS": str(tmp / "clinic.yml"),
                "ACTION_SERVER_TIMEOUT_SECONDS": str(ACTION_TIMEOUT_S),
            },
        )
        with Stack(config, log) as stack:
            assistant = Site(stack, log_path)
            assistant.booking_system = BookingSystem.received
            assistant.database_dir = database_dir
            assistant.own_disk = mounted
            yield assistant
    server.shutdown()


@pytest.fixture
def assistant(site: Site) -> Iterator[Site]:
    """The servers, running again after each test whatever it did to the action server."""
    yield site
    action_server = site.stack.action_server
    if action_server.poll() is None:
        os.killpg(action_server.pid, signal.SIGCONT)
    else:
        site.stack.restart_action_server()


def fresh(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def texts(answer: Any) -> list[str]:
    return [m.get("text", "") for m in answer] if isinstance(answer, list) else [str(answer)]


def timed(assistant: Site, me: str, text: str) -> tuple[int, list[str], float]:
    """Send one message as `me` (waiting at most 15 s): status, texts, seconds until the answer."""
    started = time.monotonic()
    status, answer = assistant.send(me, text)
    return status, texts(answer), time.monotonic() - started


def call(url: str, method: str = "GET") -> tuple[int, str, float]:
    """One HTTP request: status, body and seconds until the answer."""
    started = time.monotonic()
    try:
        with urllib.request.urlopen(urllib.request.Request(url, method=method), timeout=15) as response:
            status, body = response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        status, body = error.code, error.read().decode()
    return status, body, time.monotonic() - started


def healths(assistant: Site, rasa_only: bool = False) -> list[tuple[int, float]]:
    """GET /health of the Rasa server and (unless `rasa_only`) the action server: (status, seconds)."""
    urls = [assistant.base_url] if rasa_only else [assistant.base_url, assistant.action_url]
    return [(status, seconds) for status, _, seconds in (call(f"{url}/health") for url in urls)]


def wait_until_healthy(assistant: Site, timeout: float = 60.0) -> None:
    """Poll both /health until both answer 200."""
    deadline = time.monotonic() + timeout
    while [status for status, _ in healths(assistant)] != [200, 200]:
        assert time.monotonic() < deadline, f"still unhealthy: {healths(assistant)}"
        time.sleep(0.5)


def pause(assistant: Site) -> None:
    assistant.given_up_when_paused = assistant.given_up()
    os.killpg(assistant.stack.action_server.pid, signal.SIGSTOP)


def resume(assistant: Site, settle: float = AFTER_RESUME_S) -> None:
    """Let the paused action server run again and handle what it had queued.

    It is given `settle` s, unless it has logged before then that it gave up the call the Rasa
    server stopped waiting for (the paused turn's one call: Rasa ends a turn at its first failed
    action): a call that ran on instead would have logged no such line, and had the full time.
    """
    os.killpg(assistant.stack.action_server.pid, signal.SIGCONT)
    wait_until_healthy(assistant)
    deadline = time.monotonic() + settle
    while assistant.given_up() <= assistant.given_up_when_paused and time.monotonic() < deadline:
        time.sleep(0.2)


def kill(assistant: Site) -> None:
    os.killpg(assistant.stack.action_server.pid, signal.SIGKILL)
    assistant.stack.action_server.wait()


def booking_steps(expected, name: str, contact: str) -> list[tuple[str, list[str] | None]]:
    """Each message of a consultation request and the replies it gets (None: the summary)."""
    day = open_day()
    return [
        ("book a consultation", [expected("utter_booking_intro"), expected("utter_ask_booking_name")]),
        (name, [expected("utter_ask_booking_contact")]),
        (
            contact,
            [
                expected(
                    "utter_ask_booking_date", contact_promise="email you" if "@" in contact else "call you"
                )
            ],
        ),
        (f"{day.day} {day:%B}", [expected("utter_ask_booking_time")]),
        ("morning", [expected("utter_ask_booking_scar")]),
        ("skip", [expected("utter_ask_booking_consent")]),
        ("/affirm", None),
    ]


def message_steps(expected, name: str, contact: str) -> list[tuple[str, list[str] | None]]:
    """Each message of "leave a message" (no live chat on REST) and the replies it gets."""
    return [
        ("/leave_message", [expected("utter_callback_intro"), expected("utter_ask_booking_name")]),
        (name, [expected("utter_ask_booking_contact")]),
        (contact, [expected("utter_ask_booking_question")]),
        ("Can I have it while breastfeeding?", [expected("utter_ask_callback_consent")]),
        ("/affirm", None),
    ]


def go_through(assistant: Site, me: str, steps: list[tuple[str, list[str] | None]]) -> None:
    """Send every step, checking its replies, up to the summary."""
    for text, replies in steps:
        answer = assistant.texts(me, text)
        if replies is None:
            assert answer[-1].endswith(("Shall I send it to the team?",)), answer
        else:
            assert answer == replies, text


def assert_told_trouble(status: int, answer: list[str], seconds: float, expected) -> None:
    assert (status, answer) == (503, [expected("utter_chat_trouble")])
    assert seconds < REPLY_WITHIN_S, f"{seconds:.1f} s"


@pytest.mark.parametrize("kind", ["consultation", "message"])
def test_yes_while_the_action_server_is_paused_stores_and_sends_nothing_even_after_it_resumes(
    assistant: Site, expected, kind: str
) -> None:
    me, name = fresh(kind), {"consultation": "Pat Pauling", "message": "Mo Mesner"}[kind]
    steps = (booking_steps if kind == "consultation" else message_steps)(expected, name, f"{me}@example.com")
    go_through(assistant, me, steps)
    pause(assistant)
    try:
        assert_told_trouble(*timed(assistant, me, "/affirm"), expected)
    finally:
        resume(assistant)
    assert assistant.stored(name) == 0, "told it was not sent, so it must not be stored"
    assert assistant.requested(name) == [], "told it was not sent, so it must not be sent"
    [saved] = assistant.texts(me, "/affirm")  # the summary was kept: "yes" now sends it
    assert saved.startswith("Thank you - your "), saved
    assistant.texts(me, "/affirm")  # a second "yes" stores nothing more
    assert assistant.stored(name) == 1
    if kind == "consultation":
        deadline = time.monotonic() + 15
        while not assistant.requested(name) and time.monotonic() < deadline:
            time.sleep(0.2)
        time.sleep(1)
        assert len(assistant.requested(name)) == 1
    else:
        assert assistant.requested(name) == [], "a message for the team stays in the console"


@pytest.mark.parametrize("fault", ["paused", "killed"])
def test_a_fault_at_any_step_of_the_form_loses_nothing_and_the_request_is_sent_once(
    assistant: Site, expected, fault: str
) -> None:
    me, name = fresh(fault), {"paused": "Sam Stepney", "killed": "Kim Killick"}[fault]
    steps = [*booking_steps(expected, name, f"{me}@example.com"), ("/affirm", [])]
    for number, (text, replies) in enumerate(steps):
        if fault == "paused":
            pause(assistant)
            try:
                assert_told_trouble(*timed(assistant, me, text), expected)
            finally:  # the last two steps could store the request: give them the full time
                resume(assistant, AFTER_RESUME_S if number >= len(steps) - 2 else 2.0)
        else:
            kill(assistant)
            assert_told_trouble(*timed(assistant, me, text), expected)
            assistant.stack.restart_action_server()
        assert assistant.stored(name) == 0 and assistant.requested(name) == [], f"step {number + 1}"
        answer = assistant.texts(me, text)  # sent again after recovery: as if nothing had happened
        if replies is None:
            assert answer[-1].endswith("Shall I send it to the team?"), answer
        elif replies:
            assert answer == replies, f"step {number + 1}: {text}"
        else:
            assert answer[0].startswith("Thank you - your request is with the"), answer
    assert assistant.stored(name) == 1
    deadline = time.monotonic() + 15
    while not assistant.requested(name) and time.monotonic() < deadline:
        time.sleep(0.2)
    time.sleep(1)
    assert len(assistant.requested(name)) == 1
    said = assistant.query(
        "SELECT data FROM events WHERE sender_id = :s AND type_name = 'user' ORDER BY id",
        s=assistant.conversation_id(me),
    )
    assert [json.loads(data)["text"] for (data,) in said] == [text for text, _ in steps], "each once"


# Health: 503 within 2 s whenever a visitor's message would fail, 200 again when it would not.


def assert_unhealthy_and_failing(assistant: Site, expected, rasa_only: bool = False) -> None:
    """Both /health say 503 within 2 s, and a visitor's message indeed fails."""
    answers = healths(assistant, rasa_only)
    assert [status for status, _ in answers] == [503] * len(answers)
    for _, seconds in answers:
        assert seconds < HEALTH_WITHIN_S, f"/health took {seconds:.1f} s"
    status, answer, _ = timed(assistant, fresh("probe"), "what is PIH")
    assert (status, answer) == (503, [expected("utter_chat_trouble")])


def assert_healthy_and_working(assistant: Site, expected) -> None:
    wait_until_healthy(assistant)
    assert assistant.texts(fresh("probe"), "what is PIH") == [expected("utter_faq/what_is_pih")]


@contextmanager
def read_only(path: Path) -> Iterator[None]:
    """Make a file or folder read-only, even for root (chattr +i), until the block ends."""
    if os.geteuid() == 0:
        subprocess.run(["chattr", "+i", str(path)], check=True)
        try:
            yield
        finally:
            subprocess.run(["chattr", "-i", str(path)], check=True)
    else:
        mode = path.stat().st_mode
        path.chmod(mode & ~0o222)
        try:
            yield
        finally:
            path.chmod(mode)


def test_health_is_ok_when_all_is_well_and_quick(assistant: Site, expected) -> None:
    for status, seconds in healths(assistant):
        assert status == 200 and seconds < HEALTH_WITHIN_S


@pytest.mark.parametrize("part", ["folder", "file"])
def test_a_read_only_database_makes_health_say_503(assistant: Site, expected, part: str) -> None:
    target = assistant.database_dir if part == "folder" else assistant.database_dir / "clinic.db"
    with read_only(target):
        assert_unhealthy_and_failing(assistant, expected)
    assert_healthy_and_working(assistant, expected)


def test_a_full_disk_makes_health_say_503(assistant: Site, expected) -> None:
    if not assistant.own_disk:
        pytest.skip("filling a disk safely needs a tmpfs of its own, which only root can mount")
    filler = assistant.database_dir.parent / "filler"
    try:
        # suppress outside the file: closing it flushes what did not fit, which fails too (3.11 says so)
        with suppress(OSError), filler.open("wb") as out:
            while True:
                out.write(b"\0" * 65536)
                out.flush()
        assert_unhealthy_and_failing(assistant, expected)
    finally:
        filler.unlink(missing_ok=True)
    assert_healthy_and_working(assistant, expected)


def test_a_locked_database_makes_both_healths_say_503(assistant: Site, expected) -> None:
    lock = sqlite3.connect(assistant.database_dir / "clinic.db", timeout=5, isolation_level=None)
    lock.execute("BEGIN EXCLUSIVE")
    try:
        assert_unhealthy_and_failing(assistant, expected)
    finally:
        lock.execute("ROLLBACK")
        lock.close()
    assert_healthy_and_working(assistant, expected)


@pytest.mark.parametrize("fault", ["paused", "killed"])
def test_a_paused_or_dead_action_server_makes_health_say_503_within_two_seconds(
    assistant: Site, expected, fault: str
) -> None:
    if fault == "paused":
        pause(assistant)
    else:
        kill(assistant)
    try:
        assert_unhealthy_and_failing(assistant, expected, rasa_only=True)
    finally:
        if fault == "paused":
            os.killpg(assistant.stack.action_server.pid, signal.SIGCONT)
        else:
            assistant.stack.restart_action_server()
    assert_healthy_and_working(assistant, expected)


def test_health_answers_other_methods_with_405(assistant: Site) -> None:
    for url in (assistant.base_url, assistant.action_url):
        for method in ("POST", "PUT", "DELETE"):
            status, _, _ = call(f"{url}/health", method)
            assert status == 405, f"{method} {url}/health: {status}"


def test_the_action_server_refuses_a_call_that_comes_after_rasa_stopped_waiting(assistant: Site) -> None:
    token = assistant.stack.environment["ACTION_SERVER_TOKEN"]
    body = json.dumps({"next_action": "action_submit_booking", "sender_id": "x", "tracker": {}}).encode()
    request = urllib.request.Request(
        f"{assistant.action_url}/webhook",
        data=body,
        method="POST",
        headers={
            "Authorization": f"Bearer {token}",
            "Content-Type": "application/json",
            **deadline.header(-5),  # it stopped waiting 5 s ago
        },
    )
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(request, timeout=15)
    assert refused.value.code == 503 and b"stopped waiting" in refused.value.read()
