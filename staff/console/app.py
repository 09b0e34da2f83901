"""The console's Flask application: configuration, sign-in, security headers, errors, the pages.

What the pages share (the signed-in person, role checks, the running console) is in base.py.
"""

from __future__ import annotations

import secrets
from datetime import timedelta
from pathlib import Path
from typing import Any

from flask import Flask, Response, flash, g, redirect, render_template, request, url_for
from flask_login import current_user
from flask_wtf.csrf import CSRFError
from werkzeug.middleware.proxy_fix import ProxyFix

from common import metrics
from common import settings as deployment
from common.paths import PROJECT_ROOT, VAR_DIR
from common.records import live_chat
from staff.console import views
from staff.console.base import Console, SignedIn, SignedOut, csrf, login_manager
from staff.service import accounts, plain

HERE = Path(__file__).resolve().parent
SECRET_KEY_FILE = VAR_DIR / "staff-secret-key"
COOKIE_NAME = "clinic_staff_session"
# Pages open without being signed in (the sign-in steps, the model the Rasa servers fetch).
# /metrics checks its own token or address (common/metrics.py).
PUBLIC = frozenset(
    {"auth.login", "signin.code", "signin.enrol", "static", "health", "models.live_archive", "metrics"}
)
# Areas of the console: (endpoint, label, permission), in the navigation's order.
NAVIGATION = [
    ("today.home", "Today", "today"),
    ("live.index", "Live", "live"),
    ("bookings.index", "Bookings", "bookings"),
    ("inbox.index", "Unanswered questions", "inbox"),
    ("content.index", "Answers", "content"),
    ("wording.index", "Approved wording", "content"),
    ("clinic.edit", "Clinic details", "content"),
    ("stories.index", "Stories", "content"),
    ("history.index", "History", "content"),
    ("models.index", "Check and publish", "training"),
    ("conversations.index", "Conversations", "conversations"),
    ("admin.users", "Staff", "users"),
    ("notify.index", "E-mail notifications", "users"),
    ("admin.audit", "Audit log", "audit"),
]


# What an admin without a second factor may open: setting it up, signing out, and what needs no page.
ENROL_ONLY = frozenset({"account.enrol", "auth.logout", "static", "health"})


def local_secret_key() -> str:
    """The session key of a local console: made once and kept in var/ (production sets STAFF_SECRET_KEY)."""
    SECRET_KEY_FILE.parent.mkdir(parents=True, exist_ok=True)
    if not SECRET_KEY_FILE.exists():
        SECRET_KEY_FILE.touch(mode=0o600)
        SECRET_KEY_FILE.write_text(secrets.token_urlsafe(48), encoding="utf-8")
    return SECRET_KEY_FILE.read_text(encoding="utf-8").strip()


def create_app(settings: deployment.Settings | None = None, root: Path = PROJECT_ROOT) -> Flask:
    """The console's application; `root` is the project whose data/ the inbox adds examples to."""
    settings = settings or deployment.current()
    state = Console(settings, root)
    app = Flask(__name__, template_folder=str(HERE / "templates"), static_folder=str(HERE / "static"))
    secret_key = settings.staff_secret_key or local_secret_key()
    state.secret = secret_key.encode()
    lifetime = timedelta(minutes=settings.staff_session_minutes)
    app.config.update(
        SECRET_KEY=secret_key,
        SESSION_COOKIE_NAME=COOKIE_NAME,
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_SECURE=settings.staff_https,
        PERMANENT_SESSION_LIFETIME=lifetime,  # also the signature's maximum age
        SESSION_REFRESH_EACH_REQUEST=True,  # so the limit is time since the last request
        REMEMBER_COOKIE_DURATION=timedelta(0),
        WTF_CSRF_TIME_LIMIT=int(lifetime.total_seconds()),
        WTF_CSRF_SSL_STRICT=settings.staff_https,
        MAX_CONTENT_LENGTH=64 * 1024,
        TEMPLATES_AUTO_RELOAD=False,
    )
    if settings.staff_https:  # behind the clinic's HTTPS reverse proxy: trust its one hop
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=1, x_proto=1, x_host=1)  # type: ignore[method-assign]
    login_manager.init_app(app)
    login_manager.login_view = "auth.login"
    login_manager.login_message = "Please sign in to open that page."
    login_manager.login_message_category = "info"
    login_manager.session_protection = "basic"
    login_manager.anonymous_user = SignedOut
    csrf.init_app(app)

    @login_manager.user_loader
    def load_user(session_id: str) -> SignedIn | None:
        user_id, _, version = session_id.partition(":")
        if not user_id.isdigit() or not version.isdigit():
            return None
        user = accounts.get(state.engine, int(user_id))
        if user is None or not user.active or user.session_version != int(version):
            return None  # signed out everywhere, password changed or account switched off
        return SignedIn(user)

    @app.before_request
    def attach() -> Any:
        g.console = state
        # The model server (staff/console/models.py) checks the Rasa servers' token itself.
        # The second step of signing in checks the first step itself (staff/console/account.py).
        public = request.endpoint in PUBLIC
        if not public and not current_user.is_authenticated:
            return login_manager.unauthorized()
        if (
            current_user.is_authenticated
            and current_user.role == "admin"
            and not current_user.user.two_factor
            and request.endpoint not in ENROL_ONLY
        ):
            # Admins use the console only with a second factor: nothing else until it is set up.
            flash("Admins sign in with a second factor: set up your authenticator app first.", "info")
            return redirect(url_for("account.enrol"))
        return None

    @app.after_request
    def headers(response: Any) -> Any:
        response.headers["Content-Security-Policy"] = (
            "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
            "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
        )
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers["X-Frame-Options"] = "DENY"
        response.headers["Referrer-Policy"] = "same-origin"
        if request.endpoint != "static":
            response.headers["Cache-Control"] = "no-store"  # pages hold personal data
        return response

    # {{ name|topic }}: an intent, response or action as staff call it (staff/service/plain.py).
    app.jinja_env.filters["topic"] = lambda name: plain.topic_title(state.root, name)
    # {{ text|words }}: a text naming stories or topics by their file names, in staff's words.
    app.jinja_env.filters["words"] = lambda text: plain.in_words(state.root, str(text))

    @app.context_processor
    def navigation() -> dict[str, Any]:
        items = [(endpoint, label) for endpoint, label, area in NAVIGATION if current_user.may(area)]
        return {"navigation": items, "clinic_name": state.clinic.name}

    @app.errorhandler(CSRFError)
    def csrf_refused(error: CSRFError) -> Any:
        return (
            render_template(
                "error.html",
                title="This form could not be accepted",
                message="The form was too old or was not sent from the console (its security token "
                "was missing or wrong). Nothing was changed. Go back, reload the page and try again.",
            ),
            400,
        )

    @app.errorhandler(403)
    def forbidden(error: Any) -> Any:
        return (
            render_template(
                "error.html",
                title="Your role cannot open this page",
                message=f"You are signed in as {current_user.name} ({current_user.role}). "
                "Ask an admin if you need this page for your work.",
            ),
            403,
        )

    @app.errorhandler(404)
    def not_found(error: Any) -> Any:
        return (
            render_template(
                "error.html",
                title="Page not found",
                message="There is no such page or record. It may have been deleted; check the address or "
                "go back to Today.",
            ),
            404,
        )

    @app.errorhandler(413)
    def too_large(error: Any) -> Any:
        return render_template("error.html", title="Too much text", message="The form was too long."), 413

    @app.errorhandler(500)
    def failed(error: Any) -> Any:
        return (
            render_template(
                "error.html",
                title="Something went wrong",
                message="The console could not finish that. Nothing was lost; try again in a minute, "
                "and tell the developers if it keeps happening.",
            ),
            500,
        )

    @app.get("/health")
    def health() -> tuple[str, int, dict[str, str]]:
        return "ok", 200, {"Content-Type": "text/plain"}

    metrics.watch_live_chat_queue(lambda: live_chat.queue(live_chat.engine(settings.database_url)))

    @app.get(metrics.PATH, endpoint="metrics")
    def metrics_page() -> Response:
        # The connecting address, not one a proxy (ProxyFix) passed on in X-Forwarded-For.
        peer = request.environ.get("werkzeug.proxy_fix.orig", {}).get("REMOTE_ADDR") or request.environ.get(
            "REMOTE_ADDR"
        )
        status, body, headers = metrics.answer(settings, metrics.CONSOLE, request.headers, peer)
        return Response(body, status=status, headers=headers)

    views.register(app)
    return app
