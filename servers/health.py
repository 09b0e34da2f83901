"""GET /health on the Rasa server: 200 while it can serve visitors, 503 while it cannot.

For a load balancer (or a container health check) to take a replica out while its
database or its action server is down, and back when they are. It checks that the
conversations' database takes a write (a read-only or missing SQLite file fails it),
that the action server answers its own /health and, in the production profile, that
Redis answers. The answer carries no details (`{"status": "ok"}` or `{"status":
"unavailable"}`); the log says what failed.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import aiohttp
import sqlalchemy as sa
from sanic import Sanic, response
from sanic.request import Request
from sanic.response import HTTPResponse

from common.database import sqlite_file
from common.settings import Settings

logger = logging.getLogger(__name__)

CHECK_TIMEOUT_S = 3.0
HEALTH_PATH = "/health"


class DatabaseCheck:
    """Whether the conversations' table takes a write, in a transaction that writes nothing."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.file = sqlite_file(url)
        options: dict[str, Any] = {"pool_pre_ping": True}
        if self.file is not None:  # never create a missing file; wait at most a second for a lock
            options["connect_args"] = {"timeout": 1}
            url = f"sqlite:///file:{self.file}?mode=rw&uri=true"
        else:
            options["connect_args"] = {"connect_timeout": 2}
        self.engine = sa.create_engine(url, **options)

    def __call__(self) -> None:
        """Raise if the database cannot take a write."""
        if self.file is not None and not self.file.is_file():
            raise FileNotFoundError("the SQLite file is missing")
        with self.engine.begin() as db:
            db.execute(sa.text("UPDATE events SET id = id WHERE 1 = 0"))


async def action_server_answers(url: str) -> None:
    """Raise unless the action server's /health answers 200."""
    base = url.rsplit("/webhook", 1)[0]
    timeout = aiohttp.ClientTimeout(total=CHECK_TIMEOUT_S)
    async with aiohttp.ClientSession(timeout=timeout) as session, session.get(f"{base}/health") as reply:
        if reply.status != 200:
            raise RuntimeError(f"HTTP {reply.status}")


def add_health_route(app: Sanic, settings: Settings) -> None:
    """Serve GET /health on `app` for these settings."""
    database = DatabaseCheck(settings.database_url)
    redis_client = None
    if settings.profile == "production" and settings.redis_host:
        import redis.asyncio

        redis_client = redis.asyncio.Redis(
            host=settings.redis_host,
            port=settings.redis_port,
            password=settings.redis_password or None,
            db=settings.redis_db,
            socket_timeout=2,
            socket_connect_timeout=2,
        )

    async def problems() -> list[str]:
        checks: dict[str, Any] = {
            "database": asyncio.get_running_loop().run_in_executor(None, database),
            "action server": action_server_answers(settings.action_server_url),
        }
        if redis_client is not None:
            checks["redis"] = redis_client.ping()
        results = await asyncio.gather(
            *(asyncio.wait_for(check, CHECK_TIMEOUT_S) for check in checks.values()), return_exceptions=True
        )
        return [
            f"{name}: {type(result).__name__}"
            for name, result in zip(checks, results)
            if isinstance(result, BaseException)
        ]

    @app.get(HEALTH_PATH)
    async def health(_: Request) -> HTTPResponse:
        failed = await problems()
        if failed:
            logger.error("Health check failed (%s).", "; ".join(failed))
            return response.json({"status": "unavailable"}, status=503)
        return response.json({"status": "ok"})


def install(settings: Settings) -> None:
    """Add GET /health to the app Rasa builds in this process (rasa.core.run.configure_app)."""
    import rasa.core.run

    configure_app = rasa.core.run.configure_app

    def configure_app_with_health(*args: Any, **kwargs: Any) -> Sanic:
        app = configure_app(*args, **kwargs)
        add_health_route(app, settings)
        return app

    rasa.core.run.configure_app = configure_app_with_health
