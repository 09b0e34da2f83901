"""GET /health: 200 while a visitor's message would go through, 503 (within 2 s) while it would fail.

For a load balancer (or a container health check) to take a replica out while anything a
turn needs is broken, and to put it back when it is not. Both servers answer it:

* the Rasa server checks that the database takes a write, that its action server's own
  /health answers 200 and, in the production profile, that Redis (lock store and rate
  limits) takes a write;
* the action server checks that the database takes a write (requests are stored there).

"Takes a write" is a real write, rolled back: one row of the migrations' own table is
rewritten on a fresh connection, so a read-only database file or folder (SQLite writes its
journal beside the file), a full disk, a lock held elsewhere or an unreachable server all
fail it, as they fail a turn; a read, or a write that changes no row, would not. Each check
is given CHECK_TIMEOUT_S, so the answer comes within 2 s whatever hangs. The answer carries
no details (`{"status": "ok"}` or `{"status": "unavailable"}`); the log says what failed.
Only GET is served: other methods get 405.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable
from typing import Any

import aiohttp
import sqlalchemy as sa
from sanic import Sanic, response
from sanic.request import Request
from sanic.response import HTTPResponse

from common import metrics
from common.database import sqlite_file
from common.settings import Settings

logger = logging.getLogger(__name__)

HEALTH_PATH = "/health"
# Every check gets this long, so /health answers within 2 s even while a dependency hangs.
CHECK_TIMEOUT_S = 1.5
# How long the database check waits for a connection or a lock (below CHECK_TIMEOUT_S).
DATABASE_WAIT_S = 1.0
OK = {"status": "ok"}
UNAVAILABLE = {"status": "unavailable"}


class DatabaseCheck:
    """Whether the database takes a write: a row rewritten and rolled back, on a fresh connection."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.file = sqlite_file(url)
        wait = int(DATABASE_WAIT_S * 1000)
        options: dict[str, Any] = {"poolclass": sa.pool.NullPool}  # a fresh connection sees today's disk
        if self.file is not None:  # never create a missing file; wait at most DATABASE_WAIT_S for a lock
            options["connect_args"] = {"timeout": DATABASE_WAIT_S}
            url = f"sqlite:///file:{self.file}?mode=rw&uri=true"
        elif url.startswith("postgresql"):
            options["connect_args"] = {
                "connect_timeout": max(1, int(DATABASE_WAIT_S)),
                "options": f"-c statement_timeout={wait} -c lock_timeout={wait}",
            }
        self.engine = sa.create_engine(url, **options)

    def __call__(self) -> None:
        """Raise if the database cannot take a write."""
        if self.file is not None and not self.file.is_file():
            raise FileNotFoundError("the SQLite file is missing")
        with self.engine.connect() as db:
            transaction = db.begin()
            try:
                rewritten = db.execute(
                    sa.text("UPDATE alembic_version SET version_num = version_num")
                ).rowcount
            finally:
                transaction.rollback()
        if rewritten != 1:
            raise LookupError("the database has no schema version (not migrated)")


async def action_server_answers(url: str) -> None:
    """Raise unless the action server's /health answers 200."""
    base = url.rsplit("/webhook", 1)[0]
    timeout = aiohttp.ClientTimeout(total=CHECK_TIMEOUT_S)
    async with (
        aiohttp.ClientSession(timeout=timeout) as session,
        session.get(f"{base}{HEALTH_PATH}") as reply,
    ):
        if reply.status != 200:
            raise RuntimeError(f"HTTP {reply.status}")


def redis_write_check(settings: Settings) -> Any:
    """A check that Redis takes a short-lived write (None outside the production profile)."""
    if settings.profile != "production" or not settings.redis_host:
        return None
    import redis.asyncio

    client = redis.asyncio.Redis(
        host=settings.redis_host,
        port=settings.redis_port,
        password=settings.redis_password or None,
        db=settings.redis_db,
        socket_timeout=DATABASE_WAIT_S,
        socket_connect_timeout=DATABASE_WAIT_S,
    )

    async def redis_takes_a_write() -> None:
        if not await client.set("scarfaq:health", "1", px=10_000):
            raise RuntimeError("Redis refused a write")

    return redis_takes_a_write


async def problems(checks: dict[str, Awaitable[Any]]) -> list[str]:
    """Run the checks side by side, each for at most CHECK_TIMEOUT_S; what failed ("name: error")."""
    results = await asyncio.gather(
        *(asyncio.wait_for(check, CHECK_TIMEOUT_S) for check in checks.values()), return_exceptions=True
    )
    return [
        f"{name}: {type(result).__name__}"
        for name, result in zip(checks, results)
        if isinstance(result, BaseException)
    ]


# The checks' names as the figures name the dependencies (common/metrics.py).
DEPENDENCIES = {"database": metrics.DATABASE, "action server": metrics.ACTION_SERVER, "redis": metrics.REDIS}


def answer(failed: list[str], failures: Any = None) -> HTTPResponse:
    """200 `{"status": "ok"}`, or 503 `{"status": "unavailable"}` with what failed in the log only.

    `failures`: the counter of dependency failures the failed checks are added to.
    """
    for problem in failed if failures is not None else []:
        name = problem.split(":", 1)[0]
        failures.labels(dependency=DEPENDENCIES.get(name, name)).inc()
    if failed:
        logger.error("Health check failed (%s).", "; ".join(failed))
        return response.json(UNAVAILABLE, status=503)
    return response.json(OK)


def in_thread(check: DatabaseCheck) -> Awaitable[None]:
    """Run the (blocking) database check in the default executor."""
    return asyncio.get_running_loop().run_in_executor(None, check)


def add_health_route(app: Sanic, settings: Settings) -> None:
    """Serve GET /health on the Rasa server's `app` for these settings."""
    database = DatabaseCheck(settings.database_url)
    redis_check = redis_write_check(settings)

    @app.get(HEALTH_PATH)
    async def health(_: Request) -> HTTPResponse:
        checks: dict[str, Awaitable[Any]] = {
            "database": in_thread(database),
            "action server": action_server_answers(settings.action_server_url),
        }
        if redis_check is not None:
            checks["redis"] = redis_check()
        return answer(await problems(checks), metrics.CHAT_DEPENDENCY_FAILURES)


def serve_action_server_health(app: Sanic, settings: Settings) -> None:
    """Answer GET /health on the action server (rasa-sdk's app) from the database check.

    rasa-sdk's own /health always says ok; this middleware answers GET /health before it.
    """
    database = DatabaseCheck(settings.database_url)

    @app.on_request
    async def health(request: Request) -> HTTPResponse | None:
        if request.path != HEALTH_PATH or request.method != "GET":
            return None  # other methods: the router's 405
        return answer(await problems({"database": in_thread(database)}), metrics.ACTIONS_DEPENDENCY_FAILURES)


def install(settings: Settings) -> None:
    """Add GET /health to the app Rasa builds in this process (rasa.core.run.configure_app)."""
    import rasa.core.run

    configure_app = rasa.core.run.configure_app

    def configure_app_with_health(*args: Any, **kwargs: Any) -> Sanic:
        app = configure_app(*args, **kwargs)
        add_health_route(app, settings)
        return app

    rasa.core.run.configure_app = configure_app_with_health
