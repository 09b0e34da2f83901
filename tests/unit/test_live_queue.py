"""Live chat's shared state (common/records/live_chat.py) on a real SQLite database, and opening hours.

Two staff members taking one conversation at the same moment (threads, separate connections):
exactly one wins. A request nobody took is marked missed by exactly one of several sweeps.
Availability ends when the Live page stops polling. Opening hours and the reply time visitors
are told come from clinic.yml in the clinic's time zone. The console says so plainly when the
chat server cannot be reached (Flask's test client; nothing listens on the port).
"""

from __future__ import annotations

import re
import threading
from dataclasses import replace
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa

from common.clinic import read_settings
from common.paths import CLINIC_YML
from common.records import conversations, live_chat
from common.records.live_chat import reply_expected
from common.settings import Settings
from servers.launcher import free_port
from staff.console.app import create_app
from staff.service import accounts
from staff.service import db as staff_db

PASSWORD = "correct horse battery staple"

LONDON = ZoneInfo("Europe/London")


@pytest.fixture
def db(tmp_path: Path) -> sa.engine.Engine:
    return live_chat.engine(f"sqlite:///{tmp_path / 'clinic.db'}")


def test_of_two_staff_taking_one_conversation_at_once_exactly_one_wins(db: sa.engine.Engine) -> None:
    for attempt in range(10):
        chat = live_chat.request(db, f"conversation-{attempt}")
        start = threading.Barrier(2)
        results: dict[str, bool] = {}

        def take(
            name: str,
            staff_id: int,
            chat_id: int = chat.id,
            start: threading.Barrier = start,
            results: dict[str, bool] = results,
        ) -> None:
            start.wait()
            results[name] = live_chat.take(db, chat_id, staff_id, name)

        threads = [threading.Thread(target=take, args=(n, i)) for i, n in enumerate(("Anna", "Rita"))]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert sorted(results.values()) == [False, True], results
        holder = live_chat.get(db, chat.id)
        assert holder is not None and holder.status == live_chat.HELD
        assert results[holder.staff_name or ""] is True


def test_only_the_holder_hands_back_and_a_request_is_queued_once(db: sa.engine.Engine) -> None:
    first = live_chat.request(db, "c1")
    assert live_chat.request(db, "c1").id == first.id  # asking twice: still one request
    assert live_chat.take(db, first.id, 1, "Anna")
    assert not live_chat.end(db, first.id, 2, live_chat.RETURNED)  # Rita does not hold it
    assert live_chat.end(db, first.id, 1, live_chat.RETURNED)
    assert live_chat.active(db, "c1") is None
    assert live_chat.request(db, "c1").id != first.id  # a new request after the first ended


def test_a_request_nobody_takes_is_missed_once_whatever_the_number_of_sweeps(db: sa.engine.Engine) -> None:
    chat = live_chat.request(db, "c2")
    assert live_chat.expire(db, timedelta(minutes=5)) == []  # not overdue yet
    marked = [live_chat.expire(db, timedelta(0)) for _ in range(3)]
    assert [len(m) for m in marked] == [1, 0, 0]
    assert live_chat.get(db, chat.id).status == live_chat.MISSED
    assert not live_chat.take(db, chat.id, 1, "Anna")  # too late to take it


def test_staff_are_available_only_while_their_live_page_polls(db: sa.engine.Engine) -> None:
    assert live_chat.available_staff(db) == []
    assert live_chat.set_presence(db, 1, "anna", True)
    assert not live_chat.set_presence(db, 2, "rita", None)  # opened the page, never said available
    assert live_chat.available_staff(db) == ["anna"]
    stale = live_chat.now() - timedelta(seconds=live_chat.PRESENCE_SECONDS + 1)
    with db.begin() as conn:
        conn.execute(live_chat.staff_presence.update().values(seen_at=stale))
    assert live_chat.available_staff(db) == []  # the page was closed: nobody is offered
    assert live_chat.set_presence(db, 1, "anna", None)  # the page polls again: available again
    assert live_chat.available_staff(db) == ["anna"]


def test_opening_hours_and_the_reply_time_visitors_are_told() -> None:
    clinic = read_settings(CLINIC_YML)  # Mon-Fri 9-5, Sat 10-1; closed 25 December
    thursday = datetime(2026, 12, 3, tzinfo=LONDON)
    assert clinic.open_at(thursday.replace(hour=10))
    assert not clinic.open_at(thursday.replace(hour=8, minute=59))
    assert not clinic.open_at(thursday.replace(hour=17))
    assert not clinic.open_at(datetime(2026, 12, 6, 11, tzinfo=LONDON))  # Sunday
    assert not clinic.open_at(datetime(2026, 12, 25, 11, tzinfo=LONDON))  # a closed date
    assert reply_expected(clinic, thursday.replace(hour=10)) == "today, before 5pm"
    assert reply_expected(clinic, thursday.replace(hour=7)) == "today, from 9am"
    assert reply_expected(clinic, thursday.replace(hour=18)) == "tomorrow from 9am"
    assert reply_expected(clinic, datetime(2026, 12, 5, 14, tzinfo=LONDON)) == "on Monday from 9am"
    assert reply_expected(replace(clinic, opening_hours=()), thursday) == "as soon as the clinic is open"


@pytest.mark.parametrize(
    ("setting", "problem"),
    [
        ('opening_hours: {monday: "9-5"}', "is not like"),
        ('opening_hours: {moonday: "09:00-17:00"}', "not a day of the week"),
        ('opening_hours: {monday: "17:00-09:00"}', "is not like"),
        ('opening_hours: {monday: "09:00-17:00"}\nlive_chat_wait_minutes: soon', "must be a number"),
        ('opening_hours: {monday: "09:00-17:00"}\nlive_chat_wait_minutes: 0', "must be above 0"),
    ],
)
def test_wrong_opening_hours_are_refused_with_a_clear_message(
    tmp_path: Path, setting: str, problem: str
) -> None:
    text = CLINIC_YML.read_text(encoding="utf-8")
    start = text.index("opening_hours:")
    end = text.index("# ---- Booking requests")
    changed = tmp_path / "clinic.yml"
    changed.write_text(text[:start] + setting + "\n" + text[end:], encoding="utf-8")
    with pytest.raises(ValueError, match=problem):
        read_settings(changed)


def test_erasing_a_conversation_forgets_its_live_chats(db: sa.engine.Engine) -> None:
    conversations.events.create(db)  # Rasa's table, as its tracker store makes it
    with db.begin() as conn:
        conn.execute(conversations.events.insert().values(sender_id="c3", type_name="user", timestamp=1.0))
    live_chat.request(db, "c3")
    kept = live_chat.request(db, "c4")
    assert conversations.erase(db, ["c3"]) == 1
    assert live_chat.active(db, "c3") is None
    assert live_chat.active(db, "c4") == kept


def test_when_the_chat_server_cannot_be_reached_staff_are_told_and_nothing_changes(tmp_path: Path) -> None:
    """The console's Live page with no Rasa server listening: a plain message, the visitor still waits."""
    url = f"sqlite:///{tmp_path / 'console.db'}"
    accounts.create_user(staff_db.engine(url), "rita", "reception", PASSWORD)
    settings = Settings.from_env(
        {
            "DATABASE_URL": url,
            "STAFF_SECRET_KEY": "unit-test-console-key-" + "y" * 20,
            "RASA_URL": f"http://127.0.0.1:{free_port()}",  # nothing listens there
            "LIVE_CHAT_SECRET": "unit-test-live-chat-secret-" + "z" * 10,
        },
        lock_store=False,
    )
    client = create_app(settings).test_client()
    page = client.get("/login").text
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    client.post("/login", data={"name": "rita", "password": PASSWORD, "csrf_token": csrf})
    chat = live_chat.request(live_chat.engine(url), "waiting-visitor")
    page = client.get(f"/live/?chat={chat.id}").text
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    taken = client.post(f"/live/{chat.id}/take", data={"csrf_token": csrf}, follow_redirects=True)
    assert "The chat server did not answer, so nothing was sent. Try again in a moment." in taken.text
    assert live_chat.get(live_chat.engine(url), chat.id).status == live_chat.WAITING
    forged = client.post(f"/live/{chat.id}/take")  # without the form's token
    assert forged.status_code == 400


def test_a_held_chat_whose_staff_member_is_gone_goes_back_to_the_assistant(db: sa.engine.Engine) -> None:
    live_chat.set_presence(db, 1, "anna", True)
    live_chat.set_presence(db, 2, "rita", True)
    first, second = live_chat.request(db, "c5"), live_chat.request(db, "c6")
    assert live_chat.take(db, first.id, 1, "Anna") and live_chat.take(db, second.id, 2, "Rita")
    assert live_chat.abandoned(db) == []  # both pages are open
    long_ago = live_chat.now() - timedelta(seconds=live_chat.HOLDER_GONE_SECONDS + 1)
    with db.begin() as conn:  # Anna closed her laptop a while ago
        anna = live_chat.staff_presence.c.staff_id == 1
        conn.execute(live_chat.staff_presence.update().where(anna).values(seen_at=long_ago))
        conn.execute(live_chat.live_chats.update().values(taken_at=long_ago))
    assert [chat.id for chat in live_chat.abandoned(db)] == [first.id]
    assert live_chat.abandoned(db) == []  # handed back once
    assert live_chat.get(db, first.id).status == live_chat.RETURNED
    assert live_chat.get(db, second.id).status == live_chat.HELD


def test_reach_says_whether_a_visitor_asking_now_gets_a_person_and_why_not(db: sa.engine.Engine) -> None:
    """The one answer both the assistant's offer and the Live page use."""
    clinic = replace(read_settings(CLINIC_YML), live_chat_max_waiting=1)  # Mon-Fri 9-5, Sat 10-1
    thursday_noon = datetime(2026, 12, 3, 12, tzinfo=LONDON)
    evening = thursday_noon.replace(hour=20)
    assert live_chat.reach(db, clinic, evening) == live_chat.Reach(
        False, live_chat.OUTSIDE_HOURS, next_opening=datetime(2026, 12, 4, 9, tzinfo=LONDON)
    )
    assert live_chat.reach(db, clinic, thursday_noon).why == live_chat.NOBODY_AVAILABLE
    live_chat.set_presence(db, 1, "rita", True)
    assert live_chat.reach(db, clinic, thursday_noon).offered
    assert not live_chat.reach(db, clinic, evening).offered  # someone available, but after hours
    live_chat.request(db, "c-1")
    full = live_chat.reach(db, clinic, thursday_noon)
    assert (full.offered, full.why, full.waiting) == (False, live_chat.QUEUE_FULL, 1)
    assert live_chat.reach(db, clinic, thursday_noon, queue=False).offered  # request() checks it itself
    no_thursday_chat = replace(clinic, live_chat_off=("thursday",), live_chat_max_waiting=5)
    assert live_chat.reach(db, no_thursday_chat, thursday_noon).why == live_chat.OUTSIDE_HOURS
