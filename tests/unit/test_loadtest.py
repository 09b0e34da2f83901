"""The load test's own logic: its visitors' answers pass the booking form, and losses are counted."""

from __future__ import annotations

import random
from datetime import date, datetime, timedelta
from pathlib import Path

from actions.booking.validators import parse_contact, parse_date, parse_name
from common.clinic import load_settings
from common.records import conversations
from common.records.bookings import BookingRequest, BookingStore
from devtools.loadtest import Results, booking_script, missing_from_stores


def test_booking_visitors_give_answers_the_form_accepts() -> None:
    """A refused answer would stall every simulated booking and hide real errors."""
    settings = load_settings()
    day = settings.next_open_day(date.today() + timedelta(days=3))
    random.seed(1)
    for _ in range(20):
        _, _, name, contact, when, *_rest, confirm, save = booking_script(day)
        parse_name(name)
        parse_contact(contact, settings)
        assert parse_date(when, settings, datetime.now(settings.zone)).earliest == day
        assert (confirm, save) == ("/affirm", "/affirm")


def test_missing_messages_and_bookings_are_counted(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'stores.db'}"
    store = BookingStore(url)
    reference, _ = store.save(
        BookingRequest(
            "Ada Okafor", "ada@example.com", "email", date.today() + timedelta(days=3), "morning", ""
        ),
        "load-a",
    )
    conversations.events.create(store.engine)
    with store.engine.begin() as db:
        db.execute(
            conversations.events.insert(),
            [
                {"sender_id": sender, "type_name": kind, "timestamp": 0.0}
                for sender, kind in [
                    ("load-a", "user"),
                    ("load-a", "bot"),
                    ("load-a", "user"),
                    ("load-b", "user"),
                    ("other", "user"),
                ]
            ],
        )
    results = Results(answered={"load-a": 2, "load-b": 3, "load-c": 1}, bookings=[reference, "SR-00000002"])
    assert missing_from_stores(url, results) == (3, 1)  # 2 of load-b, 1 of load-c; one booking
