"""Faults are visible and lose nothing: a dead or hung action server, a locked or deleted database.

Issue 13, findings 2 and 3, on the real servers: with the action server killed, stock Rasa
answered HTTP 200 with an empty list and, after a restart, took "yes, send it" for small
talk; with it paused, every visitor waited 75 s; with the database gone, it kept
conversations in memory and replied as if all was well. Here each such turn gets a polite
reply with the clinic's phone number within 10 s, is not half-applied (so it can simply be
sent again), and GET /health says 503 until the fault is over.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from common.database import sqlite_file
from servers.launcher import Stack
from tests.helpers import LiveAssistant, open_day, stack_config

pytestmark = pytest.mark.e2e

REPLY_WITHIN_S = 10.0


def fresh(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveAssistant]:
    """Servers of their own: these tests kill, pause and restart them."""
    tmp = tmp_path_factory.mktemp("faults")
    log_path = tmp / "servers.log"
    with log_path.open("w") as log, Stack(stack_config(tmp), log) as stack:
        yield LiveAssistant(stack, log_path)


@pytest.fixture
def assistant(servers: LiveAssistant) -> Iterator[LiveAssistant]:
    """The servers, healthy again after each test whatever it did to them."""
    yield servers
    action_server = servers.stack.action_server
    if action_server.poll() is None:
        os.killpg(action_server.pid, signal.SIGCONT)
    else:
        servers.stack.restart_action_server()


def health(assistant: LiveAssistant) -> tuple[int, str]:
    """GET /health on the Rasa server: status and body."""
    try:
        with urllib.request.urlopen(f"{assistant.base_url}/health", timeout=15) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def wait_for_health(assistant: LiveAssistant, status: int, timeout: float = 15.0) -> tuple[int, str]:
    """Poll /health until it answers `status` (or time runs out); its last answer."""
    deadline = time.monotonic() + timeout
    answer = health(assistant)
    while answer[0] != status and time.monotonic() < deadline:
        time.sleep(0.5)
        answer = health(assistant)
    return answer


def timed(assistant: LiveAssistant, sender: str, text: str) -> tuple[int, Any, float]:
    """Send one message as `sender` (at most 15 s): status, answer, seconds until it came."""
    body = json.dumps({"sender": assistant.conversation_id(sender), "message": text}).encode()
    started = time.monotonic()
    status, answer = assistant.post(body, timeout=15)
    return status, answer, time.monotonic() - started


def texts(answer: Any) -> list[str]:
    return [m.get("text", "") for m in answer] if isinstance(answer, list) else [str(answer)]


def stored_requests(assistant: LiveAssistant, name: str) -> int:
    if not assistant.query("SELECT name FROM sqlite_master WHERE name = 'booking_requests'"):
        return 0
    return assistant.query("SELECT COUNT(*) FROM booking_requests WHERE name = :n", n=name)[0][0]


def fill_form(assistant: LiveAssistant, me: str, name: str, expected) -> None:
    """Answer every question of the booking form, up to its summary."""
    day = open_day()
    assistant.texts(me, "book a consultation")
    for answer in [name, f"{me}@example.com", f"{day.day} {day:%B}", "morning", "skip"]:
        assistant.texts(me, answer)
    [summary] = assistant.texts(me, "/affirm")
    assert name in summary and summary.endswith("Shall I send it to the team?")


def kill_action_server(assistant: LiveAssistant) -> None:
    os.killpg(assistant.stack.action_server.pid, signal.SIGKILL)
    assistant.stack.action_server.wait()


def test_health_answers_200_when_all_is_well(assistant: LiveAssistant) -> None:
    assert health(assistant) == (200, '{"status":"ok"}')


def test_a_dead_action_server_gets_a_polite_reply_and_the_form_waits(
    assistant: LiveAssistant, expected
) -> None:
    me, day = fresh("dead"), open_day()
    assistant.texts(me, "book a consultation")
    assistant.texts(me, "Dana Dead")
    assert assistant.texts(me, "dana.dead@example.com") == [
        expected("utter_ask_booking_date", contact_promise="email you")
    ]
    kill_action_server(assistant)
    status, body = wait_for_health(assistant, 503)
    assert status == 503 and body == '{"status":"unavailable"}', "no details for the public"
    status, answer, seconds = timed(assistant, me, f"{day.day} {day:%B}")
    assert (status, texts(answer)) == (503, [expected("utter_chat_trouble")])
    assert seconds < REPLY_WITHIN_S
    assistant.stack.restart_action_server()
    assert wait_for_health(assistant, 200)[0] == 200
    # The failed turn left nothing behind: the same answer now goes through.
    assert assistant.texts(me, f"{day.day} {day:%B}") == [expected("utter_ask_booking_time")]


def test_a_booking_confirmed_while_the_action_server_is_down_is_sent_once_after_recovery(
    assistant: LiveAssistant, expected
) -> None:
    me, name = fresh("submit"), "Sam Submitter"
    fill_form(assistant, me, name, expected)
    kill_action_server(assistant)
    status, answer, seconds = timed(assistant, me, "/affirm")
    assert (status, texts(answer)) == (503, [expected("utter_chat_trouble")]) and seconds < REPLY_WITHIN_S
    assert stored_requests(assistant, name) == 0, "told it was not sent, so it must not be stored"
    assistant.stack.restart_action_server()
    [saved] = assistant.texts(me, "/affirm")
    assert saved.startswith("Thank you - your request is with the"), saved
    assert stored_requests(assistant, name) == 1
    assistant.texts(me, "/affirm")  # a second "yes" stores nothing more
    assert stored_requests(assistant, name) == 1


def test_a_paused_action_server_holds_no_visitor_for_more_than_ten_seconds(
    assistant: LiveAssistant, expected
) -> None:
    visitors = [fresh("paused"), fresh("paused")]
    for me in visitors:
        assistant.texts(me, "hello")
    os.killpg(assistant.stack.action_server.pid, signal.SIGSTOP)
    try:
        with ThreadPoolExecutor(len(visitors)) as pool:
            results = list(pool.map(lambda me: timed(assistant, me, "what is PIH"), visitors))
    finally:
        os.killpg(assistant.stack.action_server.pid, signal.SIGCONT)
    for status, answer, seconds in results:
        assert (status, texts(answer)) == (503, [expected("utter_chat_trouble")])
        assert seconds < REPLY_WITHIN_S, f"{seconds:.1f} s"
    for me in visitors:
        assert assistant.texts(me, "what is PIH") == [expected("utter_faq/what_is_pih")]


def database_file(assistant: LiveAssistant) -> Path:
    path = sqlite_file(assistant.database_url)
    assert path is not None
    return path


def test_a_locked_database_is_reported_and_nothing_is_claimed_stored(
    assistant: LiveAssistant, expected
) -> None:
    me, name = fresh("locked"), "Lou Locked"
    fill_form(assistant, me, name, expected)
    lock = sqlite3.connect(database_file(assistant), timeout=5, isolation_level=None)
    lock.execute("BEGIN EXCLUSIVE")  # nobody else can read or write until it ends
    try:
        assert wait_for_health(assistant, 503)[0] == 503
        status, answer, seconds = timed(assistant, me, "/affirm")
        assert (status, texts(answer)) == (503, [expected("utter_chat_trouble")])
        assert seconds < REPLY_WITHIN_S
    finally:
        lock.execute("ROLLBACK")
        lock.close()
    assert wait_for_health(assistant, 200)[0] == 200
    assert stored_requests(assistant, name) == 0
    [saved] = assistant.texts(me, "/affirm")  # the summary was kept: "yes" sends it now
    assert saved.startswith("Thank you - your request is with the"), saved
    assert stored_requests(assistant, name) == 1


def test_a_deleted_database_is_reported_and_no_conversation_is_kept_in_memory(
    assistant: LiveAssistant, expected
) -> None:
    me = fresh("deleted")
    assistant.texts(me, "book a consultation")
    assert assistant.texts(me, "Del Eted") == [expected("utter_ask_booking_contact")]
    database = database_file(assistant)
    backup = database.with_name("backup.db")
    os.replace(database, backup)
    try:
        assert wait_for_health(assistant, 503)[0] == 503
        status, answer, _ = timed(assistant, me, "del.eted@example.com")
        assert (status, texts(answer)) == (503, [expected("utter_chat_trouble")])
        status, answer = assistant.send(fresh("newcomer"), "hello")
        assert (status, texts(answer)) == (503, [expected("utter_chat_trouble")])
    finally:
        os.replace(backup, database)
    assert wait_for_health(assistant, 200)[0] == 200
    assert assistant.texts(me, "del.eted@example.com") == [
        expected("utter_ask_booking_date", contact_promise="email you")
    ]
