"""The production profile: two Rasa servers share real PostgreSQL and Redis servers.

One visitor's conversation alternates between the two servers, as it would behind a load
balancer, and must stay coherent through a booking form (the id server A issues is valid on
B); the request lands in PostgreSQL. Messages sent to both servers at once are taken in turn
(Redis locks), never interleaved. The flood limit is counted once for both servers (Redis);
erasure, by the visitor and by staff, is checked in PostgreSQL; and while PostgreSQL is down
both servers say so (503 and an apology with the phone number) and recover when it is back.
"""

from __future__ import annotations

import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack

import pytest
import redis
import sqlalchemy as sa

from common import settings
from devtools.services import PostgresServer, RedisServer, production_configs
from servers.launcher import Stack
from tests.helpers import Chat, open_day

pytestmark = pytest.mark.e2e


class Cluster:
    """Two servers (A and B) sharing one PostgreSQL database and one Redis lock store."""

    def __init__(self, postgres: PostgresServer, redis: RedisServer, servers: list[Chat]) -> None:
        self.postgres = postgres
        self.database_url = postgres.url
        self.redis = redis
        self.servers = servers

    def lock_writes(self) -> int:
        """How many SET commands Redis has served: Rasa's lock store writes one per lock taken."""
        client = redis.Redis(host="127.0.0.1", port=self.redis.port, password=self.redis.password)
        return int(client.info("commandstats").get("cmdstat_set", {}).get("calls", 0))

    def query(self, sql: str, **params: object) -> list[tuple]:
        """Run one SQL query on the cluster's database; return its rows."""
        with sa.create_engine(self.database_url).connect() as db:
            return [tuple(row) for row in db.execute(sa.text(sql), params)]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    tmp = tmp_path_factory.mktemp("production")
    log_path = tmp / "servers.log"
    with ExitStack() as running, log_path.open("w") as log:
        postgres = running.enter_context(PostgresServer())
        lock_store = running.enter_context(RedisServer())
        stacks = [
            running.enter_context(Stack(config, log))
            for config in production_configs(postgres, lock_store, 2)
        ]
        yield Cluster(postgres, lock_store, [Chat(stack.config.rasa_url) for stack in stacks])


def test_a_booking_alternating_between_two_servers_stays_coherent(cluster: Cluster, expected) -> None:
    me, day = f"booker-{uuid.uuid4().hex[:6]}", open_day()
    turns = [
        ("what is PIH", [expected("utter_faq/what_is_pih")]),
        (
            "I'd like to book a consultation",
            [expected("utter_booking_intro"), expected("utter_ask_booking_name")],
        ),
        ("Jordan Alternating", [expected("utter_ask_booking_contact")]),
        ("jordan.test@example.com", [expected("utter_ask_booking_date")]),
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
    from staff import bookings

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
    cluster.postgres.halt()
    try:
        assert wait_for_health(cluster, 503) == [503, 503]
        status, answer = cluster.servers[1].send(me, "what is a scar")
        assert (status, [m.get("text") for m in answer]) == (503, [expected("utter_chat_trouble")])
    finally:
        cluster.postgres.resume()
    assert wait_for_health(cluster, 200) == [200, 200]
    assert cluster.servers[1].texts(me, "what is a scar") == [expected("utter_faq/what_is_scar")]
    texts = cluster.query(
        "SELECT data::json->>'text' FROM events WHERE sender_id = :s AND type_name = 'user' ORDER BY id",
        s=Chat.conversation_id(me),
    )
    assert texts == [("what is PIH",), ("what is a scar",)]
