"""`python -m servers.chat`: the Rasa server, with the stores and secrets of common/settings.py.

Rasa's HTTP API (conversations, model, tracker events) stays off unless RASA_API_TOKEN or
RASA_JWT_SECRET is set, and then requires it; the chat channels are always open. Secrets are
handed to Rasa's command line inside this process, so they never show in `ps`. Before Rasa
starts, faults are made visible (servers/faults.py: a short action-server timeout, a failed
action or database fails the turn, no in-memory fallback), GET /health is added
(servers/health.py), so are GET /metrics and LOG_FORMAT's log lines (servers/monitoring.py),
and a request with an ambiguous body length is refused at once (servers/http_framing.py); on
Python 3.11, Sanic 21.12's WebSockets get the fix of servers/sanic_websockets.py. The live model
comes from the console's model server, starting from the last one it gave this server
(servers/model_pull.py); the dialogue model is loaded without tracing a training step
(servers/model_load.py).
"""

from __future__ import annotations

import sys

from common.paths import CREDENTIALS
from common.settings import Settings, SettingsError, load


def rasa_arguments(settings: Settings) -> list[str]:
    """The `rasa run` arguments for these settings."""
    arguments = [
        "run",
        "--model",
        str(settings.model),
        "--endpoints",
        str(settings.endpoints_file),
        "--credentials",
        str(CREDENTIALS),
        "--interface",
        settings.rasa_interface,
        "--port",
        str(settings.rasa_port),
        "--cors",
        *settings.cors_origins,
    ]
    if settings.api_token or settings.jwt_secret:
        arguments.append("--enable-api")
    if settings.api_token:
        arguments += ["--auth-token", settings.api_token]
    if settings.jwt_secret:
        arguments += ["--jwt-secret", settings.jwt_secret, "--jwt-method", "HS256"]
    return arguments


def main() -> None:
    """Check the settings, then run Rasa (exit 2 with the list of fixes if they are unsafe)."""
    try:
        settings = load()
    except SettingsError as error:
        sys.exit(f"{error}\n(see docs/deploy/configuration.md)")
    from rasa.__main__ import main as rasa_main  # slow import: only once the settings are sound

    from servers import (  # noqa: F401 (the store: fail now)
        action_validation,
        faults,
        health,
        http_framing,
        model_load,
        model_pull,
        monitoring,
        quick_exit,
        sanic_websockets,
        tracker_store,
    )

    action_validation.install()
    model_load.install()  # the dialogue model loads in seconds, not most of a minute
    model_pull.install(settings)
    faults.install(settings.action_server_timeout)
    health.install(settings)
    monitoring.install(settings)  # GET /metrics, LOG_FORMAT, each turn counted and logged
    http_framing.install_in_rasa()  # ambiguous body length: 400 at once, not held 60 s
    sanic_websockets.install()  # Python 3.11: socket.io's WebSocket would close after one message
    sys.argv = ["rasa", *rasa_arguments(settings)]
    rasa_main()
    quick_exit.after_serving()  # stopped and closed: no 5 s of interpreter teardown


if __name__ == "__main__":
    main()
