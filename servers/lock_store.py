"""Rasa's Redis lock store, made safe for several Rasa servers sharing one conversation.

Stock RedisLockStore (Rasa 3.6) reads a conversation's ticket lock, changes it and writes it
back. Two servers doing that at the same moment overwrite each other's ticket, and both then
answer the same conversation at once from the same state: messages are lost from the stored
conversation (RasaHQ/rasa#9213; the fix, #11256, was reverted from Rasa Open Source). Here
each of those read-modify-write steps holds a short per-conversation Redis mutex.

Every Redis command gives up after REDIS_TIMEOUT_SECONDS (Rasa's default is 10 s, which with
a paused Redis made the visitor's apology take 12 s: over the 10 s promise). The lock store
runs in the server's event loop, so this also bounds how long a hung Redis stalls the others.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from rasa.core.lock_store import LOCK_LIFETIME, RedisLockStore
from rasa.utils.endpoints import EndpointConfig

from common.settings import REDIS_TIMEOUT_SECONDS

# A step is a few Redis round trips; the mutex expires on its own if a server dies holding it.
MUTEX_TIMEOUT_S = 5.0
# A waiter waits a little longer than a mutex lives: a mutex left behind (a server died, or a
# command sent before Redis paused ran when it resumed) has always expired by then, so the
# next message goes through instead of failing. 6 s of waiting still answers within 10 s.
MUTEX_WAIT_S = MUTEX_TIMEOUT_S + 1.0


class SerialRedisLockStore(RedisLockStore):
    """RedisLockStore whose ticket changes are atomic across servers (`type:` in endpoints)."""

    def __init__(self, endpoint_config: EndpointConfig) -> None:
        options = {"socket_timeout": REDIS_TIMEOUT_SECONDS, **endpoint_config.kwargs}
        super().__init__(host=endpoint_config.url, **options)

    @contextmanager
    def _mutex(self, conversation_id: str) -> Iterator[None]:
        """Hold the conversation's mutex for one read-modify-write step."""
        with self.red.lock(
            f"{self.key_prefix}{conversation_id}:mutex",
            timeout=MUTEX_TIMEOUT_S,
            blocking_timeout=MUTEX_WAIT_S,
        ):
            yield

    def issue_ticket(self, conversation_id: str, lock_lifetime: float = LOCK_LIFETIME) -> int:
        """Add a ticket to the conversation's queue without losing another server's."""
        with self._mutex(conversation_id):
            return super().issue_ticket(conversation_id, lock_lifetime)

    def update_lock(self, conversation_id: str) -> None:
        """Drop expired tickets without losing one issued meanwhile."""
        with self._mutex(conversation_id):
            super().update_lock(conversation_id)

    def cleanup(self, conversation_id: str, ticket_number: int) -> None:
        """Remove a served ticket, and the lock only if no other server is waiting on it."""
        with self._mutex(conversation_id):
            super().cleanup(conversation_id, ticket_number)
