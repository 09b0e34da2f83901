"""The Redis lock store shared by several Rasa servers, against a real Redis server."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest
from rasa.utils.endpoints import EndpointConfig

from devtools.services import RedisServer
from servers.lock_store import SerialRedisLockStore

SERVERS, TICKETS_EACH = 2, 25


@pytest.fixture(scope="module")
def redis_server() -> Iterator[RedisServer]:
    with RedisServer() as server:
        yield server


def stores(server: RedisServer) -> list[SerialRedisLockStore]:
    """One lock store per simulated Rasa server, configured as endpoints.production.yml does."""
    env = server.environment()
    config = EndpointConfig(
        url=env["REDIS_HOST"],
        port=env["REDIS_PORT"],
        password=env["REDIS_PASSWORD"],
        db=env["REDIS_DB"],
        key_prefix="scarfaq",
    )
    return [SerialRedisLockStore(config) for _ in range(SERVERS)]


def test_tickets_taken_at_once_by_several_servers_are_all_kept(redis_server: RedisServer) -> None:
    """Every message that arrives gets its own place in the queue, whichever server it reached."""
    servers, start = stores(redis_server), threading.Barrier(SERVERS * TICKETS_EACH)
    issued: list[int] = []

    def take_ticket(store: SerialRedisLockStore) -> None:
        start.wait()
        issued.append(store.issue_ticket("visitor-1"))

    threads = [
        threading.Thread(target=take_ticket, args=(store,)) for store in servers for _ in range(TICKETS_EACH)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    lock = servers[0].get_lock("visitor-1")
    assert sorted(issued) == list(range(SERVERS * TICKETS_EACH))
    assert sorted(ticket.number for ticket in lock.tickets) == sorted(issued)


def test_a_served_ticket_is_removed_and_the_next_in_line_is_served(redis_server: RedisServer) -> None:
    first, second = stores(redis_server)
    a, b = first.issue_ticket("visitor-2"), second.issue_ticket("visitor-2")
    assert first.get_lock("visitor-2").is_locked(b) and not first.get_lock("visitor-2").is_locked(a)
    first.cleanup("visitor-2", a)
    assert not second.get_lock("visitor-2").is_locked(b)
    second.cleanup("visitor-2", b)
    assert second.get_lock("visitor-2") is None
