"""Booking requests in a real SQLite file, and delivery to a real HTTP server on loopback."""

from __future__ import annotations

import asyncio
import json
import re
import threading
from collections.abc import Iterator
from dataclasses import replace
from datetime import date, datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import ClassVar

import pytest
import sqlalchemy as sa

from common import metrics
from common.records.bookings import (
    BookingRequest,
    BookingStore,
    ContactLimitReached,
    booking_requests,
    contact_key,
    contact_requests,
)
from common.records.delivery import deliver, deliver_pending, deliver_withdrawal

REQUEST = BookingRequest(
    name="Siobhán O'Neill",
    contact="+447911123456",
    contact_type="phone",
    preferred_date=date(2026, 12, 1),
    time_of_day="morning",
    scar="<b>c-section</b>'; DROP TABLE booking_requests;--",
)


@pytest.fixture
def store(tmp_path: Path) -> BookingStore:
    return BookingStore(f"sqlite:///{tmp_path / 'clinic.db'}")


def test_a_request_is_stored_exactly_as_given(store: BookingStore) -> None:
    reference, created = store.save(REQUEST, "visitor-1")
    row = store.get(reference)
    assert created and reference.startswith("SR-") and len(reference) == 11
    assert (row["name"], row["scar"]) == (REQUEST.name, REQUEST.scar)
    assert row["preferred_date"] == date(2026, 12, 1) and row["delivered_at"] is None


def test_a_retried_submit_never_creates_a_duplicate(store: BookingStore) -> None:
    first = store.save(REQUEST, "visitor-1")
    again = store.save(REQUEST, "visitor-1")
    assert again == (first[0], False)
    assert len(store.list()) == 1


def test_another_visitor_with_the_same_details_is_a_new_request(store: BookingStore) -> None:
    assert store.save(REQUEST, "visitor-1")[0] != store.save(REQUEST, "visitor-2")[0]
    assert len(store.list()) == 2


def test_requests_survive_a_new_connection(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'clinic.db'}"
    reference, _ = BookingStore(url).save(REQUEST, "visitor-1")
    assert BookingStore(url).get(reference)["contact"] == "+447911123456"


def test_purge_deletes_only_old_requests(store: BookingStore) -> None:
    old, _ = store.save(REQUEST, "old-visitor")
    new, _ = store.save(REQUEST, "new-visitor")
    with store.engine.begin() as db:
        db.execute(
            booking_requests.update()
            .where(booking_requests.c.reference == old)
            .values(created_at=datetime.now(timezone.utc) - timedelta(days=40))
        )
    assert store.purge(older_than_days=30) == 1
    assert [r["reference"] for r in store.list()] == [new]


class Clinic(BaseHTTPRequestHandler):
    """The clinic's booking system: fails `failures` times, then accepts."""

    failures = 0
    received: ClassVar[list[dict]] = []

    def do_POST(self) -> None:
        """Record the delivery and answer with the configured status."""
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        if Clinic.failures > 0:
            Clinic.failures -= 1
            self.send_response(503)
        else:
            Clinic.received.append(
                {
                    "body": body,
                    "key": self.headers["Idempotency-Key"],
                    "auth": self.headers.get("Authorization"),
                }
            )
            self.send_response(201)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        """Keep the requests, and the personal data in them, out of the test output."""


@pytest.fixture
def clinic_url() -> Iterator[str]:
    Clinic.failures, Clinic.received = 0, []
    server = HTTPServer(("127.0.0.1", 0), Clinic)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}/requests"
    server.shutdown()


def webhook_figures() -> tuple[float, float]:
    """The action server's counts of failed webhook posts and delivered requests."""
    sample = metrics.ACTIONS.get_sample_value
    return (
        sample("clinic_webhook_failures_total") or 0.0,
        sample("clinic_requests_delivered_total", {"kind": "request"}) or 0.0,
    )


def test_delivery_retries_a_failing_endpoint_then_succeeds(
    store: BookingStore, clinic_url: str, monkeypatch
) -> None:
    monkeypatch.setenv("BOOKING_WEBHOOK_TOKEN", "s3cret")
    Clinic.failures = 2
    reference, _ = store.save(REQUEST, "visitor-1")
    failures, delivered = webhook_figures()
    assert asyncio.run(deliver(store, clinic_url, store.get(reference), backoff=0.01))
    # The action server's /metrics counts each failed attempt and the delivery (issue 23).
    assert webhook_figures() == (failures + 2, delivered + 1)
    [got] = Clinic.received
    assert got["body"]["reference"] == reference and got["body"]["name"] == REQUEST.name
    assert got["key"] == reference and got["auth"] == "Bearer s3cret"
    assert got["body"]["event"] == "requested" and got["body"]["contact_verified"] is False
    assert "not checked" in got["body"]["contact_note"]
    row = store.get(reference)
    assert row["delivery_attempts"] == 3 and row["delivered_at"] is not None


def test_a_failed_delivery_keeps_the_request_for_a_later_retry(store: BookingStore, clinic_url: str) -> None:
    Clinic.failures = 10
    reference, _ = store.save(REQUEST, "visitor-1")
    assert not asyncio.run(deliver(store, clinic_url, store.get(reference), attempts=2, backoff=0.01))
    row = store.get(reference)
    assert row["delivered_at"] is None and row["last_delivery_error"] == "HTTP 503"
    assert row["name"] == REQUEST.name  # nothing lost
    Clinic.failures = 0
    assert asyncio.run(deliver_pending(store, clinic_url)) == (1, 1)
    assert store.undelivered() == [] and len(Clinic.received) == 1


def test_an_unreachable_endpoint_is_recorded_without_personal_data(store: BookingStore) -> None:
    reference, _ = store.save(REQUEST, "visitor-1")
    assert not asyncio.run(deliver(store, "http://127.0.0.1:9/nowhere", store.get(reference), attempts=1))
    error = store.get(reference)["last_delivery_error"]
    assert error and REQUEST.name not in error and REQUEST.contact not in error


def test_the_table_uses_parameterised_sql(store: BookingStore) -> None:
    store.save(REQUEST, "visitor-1")
    with store.engine.connect() as db:
        assert db.execute(sa.text("SELECT COUNT(*) FROM booking_requests")).scalar() == 1


def test_staff_can_list_export_and_purge(store: BookingStore, tmp_path: Path, monkeypatch, capsys) -> None:
    from staff.commands import bookings

    monkeypatch.setenv("DATABASE_URL", str(store.engine.url))
    reference, _ = store.save(REQUEST, "visitor-1")
    assert bookings.main(["list"]) == 0
    assert reference in capsys.readouterr().out
    out = tmp_path / "requests.csv"
    assert bookings.main(["export", str(out)]) == 0
    exported = out.read_text(encoding="utf-8")
    assert reference in exported and "Siobhán O'Neill" in exported and "dedupe_key" not in exported
    with store.engine.begin() as db:  # a conversation, as Rasa's SQL tracker store keeps it
        db.execute(
            sa.text(
                "CREATE TABLE events (id INTEGER PRIMARY KEY, sender_id TEXT, "
                "type_name TEXT, timestamp FLOAT, data TEXT)"
            )
        )
        db.execute(
            sa.text(
                "INSERT INTO events (sender_id, type_name, timestamp, data) VALUES "
                "('v', 'user', :old, 'my number is 07911 123456'), ('v', 'user', :now, 'hi')"
            ),
            {
                "old": (datetime.now(timezone.utc) - timedelta(days=100)).timestamp(),
                "now": datetime.now(timezone.utc).timestamp(),
            },
        )
    assert bookings.main(["purge", "--older-than", "90"]) == 0
    assert "1 conversation event(s)" in capsys.readouterr().out
    with store.engine.connect() as db:
        assert db.execute(sa.text("SELECT data FROM events")).scalars().all() == ["hi"]
    assert bookings.main(["purge", "--older-than", "0"]) == 0
    assert store.list() == []


def test_a_request_knows_its_conversation_and_can_be_found_by_contact(store: BookingStore) -> None:
    email = replace(REQUEST, contact="Jo.Smith@example.com", contact_type="email")
    reference, _ = store.save(email, "conversation-1")
    assert store.get(reference)["conversation_id"] == "conversation-1"
    assert [r["reference"] for r in store.find(contacts=["jo.smith@EXAMPLE.com"])] == [reference]
    assert [r["reference"] for r in store.find(references=[reference.lower()])] == [reference]
    assert [r["reference"] for r in store.find(conversation_ids=["conversation-1"])] == [reference]
    assert store.find() == [] and store.find(contacts=["nobody@example.com"]) == []


def test_the_same_contact_makes_at_most_the_limit_of_requests_a_day(store: BookingStore) -> None:
    first, _ = store.save(REQUEST, "visitor-1", max_per_contact_per_day=2)
    store.save(REQUEST, "visitor-2", max_per_contact_per_day=2)
    with pytest.raises(ContactLimitReached):
        store.save(REQUEST, "visitor-3", max_per_contact_per_day=2)
    assert store.save(REQUEST, "visitor-1", max_per_contact_per_day=2) == (first, False)  # a retry
    with store.engine.begin() as db:  # a day later the contact may ask again
        for table in (booking_requests, contact_requests):
            db.execute(
                table.update().values(created_at=datetime.now(timezone.utc) - timedelta(days=1, minutes=1))
            )
    assert store.save(REQUEST, "visitor-3", max_per_contact_per_day=2)[1]
    assert len(store.list()) == 3


def test_the_daily_limit_per_contact_survives_erasing_a_request(store: BookingStore) -> None:
    """Issue 20: 4 requests for one email in a day, one erased in between, all succeeded."""
    email = replace(REQUEST, contact="Pat.Limit@example.com", contact_type="email")
    references = [store.save(email, f"visitor-{n}", max_per_contact_per_day=3)[0] for n in range(3)]
    store.erase(references[:1])
    with pytest.raises(ContactLimitReached):
        store.save(replace(email, contact="pat.limit@example.com"), "visitor-4", max_per_contact_per_day=3)
    with store.engine.connect() as db:
        kept = db.execute(sa.select(contact_requests)).all()
    assert len(kept) == 3 and all(re.fullmatch("[0-9a-f]{64}", row.contact_key) for row in kept)
    assert "pat.limit" not in repr(kept).lower()


def test_the_contacts_hash_needs_the_secret_and_changes_every_day(tmp_path: Path) -> None:
    day = date(2026, 12, 4)
    key = contact_key("pat@example.com", day, b"secret one")
    assert key == contact_key(" PAT@example.com", day, b"secret one")
    assert key != contact_key("pat@example.com", day, b"secret two")
    assert key != contact_key("pat@example.com", day + timedelta(days=1), b"secret one")


def test_rows_of_the_contact_count_older_than_two_days_are_purged(store: BookingStore) -> None:
    store.save(REQUEST, "visitor-1", max_per_contact_per_day=3)
    with store.engine.begin() as db:
        db.execute(
            contact_requests.update().values(created_at=datetime.now(timezone.utc) - timedelta(days=3))
        )
    store.save(replace(REQUEST, scar="another"), "visitor-2", max_per_contact_per_day=3)
    with store.engine.connect() as db:
        assert db.execute(sa.select(sa.func.count()).select_from(contact_requests)).scalar_one() == 1


def test_erasing_leaves_a_withdrawal_notice_only_where_the_booking_system_may_have_it(
    store: BookingStore, clinic_url: str
) -> None:
    delivered, _ = store.save(REQUEST, "visitor-1")
    attempted, _ = store.save(REQUEST, "visitor-2")
    never, _ = store.save(REQUEST, "visitor-3")
    store.record_delivery(delivered, None)
    store.record_delivery(attempted, "HTTP 503")
    erased = store.erase([delivered, attempted, never, "SR-NOTTHERE"])
    assert {(e.reference, e.tell_booking_system) for e in erased} == {
        (delivered, True),
        (attempted, True),
        (never, False),
    }
    assert store.list() == []
    pending = store.pending_withdrawals()
    assert sorted(row["reference"] for row in pending) == sorted([delivered, attempted])
    row = next(row for row in pending if row["reference"] == delivered)
    assert asyncio.run(deliver_withdrawal(store, clinic_url, row, backoff=0.01))
    [got] = Clinic.received
    assert got["body"] == {
        "event": "withdrawn",
        "reference": delivered,
        "withdrawn_at": got["body"]["withdrawn_at"],
        "note": got["body"]["note"],
    }
    assert got["key"] == f"{delivered}-withdrawn" and REQUEST.name not in json.dumps(got["body"])
    assert [row["reference"] for row in store.pending_withdrawals()] == [attempted]
    assert asyncio.run(deliver_pending(store, clinic_url)) == (1, 1)
    assert store.pending_withdrawals() == []


def test_an_erased_request_is_never_delivered(store: BookingStore, clinic_url: str) -> None:
    reference, _ = store.save(REQUEST, "visitor-1")
    row = store.get(reference)
    store.erase([reference])
    assert not asyncio.run(deliver(store, clinic_url, row, backoff=0.01))
    assert Clinic.received == []
