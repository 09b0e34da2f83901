"""The production profile: two Rasa servers share real PostgreSQL and Redis servers.

One visitor's conversation alternates between the two servers, as it would behind a load
balancer, and must stay coherent through a booking form; the request lands in PostgreSQL.
Messages sent to both servers at once are taken in turn (Redis locks), never interleaved.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack

import pytest
import redis
import sqlalchemy as sa

from devtools.services import PostgresServer, RedisServer, production_configs
from servers.launcher import Stack
from tests.helpers import Chat, open_day

pytestmark = pytest.mark.e2e


class Cluster:
    """Two servers (A and B) sharing one PostgreSQL database and one Redis lock store."""

    def __init__(self, database_url: str, redis: RedisServer, servers: list[Chat]) -> None:
        self.database_url = database_url
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
        yield Cluster(postgres.url, lock_store, [Chat(stack.config.rasa_url) for stack in stacks])


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
            s=me,
        )
    ]
    assert texts == [text for text, _ in turns] + ["/affirm", "/affirm"]


def test_simultaneous_messages_on_both_servers_are_taken_in_turn(cluster: Cluster) -> None:
    """Both servers take one conversation's messages in turn, and none is lost.

    Without a working shared lock, both servers answer from the same old state and the
    stored conversation loses messages (stock RedisLockStore did, in about half the runs).
    """
    me = f"visitor-{uuid.uuid4().hex[:6]}"
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
            s=me,
        )
    ]
    assert kinds == ["user", "bot"] * 3 * len(questions), "every message answered before the next one is read"
    assert cluster.lock_writes() - locks_before >= 3 * len(questions), "each message took a Redis lock"
