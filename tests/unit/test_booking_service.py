"""staff/service/bookings.py, shared by the console and clinic-bookings, on a real SQLite database."""

from __future__ import annotations

import csv
import io
import json
import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from datetime import date, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import ClassVar
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa

from common.clinic import load_settings
from common.records import conversations
from common.records.bookings import BookingRequest, BookingStore
from staff.service import bookings

ZONE = ZoneInfo("Europe/London")
PERSON = BookingRequest(
    "=HYPERLINK(evil)", "siobhan@example.com", "email", date(2027, 1, 5), "morning", "acne"
)


@pytest.fixture
def store(tmp_path: Path) -> BookingStore:
    return BookingStore(f"sqlite:///{tmp_path / 'clinic.db'}")


class Receiver(BaseHTTPRequestHandler):
    """A booking system: answers 201 and keeps what it got."""

    received: ClassVar[list[dict]] = []

    def do_POST(self) -> None:
        """Keep the request's JSON; answer 201."""
        body = self.rfile.read(int(self.headers["Content-Length"]))
        Receiver.received.append(json.loads(body))
        self.send_response(201)
        self.end_headers()

    def log_message(self, *_: object) -> None:
        """Quiet."""


@pytest.fixture
def booking_system() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    Receiver.received = []
    yield f"http://127.0.0.1:{server.server_address[1]}/bookings"
    server.shutdown()
    server.server_close()


def test_the_export_opens_in_excel_with_local_times_and_no_formulas(store: BookingStore) -> None:
    reference, _ = store.save(PERSON, "visitor")
    rows = bookings.find(store, bookings.BookingFilter(), ZONE)
    data = bookings.export_csv(rows, ZONE)
    assert data.startswith(b"\xef\xbb\xbf")
    [row] = list(csv.DictReader(io.StringIO(data.decode("utf-8-sig"))))
    assert row["Reference"] == reference and row["Name"] == "'=HYPERLINK(evil)"
    received = next(key for key in row if key.startswith("Received ("))
    stored = store.get(reference)["created_at"].replace(tzinfo=timezone.utc)
    assert row[received] == stored.astimezone(ZONE).strftime("%Y-%m-%d %H:%M")


def test_filters_find_by_status_search_and_date(store: BookingStore) -> None:
    reference, _ = store.save(PERSON, "visitor")
    other, _ = store.save(
        BookingRequest("Jo Bloggs", "07911 123456", "phone", date(2027, 1, 6), "afternoon", ""), "v2"
    )
    assert bookings.set_status(store, other, "done", "booked for Tuesday", "rita")
    find = lambda **kw: [r["reference"] for r in bookings.find(store, bookings.BookingFilter(**kw), ZONE)]  # noqa: E731
    assert find(status="new") == [reference]
    assert find(status="done") == [other]
    assert find(search="07911") == [other] and find(search=reference.lower()) == [reference]
    assert find(search="%") == []  # a wildcard is just a character
    today = date.today()
    assert sorted(find(since=today - timedelta(days=1), until=today + timedelta(days=1))) == sorted(
        [reference, other]
    )
    assert find(until=today - timedelta(days=2)) == []
    assert bookings.counts(store) == {"new": 1, "undelivered": 0}


def test_redelivery_sends_the_request_and_records_it(store: BookingStore, booking_system: str) -> None:
    reference, _ = store.save(PERSON, "visitor")
    assert bookings.redeliver(store, reference, booking_system)
    assert [r["reference"] for r in Receiver.received] == [reference]
    assert store.get(reference)["delivered_at"] is not None


def test_purge_preview_counts_what_purge_deletes(store: BookingStore) -> None:
    store.save(PERSON, "visitor")
    assert bookings.purge_preview(store, 0) == {"requests": 1, "events": 0}
    assert bookings.purge_preview(store, 30) == {"requests": 0, "events": 0}
    assert bookings.purge(store, 0) == {"requests": 1, "events": 0}


def add_conversation(store: BookingStore, sender: str, *texts: str) -> None:
    """Events in the table Rasa's SQL tracker store writes (common/records/conversations.py's mirror of it).

    A stand-in for Rasa here only: tests/e2e/test_erasure.py and test_production.py erase
    conversations the real Rasa server stored, on SQLite and PostgreSQL.
    """
    conversations.events.metadata.create_all(store.engine)
    with store.engine.begin() as db:
        for text in texts:
            db.execute(
                conversations.events.insert().values(
                    sender_id=sender, type_name="user", timestamp=time.time(), data=json.dumps({"text": text})
                )
            )


def test_erasing_a_person_by_reference_removes_their_requests_and_conversations_only(
    store: BookingStore, booking_system: str
) -> None:
    clinic = replace(load_settings(), booking_webhook_url=booking_system)
    first, _ = store.save(PERSON, "siobhan-1")
    again = replace(PERSON, contact="Siobhan@Example.com", preferred_date=date(2027, 1, 8))
    second, _ = store.save(again, "siobhan-2")
    other, _ = store.save(
        BookingRequest("Jo Bloggs", "+447911123456", "phone", date(2027, 1, 6), "afternoon", ""), "jo"
    )
    assert bookings.redeliver(store, first, booking_system)  # the booking system holds the first
    add_conversation(store, "siobhan-1", "book a consultation", "siobhan@example.com")
    add_conversation(store, "siobhan-2", "hello")
    add_conversation(store, "siobhan-3", "is my request for siobhan@example.com through?")
    add_conversation(store, "jo", "07911 123456")

    preview = bookings.erase_preview(store, clinic, [second.lower()])
    erasure = bookings.erase_person(store, clinic, [second.lower()])

    assert erasure.requests == tuple(sorted([first, second])) == preview.requests
    assert (erasure.conversations, erasure.events) == (3, 4) == (preview.conversations, preview.events)
    assert store.get(first) is None and store.get(second) is None and store.get(other) is not None
    assert conversations.event_counts(store.engine, ["siobhan-1", "siobhan-2", "siobhan-3", "jo"]) == {
        "jo": 1
    }
    # The booking system is told to delete the one it received, by reference only.
    assert erasure.told == (first,) and erasure.not_told == ()
    [withdrawal] = [r for r in Receiver.received if r["event"] == "withdrawn"]
    assert withdrawal["reference"] == first and "siobhan" not in json.dumps(withdrawal).lower()
    # What staff and the audit log see: references and counts, nothing personal.
    summary = erasure.summary()
    assert first in summary and "3 conversation(s)" in summary and "siobhan" not in summary.lower()


def test_erasing_by_phone_finds_the_number_however_it_was_typed(store: BookingStore) -> None:
    clinic = load_settings()
    reference, _ = store.save(
        BookingRequest("Jo Bloggs", "+447911123456", "phone", date(2027, 1, 6), "afternoon", ""), "jo"
    )
    add_conversation(store, "jo-later", "my number is 07911 123456")
    erasure = bookings.erase_person(store, clinic, phones=["+44 7911 123456"])
    assert erasure.requests == (reference,) and erasure.conversations == 1  # "jo" stored no events
    assert conversations.event_counts(store.engine, ["jo-later"]) == {}


def test_erasing_with_a_malformed_email_says_so_and_erases_nothing(store: BookingStore) -> None:
    reference, _ = store.save(PERSON, "visitor")
    with pytest.raises(bookings.NotAContact, match="nothing was erased"):
        bookings.erase_person(store, load_settings(), emails=["not-an-email"])
    with pytest.raises(bookings.NotAContact):
        bookings.erase_person(store, load_settings(), phones=["siobhan@example.com"])
    assert store.get(reference) is not None
    assert not bookings.erase_person(store, load_settings(), emails=["nobody@example.com"]).found_anything


def test_the_xlsx_export_types_phones_and_formulas_as_text_and_times_as_times(store: BookingStore) -> None:
    from openpyxl import load_workbook

    phone = BookingRequest(
        "=HYPERLINK(evil)",
        "+447700900123",
        "phone",
        date(2027, 1, 5),
        "after 2pm",
        "",
        availability="after 2pm",
    )
    reference, _ = store.save(phone, "visitor")
    rows = bookings.with_history(store, bookings.find(store, bookings.BookingFilter(), ZONE), ZONE)
    sheet = load_workbook(io.BytesIO(bookings.export_xlsx(rows, ZONE))).active
    headings = [cell.value for cell in sheet[1]]
    cells = {heading: cell for heading, cell in zip(headings, sheet[2], strict=True)}
    assert cells["Reference"].value == reference
    assert cells["Contact"].value == "+447700900123" and cells["Contact"].data_type == "s"
    assert cells["Name"].value == "=HYPERLINK(evil)" and cells["Name"].data_type == "s"  # text, not a formula
    assert cells["Times understood"].value == "after 2pm" and cells["Earliest day"].is_date
    received = next(h for h in headings if h.startswith("Received ("))
    assert cells[received].is_date
    # The CSV has no cell types: a leading + still gets its apostrophe (see export_csv).
    [row] = list(csv.DictReader(io.StringIO(bookings.export_csv(rows, ZONE).decode("utf-8-sig"))))
    assert row["Contact"] == "'+447700900123"


def test_each_status_change_and_note_is_kept_in_the_history_and_erased_with_the_person(
    store: BookingStore,
) -> None:
    reference, _ = store.save(PERSON, "visitor")
    assert bookings.set_status(store, reference, "contacted", "Rang, no answer", "rita")
    assert bookings.set_status(store, reference, "contacted", "Rang again, booked Tuesday", "sam")
    assert bookings.set_status(store, reference, "done", "", "rita")
    assert bookings.set_status(store, reference, "done", "", "rita")  # nothing new: nothing kept
    entries = bookings.history(store, reference, ZONE)
    assert [(e["staff_name"], e["status_from"], e["status_to"], e["note"]) for e in entries] == [
        ("rita", "new", "contacted", "Rang, no answer"),
        ("sam", None, None, "Rang again, booked Tuesday"),
        ("rita", "contacted", "done", None),
    ]
    [row] = bookings.with_history(store, bookings.find(store, bookings.BookingFilter(), ZONE), ZONE)
    assert "Rang, no answer" in row["history"] and "Rang again" in row["history"]
    bookings.erase_person(store, load_settings(), [reference])
    with store.engine.connect() as db:
        left = db.execute(sa.text("SELECT COUNT(*) FROM booking_history")).scalar_one()
    assert left == 0


def test_a_search_with_a_status_set_says_what_it_finds_in_other_statuses(store: BookingStore) -> None:
    reference, _ = store.save(PERSON, "visitor")
    bookings.set_status(store, reference, "contacted", "", "rita")
    criteria = bookings.BookingFilter(status="new", search="siobhan")
    assert bookings.find(store, criteria, ZONE) == []
    assert bookings.in_other_statuses(store, criteria, ZONE) == {"contacted": 1}
    assert bookings.in_other_statuses(store, bookings.BookingFilter(status="new"), ZONE) == {}
