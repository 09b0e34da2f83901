"""Rasa's SQL tracker store, plus erasure on request and reconnection after a database outage.

Erasure cannot happen inside the action that confirms it: Rasa saves a turn's events only
at its end, and SQLTrackerStore.save appends the events beyond the count already stored,
so after a mid-turn delete it would write the whole conversation back. The erase action
(actions/erasure.py) instead sets the slot ERASE_SLOT; when a turn that set it is saved,
this store deletes every stored event of the conversation and writes none of the turn's,
so nothing of it remains (the reply saying so is only sent once that succeeded).
"""

from __future__ import annotations

import logging
from typing import Any

import sqlalchemy as sa
from rasa.core.tracker_store import SQLTrackerStore, create_engine_kwargs
from rasa.shared.core.trackers import DialogueStateTracker

from common.names import ERASE_SLOT
from common.records import conversations

# libpq's wait for a connection (its default is for ever: SYNs to an unreachable host are
# retried for about 2 minutes), so the visitor hears back within 10 s.
DATABASE_CONNECT_TIMEOUT_SECONDS = 2

logger = logging.getLogger(__name__)


class ClinicTrackerStore(SQLTrackerStore):
    """SQLTrackerStore (`type:` in the endpoints files) that erases conversations on request."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # After a database restart, pooled connections are dead: test each before use, so the
        # first turn after an outage is served instead of failing once more.
        url = self.engine.url
        self.engine.dispose()
        options = create_engine_kwargs(url)
        if url.get_backend_name() == "postgresql":  # an unreachable server fails the turn in time
            connect_args = options.setdefault("connect_args", {})
            connect_args.setdefault("connect_timeout", DATABASE_CONNECT_TIMEOUT_SECONDS)
        self.engine = sa.create_engine(url, pool_pre_ping=True, **options)
        self.sessionmaker = sa.orm.session.sessionmaker(bind=self.engine)

    async def save(self, tracker: DialogueStateTracker) -> None:
        """Store the turn's events, or erase the whole conversation if the turn asked for it."""
        if tracker.get_slot(ERASE_SLOT) is True:
            erased = conversations.erase(self.engine, [tracker.sender_id])
            logger.info("A conversation was erased on its visitor's request (%d events).", erased)
            return
        await super().save(tracker)
