"""Staff accounts, roles, sign-in with throttling, and the audit log.

Passwords are hashed with Argon2 (argon2-cffi). Failed sign-ins are counted in the
database, so the limit holds across console processes and restarts; the typed name and the
address are stored only as keyed hashes. Each attempt is recorded before anything is
checked and counted including itself, so a burst of attempts at once can never check more
passwords (or second-factor codes, staff/service/second_factor.py) than the limit. The audit
log records who did what, to which reference, never a visitor's personal details.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from common.records.tables import audit_log, login_attempts, staff_users
from staff.service.db import as_utc, now

ROLES = ("reception", "editor", "admin")
ROLE_DESCRIPTIONS = {
    "reception": "consultation requests and conversations",
    "editor": (
        "unanswered questions, the assistant's answers and examples, clinic details and their "
        "history; conversations with personal details hidden"
    ),
    "admin": "everything, including staff accounts and the audit log",
}
# What each area of the console needs. Admins may do everything.
PERMISSIONS: dict[str, frozenset[str]] = {
    "today": frozenset(ROLES),
    "bookings": frozenset({"reception", "admin"}),
    "bookings_purge": frozenset({"admin"}),
    "erase": frozenset({"admin"}),  # erasing a person cannot be undone
    "inbox": frozenset({"editor", "admin"}),
    "content": frozenset({"editor", "admin"}),  # answers, examples, clinic details, history
    "wording": frozenset({"admin"}),  # add or retire approved framing sentences (editors see them)
    "training": frozenset({"editor", "admin"}),  # check and train, see the comparison
    "publish": frozenset({"admin"}),  # make a model live, roll back
    "conversations": frozenset(ROLES),
    "live": frozenset({"reception", "admin"}),  # chat live with visitors (staff/console/live.py)
    "personal_data": frozenset({"reception", "admin"}),  # transcripts unmasked
    "routing": frozenset({"admin"}),  # where requests with personal details are sent (the webhook)
    "users": frozenset({"admin"}),
    "audit": frozenset({"admin"}),
}
MIN_PASSWORD_CHARS = 12
NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{1,63}")
# Sign-in throttling: failures within the window, per typed name and per address.
THROTTLE_WINDOW = timedelta(minutes=15)
MAX_FAILURES_PER_NAME = 5
MAX_FAILURES_PER_ADDRESS = 20

_hasher = PasswordHasher()
# Verified when the name is unknown, so a wrong name takes as long as a wrong password.
_DUMMY_HASH = _hasher.hash("not a real password, only for timing")


class AccountError(ValueError):
    """A request about accounts that cannot be done; the message says why in plain words."""


@dataclass(frozen=True)
class StaffUser:
    """A staff member as the console sees them."""

    id: int
    name: str
    role: str
    active: bool
    session_version: int
    last_sign_in_at: datetime | None = None
    two_factor: bool = False  # signs in with a code from an authenticator app too

    def may(self, area: str) -> bool:
        """Whether this person's role may use `area` (a key of PERMISSIONS)."""
        return self.active and self.role in PERMISSIONS[area]


def _user(row: Any) -> StaffUser:
    return StaffUser(
        id=row.id,
        name=row.name,
        role=row.role,
        active=bool(row.active),
        session_version=row.session_version,
        last_sign_in_at=as_utc(row.last_sign_in_at),
        two_factor=row.totp_enabled_at is not None,
    )


def hash_secret(secret: str) -> str:
    """An Argon2 hash of a secret (a password, a recovery code)."""
    return _hasher.hash(secret)


def matches_secret(stored: str, secret: str) -> bool:
    """Whether `secret` is the one hashed in `stored`."""
    try:
        return _hasher.verify(stored, secret)
    except (VerificationError, InvalidHashError):
        return False


def check_password(password: str) -> None:
    """Raise AccountError if the password is too weak to use."""
    if len(password) < MIN_PASSWORD_CHARS:
        raise AccountError(f"The password must be at least {MIN_PASSWORD_CHARS} characters long.")
    if password.strip() != password:
        raise AccountError("The password must not start or end with a space.")


def create_user(engine: sa.engine.Engine, name: str, role: str, password: str) -> StaffUser:
    """Add a staff account; AccountError if the name, role or password will not do."""
    if not NAME.fullmatch(name):
        raise AccountError(
            "A user name is 2-64 letters, digits, dots, dashes or underscores, e.g. anna or anna.smith."
        )
    if role not in ROLES:
        raise AccountError(f"The role must be one of {', '.join(ROLES)}, not {role!r}.")
    check_password(password)
    try:
        with engine.begin() as db:
            db.execute(
                staff_users.insert().values(
                    name=name,
                    password_hash=_hasher.hash(password),
                    role=role,
                    active=True,
                    session_version=0,
                    created_at=now(),
                )
            )
    except sa.exc.IntegrityError:
        raise AccountError(f"There is already a staff member called {name}.") from None
    user = get_by_name(engine, name)
    assert user is not None
    return user


def get(engine: sa.engine.Engine, user_id: int) -> StaffUser | None:
    """The staff member with this id (None if there is none)."""
    with engine.connect() as db:
        row = db.execute(sa.select(staff_users).where(staff_users.c.id == user_id)).first()
    return _user(row) if row else None


def get_by_name(engine: sa.engine.Engine, name: str) -> StaffUser | None:
    """The staff member with this name, ignoring case (None if there is none)."""
    with engine.connect() as db:
        row = db.execute(
            sa.select(staff_users).where(sa.func.lower(staff_users.c.name) == name.strip().lower())
        ).first()
    return _user(row) if row else None


def list_users(engine: sa.engine.Engine) -> list[StaffUser]:
    """Every staff account, by name."""
    with engine.connect() as db:
        return [_user(r) for r in db.execute(sa.select(staff_users).order_by(staff_users.c.name))]


def count_users(engine: sa.engine.Engine) -> int:
    """How many staff accounts there are."""
    with engine.connect() as db:
        return db.execute(sa.select(sa.func.count()).select_from(staff_users)).scalar_one()


def _key(secret: bytes, kind: str, value: str) -> str:
    return hmac.new(secret, f"{kind}:{value}".encode(), hashlib.sha256).hexdigest()


@dataclass(frozen=True)
class SignIn:
    """The outcome of a sign-in attempt: the user, or a message for the sign-in page."""

    user: StaffUser | None
    message: str = ""
    throttled: bool = False


def _recent_failures(db: sa.engine.Connection, column: sa.Column, key: str, since: datetime) -> int:
    query = (
        sa.select(sa.func.count())
        .select_from(login_attempts)
        .where(column == key, login_attempts.c.at >= since, login_attempts.c.succeeded.is_(False))
    )
    return db.execute(query).scalar_one()


def throttled_message() -> str:
    """What the sign-in pages say while the limit holds."""
    minutes = int(THROTTLE_WINDOW.total_seconds() // 60)
    return (
        f"Too many failed sign-ins. Wait {minutes} minutes and try again, "
        "or ask an admin to check your account."
    )


def begin_attempt(engine: sa.engine.Engine, secret: bytes, name: str, address: str) -> int | None:
    """Record one sign-in attempt (a password or a code) and say whether it may be checked.

    The attempt is stored as a failure first, committed, and only then are the recent failures
    counted, itself included; it may be checked only if that count is within both limits. So of
    any number of attempts at once, the k-th to be committed counts at least k, and no more
    than the limit are ever checked (on SQLite and PostgreSQL alike). Returns the attempt's id
    (give it to settle_attempt with the outcome), or None if the limit is reached; that attempt
    is then removed, so refused attempts do not extend the wait.
    """
    name_key = _key(secret, "name", name.strip().lower())
    address_key = _key(secret, "address", address)
    with engine.begin() as db:
        attempt = db.execute(
            login_attempts.insert().values(
                at=now(), name_key=name_key, address_key=address_key, succeeded=False
            )
        ).inserted_primary_key[0]
    since = now() - THROTTLE_WINDOW
    with engine.connect() as db:
        within = (
            _recent_failures(db, login_attempts.c.name_key, name_key, since) <= MAX_FAILURES_PER_NAME
            and _recent_failures(db, login_attempts.c.address_key, address_key, since)
            <= MAX_FAILURES_PER_ADDRESS
        )
    if within:
        return int(attempt)
    with engine.begin() as db:
        db.execute(login_attempts.delete().where(login_attempts.c.id == attempt))
    return None


def settle_attempt(engine: sa.engine.Engine, attempt: int, succeeded: bool) -> None:
    """Record the outcome of a checked attempt (a failure stays counted)."""
    if succeeded:
        with engine.begin() as db:
            db.execute(login_attempts.update().where(login_attempts.c.id == attempt).values(succeeded=True))


def sign_in(engine: sa.engine.Engine, name: str, password: str, address: str, secret: bytes) -> SignIn:
    """Check a name and password, counting failures; too many recent ones refuse even a right password.

    A user returned here has passed the password only: whoever has a second factor (or must
    have one: admins) still gives a code before the console signs them in (views.py).
    """
    attempt = begin_attempt(engine, secret, name, address)
    if attempt is None:
        return SignIn(None, throttled_message(), throttled=True)
    with engine.connect() as db:
        row = db.execute(
            sa.select(staff_users).where(sa.func.lower(staff_users.c.name) == name.strip().lower())
        ).first()
    try:
        _hasher.verify(row.password_hash if row else _DUMMY_HASH, password)
        ok = row is not None and bool(row.active)
    except (VerificationError, InvalidHashError):
        ok = False
    settle_attempt(engine, attempt, ok)
    if not ok:
        return SignIn(None, "The name or password is not right. Check them and try again.")
    if _hasher.check_needs_rehash(row.password_hash):
        with engine.begin() as db:
            db.execute(
                staff_users.update()
                .where(staff_users.c.id == row.id)
                .values(password_hash=_hasher.hash(password))
            )
    return SignIn(get(engine, row.id))


def signed_in(engine: sa.engine.Engine, user_id: int) -> None:
    """Note the time of a completed sign-in (every step passed)."""
    with engine.begin() as db:
        db.execute(staff_users.update().where(staff_users.c.id == user_id).values(last_sign_in_at=now()))


def end_sessions(engine: sa.engine.Engine, user_id: int) -> None:
    """Sign this person out everywhere: every session cookie issued so far stops working."""
    with engine.begin() as db:
        db.execute(
            staff_users.update()
            .where(staff_users.c.id == user_id)
            .values(session_version=staff_users.c.session_version + 1)
        )


def set_password(engine: sa.engine.Engine, user_id: int, password: str) -> None:
    """Change a password (checked as for new accounts); every session of that person ends."""
    check_password(password)
    with engine.begin() as db:
        db.execute(
            staff_users.update()
            .where(staff_users.c.id == user_id)
            .values(password_hash=_hasher.hash(password), session_version=staff_users.c.session_version + 1)
        )


def set_role_and_active(engine: sa.engine.Engine, user_id: int, role: str, active: bool) -> None:
    """Change someone's role or switch their account off (their sessions end)."""
    if role not in ROLES:
        raise AccountError(f"The role must be one of {', '.join(ROLES)}, not {role!r}.")
    with engine.begin() as db:
        admins = db.execute(
            sa.select(sa.func.count())
            .select_from(staff_users)
            .where(staff_users.c.role == "admin", staff_users.c.active.is_(True), staff_users.c.id != user_id)
        ).scalar_one()
        if admins == 0 and (role != "admin" or not active):
            raise AccountError("This is the last active admin: make someone else an admin first.")
        db.execute(
            staff_users.update()
            .where(staff_users.c.id == user_id)
            .values(role=role, active=active, session_version=staff_users.c.session_version + 1)
        )


# ---- audit log ---------------------------------------------------------------------------
def audit(engine: sa.engine.Engine, staff_name: str, action: str, target: str = "", detail: str = "") -> None:
    """Record that `staff_name` did `action` to `target` (a reference or account, never personal data)."""
    with engine.begin() as db:
        db.execute(
            audit_log.insert().values(
                at=now(), staff_name=staff_name, action=action, target=target[:100], detail=detail[:200]
            )
        )


def audit_entries(engine: sa.engine.Engine, limit: int = 200, offset: int = 0) -> list[dict[str, Any]]:
    """The newest audit entries first."""
    query = sa.select(audit_log).order_by(audit_log.c.id.desc()).limit(limit).offset(offset)
    with engine.connect() as db:
        return [{**r, "at": as_utc(r["at"])} for r in db.execute(query).mappings()]
