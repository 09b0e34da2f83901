"""Consultation requests in a real SQL database (SQLite by default, any SQLAlchemy URL).

The table's schema is made and upgraded by the migrations in common/migrations/; the Table
below mirrors their newest revision for queries.

Saving is idempotent: the same request submitted twice (a retried action, a double
click) returns the first row's reference instead of creating a duplicate. Queries are
parameterised, so names such as "O'Brien" or "'; DROP TABLE" are stored as typed.
"""

from __future__ import annotations

import base64
import hashlib
from dataclasses import asdict, dataclass
from datetime import date, datetime, timedelta, timezone
from functools import lru_cache
from typing import Any

import sqlalchemy as sa

from common import migrations, settings
from common.database import create_engine

metadata = sa.MetaData()
booking_requests = sa.Table(
    "booking_requests",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("reference", sa.String(16), nullable=False, unique=True),
    sa.Column("dedupe_key", sa.String(64), nullable=False, unique=True),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("name", sa.Text, nullable=False),
    sa.Column("contact", sa.Text, nullable=False),
    sa.Column("contact_type", sa.String(8), nullable=False),
    # When the visitor is free for the call back (actions/booking/availability.py): the earliest
    # day that suits, the last day of a range (empty: open-ended), the weekdays that suit
    # (comma-separated; empty: any open day), the time of day, "flexible", and their own words.
    sa.Column("preferred_date", sa.Date, nullable=False),
    sa.Column("latest_date", sa.Date),
    sa.Column("weekdays", sa.String(80), nullable=False, default=""),
    sa.Column("time_of_day", sa.String(16), nullable=False),
    sa.Column("flexible", sa.Boolean, nullable=False, default=False),
    sa.Column("availability", sa.Text, nullable=False, default=""),
    sa.Column("scar", sa.Text, nullable=False, default=""),
    sa.Column("consent_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("delivered_at", sa.DateTime(timezone=True)),
    sa.Column("delivery_attempts", sa.Integer, nullable=False, default=0),
    sa.Column("last_delivery_error", sa.String(200)),  # status or error type only, never data
    # Staff's follow-up in the console (common/migrations/versions/0002_staff_console.py).
    sa.Column("status", sa.String(16), nullable=False, default="new", server_default="new"),
    sa.Column("status_note", sa.Text),
    sa.Column("status_changed_at", sa.DateTime(timezone=True)),
    sa.Column("status_changed_by", sa.String(64)),
)
# What staff mark a request as: new (not yet handled), contacted, done.
STATUSES = ("new", "contacted", "done")


@dataclass(frozen=True)
class BookingRequest:
    """What the visitor confirmed, already validated."""

    name: str
    contact: str
    contact_type: str
    preferred_date: date
    time_of_day: str
    scar: str
    latest_date: date | None = None
    weekdays: str = ""
    flexible: bool = False
    availability: str = ""

    def dedupe_key(self, sender_id: str) -> str:
        """Same visitor + same details = same request, however often it is submitted."""
        parts = [sender_id, *(str(v) for v in asdict(self).values())]
        return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()


def reference_for(dedupe_key: str) -> str:
    """A short code the visitor can quote, e.g. SR-K3QF7XMA (no 0/O or 1/I confusion)."""
    code = base64.b32encode(bytes.fromhex(dedupe_key)[:5]).decode()
    return "SR-" + code


def default_database_url() -> str:
    """The database of this deployment (DATABASE_URL, or the project's SQLite file)."""
    return settings.current().database_url


class BookingStore:
    """Reads and writes consultation requests."""

    def __init__(self, url: str) -> None:
        migrations.upgrade(url)  # the schema comes from the migrations, never create_all
        self.engine = create_engine(url)

    def save(self, request: BookingRequest, sender_id: str) -> tuple[str, bool]:
        """Store the request once; return (reference, whether it was new)."""
        key = request.dedupe_key(sender_id)
        now = datetime.now(timezone.utc)
        row = {
            **asdict(request),
            "reference": reference_for(key),
            "dedupe_key": key,
            "created_at": now,
            "consent_at": now,
            "delivery_attempts": 0,
        }
        try:
            with self.engine.begin() as db:
                db.execute(booking_requests.insert().values(**row))
            return row["reference"], True
        except sa.exc.IntegrityError:
            with self.engine.connect() as db:
                existing = db.execute(
                    sa.select(booking_requests.c.reference).where(booking_requests.c.dedupe_key == key)
                ).scalar_one()
            return existing, False

    def get(self, reference: str) -> dict[str, Any] | None:
        """The request with this reference (None if there is none)."""
        with self.engine.connect() as db:
            row = (
                db.execute(sa.select(booking_requests).where(booking_requests.c.reference == reference))
                .mappings()
                .first()
            )
        return dict(row) if row else None

    def list(self, since: datetime | None = None) -> list[dict[str, Any]]:
        """All requests (newest first), optionally only those created since `since`."""
        query = sa.select(booking_requests).order_by(booking_requests.c.created_at.desc())
        if since is not None:
            query = query.where(booking_requests.c.created_at >= since)
        with self.engine.connect() as db:
            return [dict(r) for r in db.execute(query).mappings()]

    def undelivered(self) -> list[dict[str, Any]]:
        """The requests the booking system has not received yet."""
        with self.engine.connect() as db:
            return [
                dict(r)
                for r in db.execute(
                    sa.select(booking_requests).where(booking_requests.c.delivered_at.is_(None))
                ).mappings()
            ]

    def record_delivery(self, reference: str, error: str | None) -> None:
        """Count one delivery attempt; a None error marks the request delivered."""
        values: dict[str, Any] = {
            "delivery_attempts": booking_requests.c.delivery_attempts + 1,
            "last_delivery_error": error,
        }
        if error is None:
            values["delivered_at"] = datetime.now(timezone.utc)
        with self.engine.begin() as db:
            db.execute(
                booking_requests.update().where(booking_requests.c.reference == reference).values(**values)
            )

    def purge(self, older_than_days: int) -> int:
        """Delete requests created more than N days ago; return how many."""
        cutoff = datetime.now(timezone.utc) - timedelta(days=older_than_days)
        with self.engine.begin() as db:
            return db.execute(
                booking_requests.delete().where(booking_requests.c.created_at < cutoff)
            ).rowcount


@lru_cache(maxsize=4)
def get_store(url: str | None = None) -> BookingStore:
    """One store (and connection pool) per database URL and process."""
    return BookingStore(url or default_database_url())
