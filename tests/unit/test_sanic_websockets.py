"""Sanic's WebSockets on this Python (servers/sanic_websockets.py).

A real Sanic server on loopback and a real WebSocket client, as the widget's socket.io uses them.
"""

from __future__ import annotations

import asyncio
import sys
import uuid

import pytest
import websockets
from sanic import Sanic
from sanic.server.websockets.frame import WebsocketFrameAssembler

from servers import sanic_websockets


async def talk_over_websocket() -> list[str]:
    """Start a Sanic app whose WebSocket greets, then echoes one message; what a client receives."""
    app = Sanic(f"ws_check_{uuid.uuid4().hex[:8]}")

    @app.websocket("/ws")
    async def greet_then_echo(request, ws) -> None:
        await ws.send("hello")
        message = await ws.recv()  # Sanic 21.12 on 3.11 unpatched: TypeError here
        await ws.send(f"you said {message}")

    server = await app.create_server(host="127.0.0.1", port=0, return_asyncio_server=True)
    await server.startup()
    port = server.server.sockets[0].getsockname()[1]
    received: list[str] = []
    try:
        async with websockets.connect(f"ws://127.0.0.1:{port}/ws", open_timeout=10) as client:
            received.append(await asyncio.wait_for(client.recv(), 10))
            try:
                await client.send("a question")
                received.append(await asyncio.wait_for(client.recv(), 10))
            except websockets.ConnectionClosed as closed:
                received.append(f"closed: {closed}")
    finally:
        server.close()
        await server.wait_closed()
    return received


def test_a_websocket_receives_after_its_first_message(monkeypatch: pytest.MonkeyPatch) -> None:
    # The class attribute comes back as it was after the test (monkeypatch restores it).
    monkeypatch.setattr(WebsocketFrameAssembler, "get", WebsocketFrameAssembler.get)
    sanic_websockets.install()
    assert asyncio.run(talk_over_websocket()) == ["hello", "you said a question"]


def test_the_patch_is_applied_exactly_where_needed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(WebsocketFrameAssembler, "get", WebsocketFrameAssembler.get)
    expected = sys.version_info >= (3, 11) and sanic_websockets.sanic_version() < (22, 12)
    assert sanic_websockets.needed() is expected
    assert sanic_websockets.install() is expected
    assert sanic_websockets.install(force=True) is True
    assert sanic_websockets.install() is True  # once patched, stays patched (not wrapped twice)
    patched = WebsocketFrameAssembler.get
    sanic_websockets.install(force=True)
    assert WebsocketFrameAssembler.get is patched
