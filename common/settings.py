"""Deployment settings: the profile, ports, stores, limits and secrets, from the environment.

Clinic details live in clinic.yml (common/clinic.py); what differs between a laptop and a
server, and every secret, comes from environment variables (or an untracked `.env` file,
which never overrides the real environment). This is the one module that reads them. A
setting that would start an unsafe or half-configured server is refused with a message
that says what to set.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import os
import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from common.paths import (
    CLINIC_YML,
    CONVERSATION_SECRET_FILE,
    DEFAULT_DATABASE_FILE,
    DOTENV,
    MODEL,
    MODEL_STORE_DIR,
    PROJECT_ROOT,
)

# Which endpoints file each profile uses: stores and lock store (docs/deploy/production.md).
PROFILES = {"local": "endpoints.yml", "production": "endpoints.production.yml"}
DEFAULT_DATABASE_URL = f"sqlite:///{DEFAULT_DATABASE_FILE}"
# Default ports: Rasa (chat channels), the action server, the demo page.
RASA_PORT = 5005
ACTION_SERVER_PORT = 5055
WEB_PORT = 8080
STAFF_PORT = 8081  # the staff console
STAFF_SESSION_MINUTES = 480  # a console session ends after 8 hours without a request
REDIS_PORT = 6379
# How long one Redis command may take before the message fails (lock store, rate limits): a
# paused Redis must not hold a visitor beyond the 10 s promise (Rasa's own default is 10 s).
REDIS_TIMEOUT_SECONDS = 2.0
MAX_MESSAGE_CHARS = 1000
# A chat message's metadata (the widget sends a few keys): deeper or larger is refused with 400,
# before Rasa stores it (a deeply nested value broke every later turn of its conversation).
MAX_METADATA_DEPTH = 8
MAX_METADATA_BYTES = 4096
MAX_MESSAGES_PER_MINUTE = 30
# Several visitors may share one address (a clinic's wifi, a mobile carrier's NAT).
MAX_MESSAGES_PER_MINUTE_PER_ADDRESS = 120
MAX_REQUESTS_PER_CONTACT_PER_DAY = 3
# Live chat requests one client address may make (the queue's own cap is in clinic.yml).
LIVE_CHAT_REQUESTS_PER_ADDRESS_PER_HOUR = 3
LIVE_CHAT_REQUESTS_PER_ADDRESS_PER_DAY = 6
# Rasa's own wait for the action server is 300 s; a visitor must hear within 10 s.
ACTION_SERVER_TIMEOUT_SECONDS = 5
MAX_ACTION_SERVER_TIMEOUT_SECONDS = 8
# An action commits a request only while at least this long is left before the Rasa server
# stops waiting for it, so its reply (the visitor's "it's sent") arrives in time (common/deadline.py).
COMMIT_MARGIN_SECONDS = 1.0
# Where the console serves the live model to the Rasa servers (staff/console/models.py).
MODEL_SERVER_PATH = "/models/live.tar.gz"
# How often every Rasa server asks the model server (the console) whether the live model changed.
MODEL_PULL_SECONDS = 10
# After the pull that finds a new live model, how long a Rasa server may take to download and
# load it before it answers with it: 15-40 s on a 2-core machine with a load average of 5-7,
# 148 s at 15 (tests/e2e/test_publish.py, issue 21). The console promises MODEL_PULL_SECONDS
# plus this, and tests/e2e/test_publish.py holds publishing and rolling back to it.
MODEL_LOAD_SECONDS = 170
# E-mail notifications (common/records/notifications.py, staff/service/notifications.py): how the console
# reaches the clinic's mail server (SMTP_SECURITY), the default port of each way, how long one
# connection may take, how long the first retry waits (doubling, up to an hour) and how often
# the console's sender looks for e-mails to send.
SMTP_SECURITY = {"starttls": 587, "tls": 465, "plain": 25}  # plain: a mail server on this machine only
SMTP_TIMEOUT_SECONDS = 10
NOTIFY_RETRY_SECONDS = 30
NOTIFY_POLL_SECONDS = 10
# A queued e-mail not sent this long after it was queued is given up (it would be stale news);
# until then it is tried again, at most an hour apart, however many tries that takes.
NOTIFY_GIVE_UP_DAYS = 3
MIN_SECRET_CHARS = 32  # HS256 keys shorter than 32 bytes are below RFC 7518
# How the servers and the console write their logs: "text" (for a person) or "json" (one JSON
# object a line, for the clinic's log search; the production profile's default).
LOG_FORMATS = ("text", "json")
_DOTENV_LINE = re.compile(r"^\s*(?:export\s+)?([A-Za-z_][A-Za-z0-9_]*)\s*=\s*(.*?)\s*$")


class SettingsError(ValueError):
    """The environment asks for a server that must not start; the message lists every fix."""


def read_dotenv(path: Path = DOTENV) -> dict[str, str]:
    """KEY=value lines of a .env file (comments, blanks and `export ` allowed; quotes removed)."""
    if not path.is_file():
        return {}
    values: dict[str, str] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        match = _DOTENV_LINE.match(line)
        if match and not line.lstrip().startswith("#"):
            value = match.group(2)
            if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
                value = value[1:-1]
            values[match.group(1)] = value
    return values


def environment(dotenv: Path = DOTENV) -> dict[str, str]:
    """The process environment, with .env values filling in only what is not already set."""
    return {**read_dotenv(dotenv), **os.environ}


def is_loopback(host: str) -> bool:
    """Whether `host` only accepts connections from this machine."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def page_origins(web_port: int = WEB_PORT) -> tuple[str, ...]:
    """The origins of the demo page on `web_port`: localhost and 127.0.0.1."""
    return (f"http://localhost:{web_port}", f"http://127.0.0.1:{web_port}")


def _port(env: Mapping[str, str], name: str, default: int, problems: list[str]) -> int:
    """The TCP port in env[name], or `default`; a bad value is added to `problems`."""
    raw = env.get(name) or str(default)
    if raw.isdigit() and 0 < int(raw) < 65536:
        return int(raw)
    problems.append(f"{name} must be a port number (1-65535), not {raw!r}.")
    return default


def _count(env: Mapping[str, str], name: str, default: int, problems: list[str]) -> int:
    """The positive whole number in env[name], or `default`; a bad value is added to `problems`."""
    raw = env.get(name) or str(default)
    if raw.isdigit() and int(raw) > 0:
        return int(raw)
    problems.append(f"{name} must be a whole number above 0, not {raw!r}.")
    return default


def _secret(env: Mapping[str, str], name: str, problems: list[str]) -> str | None:
    """The secret in env[name] (None if unset); one shorter than MIN_SECRET_CHARS is refused."""
    value = env.get(name) or None
    if value is not None and "change-me" in value:
        problems.append(f"{name} is still the placeholder from .env.example: set a random secret.")
    elif value is not None and len(value) < MIN_SECRET_CHARS:
        problems.append(
            f"{name} must be at least {MIN_SECRET_CHARS} characters "
            "(e.g. `python -c 'import secrets; print(secrets.token_urlsafe(32))'`)."
        )
    return value


def _networks(
    env: Mapping[str, str], name: str, problems: list[str]
) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    """The networks (CIDR, e.g. `10.0.0.0/8 ::1`; spaces or commas between) in env[name]."""
    networks = []
    for item in (env.get(name) or "").replace(",", " ").split():
        try:
            networks.append(ipaddress.ip_network(item, strict=False))
        except ValueError:
            problems.append(f"{name} must list networks such as 10.0.0.0/8 or 127.0.0.1, not {item!r}.")
    return tuple(networks)


def local_conversation_secret(path: Path = CONVERSATION_SECRET_FILE) -> str:
    """The local profile's conversation secret: made once, kept in var/ (mode 0600), then reused.

    Written whole to a private file, then linked into place (which fails if the name exists),
    so servers starting at the same moment all end up with the one that was placed first and
    none ever reads a half-written (empty) secret.
    """
    try:
        return path.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    draft = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
    descriptor = os.open(draft, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w", encoding="utf-8") as out:
        out.write(secrets.token_urlsafe(32))
    try:
        os.link(draft, path)
    except FileExistsError:
        pass  # another process placed its secret first: use that one
    finally:
        draft.unlink()
    return path.read_text(encoding="utf-8").strip()


@dataclass(frozen=True)
class Settings:
    """Everything the servers, the staff commands and the tools read from the environment."""

    profile: str
    database_url: str
    redis_host: str
    redis_port: int
    redis_password: str
    redis_db: int
    rasa_interface: str
    rasa_port: int
    model: Path
    api_token: str | None
    jwt_secret: str | None
    cors_origins: tuple[str, ...]
    action_server_host: str
    action_server_port: int
    action_server_url: str
    action_server_token: str | None
    web_port: int
    clinic_settings: Path
    max_message_chars: int
    max_messages_per_minute: int
    booking_webhook_token: str | None
    # Signs the conversation ids the Rasa server issues (None: the local profile's var/ file).
    conversation_secret: str | None = None
    # Lets a trusted server-to-server client keep its own conversation ids (REST, Bearer).
    chat_integration_token: str | None = None
    max_messages_per_minute_per_address: int = MAX_MESSAGES_PER_MINUTE_PER_ADDRESS
    max_requests_per_contact_per_day: int = MAX_REQUESTS_PER_CONTACT_PER_DAY
    live_chat_requests_per_address_per_hour: int = LIVE_CHAT_REQUESTS_PER_ADDRESS_PER_HOUR
    live_chat_requests_per_address_per_day: int = LIVE_CHAT_REQUESTS_PER_ADDRESS_PER_DAY
    action_server_timeout: int = ACTION_SERVER_TIMEOUT_SECONDS
    # The staff console (staff/console/): where it listens, the key that signs its session
    # cookies, how long an idle session lasts, and whether it is reached over HTTPS (a
    # reverse proxy in front): then its cookies are sent only over HTTPS.
    staff_host: str = "127.0.0.1"
    staff_port: int = STAFF_PORT
    staff_secret_key: str | None = None
    staff_session_minutes: int = STAFF_SESSION_MINUTES
    staff_https: bool = False
    # The project whose answers, examples and clinic.yml the console edits and commits (a git
    # checkout); tests point it at a copy.
    staff_project_root: Path = PROJECT_ROOT
    # Production: the release's own content (the image's read-only /srv/scar-faq). Set, the
    # console's start-up seeds an empty STAFF_PROJECT_ROOT (a volume) from it and merges each new
    # release into staff's edits (staff/service/releases.py); unset, nothing is seeded or merged.
    content_release_dir: Path | None = None
    # Publishing (staff/console/models.py): every Rasa server pulls the live model from
    # MODEL_SERVER_URL (the console's model server) every MODEL_PULL_SECONDS, sending
    # MODEL_SERVER_TOKEN; candidates and published models are kept in MODEL_STORE_DIR.
    model_server_url: str = ""
    model_server_token: str | None = None
    model_pull_seconds: int = MODEL_PULL_SECONDS
    model_store_dir: Path = MODEL_STORE_DIR
    # Live chat: the console posts staff messages to a Rasa server at RASA_URL with this secret
    # (LIVE_CHAT_SECRET; unset: derived from the conversation secret, which both then need).
    live_chat_secret: str | None = None
    rasa_url: str = f"http://127.0.0.1:{RASA_PORT}"
    # Monitoring (docs/deploy/monitoring.md): GET /metrics on the Rasa server, the action server and
    # the console answers a scraper sending `Authorization: Bearer <METRICS_TOKEN>`, or one
    # connecting straight (through no proxy) from METRICS_ALLOWED_NETWORKS; nobody when neither is set.
    metrics_token: str | None = None
    metrics_networks: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] = ()
    log_format: str = "text"
    # E-mail notifications: the clinic's mail server (unset SMTP_HOST: nothing is sent, e-mails
    # wait), the way to reach it, its account (the password only ever from the environment),
    # the default sending address (an admin may change it in the console), and the console's
    # address as staff open it (the links in e-mails).
    smtp_host: str = ""
    smtp_port: int = SMTP_SECURITY["starttls"]
    smtp_security: str = "starttls"
    smtp_user: str = ""
    smtp_password: str = ""
    smtp_from: str = ""
    staff_public_url: str = f"http://localhost:{STAFF_PORT}"
    notify_retry_seconds: int = NOTIFY_RETRY_SECONDS
    notify_poll_seconds: int = NOTIFY_POLL_SECONDS

    @classmethod
    def from_env(cls, env: Mapping[str, str], lock_store: bool = True, serves_chat: bool = True) -> Settings:
        """Read and check the settings; raise SettingsError listing every problem at once.

        `lock_store`: whether this is the Rasa server, which takes conversation locks (the
        action server and the staff commands take none, so they need no lock store).
        `serves_chat`: whether this is the Rasa server or the action server, which share
        ACTION_SERVER_TOKEN and CONVERSATION_SECRET (Rasa signs conversation ids with it; the
        action server keys the contacts' daily counts with it); the staff console and the
        staff commands need neither.
        """
        problems: list[str] = []
        profile = env.get("CLINIC_PROFILE") or "local"
        if profile not in PROFILES:
            problems.append(f"CLINIC_PROFILE must be one of {', '.join(PROFILES)}, not {profile!r}.")
        database_url = env.get("DATABASE_URL") or DEFAULT_DATABASE_URL
        redis_host = env.get("REDIS_HOST", "")
        if profile == "production":
            if not database_url.startswith(("postgresql://", "postgresql+psycopg2://")):
                problems.append(
                    "The production profile keeps conversations and booking requests in "
                    "PostgreSQL: set DATABASE_URL=postgresql://user:password@host:5432/db."
                )
            if lock_store and not redis_host:
                problems.append(
                    "The production profile uses Redis as Rasa's lock store: set REDIS_HOST "
                    "(and REDIS_PORT, REDIS_PASSWORD if needed)."
                )
        redis_db = env.get("REDIS_DB") or "0"
        if not redis_db.isdigit():
            problems.append(f"REDIS_DB must be a number, not {redis_db!r}.")
        action_host = env.get("ACTION_SERVER_HOST") or "127.0.0.1"
        action_port = _port(env, "ACTION_SERVER_PORT", ACTION_SERVER_PORT, problems)
        action_token = _secret(env, "ACTION_SERVER_TOKEN", problems)
        if profile == "production" and serves_chat and action_token is None:
            problems.append(
                "The production profile protects the action server with a shared secret, "
                "even on this machine: set ACTION_SERVER_TOKEN for both servers."
            )
        elif not is_loopback(action_host) and action_token is None:
            problems.append(
                f"The action server would listen on {action_host}, beyond this machine: "
                "set ACTION_SERVER_TOKEN (a shared secret Rasa sends), or keep "
                "ACTION_SERVER_HOST=127.0.0.1."
            )
        conversation_secret = _secret(env, "CONVERSATION_SECRET", problems)
        if profile == "production" and serves_chat and conversation_secret is None:
            problems.append(
                "The production profile signs conversation ids and keys the contacts' daily "
                "counts with a secret every Rasa and action server shares: set CONVERSATION_SECRET."
            )
        action_timeout = _count(env, "ACTION_SERVER_TIMEOUT_SECONDS", ACTION_SERVER_TIMEOUT_SECONDS, problems)
        if action_timeout > MAX_ACTION_SERVER_TIMEOUT_SECONDS:
            problems.append(
                f"ACTION_SERVER_TIMEOUT_SECONDS must be at most {MAX_ACTION_SERVER_TIMEOUT_SECONDS}: "
                "a visitor must hear back within 10 s even when the action server hangs."
            )
        web_port = _port(env, "WEB_PORT", WEB_PORT, problems)
        staff_https = (env.get("STAFF_HTTPS") or ("1" if profile == "production" else "0")).lower()
        if staff_https not in ("1", "0", "true", "false", "yes", "no"):
            problems.append(f"STAFF_HTTPS must be 1 or 0, not {staff_https!r}.")
        staff_secret = _secret(env, "STAFF_SECRET_KEY", problems)
        staff_port = _port(env, "STAFF_PORT", STAFF_PORT, problems)
        model_server_token = _secret(env, "MODEL_SERVER_TOKEN", problems)
        if profile == "production" and lock_store and model_server_token is None:
            problems.append(
                "The production profile's Rasa servers take the published model from the staff "
                "console's model server, with a shared secret: set MODEL_SERVER_TOKEN (the same "
                "for the console and every Rasa server), and MODEL_SERVER_URL to the console's "
                "address (e.g. http://console:8081/models/live.tar.gz)."
            )
        log_format = (env.get("LOG_FORMAT") or ("json" if profile == "production" else "text")).lower()
        if log_format not in LOG_FORMATS:
            problems.append(f"LOG_FORMAT must be one of {', '.join(LOG_FORMATS)}, not {log_format!r}.")
        smtp_host = env.get("SMTP_HOST") or ""
        smtp_security = (env.get("SMTP_SECURITY") or "starttls").lower()
        if smtp_security not in SMTP_SECURITY:
            problems.append(f"SMTP_SECURITY must be starttls or tls, not {smtp_security!r}.")
            smtp_security = "starttls"
        elif smtp_security == "plain" and smtp_host and not is_loopback(smtp_host):
            problems.append(
                f"SMTP_SECURITY=plain would send e-mails to {smtp_host} unencrypted: use starttls or tls "
                "(plain is only for a mail server on this machine)."
            )
        if (env.get("SMTP_USER") or "") and not (env.get("SMTP_PASSWORD") or ""):
            problems.append("SMTP_USER is set without SMTP_PASSWORD: set both, or neither.")
        if (
            profile == "production"
            and smtp_host
            and not (env.get("STAFF_PUBLIC_URL") or "").lower().startswith("https://")
        ):
            problems.append(
                "E-mails to staff link to the console: set STAFF_PUBLIC_URL to its https:// address "
                "as staff open it (like https://console.clinic.example)."
            )
        settings = cls(
            profile=profile,
            database_url=database_url,
            redis_host=redis_host,
            redis_port=_port(env, "REDIS_PORT", REDIS_PORT, problems),
            redis_password=env.get("REDIS_PASSWORD", ""),
            redis_db=int(redis_db) if redis_db.isdigit() else 0,
            rasa_interface=env.get("RASA_INTERFACE") or "127.0.0.1",
            rasa_port=_port(env, "RASA_PORT", RASA_PORT, problems),
            model=Path(env.get("RASA_MODEL") or MODEL),
            api_token=_secret(env, "RASA_API_TOKEN", problems),
            jwt_secret=_secret(env, "RASA_JWT_SECRET", problems),
            cors_origins=tuple(env.get("CORS_ORIGINS", "").split()) or page_origins(web_port),
            action_server_host=action_host,
            action_server_port=action_port,
            action_server_url=env.get("ACTION_SERVER_URL") or f"http://127.0.0.1:{action_port}/webhook",
            action_server_token=action_token,
            web_port=web_port,
            clinic_settings=Path(env.get("CLINIC_SETTINGS") or CLINIC_YML),
            max_message_chars=_count(env, "MAX_MESSAGE_CHARS", MAX_MESSAGE_CHARS, problems),
            max_messages_per_minute=_count(env, "MAX_MESSAGES_PER_MINUTE", MAX_MESSAGES_PER_MINUTE, problems),
            booking_webhook_token=env.get("BOOKING_WEBHOOK_TOKEN") or None,
            conversation_secret=conversation_secret,
            chat_integration_token=_secret(env, "CHAT_INTEGRATION_TOKEN", problems),
            max_messages_per_minute_per_address=_count(
                env, "MAX_MESSAGES_PER_MINUTE_PER_ADDRESS", MAX_MESSAGES_PER_MINUTE_PER_ADDRESS, problems
            ),
            max_requests_per_contact_per_day=_count(
                env, "MAX_REQUESTS_PER_CONTACT_PER_DAY", MAX_REQUESTS_PER_CONTACT_PER_DAY, problems
            ),
            live_chat_requests_per_address_per_hour=_count(
                env,
                "LIVE_CHAT_REQUESTS_PER_ADDRESS_PER_HOUR",
                LIVE_CHAT_REQUESTS_PER_ADDRESS_PER_HOUR,
                problems,
            ),
            live_chat_requests_per_address_per_day=_count(
                env,
                "LIVE_CHAT_REQUESTS_PER_ADDRESS_PER_DAY",
                LIVE_CHAT_REQUESTS_PER_ADDRESS_PER_DAY,
                problems,
            ),
            action_server_timeout=action_timeout,
            staff_host=env.get("STAFF_HOST") or "127.0.0.1",
            staff_port=staff_port,
            staff_secret_key=staff_secret,
            staff_session_minutes=_count(env, "STAFF_SESSION_MINUTES", STAFF_SESSION_MINUTES, problems),
            staff_https=staff_https in ("1", "true", "yes"),
            staff_project_root=Path(env.get("STAFF_PROJECT_ROOT") or PROJECT_ROOT),
            content_release_dir=Path(env["CONTENT_RELEASE_DIR"]) if env.get("CONTENT_RELEASE_DIR") else None,
            model_server_url=env.get("MODEL_SERVER_URL")
            or f"http://127.0.0.1:{staff_port}{MODEL_SERVER_PATH}",
            model_server_token=model_server_token,
            model_pull_seconds=_count(env, "MODEL_PULL_SECONDS", MODEL_PULL_SECONDS, problems),
            model_store_dir=Path(env.get("MODEL_STORE_DIR") or MODEL_STORE_DIR),
            live_chat_secret=_secret(env, "LIVE_CHAT_SECRET", problems),
            rasa_url=(
                env.get("RASA_URL") or f"http://127.0.0.1:{_port(env, 'RASA_PORT', RASA_PORT, [])}"
            ).rstrip("/"),
            metrics_token=_secret(env, "METRICS_TOKEN", problems),
            metrics_networks=_networks(env, "METRICS_ALLOWED_NETWORKS", problems),
            log_format=log_format if log_format in LOG_FORMATS else "text",
            smtp_host=smtp_host,
            smtp_port=_port(env, "SMTP_PORT", SMTP_SECURITY[smtp_security], problems),
            smtp_security=smtp_security,
            smtp_user=env.get("SMTP_USER") or "",
            smtp_password=env.get("SMTP_PASSWORD") or "",
            smtp_from=env.get("SMTP_FROM") or "",
            staff_public_url=(env.get("STAFF_PUBLIC_URL") or f"http://localhost:{staff_port}").rstrip("/"),
            notify_retry_seconds=_count(env, "NOTIFY_RETRY_SECONDS", NOTIFY_RETRY_SECONDS, problems),
            notify_poll_seconds=_count(env, "NOTIFY_POLL_SECONDS", NOTIFY_POLL_SECONDS, problems),
        )
        if problems:
            raise SettingsError(
                "The settings in the environment need fixing:\n  - " + "\n  - ".join(problems)
            )
        return settings

    def conversation_key(self) -> bytes:
        """The key that signs conversation ids: CONVERSATION_SECRET, or (local) var/'s own."""
        return (self.conversation_secret or local_conversation_secret()).encode()

    def live_chat_key(self) -> str:
        """The console's secret for staff steps: LIVE_CHAT_SECRET, or one derived from the id key."""
        if self.live_chat_secret:
            return self.live_chat_secret
        return hmac.new(self.conversation_key(), b"live chat with staff", hashlib.sha256).hexdigest()

    def console_problems(self) -> list[str]:
        """What stops the staff console from starting with these settings (empty: nothing)."""
        problems = []
        if self.profile == "production" and self.staff_secret_key is None:
            problems.append(
                "The production profile signs the staff console's session cookies with a fixed key, "
                "shared by every console process: set STAFF_SECRET_KEY (at least 32 random characters)."
            )
        if self.profile == "production" and not (self.live_chat_secret or self.conversation_secret):
            problems.append(
                "The production profile's console sends live chat messages to the Rasa servers with a "
                "shared secret: set LIVE_CHAT_SECRET (the same for the console and every Rasa server)."
            )
        if not is_loopback(self.staff_host) and not self.staff_https:
            problems.append(
                f"The staff console would listen on {self.staff_host}, beyond this machine, without HTTPS: "
                "put it behind the clinic's HTTPS reverse proxy and set STAFF_HTTPS=1, or keep "
                "STAFF_HOST=127.0.0.1."
            )
        if self.profile == "production" and self.model_server_token is None:
            problems.append(
                "The production profile's console serves the published model to the Rasa servers "
                "with a shared secret: set MODEL_SERVER_TOKEN (the same as the Rasa servers')."
            )
        return problems

    @property
    def endpoints_file(self) -> Path:
        """The endpoints file of this profile."""
        return PROJECT_ROOT / PROFILES[self.profile]

    def endpoint_variables(self) -> dict[str, str]:
        """The ${...} values the endpoints files expand (Rasa refuses unset ones)."""
        return {
            "DATABASE_URL": self.database_url,
            "ACTION_SERVER_URL": self.action_server_url,
            "ACTION_SERVER_TOKEN": self.action_server_token or "",
            "REDIS_HOST": self.redis_host,
            "REDIS_PORT": str(self.redis_port),
            "REDIS_PASSWORD": self.redis_password,
            "REDIS_DB": str(self.redis_db),
            "MODEL_SERVER_URL": self.model_server_url,
            "MODEL_SERVER_TOKEN": self.model_server_token or "",
            "MODEL_PULL_SECONDS": str(self.model_pull_seconds),
        }


def current() -> Settings:
    """The settings of this process (environment and .env), without the start-up checks of the servers.

    The Rasa server and the action server ran those checks when they started (`load`).
    """
    return Settings.from_env(environment(), lock_store=False, serves_chat=False)


def load(lock_store: bool = True, serves_chat: bool = True) -> Settings:
    """Check the settings and export them (with .env's) to os.environ, where Rasa reads them."""
    env = environment()
    settings = Settings.from_env(env, lock_store, serves_chat)
    os.environ.update(env)
    os.environ.update(settings.endpoint_variables())
    return settings
