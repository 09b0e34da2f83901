"""The Rasa server's figures and log lines: each visitor's message counted, timed and logged once.

`install()` (servers/chat.py, before Rasa starts) adds GET /metrics (common/metrics.py) to the
app Rasa builds, gives every log handler LOG_FORMAT's format (common/logs.py) once Rasa and
Sanic have set theirs, and notes each turn's outcome as Rasa's processor finishes it. The
channels (channels/guarded.py) call `turn()` around every message: it makes the message's
request id (sent on to the action server by servers/faults.py), and when the turn ends counts
it by channel and outcome, times it, and writes one log line with the outcome and duration;
never the visitor's words or the conversation id.
"""

from __future__ import annotations

import contextlib
import contextvars
import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from common import logs, metrics
from common.names import ERASE_SLOT, URGENT_REPLY
from common.settings import Settings

logger = logging.getLogger(__name__)
SERVICE = "chat"


@dataclass
class Turn:
    """One visitor's message being handled: its channel, start and (once known) outcome."""

    channel: str
    started: float
    outcome: str = ""


_turn: contextvars.ContextVar[Turn | None] = contextvars.ContextVar("turn", default=None)


@contextlib.contextmanager
def turn(channel: str) -> Iterator[Turn]:
    """Count, time and log the message handled inside (the caller marks a failure: `failed`)."""
    logs.start_request()
    current = Turn(channel, time.monotonic())
    token = _turn.set(current)
    try:
        yield current
    finally:
        _turn.reset(token)
        seconds = time.monotonic() - current.started
        outcome = metrics.outcome_label(current.outcome)
        label = metrics.channel_label(channel)
        metrics.MESSAGES.labels(channel=label, outcome=outcome).inc()
        if outcome not in (metrics.TOO_FAST, metrics.REFUSED_INPUT):
            metrics.REPLY_SECONDS.labels(channel=label).observe(seconds)
        level = logging.WARNING if outcome == metrics.FAILED else logging.INFO
        logs.log_event(
            logger,
            "Message handled.",
            level,
            channel=label,
            outcome=outcome,
            duration_ms=round(seconds * 1000),
        )


def refused(channel: str, outcome: str) -> None:
    """Count a message refused before Rasa saw it (too fast, or not valid input)."""
    metrics.MESSAGES.labels(
        channel=metrics.channel_label(channel), outcome=metrics.outcome_label(outcome)
    ).inc()


def failed(current: Turn, error: BaseException | None) -> None:
    """Mark the turn failed, and count what it needed that failed (database, action server, Redis)."""
    current.outcome = metrics.FAILED
    dependency = failed_dependency(error)
    if dependency:
        metrics.CHAT_DEPENDENCY_FAILURES.labels(dependency=dependency).inc()


def failed_dependency(error: BaseException | None) -> str | None:
    """Which dependency an exception out of a turn points to (None: none known)."""
    seen = 0
    while error is not None and seen < 10:
        name = type(error).__name__
        module = type(error).__module__
        if name == "ActionServerFailed":
            return metrics.ACTION_SERVER
        if module.startswith("redis") or name == "LockError":
            return metrics.REDIS
        if module.startswith(("sqlalchemy", "psycopg2", "sqlite3")):
            return metrics.DATABASE
        error = error.__cause__ or error.__context__
        seen += 1
    return None


def outcome_of(events: list[Any], paused: bool) -> str:
    """What the visitor was shown after their last message (a key of common/metrics.py OUTCOMES)."""
    from staff.service.transcripts import turn_outcome  # the one definition staff read outcomes by

    since = 0
    for index, event in enumerate(events):
        if type(event).__name__ == "UserUttered":
            since = index + 1
    said, actions, erased = [], [], False
    for event in events[since:]:
        kind = type(event).__name__
        if kind == "BotUttered":
            name = str((event.metadata or {}).get("utter_action") or "")
            if name:
                said.append(name)
        elif kind == "ActionExecuted" and event.action_name not in ("action_listen", None):
            actions.append(event.action_name)
        elif kind == "SlotSet" and event.key == ERASE_SLOT and event.value:
            erased = True
    if erased:
        return metrics.ERASURE
    if URGENT_REPLY in said:
        return metrics.URGENT
    if paused and not said:
        return metrics.LIVE_CHAT
    return turn_outcome(said, actions) or metrics.SILENT


def note_outcomes() -> None:
    """Wrap Rasa's prediction loop so the turn in progress learns its outcome from the tracker."""
    from rasa.core.processor import MessageProcessor

    run = MessageProcessor._run_prediction_loop
    if getattr(run, "__name__", "") == "run_and_note_outcome":
        return

    async def run_and_note_outcome(
        self: Any, output_channel: Any, tracker: Any, *args: Any, **kwargs: Any
    ) -> Any:
        result = await run(self, output_channel, tracker, *args, **kwargs)
        current = _turn.get()
        if current is not None:
            try:
                current.outcome = outcome_of(list(tracker.events), tracker.is_paused())
            except Exception as error:  # a figure must never fail a visitor's turn
                logger.error("Could not read a turn's outcome: %s", type(error).__name__)
        return result

    MessageProcessor._run_prediction_loop = run_and_note_outcome  # type: ignore[method-assign]


def served_model(app: Any) -> tuple[str, float] | None:
    """The id of the model `app`'s agent answers with and when it was trained (None: none yet)."""
    agent = getattr(app.ctx, "agent", None)
    processor = getattr(agent, "processor", None)
    metadata = getattr(processor, "model_metadata", None)
    if metadata is None:
        return None
    return str(metadata.model_id), metadata.trained_at.timestamp()


def install(settings: Settings) -> None:
    """Add /metrics, the log format and the turns' outcomes to the Rasa server built in this process."""
    import rasa.core.run

    import staff.service.transcripts  # noqa: F401 (outcome_of's: imported now, not on the first message)

    note_outcomes()
    configure_app = rasa.core.run.configure_app

    def configure_app_with_metrics(*args: Any, **kwargs: Any) -> Any:
        app = configure_app(*args, **kwargs)
        metrics.sanic_route(app, settings, metrics.CHAT)
        metrics.watch_served_model(lambda: served_model(app))
        logs.configure(SERVICE, settings.log_format)

        async def log_format(*_: Any) -> None:  # Rasa and Sanic may add handlers while starting
            logs.configure(SERVICE, settings.log_format)

        app.register_listener(log_format, "before_server_start")
        app.register_listener(log_format, "after_server_start")
        return app

    rasa.core.run.configure_app = configure_app_with_metrics
