"""Rasa's stored conversations (the SQL tracker store's `events` table): read, count, purge, erase.

The one module that touches that table, for the review, the console (transcripts, the
week's numbers, the inbox), the bookings purge, erasure on request (in the chat and by
staff), the load test and the tests. Rasa creates the table when the first conversation is
stored; until then every function here treats it as empty.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from datetime import datetime, timedelta, timezone

import sqlalchemy as sa

from common import database
from common.records import live_chat, notifications
from common.records.tables import events, review_decisions, review_sources

# Decisions whose wording went into the training data, and what they become when their
# conversation is erased: a row without the text, for the console to take the example out of
# data/nlu (staff/service/inbox.py: remove_erased_examples) and then delete.
IN_TRAINING_DATA = ("added", "out_of_scope")
ERASED_DECISION = "erased"
# The events that make up what was said: visitor messages, bot actions and bot messages.
DIALOGUE = ("user", "action", "bot")


def has_events(engine: sa.engine.Engine) -> bool:
    """Whether Rasa has stored any conversation in this database yet."""
    return sa.inspect(engine).has_table(events.name)


def read_dialogue(
    url: str, start: float, end: float, types: Sequence[str] = DIALOGUE
) -> Sequence[sa.engine.Row]:
    """The events of these types (the dialogue's) from `start` to before `end` (epoch seconds).

    By sender, oldest first.
    """
    if not database.exists(url):
        return []  # no conversation yet (and connecting would create an empty file)
    engine = database.create_engine(url)
    try:
        if not has_events(engine):
            return []
        query = (
            sa.select(events)
            .where(events.c.timestamp >= start, events.c.timestamp < end, events.c.type_name.in_(types))
            .order_by(events.c.sender_id, events.c.id)
        )
        with engine.connect() as db:
            return db.execute(query).all()
    finally:
        engine.dispose()


def user_message_counts(engine: sa.engine.Engine, sender_prefix: str = "") -> dict[str, int]:
    """How many visitor messages each conversation (whose id starts with the prefix) holds."""
    if not has_events(engine):
        return {}
    query = (
        sa.select(events.c.sender_id, sa.func.count())
        .where(events.c.type_name == "user", events.c.sender_id.startswith(sender_prefix, autoescape=True))
        .group_by(events.c.sender_id)
    )
    with engine.connect() as db:
        return dict(db.execute(query).all())


def count_older_than(engine: sa.engine.Engine, days: int) -> int:
    """How many conversation events are older than `days` days (what a purge would delete)."""
    if not has_events(engine):
        return 0
    cutoff = (datetime.now(timezone.utc) - timedelta(days=days)).timestamp()
    with engine.connect() as db:
        return db.execute(
            sa.select(sa.func.count()).select_from(events).where(events.c.timestamp < cutoff)
        ).scalar_one()


def purge_older_than(engine: sa.engine.Engine, days: int) -> int:
    """Delete the conversation events older than `days` days; return how many went."""
    if not has_events(engine):
        return 0
    cutoff = (datetime.now(timezone.utc) - timedelta(days=days)).timestamp()
    with engine.begin() as db:
        return db.execute(events.delete().where(events.c.timestamp < cutoff)).rowcount


def erase(engine: sa.engine.Engine, conversation_ids: Iterable[str]) -> int:
    """Delete every stored event of these conversations; return how many went."""
    ids = sorted(set(conversation_ids))
    if not ids or not has_events(engine):
        return 0
    with engine.begin() as db:
        live_chat.forget(db, ids)  # who held them and when: nothing of the conversation remains
        notifications.forget(db, ids)  # e-mails about them carrying their details
        forget_decisions(db, ids)
        return db.execute(events.delete().where(events.c.sender_id.in_(ids))).rowcount


def forget_decisions(db: sa.engine.Connection, conversation_ids: Sequence[str]) -> int:
    """Delete the inbox's decisions on words of these conversations; return how many went.

    A decision whose wording went into the training data keeps only its key and intent, as
    ERASED_DECISION, until the console has taken the example out of the data. A decision
    on a wording several visitors sent goes too: it is also this visitor's words.
    """
    if not conversation_ids or not sa.inspect(db).has_table(review_sources.name):
        return 0
    keys = sorted(
        set(
            db.execute(
                sa.select(review_sources.c.text_key).where(
                    review_sources.c.conversation_id.in_(conversation_ids)
                )
            ).scalars()
        )
    )
    if not keys:
        return 0
    db.execute(review_sources.delete().where(review_sources.c.text_key.in_(keys)))
    db.execute(
        review_decisions.update()
        .where(review_decisions.c.text_key.in_(keys), review_decisions.c.decision.in_(IN_TRAINING_DATA))
        .values(text="", decision=ERASED_DECISION)
    )
    db.execute(
        review_decisions.delete().where(
            review_decisions.c.text_key.in_(keys), review_decisions.c.decision != ERASED_DECISION
        )
    )
    return len(keys)


def event_counts(engine: sa.engine.Engine, conversation_ids: Iterable[str]) -> dict[str, int]:
    """How many events each of these conversations has stored (absent: none)."""
    ids = sorted(set(conversation_ids))
    if not ids or not has_events(engine):
        return {}
    query = (
        sa.select(events.c.sender_id, sa.func.count())
        .where(events.c.sender_id.in_(ids))
        .group_by(events.c.sender_id)
    )
    with engine.connect() as db:
        return dict(db.execute(query).all())


def mentioning(engine: sa.engine.Engine, texts: Iterable[str]) -> set[str]:
    """The conversations whose stored events contain any of `texts`, ignoring case.

    Events are stored as JSON, which writes characters beyond ASCII as escapes: an email or a
    phone number is found as typed; a name with accents may not be.
    """
    needles = sorted({text.lower() for text in texts if text})
    if not needles or not has_events(engine):
        return set()
    found = sa.or_(*(sa.func.lower(events.c.data).contains(needle, autoescape=True) for needle in needles))
    with engine.connect() as db:
        return set(db.execute(sa.select(events.c.sender_id).where(found).distinct()).scalars())


def _read(url: str, query_of: Callable[[], sa.sql.Select]) -> Sequence[sa.engine.Row]:
    """Run a query on the events table (nothing if there is no database or no conversation yet)."""
    if not database.exists(url):
        return []
    engine = database.create_engine(url)
    try:
        if not has_events(engine):
            return []
        with engine.connect() as db:
            return db.execute(query_of()).all()
    finally:
        engine.dispose()


def read_sender(url: str, sender_id: str, types: Sequence[str] = DIALOGUE) -> Sequence[sa.engine.Row]:
    """One conversation's events of these types (by default the dialogue's), oldest first."""
    return _read(
        url,
        lambda: sa.select(events)
        .where(events.c.sender_id == sender_id, events.c.type_name.in_(types))
        .order_by(events.c.id),
    )


def senders_between(
    url: str, start: float, end: float, sender: str | None = None
) -> list[tuple[str, float, float, int]]:
    """The conversations with visitor messages from `start` to before `end` (epoch seconds).

    Each as (sender id, first and last message time, number of visitor messages), newest
    first; `sender` narrows it to that one conversation.
    """
    only = [events.c.sender_id == sender] if sender is not None else []
    rows = _read(
        url,
        lambda: sa.select(
            events.c.sender_id,
            sa.func.min(events.c.timestamp),
            sa.func.max(events.c.timestamp),
            sa.func.count(),
        )
        .where(events.c.type_name == "user", events.c.timestamp >= start, events.c.timestamp < end, *only)
        .group_by(events.c.sender_id)
        .order_by(sa.func.max(events.c.timestamp).desc()),
    )
    return [(r[0], r[1], r[2], r[3]) for r in rows]


def senders(url: str) -> list[str]:
    """Every stored conversation's id (to find the one behind a handle staff use)."""
    return [r[0] for r in _read(url, lambda: sa.select(events.c.sender_id).distinct())]


def senders_with_text(url: str, text: str) -> list[str]:
    """The conversations in which the assistant said `text` (e.g. a booking reference)."""
    pattern = "%" + text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
    rows = _read(
        url,
        lambda: sa.select(events.c.sender_id)
        .where(events.c.type_name == "bot", events.c.data.like(pattern, escape="\\"))
        .distinct(),
    )
    return [r[0] for r in rows]
