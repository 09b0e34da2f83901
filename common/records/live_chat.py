"""Live chat with the clinic's staff: the queue, who holds each conversation, who is available.

Shared by every process through the project's SQL database (made by the migrations), never
process memory, so several Rasa servers, the action server and the staff console agree:

* a visitor's request waits (`waiting`) until a staff member takes it (`held`), then is handed
  back to the assistant (`returned`) or closed (`closed`); nobody taking it within the clinic's
  `live_chat_wait_minutes` makes it `missed` (the visitor is offered to leave a message);
* taking is one conditional UPDATE (... WHERE status = 'waiting'), so of two staff members
  who press "Take" together exactly one wins, on SQLite and PostgreSQL alike;
* a staff member is available only while they said so on the Live page and that page was
  seen recently (its polling is the heartbeat): a closed laptop stops offering live chat;
* at most clinic.yml's `live_chat_max_waiting` requests wait at once (`request`);
* `reach` says whether a visitor asking now is offered a person, and if not why: outside
  live-chat hours (clinic.yml's opening_hours), nobody available, or the queue is full. The
  assistant's offer and the staff's Live page both ask it, so they cannot disagree.

Rows hold ids, times and staff names only; what was said stays in Rasa's tracker store.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from functools import lru_cache

import sqlalchemy as sa

from common import database, migrations
from common.clinic import ClinicSettings, clock
from common.records.tables import live_chats, staff_presence

# A staff member's Live page polls every few seconds; this long without a poll: away.
PRESENCE_SECONDS = 30
# A held conversation whose staff member's Live page has not been seen for this long (closed
# laptop, signed out) goes back to the assistant: a visitor is never left with nobody.
HOLDER_GONE_SECONDS = 120
# The visitor typed within this many seconds: "typing..." on the staff member's page.
TYPING_SECONDS = 6
WAITING, HELD, RETURNED, CLOSED, MISSED = "waiting", "held", "returned", "closed", "missed"
ACTIVE = (WAITING, HELD)
STATUSES = (WAITING, HELD, RETURNED, CLOSED, MISSED)
# PostgreSQL advisory lock taken while a request joins a capped queue (any fixed number).
QUEUE_LOCK_KEY = 20_261_204
# Why a visitor is offered to leave a message instead of a person (`reach`).
OUTSIDE_HOURS, NOBODY_AVAILABLE, QUEUE_FULL = "outside hours", "nobody available", "queue full"


@dataclass(frozen=True)
class LiveChat:
    """One request for a person: its conversation, state and holder."""

    id: int
    conversation_id: str
    status: str
    requested_at: datetime
    staff_id: int | None
    staff_name: str | None
    taken_at: datetime | None
    ended_at: datetime | None
    visitor_typing_at: datetime | None
    visitor_left_at: datetime | None

    @classmethod
    def from_row(cls, row: sa.engine.Row) -> LiveChat:
        """A row of live_chats, with every time made aware (UTC)."""
        values = dict(row._mapping)
        for name, value in values.items():
            if isinstance(value, datetime):
                values[name] = as_utc(value)
        return cls(**values)

    def typing(self, now: datetime) -> bool:
        """Whether the visitor typed in the last few seconds."""
        return self.visitor_typing_at is not None and now - self.visitor_typing_at < timedelta(
            seconds=TYPING_SECONDS
        )


def now() -> datetime:
    """The current time, in UTC."""
    return datetime.now(timezone.utc)


def as_utc(moment: datetime) -> datetime:
    """A stored time as an aware UTC time (SQLite gives them back without a zone)."""
    return moment.replace(tzinfo=timezone.utc) if moment.tzinfo is None else moment.astimezone(timezone.utc)


@lru_cache(maxsize=4)
def engine(url: str) -> sa.engine.Engine:
    """The database at `url`, upgraded to the newest schema (once per process)."""
    migrations.upgrade(url)
    return database.create_engine(url)


def set_presence(db: sa.engine.Engine, staff_id: int, staff_name: str, available: bool | None) -> bool:
    """Record that the staff member's Live page was seen; `available` None keeps their choice.

    Returns whether they are now available.
    """
    moment = now()
    with db.begin() as conn:
        current = conn.execute(
            sa.select(staff_presence.c.available).where(staff_presence.c.staff_id == staff_id)
        ).scalar_one_or_none()
        if current is None:
            conn.execute(
                staff_presence.insert().values(
                    staff_id=staff_id, staff_name=staff_name, available=bool(available), seen_at=moment
                )
            )
            return bool(available)
        chosen = current if available is None else available
        conn.execute(
            staff_presence.update()
            .where(staff_presence.c.staff_id == staff_id)
            .values(staff_name=staff_name, available=chosen, seen_at=moment)
        )
        return bool(chosen)


def available_staff(db: sa.engine.Engine) -> list[str]:
    """Names of the staff members available now (said so, and their Live page was seen lately)."""
    since = now() - timedelta(seconds=PRESENCE_SECONDS)
    with db.connect() as conn:
        return list(
            conn.execute(
                sa.select(staff_presence.c.staff_name)
                .where(staff_presence.c.available.is_(True), staff_presence.c.seen_at >= since)
                .order_by(staff_presence.c.staff_name)
            ).scalars()
        )


@dataclass(frozen=True)
class Reach:
    """Whether a visitor asking for a person now is offered one; if not, why (and when next)."""

    offered: bool
    why: str = ""  # OUTSIDE_HOURS, NOBODY_AVAILABLE or QUEUE_FULL when not offered
    next_opening: datetime | None = None  # outside hours: when live chat is next offered
    waiting: int = 0  # the queue is full: how many wait


def waiting_count(db: sa.engine.Engine) -> int:
    """How many requests wait for someone to take them."""
    with db.connect() as conn:
        return int(
            conn.execute(
                sa.select(sa.func.count()).select_from(live_chats).where(live_chats.c.status == WAITING)
            ).scalar_one()
        )


def queue(db: sa.engine.Engine) -> tuple[int, float]:
    """How many requests wait for someone to take them, and how long the oldest has waited (seconds)."""
    with db.connect() as conn:
        count, oldest = conn.execute(
            sa.select(sa.func.count(), sa.func.min(live_chats.c.requested_at)).where(
                live_chats.c.status == WAITING
            )
        ).one()
    return int(count), (now() - as_utc(oldest)).total_seconds() if oldest is not None else 0.0


def reach(db: sa.engine.Engine, clinic: ClinicSettings, moment: datetime, queue: bool = True) -> Reach:
    """Whether a visitor asking at `moment` is offered a person, and if not why.

    Within live-chat hours (the clinic's opening hours, less days without live chat), someone
    available, and (unless `queue` is False: `request` checks it as it queues) the queue not full.
    """
    if not clinic.live_chat_at(moment):
        return Reach(False, OUTSIDE_HOURS, next_opening=clinic.next_live_chat(moment))
    if not available_staff(db):
        return Reach(False, NOBODY_AVAILABLE)
    if not queue:
        return Reach(True)
    waiting = waiting_count(db)
    if waiting >= clinic.live_chat_max_waiting:
        return Reach(False, QUEUE_FULL, waiting=waiting)
    return Reach(True)


def active(db: sa.engine.Engine, conversation_id: str) -> LiveChat | None:
    """The conversation's waiting or held request, if it has one."""
    with db.connect() as conn:
        row = conn.execute(
            sa.select(live_chats)
            .where(live_chats.c.conversation_id == conversation_id, live_chats.c.status.in_(ACTIVE))
            .order_by(live_chats.c.id.desc())
            .limit(1)
        ).first()
    return LiveChat.from_row(row) if row else None


def get(db: sa.engine.Engine, chat_id: int) -> LiveChat | None:
    """One request by its id."""
    with db.connect() as conn:
        row = conn.execute(sa.select(live_chats).where(live_chats.c.id == chat_id)).first()
    return LiveChat.from_row(row) if row else None


def request(db: sa.engine.Engine, conversation_id: str, max_waiting: int | None = None) -> LiveChat | None:
    """Put the conversation in the queue (or return its request already waiting or held).

    With `max_waiting`, None if that many requests are already waiting (the queue is full): the
    count and the insert are one statement (INSERT ... SELECT ... WHERE count < max_waiting),
    taken under a transaction-scoped advisory lock on PostgreSQL, so servers asking at the same
    time never wait more than `max_waiting` visitors between them.
    """
    existing = active(db, conversation_id)
    if existing is not None:
        return existing
    with db.begin() as conn:
        if max_waiting is None:
            conn.execute(
                live_chats.insert().values(
                    conversation_id=conversation_id, status=WAITING, requested_at=now()
                )
            )
        else:
            if conn.dialect.name == "postgresql":
                conn.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": QUEUE_LOCK_KEY})
            waiting = (
                sa.select(sa.func.count()).select_from(live_chats).where(live_chats.c.status == WAITING)
            ).scalar_subquery()
            row = sa.select(
                sa.literal(conversation_id, live_chats.c.conversation_id.type),
                sa.literal(WAITING, live_chats.c.status.type),
                sa.literal(now(), live_chats.c.requested_at.type),
            ).where(waiting < max_waiting)
            added = conn.execute(
                live_chats.insert().from_select(["conversation_id", "status", "requested_at"], row)
            )
            if added.rowcount == 0:
                return None
    found = active(db, conversation_id)
    assert found is not None  # just inserted
    return found


def take(db: sa.engine.Engine, chat_id: int, staff_id: int, staff_name: str) -> bool:
    """Give a waiting request to this staff member; False if someone else was first (or it ended)."""
    with db.begin() as conn:
        result = conn.execute(
            live_chats.update()
            .where(live_chats.c.id == chat_id, live_chats.c.status == WAITING)
            .values(status=HELD, staff_id=staff_id, staff_name=staff_name, taken_at=now())
        )
    return result.rowcount == 1


def end(db: sa.engine.Engine, chat_id: int, staff_id: int, status: str) -> bool:
    """The holder hands the conversation back (`returned`) or closes it; False if they do not hold it."""
    if status not in (RETURNED, CLOSED):
        raise ValueError(f"A live chat ends as {RETURNED} or {CLOSED}, not {status!r}.")
    with db.begin() as conn:
        result = conn.execute(
            live_chats.update()
            .where(live_chats.c.id == chat_id, live_chats.c.status == HELD, live_chats.c.staff_id == staff_id)
            .values(status=status, ended_at=now())
        )
    return result.rowcount == 1


def expire(db: sa.engine.Engine, wait: timedelta) -> list[LiveChat]:
    """Mark requests nobody took within `wait` as missed; return those this call marked.

    Each is marked by a conditional UPDATE, so when several servers sweep at once each missed
    request is returned by exactly one of them (which then tells the visitor).
    """
    cutoff = now() - wait
    with db.connect() as conn:
        overdue = [
            LiveChat.from_row(row)
            for row in conn.execute(
                sa.select(live_chats).where(
                    live_chats.c.status == WAITING, live_chats.c.requested_at < cutoff
                )
            )
        ]
    marked = []
    for chat in overdue:
        with db.begin() as conn:
            result = conn.execute(
                live_chats.update()
                .where(live_chats.c.id == chat.id, live_chats.c.status == WAITING)
                .values(status=MISSED, ended_at=now())
            )
        if result.rowcount == 1:
            marked.append(chat)
    return marked


def abandoned(
    db: sa.engine.Engine, gone: timedelta = timedelta(seconds=HOLDER_GONE_SECONDS)
) -> list[LiveChat]:
    """Hand back held conversations whose staff member's Live page was not seen for `gone`.

    Returns those this call handed back (conditional UPDATEs: one sweep wins each).
    """
    cutoff = now() - gone
    seen_lately = sa.select(staff_presence.c.staff_id).where(staff_presence.c.seen_at >= cutoff)
    with db.connect() as conn:
        held = [
            LiveChat.from_row(row)
            for row in conn.execute(
                sa.select(live_chats).where(
                    live_chats.c.status == HELD,
                    live_chats.c.taken_at < cutoff,
                    live_chats.c.staff_id.not_in(seen_lately),
                )
            )
        ]
    handed_back = []
    for chat in held:
        with db.begin() as conn:
            result = conn.execute(
                live_chats.update()
                .where(live_chats.c.id == chat.id, live_chats.c.status == HELD)
                .values(status=RETURNED, ended_at=now())
            )
        if result.rowcount == 1:
            handed_back.append(chat)
    return handed_back


def visitor_seen(
    db: sa.engine.Engine, conversation_id: str, typing: bool = False, left: bool = False
) -> None:
    """Note on the conversation's active request that the visitor is typing, left, or is back."""
    values: dict[str, datetime | None] = {
        "visitor_left_at": now() if left else None,
        "visitor_typing_at": now() if typing else None,
    }
    with db.begin() as conn:
        conn.execute(
            live_chats.update()
            .where(live_chats.c.conversation_id == conversation_id, live_chats.c.status.in_(ACTIVE))
            .values(**values)
        )


def forget(conn: sa.engine.Connection, conversation_ids: list[str]) -> None:
    """Delete these conversations' live chat rows (when the conversations are erased)."""
    if sa.inspect(conn).has_table(live_chats.name):
        conn.execute(live_chats.delete().where(live_chats.c.conversation_id.in_(conversation_ids)))


def open_chats(db: sa.engine.Engine) -> list[LiveChat]:
    """Every waiting or held request, oldest first."""
    with db.connect() as conn:
        rows = conn.execute(
            sa.select(live_chats).where(live_chats.c.status.in_(ACTIVE)).order_by(live_chats.c.requested_at)
        ).all()
    return [LiveChat.from_row(row) for row in rows]


def reply_expected(clinic: ClinicSettings, moment: datetime) -> str:
    """When the team will reply to a message left at `moment`, in words ("today before 5pm")."""
    local = moment.astimezone(clinic.zone)
    hours = clinic.hours_on(local.date())
    if hours is not None and local.time() < hours[1]:
        if local.time() >= hours[0]:
            closing = datetime.combine(local.date(), hours[1])
            return f"today, before {clock(closing)}"
        return f"today, from {clock(datetime.combine(local.date(), hours[0]))}"
    opening = clinic.next_opening(moment)
    if opening is None:
        return "as soon as the clinic is open"
    day = "tomorrow" if (opening.date() - local.date()).days == 1 else f"on {opening:%A}"
    return f"{day} from {clock(opening)}"
