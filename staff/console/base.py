"""What every page of the console uses: the signed-in person, role checks, the running console.

The pages (views.py and the area modules beside it) import this; app.py builds the Flask
application from it and from the pages, so nothing imports app.py but the server and tests.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from flask import abort, g, url_for
from flask_login import AnonymousUserMixin, LoginManager, UserMixin, current_user
from flask_wtf.csrf import CSRFProtect

from common import settings as deployment
from common.clinic import load_settings
from common.records.bookings import BookingStore
from staff.service import accounts, db


class SignedIn(UserMixin):
    """The signed-in staff member, as Flask-Login needs them."""

    def __init__(self, user: accounts.StaffUser) -> None:
        self.user = user

    def get_id(self) -> str:
        """The session's id: the user and their session version (raised by sign-out everywhere)."""
        return f"{self.user.id}:{self.user.session_version}"

    @property
    def name(self) -> str:
        """The staff member's name."""
        return self.user.name

    @property
    def role(self) -> str:
        """The staff member's role."""
        return self.user.role

    def may(self, area: str) -> bool:
        """Whether their role may use this area of the console."""
        return self.user.may(area)


class SignedOut(AnonymousUserMixin):
    """Nobody signed in: may do nothing."""

    name = ""
    role = ""

    def may(self, area: str) -> bool:
        """Nothing is allowed."""
        return False


def requires(area: str) -> Callable:
    """A view decorator: the signed-in person's role must allow `area` (else 403)."""

    def decorate(view: Callable) -> Callable:
        @wraps(view)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            if not current_user.is_authenticated:
                return login_manager.unauthorized()
            if not current_user.may(area):
                abort(403)
            return view(*args, **kwargs)

        return wrapper

    return decorate


def safe_next(target: str | None) -> str:
    """A post-sign-in destination on this site only (never another host)."""
    if not target:
        return url_for("today.home")
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not target.startswith("/") or target.startswith("//"):
        return url_for("today.home")
    return target


login_manager = LoginManager()
csrf = CSRFProtect()


class Console:
    """What the views need: the database, the stores, the clinic's settings, the project root."""

    def __init__(self, settings: deployment.Settings, root: Path) -> None:
        self.settings = settings
        self.root = root
        self.database_url = settings.database_url
        self.engine = db.engine(settings.database_url)  # runs the migrations
        self.store = BookingStore(settings.database_url)
        self.secret = b""

    @property
    def clinic(self) -> Any:
        """clinic.yml (read at each request: a change needs no restart)."""
        return load_settings()

    def audit(self, action: str, target: str = "", detail: str = "") -> None:
        """Record what the signed-in person did."""
        accounts.audit(self.engine, current_user.name or "(nobody)", action, target, detail)


def console() -> Console:
    """The running console (for views)."""
    return g.console  # type: ignore[no-any-return]
