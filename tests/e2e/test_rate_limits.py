"""The flood limits of the production profile, counted in a real Redis shared by several servers."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest

from channels.rate_limits import RedisRateLimiter, live_chat_limits, message_limits
from common.settings import Settings
from devtools.services import RedisServer

pytestmark = pytest.mark.e2e
SECRET = "a-secret-long-enough-for-the-settings-0123"


@pytest.fixture(scope="module")
def redis_server() -> Iterator[RedisServer]:
    with RedisServer() as server:
        yield server


def settings(redis_server: RedisServer, **extra: str) -> Settings:
    """The production settings a Rasa server with this Redis reads."""
    env = {
        "CLINIC_PROFILE": "production",
        "DATABASE_URL": "postgresql://u:p@db:5432/clinic",
        "ACTION_SERVER_TOKEN": SECRET,
        "CONVERSATION_SECRET": SECRET,
        "MODEL_SERVER_TOKEN": SECRET,
        **redis_server.environment(),
        **extra,
    }
    return Settings.from_env(env)


async def flood(
    limiters: list[RedisRateLimiter], config: Settings, messages: int, address: str
) -> list[bool]:
    """`messages` messages of one conversation at once, spread over the servers' limiters."""
    limits = message_limits(config, "conversation-1", address)
    return await asyncio.gather(*(limiters[n % len(limiters)].allow(limits) for n in range(messages)))


def test_two_servers_share_one_limit(redis_server: RedisServer) -> None:
    config = settings(redis_server, MAX_MESSAGES_PER_MINUTE="30")
    allowed = asyncio.run(
        flood([RedisRateLimiter(config), RedisRateLimiter(config)], config, 50, "203.0.113.1")
    )
    assert allowed.count(True) == 30


def test_an_address_is_limited_across_conversations(redis_server: RedisServer) -> None:
    config = settings(redis_server, MAX_MESSAGES_PER_MINUTE_PER_ADDRESS="10")
    limiter = RedisRateLimiter(config, prefix="scarfaq:rate-address-test:")

    async def many() -> list[bool]:
        return [await limiter.allow(message_limits(config, f"c-{n}", "203.0.113.2")) for n in range(15)]

    assert asyncio.run(many()).count(True) == 10


def test_without_redis_messages_pass_and_the_error_is_logged(redis_server: RedisServer, caplog) -> None:
    config = settings(redis_server, REDIS_PORT="1")
    assert asyncio.run(RedisRateLimiter(config).allow([("conversation:x", 1)]))
    assert "Could not count a message in Redis" in caplog.text


def test_live_chat_requests_of_one_address_are_limited_across_servers(redis_server: RedisServer) -> None:
    config = settings(redis_server, LIVE_CHAT_REQUESTS_PER_ADDRESS_PER_HOUR="3")
    servers = [RedisRateLimiter(config, prefix="scarfaq:live-test:") for _ in range(2)]

    async def many() -> tuple[list[bool], int]:
        limits = live_chat_limits(config, "visitor-key-1")
        allowed = await asyncio.gather(*(servers[n % 2].allow(limits) for n in range(10)))
        return list(allowed), await servers[0].redis.pttl("scarfaq:live-test:live-chat-day:visitor-key-1")

    allowed, ttl = asyncio.run(many())
    assert allowed.count(True) == 3
    assert 86_000_000 < ttl <= 86_400_000  # the day's count lasts a day, not the minute of messages
