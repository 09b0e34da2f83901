"""The production profile: two Rasa servers share real PostgreSQL and Redis servers.

One visitor's conversation alternates between the two servers, as it would behind a load
balancer, and must stay coherent through a booking form (the id server A issues is valid on
B); the request lands in PostgreSQL. Messages sent to both servers at once are taken in turn
(Redis locks), never interleaved. The flood limit is counted once for both servers (Redis);
erasure, by the visitor and by staff, is checked in PostgreSQL; and while PostgreSQL is down
both servers say so (503 and an apology with the phone number) and recover when it is back.
The stack is shared with test_publish.py's production test (tests/e2e/production_site.py).
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import time
import urllib.error
import urllib.request
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import redis
import socketio
import sqlalchemy as sa

from common import settings
from common.records import live_chat
from devtools.services import PostgresServer, RedisServer
from servers.launcher import Stack
from tests.e2e.production_site import Production
from tests.helpers import Chat, json_log_lines, open_day, read_metrics

pytestmark = pytest.mark.e2e


class Cluster:
    """Two servers (A and B) sharing one PostgreSQL database and one Redis lock store."""

    def __init__(
        self, postgres: PostgresServer, redis: RedisServer, servers: list[Chat], stacks: list[Stack]
    ) -> None:
        self.postgres = postgres
        self.database_url = postgres.url
        self.clinic_hours = ""  # the opening hours the servers state (their own clinic.yml)
        self.redis = redis
        self.servers = servers
        self.stacks = stacks
        self.log_path: Path | None = None  # both servers' log (LOG_FORMAT=json: the production default)

    def lock_writes(self) -> int:
        """How many SET commands Redis has served: Rasa's lock store writes one per lock taken."""
        client = redis.Redis(host="127.0.0.1", port=self.redis.port, password=self.redis.password)
        return int(client.info("commandstats").get("cmdstat_set", {}).get("calls", 0))

    def query(self, sql: str, **params: object) -> list[tuple]:
        """Run one SQL query on the cluster's database; return its rows."""
        with sa.create_engine(self.database_url).connect() as db:
            return [tuple(row) for row in db.execute(sa.text(sql), params)]


@pytest.fixture(scope="module")
def cluster(production: Production) -> Cluster:
    """The production profile's stack this test run shares (tests/e2e/production_site.py)."""
    cluster = Cluster(production.postgres, production.redis, production.chats, production.stacks)
    cluster.log_path = production.log_path
    cluster.clinic_hours = production.clinic_hours  # what these servers state
    return cluster


def test_a_booking_alternating_between_two_servers_stays_coherent(cluster: Cluster, expected) -> None:
    me, day = f"booker-{uuid.uuid4().hex[:6]}", open_day()
    turns = [
        ("what is PIH", [expected("utter_faq/what_is_pih")]),
        (
            "I'd like to book a consultation",
            [expected("utter_booking_intro"), expected("utter_ask_booking_name")],
        ),
        ("Jordan Alternating", [expected("utter_ask_booking_contact")]),
        ("jordan.test@example.com", [expected("utter_ask_booking_date", contact_promise="email you")]),
        (f"{day.day} {day:%B}", [expected("utter_ask_booking_time")]),
        ("what is a scar", [expected("utter_faq/what_is_scar"), expected("utter_ask_booking_time")]),
        ("morning", [expected("utter_ask_booking_scar")]),
        ("skip", [expected("utter_ask_booking_consent")]),
    ]
    for turn, (text, answers) in enumerate(turns):
        assert (
            cluster.servers[turn % 2].texts(me, text) == answers
        ), f"turn {turn + 1} on server {'AB'[turn % 2]}"
    [summary] = cluster.servers[0].texts(me, "/affirm")
    assert "Jordan Alternating" in summary and f"{day.day} {day:%B %Y}" in summary
    [saved] = cluster.servers[1].texts(me, "/affirm")
    reference = saved.split("Your reference is ")[1][:11]
    assert cluster.query(
        "SELECT name, contact, time_of_day, preferred_date FROM booking_requests " "WHERE reference = :r",
        r=reference,
    ) == [("Jordan Alternating", "jordan.test@example.com", "morning", day)]
    texts = [
        text
        for (text,) in cluster.query(
            "SELECT data::json->>'text' FROM events WHERE sender_id = :s AND type_name = 'user' ORDER BY id",
            s=Chat.conversation_id(me),
        )
    ]
    assert texts == [text for text, _ in turns] + ["/affirm", "/affirm"]


def test_simultaneous_messages_on_both_servers_are_taken_in_turn(cluster: Cluster) -> None:
    """Both servers take one conversation's messages in turn, and none is lost.

    Without a working shared lock, both servers answer from the same old state and the
    stored conversation loses messages (stock RedisLockStore did, in about half the runs).
    """
    me = f"visitor-{uuid.uuid4().hex[:6]}"
    cluster.servers[0].texts(me, "hello")  # the conversation's id, issued by server A
    questions = ["what is PIH", "what is a scar", "who is scar relaxation for", "what are the benefits"] * 2
    locks_before = cluster.lock_writes()
    for _ in range(3):
        with ThreadPoolExecutor(len(questions)) as pool:
            replies = list(
                pool.map(lambda i: cluster.servers[i % 2].texts(me, questions[i]), range(len(questions)))
            )
        assert all(len(reply) == 1 for reply in replies), replies
    kinds = [
        kind
        for (kind,) in cluster.query(
            "SELECT type_name FROM events WHERE sender_id = :s AND type_name IN ('user', 'bot') ORDER BY id",
            s=Chat.conversation_id(me),
        )
    ]
    assert kinds == ["user", "bot"] * (
        3 * len(questions) + 1
    ), "every message answered before the next is read"
    assert cluster.lock_writes() - locks_before >= 3 * len(questions), "each message took a Redis lock"


def book(cluster: Cluster, me: str, name: str, contact: str) -> str:
    """A whole consultation request, each message to the other server; its reference."""
    day = open_day()
    answers = [
        "book a consultation",
        name,
        contact,
        f"{day.day} {day:%B}",
        "morning",
        "skip",
        "/affirm",
        "/affirm",
    ]
    for turn, text in enumerate(answers):
        replies = cluster.servers[turn % 2].texts(me, text)
    return replies[0].split("Your reference is ")[1][:11]


def test_erasure_in_postgresql_by_the_visitor_and_by_staff(
    cluster: Cluster, expected, monkeypatch, capsys
) -> None:
    from staff.commands import bookings

    me, other = f"forget-{uuid.uuid4().hex[:6]}", f"staff-{uuid.uuid4().hex[:6]}"
    reference = book(cluster, me, "Petra Postgres", "petra.pg@example.com")
    assert reference in cluster.servers[0].texts(me, "forget me")[0]
    done = cluster.servers[1].texts(me, "/affirm")
    assert reference in " ".join(done)
    count = "SELECT COUNT(*) FROM {} WHERE {} = :v"
    assert cluster.query(count.format("events", "sender_id"), v=Chat.conversation_id(me)) == [(0,)]
    assert cluster.query(count.format("booking_requests", "reference"), v=reference) == [(0,)]

    other_reference = book(cluster, other, "Stan Staff", "stan.staff@example.com")
    monkeypatch.setenv("DATABASE_URL", cluster.database_url)
    assert bookings.main(["erase", "--email", "Stan.Staff@example.com"]) == 0
    assert other_reference in capsys.readouterr().out
    assert cluster.query(count.format("events", "sender_id"), v=Chat.conversation_id(other)) == [(0,)]
    assert cluster.query(count.format("booking_requests", "reference"), v=other_reference) == [(0,)]


def test_the_flood_limit_counts_across_both_servers(cluster: Cluster) -> None:
    """One conversation sending to both servers in turn gets the limit once, not once per server."""
    me, limit = f"flood-{uuid.uuid4().hex[:6]}", settings.current().max_messages_per_minute
    statuses = [cluster.servers[turn % 2].send(me, "hi")[0] for turn in range(limit + 6)]
    assert statuses.count(200) == limit and statuses.count(429) == 6


class Widget:
    """A visitor's socket.io connection (as the widget makes it) to one Rasa server."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.client = socketio.AsyncClient()
        self.messages: asyncio.Queue = asyncio.Queue()
        self.conversation = ""

    async def open(self) -> None:
        """Connect and be given a conversation."""
        confirmed: asyncio.Future = asyncio.get_running_loop().create_future()
        self.client.on("session_confirm", lambda answer: confirmed.set_result(answer["session_id"]))
        self.client.on("bot_uttered", self.messages.put_nowait)
        await self.client.connect(self.url, socketio_path="/socket.io", transports=["polling"])
        await self.client.emit("session_request", {"session_id": None})
        self.conversation = await asyncio.wait_for(confirmed, 30)

    async def say(self, text: str) -> None:
        """Send a message (or a button's payload)."""
        await self.client.emit("user_uttered", {"message": text, "session_id": self.conversation})

    async def until(self, text: str) -> dict:
        """The first message containing `text` (messages before it are skipped)."""
        while True:
            message = await asyncio.wait_for(self.messages.get(), 30)
            if text in (message.get("text") or ""):
                return message


def staff_step(cluster: Cluster, server: int, step: str, body: dict) -> int:
    """What the console does: post a staff step, with the live chat secret, to one Rasa server."""
    stack = cluster.stacks[server]
    config = settings.Settings.from_env(stack.environment, lock_store=False, serves_chat=False)
    request = urllib.request.Request(
        f"{stack.config.rasa_url}/webhooks/socketio/live/{step}",
        data=json.dumps(body).encode(),
        method="POST",
        headers={"Content-Type": "application/json", "Authorization": f"Bearer {config.live_chat_key()}"},
    )
    with urllib.request.urlopen(request, timeout=30) as answer:
        return answer.status


def test_a_visitor_on_server_a_chats_with_staff_whose_console_posts_to_server_b(cluster: Cluster) -> None:
    """The visitor's socket is on A; staff steps go to B; B's emits reach A through Redis."""
    db = live_chat.engine(cluster.database_url)
    live_chat.set_presence(db, 9001, "nina", True)  # what the console's Live page records
    visitor = Widget(cluster.servers[0].base_url)

    async def scenario() -> list[str]:
        await visitor.open()
        await visitor.say("can I talk to someone?")
        await visitor.until("can chat with you now")
        await visitor.say("/live_chat_request")
        await visitor.until("finding someone")
        [(chat_id,)] = cluster.query(
            "SELECT id FROM live_chats WHERE conversation_id = :c AND status = 'waiting'",
            c=visitor.conversation,
        )
        staff = {"chat_id": chat_id, "staff_id": 9001, "staff_name": "Nina"}
        assert await asyncio.to_thread(staff_step, cluster, 1, "take", staff) == 200
        joined = await visitor.until("has joined")
        await visitor.say("Is it suitable after a C-section?")
        said = {**staff, "text": "Yes, once the scar has healed."}
        await asyncio.to_thread(staff_step, cluster, 1, "say", said)
        reply = await visitor.until("once the scar has healed")
        await asyncio.to_thread(staff_step, cluster, 1, "return", staff)
        back = await visitor.until("I'm back")
        await visitor.say("what is PIH")
        answer = await visitor.until("yperpigmentation")
        await visitor.client.disconnect()
        return [joined["text"], reply.get("sender_name"), back["text"], answer["text"]]

    try:
        joined, sender, back, _ = asyncio.run(scenario())
    finally:
        live_chat.set_presence(db, 9001, "nina", False)
    assert joined == "Nina from Example Skin Clinic has joined the chat."
    assert sender == "Nina" and back.startswith("Nina has left the chat")
    rows = cluster.query(
        "SELECT data::json->>'text', data::json->'metadata'->>'sender_name' FROM events "
        "WHERE sender_id = :s AND type_name IN ('user', 'bot') ORDER BY id",
        s=visitor.conversation,
    )
    assert ("Yes, once the scar has healed.", "Nina") in rows  # kept in the tracker store, with the name
    assert ("Is it suitable after a C-section?", None) in rows


def health(url: str) -> int:
    try:
        with urllib.request.urlopen(f"{url}/health", timeout=15) as response:
            return response.status
    except urllib.error.HTTPError as error:
        return error.code


def wait_for_health(cluster: Cluster, status: int, timeout: float = 30.0) -> list[int]:
    """Poll both servers' /health until both answer `status`; their last answers."""
    deadline = time.monotonic() + timeout
    while True:
        answers = [health(server.base_url) for server in cluster.servers]
        if answers == [status] * len(answers) or time.monotonic() > deadline:
            return answers
        time.sleep(0.5)


def test_a_database_outage_is_reported_and_ends_when_the_database_is_back(cluster: Cluster, expected) -> None:
    me = f"outage-{uuid.uuid4().hex[:6]}"
    assert cluster.servers[0].texts(me, "what is PIH") == [expected("utter_faq/what_is_pih")]
    _, before, _ = read_metrics(cluster.servers[1].base_url)
    cluster.postgres.halt()
    try:
        assert wait_for_health(cluster, 503) == [503, 503]
        status, answer = cluster.servers[1].send(me, "what is a scar")
        assert (status, [m.get("text") for m in answer]) == (
            503,
            [expected("utter_chat_trouble", clinic_hours=cluster.clinic_hours)],
        )
        # The clinic's monitoring sees it (issue 23): a failed reply, the database failing,
        # and a warning line in the JSON log.
        _, during, _ = read_metrics(cluster.servers[1].base_url)
        failed = ("clinic_messages_total", (("channel", "rest"), ("outcome", "failed")))
        database = ("clinic_dependency_failures_total", (("dependency", "database"),))
        assert during.get(failed, 0.0) - before.get(failed, 0.0) == 1
        assert during.get(database, 0.0) > before.get(database, 0.0)
        assert cluster.log_path is not None
        assert [
            line
            for line in json_log_lines(cluster.log_path.read_text(encoding="utf-8", errors="replace"))
            if line.get("outcome") == "failed" and line["level"] == "warning" and line["service"] == "chat"
        ]
    finally:
        cluster.postgres.resume()
    assert wait_for_health(cluster, 200) == [200, 200]
    assert cluster.servers[1].texts(me, "what is a scar") == [expected("utter_faq/what_is_scar")]
    texts = cluster.query(
        "SELECT data::json->>'text' FROM events WHERE sender_id = :s AND type_name = 'user' ORDER BY id",
        s=Chat.conversation_id(me),
    )
    assert texts == [("what is PIH",), ("what is a scar",)]


def test_with_redis_paused_the_apology_comes_within_ten_seconds_and_health_says_503(
    cluster: Cluster, expected
) -> None:
    """Issue 20, finding 8: the apology took 12 s (rate limits 2 s + Rasa's lock store 10 s)."""
    me = f"redis-{uuid.uuid4().hex[:6]}"
    assert cluster.servers[0].texts(me, "what is PIH") == [expected("utter_faq/what_is_pih")]
    assert cluster.redis.process is not None
    os.kill(cluster.redis.process.pid, signal.SIGSTOP)
    try:
        started = time.monotonic()
        status, answer = cluster.servers[0].send(me, "what is a scar")
        seconds = time.monotonic() - started
        assert (status, [m.get("text") for m in answer]) == (
            503,
            [expected("utter_chat_trouble", clinic_hours=cluster.clinic_hours)],
        )
        assert seconds < 10.0, f"the apology took {seconds:.1f} s"
        for server in cluster.servers:
            started = time.monotonic()
            assert health(server.base_url) == 503
            assert time.monotonic() - started < 2.0, "/health must answer within 2 s"
    finally:
        os.kill(cluster.redis.process.pid, signal.SIGCONT)
    assert wait_for_health(cluster, 200) == [200, 200]
    assert cluster.servers[0].texts(me, "what is a scar") == [expected("utter_faq/what_is_scar")]
