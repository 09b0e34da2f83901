"""Keep Sanic 21.12's WebSockets working on Python 3.11 (the socket.io transport of the chat widget).

Sanic 21.12.2 (pinned by Rasa 3.6) receives a WebSocket message in
`sanic.server.websockets.impl.WebsocketImplProtocol.recv` (and `recv_burst`) with
`asyncio.wait((self.recv_cancel, self.assembler.get(timeout)), ...)`: the second item is a bare
coroutine. Python 3.10's `asyncio.wait` wrapped coroutines in tasks itself (with a deprecation
warning); 3.11 raises `TypeError: Passing coroutines is forbidden, use tasks explicitly`. The
error ends the socket.io WebSocket after the server's first message, so a widget that upgrades
to WebSocket never gets its greeting (socket.io's long-polling, which the Python test client
uses, never calls `recv` and does not show it).

`install` makes `WebsocketFrameAssembler.get` return a task running the original coroutine,
which is what 3.10's `asyncio.wait` did with it: awaiting the task gives the same result, and
cancelling it cancels the read. It changes nothing before Python 3.11 or from Sanic 22.12 (the
first release that supports 3.11), and is applied once, in the Rasa server's process
(servers/chat.py), before Rasa starts; site-packages are never edited, so a fresh install gets it.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable, Coroutine
from typing import Any

import sanic
from sanic.server.websockets.frame import WebsocketFrameAssembler

FIXED_IN_SANIC = (22, 12)  # the first Sanic release that supports Python 3.11
_PATCHED = "_clinic_wraps_get_in_task"


def sanic_version() -> tuple[int, ...]:
    """The installed Sanic's version as numbers (e.g. (21, 12, 2))."""
    return tuple(int(part) for part in sanic.__version__.split(".")[:3] if part.isdigit())


def needed() -> bool:
    """Whether this Python and this Sanic need the patch (3.11 or later with Sanic before 22.12)."""
    return sys.version_info >= (3, 11) and sanic_version() < FIXED_IN_SANIC


def _task_returning(
    get: Callable[..., Coroutine[Any, Any, Any]],
) -> Callable[..., asyncio.Task[Any]]:
    """`get` made to return a task (running its coroutine) instead of the bare coroutine."""

    def get_as_task(self: WebsocketFrameAssembler, *args: Any, **kwargs: Any) -> asyncio.Task[Any]:
        """The original `WebsocketFrameAssembler.get`, scheduled as a task."""
        return asyncio.ensure_future(get(self, *args, **kwargs))

    setattr(get_as_task, _PATCHED, True)
    get_as_task.__doc__ = get.__doc__
    return get_as_task


def install(force: bool = False) -> bool:
    """Patch Sanic's WebSocket frame assembler if this Python needs it; True if it is now patched.

    `force` applies it regardless of the versions (for the tests; harmless on 3.10, where
    `asyncio.wait` would wrap the coroutine the same way).
    """
    if getattr(WebsocketFrameAssembler.get, _PATCHED, False):
        return True
    if not (force or needed()):
        return False
    WebsocketFrameAssembler.get = _task_returning(WebsocketFrameAssembler.get)  # type: ignore[method-assign]
    return True
