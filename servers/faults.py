"""Faults that Rasa 3.6 hides, made visible: a failed action or database fails the whole turn.

Stock Rasa waits up to 300 s for the action server; when an action fails it logs the error,
drops the action's events and carries on, so the visitor gets an empty reply (REST: 200 with
`[]`) and the conversation moves on as if the action had run ("yes, send it" then reads as
small talk). And it wraps the tracker store in a FailSafeTrackerStore that, on any database
error, switches to an empty in-memory store: replies stay normal while nothing is kept.

`install()` (called by servers/chat.py before Rasa starts) changes three things:

* every call to the action server gives up after ACTION_SERVER_TIMEOUT_SECONDS, and tells
  the action server that moment (common/deadline.py), so an action that runs late (a
  paused action server resumed) commits nothing the visitor was told was not done;
* an action that fails or times out raises ActionServerFailed out of the turn, so the
  turn is not saved at all (not half-applied) and the channel tells the visitor
  (channels/guarded.py); sent again after recovery, the same message does the same thing;
* the tracker store is used as configured, without the in-memory fallback: a database
  error fails the turn the same way.
"""

from __future__ import annotations

import asyncio
import contextvars
import copy
import logging
from typing import Any

from rasa.core.actions.action import ActionExecutionRejection, RemoteAction
from rasa.core.agent import Agent
from rasa.core.processor import MessageProcessor
from rasa.core.tracker_store import TrackerStore

from common import deadline, logs, metrics

logger = logging.getLogger(__name__)


class ActionServerFailed(RuntimeError):
    """An action could not be run (action server down, too slow, or broken): the turn fails."""


# The failure of the action server during the action being run, if any (one turn = one task).
_failure: contextvars.ContextVar[BaseException | None] = contextvars.ContextVar(
    "action_server_failure", default=None
)


def with_deadline(action: RemoteAction, timeout: float) -> RemoteAction:
    """A copy of `action` whose call carries the moment the Rasa server stops waiting for it.

    The action endpoint is shared by every call, so the header goes on a copy of it.
    """
    endpoint = copy.copy(action.action_endpoint)
    if endpoint is None:
        return action
    endpoint.headers = {**endpoint.headers, **deadline.header(timeout)}
    request_id = logs.current_request_id()  # the action server's log lines carry the message's id
    if request_id:
        endpoint.headers[logs.REQUEST_ID_HEADER] = request_id
    timed = copy.copy(action)
    timed.action_endpoint = endpoint
    return timed


def with_timeout(run: Any, timeout: float) -> Any:
    """RemoteAction.run that gives up after `timeout` seconds (and says so) and records any failure."""

    async def run_remote(self: RemoteAction, *args: Any, **kwargs: Any) -> Any:
        try:
            return await asyncio.wait_for(run(with_deadline(self, timeout), *args, **kwargs), timeout)
        except ActionExecutionRejection:  # a form rejecting an answer: not a fault
            raise
        except asyncio.TimeoutError as error:
            logger.error("The action server did not answer %s within %s s.", self.name(), timeout)
            _failure.set(error)
            metrics.ACTION_FAILURES.labels(reason="timeout").inc()
            raise
        except Exception as error:
            logger.error("The action server could not run %s: %s", self.name(), type(error).__name__)
            _failure.set(error)
            metrics.ACTION_FAILURES.labels(reason="error").inc()
            raise

    return run_remote


def failing_the_turn(run_action: Any) -> Any:
    """MessageProcessor._run_action that raises ActionServerFailed instead of carrying on."""

    async def run_action_or_fail(self: MessageProcessor, action: Any, *args: Any, **kwargs: Any) -> Any:
        token = _failure.set(None)
        try:
            result = await run_action(self, action, *args, **kwargs)
            failure = _failure.get()
        finally:
            _failure.reset(token)
        if failure is not None:
            raise ActionServerFailed(f"action {action.name()} failed") from failure
        return result

    return run_action_or_fail


def without_fallback(store: TrackerStore | None, domain: Any) -> TrackerStore:
    """Agent._create_tracker_store minus FailSafeTrackerStore: database errors reach the turn."""
    if store is None:
        raise RuntimeError("No tracker store is configured (endpoints file, tracker_store).")
    store.domain = domain
    return store


def install(action_timeout: float) -> None:
    """Apply the three changes above in this Rasa process (and the workers it forks)."""
    if getattr(RemoteAction.run, "__name__", "") != "run_remote":
        RemoteAction.run = with_timeout(RemoteAction.run, action_timeout)  # type: ignore[method-assign]
        MessageProcessor._run_action = failing_the_turn(MessageProcessor._run_action)  # type: ignore[method-assign]
    Agent._create_tracker_store = staticmethod(without_fallback)  # type: ignore[method-assign]
