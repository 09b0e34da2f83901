"""`python -m servers.actions`: the rasa-sdk action server, on loopback or behind a shared secret.

Only Rasa calls it: no CORS, no access log (requests carry whole conversations), and when
ACTION_SERVER_TOKEN is set every call but /health must carry it as a Bearer token. A call
that arrives after the Rasa server stopped waiting for it (common/deadline.py: the action
server was paused) is refused with 503 before any action runs, and an action that finds its
deadline passed before committing fails the same way. GET /health answers 503 while the
database takes no write (servers/health.py); other methods on a route get 405, and errors
never echo the request (rasa-sdk's own handler answers everything with 500 and the body).
GET /metrics gives its figures to a monitoring scraper (common/metrics.py), and each call is
logged once, with the Rasa server's request id for the message (common/logs.py). Only calls
that carried the token are counted, under one of the domain's action names (or "other"), so
nobody without the token can add to the figures or make up label values.
"""

from __future__ import annotations

import hmac
import logging
import sys
import time
import traceback
from functools import lru_cache

from sanic import Sanic, response
from sanic.exceptions import SanicException
from sanic.request import Request
from sanic.response import HTTPResponse

from common import deadline, logs, metrics, migrations, sources
from common.domain import load_domain
from common.settings import Settings, SettingsError, load
from servers import health, http_framing, quick_exit

logger = logging.getLogger("servers.actions")  # the same name when run as __main__
SERVICE = "actions"  # the `service` of its JSON log lines (common/logs.py)

# Rasa posts the whole conversation (about 4 KB a turn) plus the domain (17 KB) with every
# call; the visitors' 64 KB limit (SANIC_REQUEST_MAX_SIZE) must not apply here.
MAX_BODY_BYTES = 64 * 1024 * 1024


def require_token(app: Sanic, token: str) -> None:
    """Answer 401 to any request but GET /health without `Authorization: Bearer <token>`.

    A request that carried the token is marked `request.ctx.authorised` (count_and_log counts
    only those).
    """
    expected = f"Bearer {token}".encode()

    @app.on_request
    async def check_token(request: Request) -> HTTPResponse | None:
        request.ctx.authorised = False
        if request.path in ("/health", metrics.PATH) or http_framing.unread(request):
            return None  # unreadable: its own answer (400 or 413), not 401; /metrics checks its own
        given = request.headers.get("authorization", "").encode()
        if not hmac.compare_digest(given, expected):
            return response.json({"error": "Missing or wrong action server token."}, status=401)
        request.ctx.authorised = True
        return None


def honour_deadlines(app: Sanic) -> None:
    """Refuse calls that come too late to be answered in time; give the others their deadline."""

    @app.on_request
    async def take_deadline(request: Request) -> HTTPResponse | None:
        moment = deadline.parse(request.headers.get(deadline.DEADLINE_HEADER))
        if deadline.too_late(moment=moment):
            logger.warning("Refused an action call that came after the Rasa server stopped waiting for it.")
            return too_late()
        deadline.set_current(moment)  # this request's task only: the actions read it (deadline.check)
        return None

    @app.exception(deadline.DeadlinePassed)
    async def deadline_passed(request: Request, _: Exception) -> HTTPResponse:
        logger.warning("An action stopped before committing: the Rasa server had stopped waiting for it.")
        return too_late()

    @app.exception(SanicException)
    async def http_error(request: Request, error: SanicException) -> HTTPResponse:
        """404, 405, 413 ... as they are, without the request."""
        status = getattr(error, "status_code", 500) or 500
        return response.json({"error": str(error)}, status=status, headers=getattr(error, "headers", None))

    @app.exception(Exception)
    async def action_failed(request: Request, error: Exception) -> HTTPResponse:
        """500 without echoing the conversation (rasa-sdk's handler sends the request body back)."""
        where = traceback.extract_tb(error.__traceback__)[-1:]  # file and line, never values
        place = f" ({where[0].filename}:{where[0].lineno} in {where[0].name})" if where else ""
        logger.error("An action failed: %s%s", type(error).__name__, place)
        return response.json({"error": "The action failed."}, status=500)


def count_and_log(app: Sanic) -> None:
    """Each action call: the Rasa server's request id taken up, counted by result, timed and logged once."""

    @app.on_request
    async def begin(request: Request) -> None:
        logs.start_request(request.headers.get(logs.REQUEST_ID_HEADER))
        request.ctx.started = time.monotonic()
        request.ctx.authorised = True  # require_token (when a token is set) runs next and decides

    @app.on_response
    async def finish(request: Request, reply: HTTPResponse) -> None:
        if request.path != "/webhook" or not hasattr(request.ctx, "started"):
            return
        if not getattr(request.ctx, "authorised", False):
            # refused (401): not counted, and nothing of what the caller sent is logged
            logs.log_event(
                logger,
                "An action call was refused before any action ran.",
                logging.WARNING,
                status=reply.status,
            )
            return
        seconds = time.monotonic() - request.ctx.started
        action = action_label(action_name(request))
        result = "ok" if reply.status < 400 else "too_late" if reply.status == 503 else "error"
        metrics.ACTIONS_RUN.labels(action=action, result=result).inc()
        metrics.ACTION_SECONDS.observe(seconds)
        level = logging.INFO if result == "ok" else logging.WARNING
        logs.log_event(
            logger,
            "Action call handled.",
            level,
            action=action,
            outcome=result,
            status=reply.status,
            duration_ms=round(seconds * 1000),
        )


def action_name(request: Request) -> str:
    """The action a call asked for (`next_action`), or "unknown" (never any other part of the body)."""
    try:
        body = request.json
    except Exception:
        return "unknown"
    name = body.get("next_action") if isinstance(body, dict) else None
    return name[:64] if isinstance(name, str) and name.isidentifier() else "unknown"


@lru_cache(maxsize=1)
def domain_actions() -> frozenset[str]:
    """The custom actions the domain names (read once): the only `action` label values but "other"."""
    return frozenset(str(name) for name in load_domain().get("actions") or [])


def action_label(name: str) -> str:
    """The `action` label of a call: the domain's action of that name, else metrics.OTHER."""
    return name if name in domain_actions() else metrics.OTHER


def too_late() -> HTTPResponse:
    """The answer to a call the Rasa server no longer waits for (it counts as a failed action)."""
    return response.json({"error": "Too late: the Rasa server stopped waiting for this action."}, status=503)


def create_app(token: str | None, settings: Settings | None = None) -> Sanic:
    """rasa-sdk's app with the project's actions, body limit, deadlines, health and (if given) token check."""
    from rasa_sdk.endpoint import create_app as create_sdk_app

    app = create_sdk_app("actions", cors_origins=None)
    app.config.REQUEST_MAX_SIZE = MAX_BODY_BYTES
    http_framing.install(app)  # ambiguous body length: 400 at once, not held 60 s
    domain_actions()  # read now: a domain that cannot be read stops the server at start
    count_and_log(app)
    if token:
        require_token(app, token)
    honour_deadlines(app)
    if settings is not None:
        health.serve_action_server_health(app, settings)
        metrics.sanic_route(app, settings, metrics.ACTIONS)
    return app


def main() -> None:
    """Check the settings and serve the actions (exit 2 with the fixes if they are unsafe)."""
    try:
        settings = load(lock_store=False)
    except SettingsError as error:
        sys.exit(f"{error}\n(see docs/deploy/configuration.md)")
    logging.basicConfig(level=logging.INFO, format=logs.TEXT_FORMAT)
    logs.configure(SERVICE, settings.log_format)
    # The database schema first (common/migrations/): a new or old database is upgraded
    # before the first booking; the console does the same, and they wait for each other.
    migrations.upgrade(settings.database_url)
    app = create_app(settings.action_server_token, settings)
    # "Where is this from?": each answer's sentences of the document, found before serving
    # (loading MiniLM takes seconds; a visitor's answer must not wait for it).
    started = time.monotonic()
    sources.warm(load_domain())
    logger.info("Found where the answers come from in %.1f s.", time.monotonic() - started)

    async def log_format(*_: object) -> None:  # Sanic adds its handlers while starting
        logs.configure(SERVICE, settings.log_format)

    app.register_listener(log_format, "before_server_start")
    app.run(settings.action_server_host, settings.action_server_port, access_log=False, workers=1)
    quick_exit.after_serving()  # stopped and closed: no interpreter teardown


if __name__ == "__main__":
    main()
