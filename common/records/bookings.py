"""Consultation requests in a real SQL database (SQLite by default, any SQLAlchemy URL).

Used alike by the action server (the booking form saves here), the staff console and the
clinic-bookings command. The tables' schema is made and upgraded by the migrations in
common/migrations/; common/records/tables.py mirrors their newest revision for queries.

Saving is idempotent: the same request submitted twice (a retried action, a double
click) returns the first row's reference instead of creating a duplicate. The same
contact details make at most MAX_REQUESTS_PER_CONTACT_PER_DAY requests a day, from any
conversation, counted by a keyed hash of the contact (`contact_requests`), so erasing a
request does not give the contact its requests back. Each request knows the conversation
that made it, so erasing a conversation erases its requests; an erased request the booking system may have
received leaves a withdrawal notice (its reference only) until the booking system has
been told. Queries are parameterised, so names such as "O'Brien" or "'; DROP TABLE" are
stored as typed.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import date, datetime, timedelta, timezone
from functools import lru_cache
from typing import Any

import sqlalchemy as sa

from common import migrations, settings
from common.database import create_engine
from common.records import notifications
from common.records.tables import booking_history, booking_requests, booking_withdrawals, contact_requests

# What a request asks for: a consultation, or that the team reply to a message left in the chat.
KINDS = ("consultation", "callback")
# What staff mark a request as: new (not yet handled), contacted, done.
STATUSES = ("new", "contacted", "done")
CONTACT_COUNT_DAYS = 2


def contact_key(contact: str, day: date, secret: bytes) -> str:
    """The keyed hash (HMAC-SHA256) of a normalised contact on one UTC day.

    Without the server's secret the contact cannot be found from it, and the same contact
    gives another key on another day, so the rows cannot be linked across days.
    """
    message = f"contact-limit\x1f{day.isoformat()}\x1f{contact.strip().lower()}".encode()
    return hmac.new(secret, message, hashlib.sha256).hexdigest()


def request_words(engine: sa.engine.Engine) -> list[dict[str, Any]]:
    """Every stored request's name, contact and free texts: what personal-data screening looks for."""
    if not sa.inspect(engine).has_table(booking_requests.name):
        return []
    columns = [booking_requests.c[n] for n in ("name", "contact", "scar", "question", "availability")]
    with engine.connect() as db:
        return [dict(row) for row in db.execute(sa.select(*columns)).mappings()]


class ContactLimitReached(Exception):
    """The contact details already made the most requests allowed in a day."""


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
    kind: str = "consultation"
    question: str = ""
    understood: str = ""  # what was read back: derived from the answers, so not part of the key

    def dedupe_key(self, sender_id: str) -> str:
        """Same visitor + same details = same request, however often it is submitted."""
        values = asdict(self)
        del values["understood"]
        if self.kind == "consultation":  # the key consultation requests had before callbacks existed
            del values["kind"], values["question"]
        parts = [sender_id, *(str(v) for v in values.values())]
        return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()


@dataclass(frozen=True)
class ErasedRequest:
    """A request that was erased, and whether the booking system is to be told (it may hold it)."""

    reference: str
    conversation_id: str | None
    tell_booking_system: bool


def reference_for(dedupe_key: str) -> str:
    """A short code the visitor can quote, e.g. SR-K3QF7XMA (no 0/O or 1/I confusion)."""
    code = base64.b32encode(bytes.fromhex(dedupe_key)[:5]).decode()
    return "SR-" + code


def request_path(reference: str) -> str:
    """The console page of a request (where an e-mail about it links to)."""
    return f"/bookings/{reference}"


def default_database_url() -> str:
    """The database of this deployment (DATABASE_URL, or the project's SQLite file)."""
    return settings.current().database_url


def same_contact(contact: str) -> sa.sql.ColumnElement:
    """The condition "this row's contact is `contact`" (emails in any case)."""
    return sa.func.lower(booking_requests.c.contact) == contact.lower()


class BookingStore:
    """Reads and writes consultation requests."""

    def __init__(self, url: str, secret: bytes | None = None) -> None:
        migrations.upgrade(url)  # the schema comes from the migrations, never create_all
        self.engine = create_engine(url)
        self._secret = secret

    @property
    def secret(self) -> bytes:
        """The key of the contacts' hashes: the deployment's conversation secret."""
        if self._secret is None:
            self._secret = settings.current().conversation_key()
        return self._secret

    def contact_keys(self, contact: str, now: datetime) -> list[str]:
        """The contact's keys of today and yesterday (UTC): a day's limit looks back 24 hours."""
        today = now.astimezone(timezone.utc).date()
        return [contact_key(contact, day, self.secret) for day in (today, today - timedelta(days=1))]

    def save(
        self,
        request: BookingRequest,
        sender_id: str,
        max_per_contact_per_day: int | None = None,
        before_commit: Callable[[], None] | None = None,
    ) -> tuple[str, bool]:
        """Store the request once; return (reference, whether it was new).

        Raises ContactLimitReached, storing nothing, if the contact already made
        `max_per_contact_per_day` requests in the last 24 hours (a repeat of one of them
        is not a new request, and is not refused). `before_commit` runs inside the
        transaction, once the row is written (and any lock taken), right before the commit:
        whatever it raises rolls the request back (common/deadline.check: too late to tell
        the visitor, so nothing is stored).
        """
        key = request.dedupe_key(sender_id)
        now = datetime.now(timezone.utc)
        row = {
            **asdict(request),
            "reference": reference_for(key),
            "dedupe_key": key,
            "created_at": now,
            "consent_at": now,
            "delivery_attempts": 0,
            "conversation_id": sender_id,
        }
        try:
            with self.engine.begin() as db:
                existing = db.execute(
                    sa.select(booking_requests.c.reference).where(booking_requests.c.dedupe_key == key)
                ).scalar()
                if existing is not None:
                    return existing, False
                keys = self.contact_keys(request.contact, now)
                db.execute(
                    contact_requests.delete().where(
                        contact_requests.c.created_at < now - timedelta(days=CONTACT_COUNT_DAYS)
                    )
                )
                if max_per_contact_per_day is not None:
                    recent = db.execute(
                        sa.select(sa.func.count()).where(
                            contact_requests.c.contact_key.in_(keys),
                            contact_requests.c.created_at >= now - timedelta(days=1),
                        )
                    ).scalar_one()
                    if recent >= max_per_contact_per_day:
                        raise ContactLimitReached(request.contact_type)
                db.execute(booking_requests.insert().values(**row))
                db.execute(contact_requests.insert().values(contact_key=keys[0], created_at=now))
                # The staff who chose to be told, in the same transaction: queued exactly when stored.
                notifications.enqueue(
                    db,
                    notifications.CALLBACK if request.kind == "callback" else notifications.CONSULTATION,
                    row["reference"],
                    request_path(row["reference"]),
                    conversation_id=sender_id,
                    details=notifications.request_details(row),
                )
                if before_commit is not None:
                    before_commit()
            return row["reference"], True
        except sa.exc.IntegrityError:  # the same request, saved a moment ago by another process
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

    def find(
        self,
        references: list[str] | None = None,
        contacts: list[str] | None = None,
        conversation_ids: list[str] | None = None,
    ) -> list[dict[str, Any]]:
        """The requests with any of these references, contacts (emails in any case) or conversations."""
        conditions = []
        if references:
            conditions.append(booking_requests.c.reference.in_([r.upper() for r in references]))
        conditions += [same_contact(contact) for contact in contacts or []]
        if conversation_ids:
            conditions.append(booking_requests.c.conversation_id.in_(conversation_ids))
        if not conditions:
            return []
        query = sa.select(booking_requests).where(sa.or_(*conditions)).order_by(booking_requests.c.created_at)
        with self.engine.connect() as db:
            return [dict(r) for r in db.execute(query).mappings()]

    def undelivered(self) -> list[dict[str, Any]]:
        """The consultation requests the booking system has not received yet (callbacks are not sent)."""
        with self.engine.connect() as db:
            return [
                dict(r)
                for r in db.execute(
                    sa.select(booking_requests).where(
                        booking_requests.c.delivered_at.is_(None),
                        booking_requests.c.kind == "consultation",  # callbacks stay in the console
                    )
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

    def erase(self, references: list[str]) -> list[ErasedRequest]:
        """Delete these requests; leave a withdrawal notice for each the booking system may hold.

        A request counts as possibly held once a delivery was attempted (an attempt that
        failed may still have reached it).
        """
        if not references:
            return []
        now = datetime.now(timezone.utc)
        with self.engine.begin() as db:
            rows = db.execute(
                sa.select(
                    booking_requests.c.reference,
                    booking_requests.c.conversation_id,
                    booking_requests.c.delivered_at,
                    booking_requests.c.delivery_attempts,
                ).where(booking_requests.c.reference.in_(references))
            ).all()
            erased = [
                ErasedRequest(
                    row.reference, row.conversation_id, bool(row.delivered_at or row.delivery_attempts)
                )
                for row in rows
            ]
            doomed = sa.select(booking_requests.c.id).where(booking_requests.c.reference.in_(references))
            db.execute(booking_history.delete().where(booking_history.c.request_id.in_(doomed)))
            db.execute(booking_requests.delete().where(booking_requests.c.reference.in_(references)))
            notifications.forget(
                db, [r.conversation_id for r in erased if r.conversation_id], [r.reference for r in erased]
            )
            for request in erased:
                if request.tell_booking_system:
                    already = db.execute(
                        sa.select(booking_withdrawals.c.id).where(
                            booking_withdrawals.c.reference == request.reference
                        )
                    ).first()
                    if already is None:
                        db.execute(
                            booking_withdrawals.insert().values(
                                reference=request.reference, withdrawn_at=now, delivery_attempts=0
                            )
                        )
        return erased

    def pending_withdrawals(self, references: list[str] | None = None) -> list[dict[str, Any]]:
        """The withdrawal notices the booking system has not received yet (or only these)."""
        query = sa.select(booking_withdrawals).where(booking_withdrawals.c.delivered_at.is_(None))
        if references is not None:
            query = query.where(booking_withdrawals.c.reference.in_(references))
        with self.engine.connect() as db:
            return [dict(r) for r in db.execute(query).mappings()]

    def record_withdrawal_delivery(self, reference: str, error: str | None) -> None:
        """Count one attempt to deliver a withdrawal notice; a None error marks it delivered."""
        values: dict[str, Any] = {
            "delivery_attempts": booking_withdrawals.c.delivery_attempts + 1,
            "last_delivery_error": error,
        }
        if error is None:
            values["delivered_at"] = datetime.now(timezone.utc)
        with self.engine.begin() as db:
            db.execute(
                booking_withdrawals.update()
                .where(booking_withdrawals.c.reference == reference)
                .values(**values)
            )

    def purge(self, older_than_days: int) -> int:
        """Delete requests (and e-mails to staff) created more than N days ago; return how many requests."""
        cutoff = datetime.now(timezone.utc) - timedelta(days=older_than_days)
        with self.engine.begin() as db:
            notifications.purge(db, cutoff)
            old = sa.select(booking_requests.c.id).where(booking_requests.c.created_at < cutoff)
            db.execute(booking_history.delete().where(booking_history.c.request_id.in_(old)))
            return db.execute(
                booking_requests.delete().where(booking_requests.c.created_at < cutoff)
            ).rowcount


@lru_cache(maxsize=4)
def get_store(url: str | None = None) -> BookingStore:
    """One store (and connection pool) per database URL and process."""
    return BookingStore(url or default_database_url())
