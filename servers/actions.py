"""`python -m servers.actions`: the rasa-sdk action server, on loopback or behind a shared secret.

Only Rasa calls it: no CORS, no access log (requests carry whole conversations), and when
ACTION_SERVER_TOKEN is set every call but /health must carry it as a Bearer token.
"""

from __future__ import annotations

import hmac
import logging
import sys

from sanic import Sanic, response
from sanic.request import Request
from sanic.response import HTTPResponse

from common import migrations
from common.settings import SettingsError, load
from servers import http_framing

# Rasa posts the whole conversation (about 4 KB a turn) plus the domain (17 KB) with every
# call; the visitors' 64 KB limit (SANIC_REQUEST_MAX_SIZE) must not apply here.
MAX_BODY_BYTES = 64 * 1024 * 1024


def require_token(app: Sanic, token: str) -> None:
    """Answer 401 to any request but GET /health without `Authorization: Bearer <token>`."""
    expected = f"Bearer {token}".encode()

    @app.on_request
    async def check_token(request: Request) -> HTTPResponse | None:
        if request.path == "/health" or http_framing.unread(request):
            return None  # an unreadable request keeps its own answer (400 or 413), not 401
        given = request.headers.get("authorization", "").encode()
        if not hmac.compare_digest(given, expected):
            return response.json({"error": "Missing or wrong action server token."}, status=401)
        return None


def create_app(token: str | None) -> Sanic:
    """rasa-sdk's app with the project's actions, the body limit and (if given) the token check."""
    from rasa_sdk.endpoint import create_app as create_sdk_app

    app = create_sdk_app("actions", cors_origins=None)
    app.config.REQUEST_MAX_SIZE = MAX_BODY_BYTES
    http_framing.install(app)  # ambiguous body length: 400 at once, not held 60 s
    if token:
        require_token(app, token)
    return app


def main() -> None:
    """Check the settings and serve the actions (exit 2 with the fixes if they are unsafe)."""
    try:
        settings = load(lock_store=False)
    except SettingsError as error:
        sys.exit(f'{error}\n(see README, "Configuration")')
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s  %(message)s")
    # The database schema first (common/migrations/): a new or old database is upgraded
    # before the first booking; the console does the same, and they wait for each other.
    migrations.upgrade(settings.database_url)
    app = create_app(settings.action_server_token)
    app.run(settings.action_server_host, settings.action_server_port, access_log=False, workers=1)


if __name__ == "__main__":
    main()
