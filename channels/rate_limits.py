"""How many messages a conversation, and a client address, may send per minute.

One visitor (or script) flooding a conversation would queue up behind its lock and starve
everyone else, and a script can start a new conversation for every message: so each
message counts against its conversation and against the address it came from, and is
only processed if both are under their limits. Refused messages do not count, so a visitor
who waits is served again.

The local profile counts in this process. The production profile runs several Rasa
servers (and workers) behind a load balancer, so there the counts live in Redis (the lock
store's), shared by all of them; if Redis cannot be reached, the message is let through
and the error logged (the lock store needs Redis anyway, so that turn fails visibly).
"""

from __future__ import annotations

import logging
import secrets
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Sequence
from functools import lru_cache

from common.settings import REDIS_TIMEOUT_SECONDS, Settings

logger = logging.getLogger(__name__)

WINDOW_SECONDS = 60.0
# A limit: the key counted (e.g. "address:203.0.113.7") and how many messages it may send.
Limit = tuple[str, int]


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

    def _times(self, key: str, now: float) -> deque[float]:
        times = self._recent.pop(key, None) or deque()
        while times and now - times[0] >= self.window:
            times.popleft()
        self._recent[key] = times
        if len(self._recent) > self.max_keys:
            self._recent.popitem(last=False)
        return times

    async def allow(self, limits: Sequence[Limit]) -> bool:
        """Count a message against every key if all are under their limits; whether it may go."""
        now = self.clock()
        counted = [(self._times(key, now), limit) for key, limit in limits]
        if any(len(times) >= limit for times, limit in counted):
            return False
        for times, _ in counted:
            times.append(now)
        return True


# Sliding windows in sorted sets: drop what is older than the window, refuse if any key is
# full, else add the message to every key. One script, so two servers never both take the
# last place.
_ALLOW_SCRIPT = """
local now, window = tonumber(ARGV[1]), tonumber(ARGV[2])
for i, key in ipairs(KEYS) do
  redis.call('ZREMRANGEBYSCORE', key, '-inf', now - window)
  if redis.call('ZCARD', key) >= tonumber(ARGV[3 + i]) then return 0 end
end
for i, key in ipairs(KEYS) do
  redis.call('ZADD', key, now, ARGV[3])
  redis.call('PEXPIRE', key, math.ceil(window * 1000))
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
        try:
            allowed = await self._allow(
                keys=[self.prefix + key for key, _ in limits],
                args=[now, self.window, f"{now}:{secrets.token_hex(4)}", *(limit for _, limit in limits)],
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
        (f"conversation:{conversation_id}", settings.max_messages_per_minute),
        (f"address:{address}", settings.max_messages_per_minute_per_address),
    ]
