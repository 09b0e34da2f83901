"""The figures the servers and the console give Prometheus at GET /metrics, and who may read them.

Each metric is defined here, once, in the registry of the process that produces it: CHAT (the
Rasa server), ACTIONS (the action server) or CONSOLE (the staff console), so each /metrics
shows its own. They use the official client library (prometheus_client). Every process runs
one worker (SANIC_WORKERS=1, the console's threads share one process), so no multiprocess mode
is needed; a deployment that raises SANIC_WORKERS would need PROMETHEUS_MULTIPROC_DIR.

/metrics is never public (`allowed`): the scraper sends `Authorization: Bearer <METRICS_TOKEN>`,
or connects straight from METRICS_ALLOWED_NETWORKS (a request carrying any header a proxy adds,
PROXY_HEADERS, never counts as coming from the proxy's own address; a proxy that adds none, a
TCP proxy, cannot be told apart: behind one use the token only, docs/deploy/monitoring.md).
Anyone else gets 404 when monitoring is off and 401 when it is on; the figures name no
visitor, conversation or message.
"""

from __future__ import annotations

import hmac
import ipaddress
import time
from collections.abc import Callable, Mapping
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram, disable_created_metrics, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from common.settings import Settings

PATH = "/metrics"
CONTENT_TYPE = CONTENT_TYPE_LATEST
# A request carrying one of these (compared in lower case) came through a proxy: its address is
# the proxy's, not the scraper's. The headers HTTP proxies and CDNs add to say who the caller is.
PROXY_HEADERS = frozenset(
    {
        "forwarded",
        "x-forwarded-for",
        "x-forwarded-host",
        "x-forwarded-proto",
        "x-forwarded-port",
        "x-forwarded-server",
        "x-real-ip",
        "x-client-ip",
        "x-original-forwarded-for",
        "true-client-ip",
        "cf-connecting-ip",
        "fastly-client-ip",
        "x-cluster-client-ip",
        "via",
    }
)
REFUSED = "Metrics need the metrics token (Authorization: Bearer ...)."

disable_created_metrics()  # no `_created` series beside each counter: half the lines, nothing lost
CHAT = CollectorRegistry(auto_describe=True)
ACTIONS = CollectorRegistry(auto_describe=True)
CONSOLE = CollectorRegistry(auto_describe=True)

# What became of a visitor's message (the Rasa server): the outcomes staff filter conversations
# by (staff/service/transcripts.py), urgent and erasure, and the messages that got no answer.
ANSWERED, DID_YOU_MEAN, NOT_UNDERSTOOD, NO_INFORMATION = (
    "answered",
    "did-you-mean",
    "not-understood",
    "no-information",
)
URGENT, ERASURE, LIVE_CHAT, SILENT = "urgent", "erasure", "live-chat", "no-reply"
FAILED, TOO_FAST, REFUSED_INPUT = "failed", "too-fast", "refused"
OUTCOMES = (
    ANSWERED,
    DID_YOU_MEAN,
    NOT_UNDERSTOOD,
    NO_INFORMATION,
    URGENT,
    ERASURE,
    LIVE_CHAT,
    SILENT,
    FAILED,
    TOO_FAST,
    REFUSED_INPUT,
)
# The chat channels a message can arrive by (channels/guarded.py: RestInput's and SocketIOInput's
# names); a label value outside a fixed set is counted as OTHER, so no caller can add series.
CHANNELS = ("rest", "socketio")
OTHER = "other"


def channel_label(channel: str) -> str:
    """The `channel` label of a message: one of CHANNELS, else OTHER."""
    return channel if channel in CHANNELS else OTHER


def outcome_label(outcome: str) -> str:
    """The `outcome` label of a message: one of OUTCOMES, else SILENT (it got no known reply)."""
    return outcome if outcome in OUTCOMES else SILENT


# The replies are promised within 10 s (README); the buckets resolve the p95 around it.
REPLY_BUCKETS = (0.1, 0.25, 0.5, 1.0, 2.0, 3.0, 5.0, 8.0, 10.0, 15.0, 30.0)
WAIT_BUCKETS = (10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1200.0, 1800.0, 3600.0)
DATABASE, ACTION_SERVER, REDIS = "database", "action_server", "redis"

# --- the Rasa server -------------------------------------------------------------------------
MESSAGES = Counter(
    "clinic_messages",
    "Visitors' messages by channel (rest, socketio) and outcome.",
    ["channel", "outcome"],
    registry=CHAT,
)
REPLY_SECONDS = Histogram(
    "clinic_reply_seconds",
    "Time from a visitor's message to the assistant's reply (failed turns included), by channel.",
    ["channel"],
    buckets=REPLY_BUCKETS,
    registry=CHAT,
)
ACTION_FAILURES = Counter(
    "clinic_action_failures",
    "Calls to the action server that failed a turn, by reason (timeout, error).",
    ["reason"],
    registry=CHAT,
)
CHAT_DEPENDENCY_FAILURES = Counter(
    "clinic_dependency_failures",
    "Failures of what a turn needs (database, action_server, redis): failed turns and health checks.",
    ["dependency"],
    registry=CHAT,
)
LIVE_CHAT_MISSED = Counter(
    "clinic_live_chat_missed",
    "Visitors who asked for a person and were not answered within the clinic's wait.",
    registry=CHAT,
)
# --- the action server -----------------------------------------------------------------------
ACTIONS_RUN = Counter(
    "clinic_actions",
    "Actions the action server ran, by action and result (ok, error, too_late).",
    ["action", "result"],
    registry=ACTIONS,
)
ACTION_SECONDS = Histogram(
    "clinic_action_seconds",
    "How long the action server took for one action call.",
    buckets=(0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 3.0, 5.0, 8.0),
    registry=ACTIONS,
)
ACTIONS_DEPENDENCY_FAILURES = Counter(
    "clinic_dependency_failures",
    "Failures of what the actions need (database): failed health checks and requests not stored.",
    ["dependency"],
    registry=ACTIONS,
)
REQUESTS_STORED = Counter(
    "clinic_requests_stored",
    "Requests visitors made, stored (kind: booking, callback).",
    ["kind"],
    registry=ACTIONS,
)
REQUESTS_DELIVERED = Counter(
    "clinic_requests_delivered",
    "Booking requests (and withdrawals) the booking system's webhook accepted.",
    ["kind"],
    registry=ACTIONS,
)
WEBHOOK_FAILURES = Counter(
    "clinic_webhook_failures",
    "Attempts to post to the booking system's webhook that failed (each retry counts).",
    registry=ACTIONS,
)

# --- the staff console -----------------------------------------------------------------------
SIGN_IN_FAILURES = Counter(
    "clinic_sign_in_failures",
    "Failed staff sign-ins, by reason (password, throttled, code).",
    ["reason"],
    registry=CONSOLE,
)
LIVE_CHAT_WAIT_SECONDS = Histogram(
    "clinic_live_chat_wait_seconds",
    "How long a visitor who asked for a person waited until a staff member took the chat.",
    buckets=WAIT_BUCKETS,
    registry=CONSOLE,
)
# The e-mail notifications (issue 23's other part): each failed attempt to send one.
EMAIL_FAILURES = Counter(
    "clinic_email_failures",
    "Attempts to send a notification e-mail that failed (each retry counts).",
    registry=CONSOLE,
)
EMAILS_SENT = Counter(
    "clinic_emails_sent",
    "Notification e-mails the clinic's mail server accepted, by kind.",
    ["kind"],
    registry=CONSOLE,
)


class LiveChatQueue:
    """clinic_live_chat_waiting and clinic_live_chat_oldest_wait_seconds, read at each scrape."""

    def __init__(self) -> None:
        # () -> (how many wait, the longest wait in seconds); set by the console (watch_live_chat_queue)
        self.waiting: Callable[[], tuple[int, float]] | None = None

    def collect(self) -> list[GaugeMetricFamily]:
        """The two gauges from the database (nothing when it cannot be read)."""
        if self.waiting is None:
            return []
        try:
            count, oldest = self.waiting()
        except Exception:
            return []  # the database is down: the console's own health shows it
        return [
            GaugeMetricFamily("clinic_live_chat_waiting", "Visitors waiting for a person now.", value=count),
            GaugeMetricFamily(
                "clinic_live_chat_oldest_wait_seconds",
                "How long the visitor waiting longest for a person has waited (0: nobody waits).",
                value=oldest,
            ),
        ]


class ServedModel:
    """clinic_model_info{model} and clinic_model_age_seconds of the model a Rasa server answers with."""

    def __init__(self) -> None:
        # () -> (the model's id, when it was trained: Unix time), None: no model yet; set by the
        # Rasa server (watch_served_model)
        self.model: Callable[[], tuple[str, float] | None] | None = None

    def collect(self) -> list[GaugeMetricFamily]:
        """The two gauges, read at each scrape (nothing before a model is loaded)."""
        served = self.model() if self.model is not None else None
        if served is None:
            return []
        model_id, trained_at = served
        info = GaugeMetricFamily(
            "clinic_model_info", "The model this Rasa server answers with (value 1).", labels=["model"]
        )
        info.add_metric([model_id[:64]], 1)
        age = GaugeMetricFamily(
            "clinic_model_age_seconds",
            "How long ago the model this Rasa server answers with was trained.",
            value=max(0.0, time.time() - trained_at),
        )
        return [info, age]


_QUEUE = LiveChatQueue()
_MODEL = ServedModel()
CONSOLE.register(_QUEUE)  # type: ignore[arg-type]
CHAT.register(_MODEL)  # type: ignore[arg-type]


def watch_live_chat_queue(waiting: Callable[[], tuple[int, float]]) -> None:
    """Read the live-chat queue's gauges with `waiting` (the console's database)."""
    _QUEUE.waiting = waiting


def watch_served_model(model: Callable[[], tuple[str, float] | None]) -> None:
    """Read the served model's gauges with `model` (the Rasa server's agent)."""
    _MODEL.model = model


def enabled(settings: Settings) -> bool:
    """Whether /metrics answers anyone (a token or an allowed network is set)."""
    return bool(settings.metrics_token or settings.metrics_networks)


def allowed(settings: Settings, headers: Mapping[str, str], peer: str | None) -> bool:
    """Whether a request with these headers, from the connecting address `peer`, may read /metrics."""
    if settings.metrics_token:
        given = (headers.get("authorization") or headers.get("Authorization") or "").encode()
        if hmac.compare_digest(given, f"Bearer {settings.metrics_token}".encode()):
            return True
    if not settings.metrics_networks or proxied(headers) or not peer:
        return False
    try:
        address = ipaddress.ip_address(peer)
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped  # ::ffff:127.0.0.1 (a dual-stack socket) is 127.0.0.1
    return any(address in network for network in settings.metrics_networks)


def proxied(headers: Mapping[str, str]) -> bool:
    """Whether a request carries any header a proxy adds (PROXY_HEADERS), in any letter case."""
    return any(str(name).lower() in PROXY_HEADERS for name in headers.keys())


def answer(
    settings: Settings, registry: CollectorRegistry, headers: Mapping[str, str], peer: str | None
) -> tuple[int, bytes, dict[str, str]]:
    """(status, body, headers) of GET /metrics: the figures, 401 (refused) or 404 (monitoring off)."""
    if not enabled(settings):
        return 404, b"Not found.\n", {"Content-Type": "text/plain; charset=utf-8"}
    if not allowed(settings, headers, peer):
        return (
            401,
            f"{REFUSED}\n".encode(),
            {
                "Content-Type": "text/plain; charset=utf-8",
                "WWW-Authenticate": 'Bearer realm="metrics"',
            },
        )
    return 200, generate_latest(registry), {"Content-Type": CONTENT_TYPE, "Cache-Control": "no-store"}


def sanic_route(app: Any, settings: Settings, registry: CollectorRegistry) -> None:
    """Serve GET /metrics on a Sanic app (the Rasa server's or the action server's)."""
    from sanic import response
    from sanic.request import Request

    async def metrics(request: Request) -> Any:
        peer = request.conn_info.client_ip if request.conn_info else None
        status, body, headers = answer(settings, registry, request.headers, peer)
        return response.raw(body, status=status, headers=headers)

    app.add_route(metrics, PATH, methods=["GET"], name="clinic_metrics")
