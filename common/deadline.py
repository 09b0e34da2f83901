"""The moment the Rasa server stops waiting for an action, and the action server's duty to honour it.

The Rasa server gives every call to the action server ACTION_SERVER_TIMEOUT_SECONDS
(servers/faults.py); after that the turn fails and the visitor is told it could not be
finished. An action that stored a request after that moment would send what the visitor
was told was not sent. A paused action server (SIGSTOP, a stalled VM) reads the request
only once it runs again, so a deadline it measured from receiving the request would be
useless: the Rasa server therefore sends the absolute moment it gives up, in the
DEADLINE_HEADER of each call, and the action server

* refuses a call that arrives too late to answer in time (servers/actions.py), and
* commits a request only if, inside the transaction, the deadline is still
  COMMIT_MARGIN_SECONDS away (`check`, called by common/records/bookings.py), so the reply
  has time to reach the Rasa server before it gives up.

A call that is too late fails with DeadlinePassed (HTTP 503 to the Rasa server), which the
Rasa server treats like any other failed action: nothing of the turn is saved, and the
visitor's "yes" sent again after recovery stores and sends the request once.

Clock: both processes read the wall clock (time.time(), CLOCK_REALTIME). Processes on one
host, and containers on one host, read the very same kernel clock, so the deadline is exact
there. Servers on different hosts need synchronised clocks (NTP, as any server has): a skew
counts against the margin (action server's clock behind the Rasa server's: it may commit up
to that much too late; ahead: it refuses requests that would have made it). Keep the skew
well under COMMIT_MARGIN_SECONDS.
"""

from __future__ import annotations

import contextvars
import math
import time
from collections.abc import Callable

from common.settings import COMMIT_MARGIN_SECONDS

# The HTTP header of each action call: when the Rasa server stops waiting (Unix time, seconds).
DEADLINE_HEADER = "X-Action-Deadline"

# The deadline of the action call being run (one call = one request task on the action server).
_deadline: contextvars.ContextVar[float | None] = contextvars.ContextVar("action_deadline", default=None)


class DeadlinePassed(RuntimeError):
    """The Rasa server has given up (or will before an answer reaches it): commit nothing."""


def header(timeout: float, clock: Callable[[], float] = time.time) -> dict[str, str]:
    """The header for a call the Rasa server waits `timeout` seconds for, starting now."""
    return {DEADLINE_HEADER: f"{clock() + timeout:.3f}"}


def parse(value: str | None) -> float | None:
    """The deadline in a header value (None if absent or not a finite number)."""
    if value is None:
        return None
    try:
        moment = float(value)
    except ValueError:
        return None
    return moment if math.isfinite(moment) else None


def set_current(moment: float | None) -> contextvars.Token:
    """Make `moment` the deadline of the call being run (servers/actions.py, per request)."""
    return _deadline.set(moment)


def current() -> float | None:
    """The deadline of the call being run (None: no Rasa server is waiting on one, e.g. a test)."""
    return _deadline.get()


def too_late(
    margin: float = COMMIT_MARGIN_SECONDS,
    moment: float | None = None,
    clock: Callable[[], float] = time.time,
) -> bool:
    """Whether less than `margin` seconds are left before the deadline (`moment`, or the current one)."""
    deadline = current() if moment is None else moment
    return deadline is not None and clock() > deadline - margin


def check(margin: float = COMMIT_MARGIN_SECONDS) -> None:
    """Raise DeadlinePassed if the current call's answer could no longer reach the Rasa server in time."""
    if too_late(margin):
        raise DeadlinePassed("the Rasa server stops waiting for this action before it could answer")
