"""How many messages a conversation, and a client address, may send per minute (and more limits).

One visitor (or script) flooding a conversation would queue up behind its lock and starve
everyone else, and a script can start a new conversation for every message: so each
message counts against its conversation and against the address it came from, and is
only processed if both are under their limits. Refused messages do not count, so a visitor
who waits is served again.

The local profile counts in this process. The production profile runs several Rasa
servers (and workers) behind a load balancer, so there the counts live in Redis (the lock
store's), shared by all of them; if Redis cannot be reached, the message is let through
and the error logged (the lock store needs Redis anyway, so that turn fails visibly).

Each limit has its own window: the live chat requests of one client address are counted per
hour and per day with the same limiters (`live_chat_limits`, used by the action server, which
counts in the same Redis in the production profile).
"""

from __future__ import annotations

import logging
import secrets
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Sequence
from functools import lru_cache
from typing import NamedTuple

from common.settings import REDIS_TIMEOUT_SECONDS, Settings

logger = logging.getLogger(__name__)

WINDOW_SECONDS = 60.0
HOUR_SECONDS = 3600.0
DAY_SECONDS = 86_400.0


class Limit(NamedTuple):
    """The key counted (e.g. "address:203.0.113.7"), how many it may send, and in how many seconds."""

    key: str
    limit: int
    window: float = WINDOW_SECONDS


def as_limits(limits: Sequence[tuple[str, int] | tuple[str, int, float]]) -> list[Limit]:
    """Limits given as Limit or as plain (key, limit[, window]) tuples."""
    return [Limit(*limit) for limit in limits]


class LocalRateLimiter:
    """At most `limit` messages per key in any `window` seconds, counted in this process.

    At most `max_keys` keys are remembered (the least recently used are forgotten).
    """

    def __init__(
        self,
        window: float = WINDOW_SECONDS,
        max_keys: int = 20_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.window, self.max_keys, self.clock = window, max_keys, clock
        self._recent: OrderedDict[str, deque[float]] = OrderedDict()

    def _times(self, key: str, now: float, window: float) -> deque[float]:
        times = self._recent.pop(key, None) or deque()
        while times and now - times[0] >= window:
            times.popleft()
        self._recent[key] = times
        if len(self._recent) > self.max_keys:
            self._recent.popitem(last=False)
        return times

    async def allow(self, limits: Sequence[Limit]) -> bool:
        """Count a message against every key if all are under their limits; whether it may go."""
        now = self.clock()
        counted = [
            (self._times(key, now, self.window if window == WINDOW_SECONDS else window), limit)
            for key, limit, window in as_limits(limits)
        ]
        if any(len(times) >= limit for times, limit in counted):
            return False
        for times, _ in counted:
            times.append(now)
        return True


# Sliding windows in sorted sets: drop what is older than the window, refuse if any key is
# full, else add the message to every key. One script, so two servers never both take the
# last place.
# ARGV: now, a unique member, then each key's limit and window (seconds).
_ALLOW_SCRIPT = """
local now = tonumber(ARGV[1])
for i, key in ipairs(KEYS) do
  redis.call('ZREMRANGEBYSCORE', key, '-inf', now - tonumber(ARGV[2 + 2 * i]))
  if redis.call('ZCARD', key) >= tonumber(ARGV[1 + 2 * i]) then return 0 end
end
for i, key in ipairs(KEYS) do
  redis.call('ZADD', key, now, ARGV[2])
  redis.call('PEXPIRE', key, math.ceil(tonumber(ARGV[2 + 2 * i]) * 1000))
end
return 1
"""


class RedisRateLimiter:
    """The same limits, counted in Redis for every server that shares it."""

    def __init__(
        self, settings: Settings, prefix: str = "scarfaq:rate:", window: float = WINDOW_SECONDS
    ) -> None:
        import redis.asyncio

        self.redis = redis.asyncio.Redis(
            host=settings.redis_host,
            port=settings.redis_port,
            password=settings.redis_password or None,
            db=settings.redis_db,
            socket_timeout=REDIS_TIMEOUT_SECONDS,
            socket_connect_timeout=REDIS_TIMEOUT_SECONDS,
        )
        self.prefix, self.window = prefix, window
        self._allow = self.redis.register_script(_ALLOW_SCRIPT)

    async def allow(self, limits: Sequence[Limit]) -> bool:
        """Count a message against every key if all are under their limits; whether it may go."""
        now = time.time()
        checked = [
            Limit(key, limit, self.window if window == WINDOW_SECONDS else window)
            for key, limit, window in as_limits(limits)
        ]
        try:
            allowed = await self._allow(
                keys=[self.prefix + limit.key for limit in checked],
                args=[
                    now,
                    f"{now}:{secrets.token_hex(4)}",
                    *(value for limit in checked for value in (limit.limit, limit.window)),
                ],
            )
        except Exception as error:  # Redis is down: the lock store fails the turn visibly
            logger.error("Could not count a message in Redis: %s", type(error).__name__)
            return True
        return bool(allowed)


RateLimiter = LocalRateLimiter | RedisRateLimiter


@lru_cache(maxsize=1)
def rate_limiter(settings: Settings) -> RateLimiter:
    """The limiter both chat channels of this process share (Redis in the production profile)."""
    if settings.profile == "production" and settings.redis_host:
        return RedisRateLimiter(settings)
    return LocalRateLimiter()


def message_limits(settings: Settings, conversation_id: str, address: str) -> list[Limit]:
    """The limits one message counts against: its conversation's and its address's."""
    return [
        Limit(f"conversation:{conversation_id}", settings.max_messages_per_minute),
        Limit(f"address:{address}", settings.max_messages_per_minute_per_address),
    ]


def live_chat_limits(settings: Settings, visitor_key: str) -> list[Limit]:
    """The limits one live chat request counts against: its address's, per hour and per day.

    `visitor_key` is the keyed hash of the address the channels pass (common.names.VISITOR_KEY).
    """
    return [
        Limit(
            f"live-chat-hour:{visitor_key}", settings.live_chat_requests_per_address_per_hour, HOUR_SECONDS
        ),
        Limit(f"live-chat-day:{visitor_key}", settings.live_chat_requests_per_address_per_day, DAY_SECONDS),
    ]
