"""E-mail notifications to staff: what each one chose, and the outbox every e-mail waits in.

Whatever happens to a visitor that staff may want to hear about (a new consultation request, a
message left for the team, a visitor asking for a person while nobody is available on the Live
page) is *enqueued* here: one outbox row per staff member who chose that kind on their account
page and has an e-mail address (set by an admin). A request's rows are written in the same
transaction as the request itself (common/records/bookings.py), so an e-mail is never lost nor
queued for a request that was not stored. Each row has a unique key (kind, subject, staff
member), so enqueuing the same thing again adds nothing. Nothing here talks to a mail server:
the console's sender (staff/service/notifications.py) sends what waits, with retries, and
records the outcome, so a visitor's turn never waits for e-mail.

By default a row holds the kind, the reference and the console page only; the visitor's name,
contact and words are added only when the clinic turned details on (notification_settings).
Erasing a person erases their rows with details and unlinks the others from their conversation
(`forget`); the retention purge deletes rows as old as the requests it deletes (`purge`).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta, timezone
from typing import Any

import sqlalchemy as sa

from common.records.tables import (
    notification_choices,
    notification_outbox,
    notification_settings,
    staff_users,
)

# What staff can choose to be told by e-mail, in the account page's order, in their words.
CONSULTATION, CALLBACK, LIVE_CHAT, SUMMARY = "consultation", "callback", "live_chat", "summary"
KINDS = {
    CONSULTATION: "A new consultation request",
    CALLBACK: "A new message for the team",
    LIVE_CHAT: "A visitor asks for a person while nobody is available on the Live page",
    SUMMARY: "A daily summary (requests, messages, unanswered questions, thumbs-down)",
}
# Who may choose each kind: those whose role opens the page it links to (staff/service/accounts.py).
KIND_ROLES = {
    CONSULTATION: ("reception", "admin"),
    CALLBACK: ("reception", "admin"),
    LIVE_CHAT: ("reception", "admin"),
    SUMMARY: ("reception", "editor", "admin"),
}
# An outbox row waits (pending: not tried yet, or tried and to be tried again), was sent, or
# failed for good: not sent NOTIFY_GIVE_UP_DAYS after it was queued, or no longer wanted by the
# staff member it was queued for (left, changed role, unsubscribed or lost their address).
PENDING, SENT, FAILED = "pending", "sent", "failed"
# At most one e-mail about visitors asking for a person per staff member in this long: a busy
# afternoon with nobody on the Live page must not fill an inbox.
LIVE_CHAT_QUIET = timedelta(minutes=10)


def now() -> datetime:
    """The current time, in UTC."""
    return datetime.now(timezone.utc)


def dedupe_key(kind: str, reference: str, staff_id: int) -> str:
    """The key that makes one e-mail of `kind` about `reference` to one staff member."""
    return hashlib.sha256(f"{kind}\x1f{reference}\x1f{staff_id}".encode()).hexdigest()


def with_details(db: sa.engine.Connection) -> bool:
    """Whether the clinic turned on the visitor's details in e-mails (off unless an admin did)."""
    value = db.execute(
        sa.select(notification_settings.c.with_details).where(notification_settings.c.slot == 1)
    ).scalar_one_or_none()
    return bool(value)


def recipients(db: sa.engine.Connection, kind: str) -> list[tuple[int, str]]:
    """(staff id, address) of every active staff member with an address who chose `kind`.

    Only roles that may open what it links to (KIND_ROLES): a choice made before a change of
    role sends nothing the new role may not see.
    """
    query = (
        sa.select(staff_users.c.id, staff_users.c.email)
        .join(notification_choices, notification_choices.c.staff_id == staff_users.c.id)
        .where(
            notification_choices.c.kind == kind,
            staff_users.c.active.is_(True),
            staff_users.c.role.in_(KIND_ROLES.get(kind, ())),
            staff_users.c.email.is_not(None),
            staff_users.c.email != "",
        )
        .order_by(staff_users.c.id)
    )
    return [(row.id, row.email) for row in db.execute(query)]


def enqueue(
    db: sa.engine.Connection,
    kind: str,
    reference: str,
    path: str,
    conversation_id: str | None = None,
    details: str | None = None,
    quiet: timedelta | None = None,
) -> int:
    """Queue one e-mail of `kind` about `reference` per staff member who chose it; return how many.

    Runs in the caller's transaction (`db`), so the e-mails are queued exactly when what they
    tell about is stored. `details` (the visitor's own words) is kept only if the clinic turned
    details on. `quiet`: skip a staff member who was queued an e-mail of this kind that recently.
    Enqueuing the same kind and reference again queues nothing more.
    """
    moment = now()
    kept = details if details and with_details(db) else None
    queued = 0
    for staff_id, address in recipients(db, kind):
        key = dedupe_key(kind, reference, staff_id)
        if db.execute(
            sa.select(notification_outbox.c.id).where(notification_outbox.c.dedupe_key == key)
        ).first():
            continue
        if (
            quiet is not None
            and db.execute(
                sa.select(notification_outbox.c.id).where(
                    notification_outbox.c.kind == kind,
                    notification_outbox.c.staff_id == staff_id,
                    notification_outbox.c.created_at >= moment - quiet,
                )
            ).first()
        ):
            continue
        db.execute(
            notification_outbox.insert().values(
                dedupe_key=key,
                kind=kind,
                reference=reference,
                path=path,
                details=kept,
                conversation_id=conversation_id,
                staff_id=staff_id,
                address=address,
                created_at=moment,
                status=PENDING,
                attempts=0,
                next_attempt_at=moment,
            )
        )
        queued += 1
    return queued


def request_details(row: dict[str, Any]) -> str:
    """A stored request's details as an e-mail with details on carries them (name, contact, words)."""
    lines = [f"Name: {row.get('name', '')}", f"Contact: {row.get('contact', '')}"]
    if row.get("understood") or row.get("availability"):
        lines.append(f"When: {row.get('understood') or row.get('availability')}")
    if row.get("scar"):
        lines.append(f"About their scar: {row['scar']}")
    if row.get("question"):
        lines.append(f"Their message: {row['question']}")
    return "\n".join(lines)


def forget(db: sa.engine.Connection, conversation_ids: Sequence[str], references: Iterable[str] = ()) -> int:
    """Erase the e-mails with details about these conversations or requests (sent or not).

    An e-mail without details names a reference only: it stays in the record (and is still
    sent), as the audit log keeps references, but no longer names the conversation.
    """
    conditions = []
    if conversation_ids:
        conditions.append(notification_outbox.c.conversation_id.in_(list(conversation_ids)))
    references = [r.upper() for r in references]
    if references:
        conditions.append(notification_outbox.c.reference.in_(references))
    if not conditions:
        return 0
    erased = db.execute(
        notification_outbox.delete().where(sa.or_(*conditions), notification_outbox.c.details.is_not(None))
    ).rowcount
    if conversation_ids:
        db.execute(
            notification_outbox.update()
            .where(notification_outbox.c.conversation_id.in_(list(conversation_ids)))
            .values(conversation_id=None)
        )
    return erased


def purge(db: sa.engine.Connection, cutoff: datetime) -> int:
    """Delete the e-mails (sent or not) queued before `cutoff`, as retention deletes requests."""
    return db.execute(notification_outbox.delete().where(notification_outbox.c.created_at < cutoff)).rowcount
