"""Rasa's stored conversations (the SQL tracker store's `events` table): read, count, purge, erase.

The one module that touches that table, for the review, the bookings purge and erasure,
the tracker store's erasure on request, the load test and the tests. Rasa creates the
table when the first conversation is stored; until then every function here treats it as
empty.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta, timezone

import sqlalchemy as sa

from common import database

# The columns of Rasa 3.6's SQLTrackerStore table that the project reads.
events = sa.Table(
    "events",
    sa.MetaData(),
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("sender_id", sa.String(255)),
    sa.Column("type_name", sa.String(255)),
    sa.Column("timestamp", sa.Float),
    sa.Column("intent_name", sa.String(255)),
    sa.Column("action_name", sa.String(255)),
    sa.Column("data", sa.Text),
)
# The events that make up what was said: visitor messages, bot actions and bot messages.
DIALOGUE = ("user", "action", "bot")


def has_events(engine: sa.engine.Engine) -> bool:
    """Whether Rasa has stored any conversation in this database yet."""
    return sa.inspect(engine).has_table(events.name)


def read_dialogue(url: str, start: float, end: float) -> Sequence[sa.engine.Row]:
    """The dialogue events stored from `start` to before `end` (epoch seconds), by sender, oldest first."""
    if not database.exists(url):
        return []  # no conversation yet (and connecting would create an empty file)
    engine = database.create_engine(url)
    try:
        if not has_events(engine):
            return []
        query = (
            sa.select(events)
            .where(events.c.timestamp >= start, events.c.timestamp < end, events.c.type_name.in_(DIALOGUE))
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
        return db.execute(events.delete().where(events.c.sender_id.in_(ids))).rowcount


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
