"""staff/service/bookings.py, shared by the console and clinic-bookings, on a real SQLite database."""

from __future__ import annotations

import csv
import io
import json
import threading
from collections.abc import Iterator
from datetime import date, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import ClassVar
from zoneinfo import ZoneInfo

import pytest

from actions.booking.store import BookingRequest, BookingStore
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


def test_erasing_a_person_says_it_is_not_available_yet_and_deletes_nothing(store: BookingStore) -> None:
    reference, _ = store.save(PERSON, "visitor")
    with pytest.raises(NotImplementedError, match="Nothing was deleted"):
        bookings.erase_person(store, reference, "rita")
    assert store.get(reference) is not None
