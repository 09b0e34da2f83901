"""The production profile's socket.io client manager (Redis) delivers a server's first emits.

python-socketio publishes every emit to Redis, even to a visitor on the same server, and starts
listening (SUBSCRIBE) in a background task at the server's first connection, so the first
visitor's session confirmation could be published before anyone listened, and Redis drops it:
the widget then waits for a conversation that never comes (test_production's live chat test
failed so on a busy machine). Here a real socket.io server on loopback, with the product's
manager and a real Redis, emits to each visitor the moment they connect, the first visitor of a
newly started server included.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest
import socketio
from aiohttp import web

from channels.live import redis_manager
from common.settings import Settings
from devtools.services import RedisServer
from servers.launcher import free_port

pytestmark = pytest.mark.e2e
SECRET = "a-secret-long-enough-for-the-settings-0123"
SERVERS = 5  # newly started servers, each emitting to its first visitor at once


@pytest.fixture(scope="module")
def redis_server() -> Iterator[RedisServer]:
    with RedisServer() as server:
        yield server


def production(redis_server: RedisServer) -> Settings:
    """The settings of a production Rasa server using this Redis."""
    return Settings.from_env(
        {
            "CLINIC_PROFILE": "production",
            "DATABASE_URL": "postgresql://u:p@db:5432/clinic",
            "ACTION_SERVER_TOKEN": SECRET,
            "CONVERSATION_SECRET": SECRET,
            "MODEL_SERVER_TOKEN": SECRET,
            **redis_server.environment(),
        }
    )


async def first_emit_arrives(config: Settings) -> bool:
    """Start a socket.io server with the product's manager; whether its first visitor hears it."""
    sio = socketio.AsyncServer(async_mode="aiohttp", client_manager=redis_manager(config))

    @sio.on("connect")
    async def connect(sid: str, environ: dict) -> None:
        await sio.emit("welcome", {"to": sid}, room=sid)  # as the session confirmation is sent

    app = web.Application()
    sio.attach(app)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port, shutdown_timeout=0.5).start()  # no 25 s long poll
    client = socketio.AsyncClient()
    heard = asyncio.get_running_loop().create_future()
    client.on("welcome", lambda data: heard.done() or heard.set_result(data))
    try:
        await client.connect(f"http://127.0.0.1:{port}", transports=["polling"])
        await asyncio.wait_for(heard, 10)
        return True
    except asyncio.TimeoutError:
        return False
    finally:
        await client.disconnect()
        await runner.cleanup()


def test_a_new_servers_first_visitor_gets_its_first_message(redis_server: RedisServer) -> None:
    config = production(redis_server)
    heard = [asyncio.run(first_emit_arrives(config)) for _ in range(SERVERS)]
    assert heard == [True] * SERVERS


class RecordingServer(socketio.AsyncServer):
    """python-socketio's server, recording the events it sends instead of writing to a transport.

    The one stand-in of this module: which events reach a visitor's transport, seen at the moment
    the server's manager starts, which a real visitor's timing cannot hold still.
    """

    def __init__(self, **kwargs: object) -> None:
        super().__init__(**kwargs)
        self.sent: list[str] = []

    async def _send_eio_packet(self, eio_sid: str, eio_pkt: object) -> None:
        self.sent.append(str(getattr(eio_pkt, "data", "")))


async def emitted_at_start(config: Settings) -> list[str]:
    """What a visitor gets of an emit sent as the manager starts (as on a first connection)."""
    sio = RecordingServer(async_mode="aiohttp", client_manager=redis_manager(config))
    sio.manager_initialized = True  # what the first connection does, then its handlers run
    sio.manager.initialize()
    sid = sio.manager.connect("eio-1", "/")
    await sio.emit("session_confirm", {"session_id": "c-1"}, room=sid)
    await until_sent(sio, 1)
    return sio.sent


async def until_sent(sio: RecordingServer, count: int) -> None:
    """Wait (5 s at most) until the server has sent `count` events."""
    for _ in range(50):
        if len(sio.sent) >= count:
            return
        await asyncio.sleep(0.1)


def test_an_emit_at_the_moment_the_server_starts_listening_is_delivered(redis_server: RedisServer) -> None:
    sent = asyncio.run(emitted_at_start(production(redis_server)))
    assert len(sent) == 1 and "session_confirm" in sent[0] and "c-1" in sent[0]


async def emitted_before_any_visitor(config: Settings) -> list[str]:
    """A server no visitor has connected to yet (B) emits to a visitor on server A (staff's steps)."""
    a = RecordingServer(async_mode="aiohttp", client_manager=redis_manager(config))
    b = RecordingServer(async_mode="aiohttp", client_manager=redis_manager(config))
    a.manager_initialized = True
    a.manager.initialize()
    sid = a.manager.connect("eio-a", "/")
    await a.emit("session_confirm", {"session_id": "c-a"}, room=sid)  # A listens from here on
    await until_sent(a, 1)
    await asyncio.wait_for(b.emit("bot_uttered", {"text": "Nina has joined"}, room=sid), 2)
    await until_sent(a, 2)
    return [*a.sent[1:], f"B kept {len(b.sent)}"]


def test_a_server_with_no_visitor_yet_emits_at_once_to_a_visitor_elsewhere(redis_server: RedisServer) -> None:
    sent = asyncio.run(emitted_before_any_visitor(production(redis_server)))
    assert len(sent) == 2 and "Nina has joined" in sent[0] and sent[1] == "B kept 0"
