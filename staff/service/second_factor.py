"""Staff's second factor: a code from an authenticator app (TOTP, pyotp) and one-time recovery codes.

Every code checked goes through the same sign-in limit as passwords (accounts.begin_attempt:
per name and per address). A code from the app works once: the step it belongs to is stored,
and a code of that step or an earlier one is refused. The app's secret is encrypted at rest
(Fernet, with a key derived from the console's STAFF_SECRET_KEY), so a copy of the database
alone (a backup, or the chat servers, which share it) does not give anyone the codes.
Recovery codes are stored as Argon2 hashes, like passwords, and shown only once.
"""

from __future__ import annotations

import base64
import hmac
import re
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass

import pyotp
import segno
import sqlalchemy as sa
from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from common.records.tables import recovery_codes, staff_users
from staff.service import accounts
from staff.service.db import now

STEP_SECONDS = 30
# The step before and after are accepted too: phones' clocks drift a little.
DRIFT_STEPS = 1
RECOVERY_CODE_COUNT = 10
_RECOVERY_ALPHABET = "abcdefghjkmnpqrstuvwxyz23456789"  # no 0/o, 1/l/i: easy to copy by hand
_RECOVERY_LENGTH = 10
APP_CODE = re.compile(r"\d{6}")
WRONG_CODE = "That code is not right, or was already used. Wait for the next code in the app and try again."


def _fernet(key: bytes) -> Fernet:
    """The encryption of secrets at rest, from the console's key (a key of its own, by HKDF)."""
    derived = HKDF(
        algorithm=hashes.SHA256(), length=32, salt=None, info=b"clinic staff console: second factor"
    ).derive(key)
    return Fernet(base64.urlsafe_b64encode(derived))


def _decrypt(key: bytes, stored: str | None) -> str | None:
    if not stored:
        return None
    try:
        return _fernet(key).decrypt(stored.encode()).decode()
    except InvalidToken:  # STAFF_SECRET_KEY was changed: only a recovery code or a reset helps
        return None


def start_enrolment(engine: sa.engine.Engine, user_id: int, key: bytes) -> str:
    """A new secret for the app, kept (encrypted) until a code from it is confirmed; returns it."""
    secret = pyotp.random_base32()
    with engine.begin() as db:
        db.execute(
            staff_users.update()
            .where(staff_users.c.id == user_id)
            .values(totp_pending_secret=_fernet(key).encrypt(secret.encode()).decode())
        )
    return secret


def pending_secret(engine: sa.engine.Engine, user_id: int, key: bytes) -> str | None:
    """The secret being set up (None if there is none)."""
    with engine.connect() as db:
        stored = db.execute(
            sa.select(staff_users.c.totp_pending_secret).where(staff_users.c.id == user_id)
        ).scalar_one_or_none()
    return _decrypt(key, stored)


@dataclass(frozen=True)
class Enrolment:
    """What the set-up page shows: the secret in groups to type, and the QR code to scan."""

    secret: str
    grouped: str
    qr_svg: str


def enrolment(secret: str, name: str, issuer: str) -> Enrolment:
    """The QR code (inline SVG, made here: no other site sees the secret) and the typed form."""
    uri = pyotp.TOTP(secret).provisioning_uri(name=name, issuer_name=issuer)
    svg = segno.make(uri, error="m").svg_inline(
        scale=4, border=4, light="#fff", title="QR code to scan with your authenticator app", svgclass="qr"
    )
    return Enrolment(secret, " ".join(secret[i : i + 4] for i in range(0, len(secret), 4)), svg)


def _matching_step(secret: str, code: str) -> int | None:
    """The 30-second step whose code this is (the current one, or one either side), else None."""
    if not APP_CODE.fullmatch(code):
        return None
    totp = pyotp.TOTP(secret)
    current = int(time.time()) // STEP_SECONDS
    for step in range(current - DRIFT_STEPS, current + DRIFT_STEPS + 1):
        if hmac.compare_digest(totp.generate_otp(step), code):
            return step
    return None


def _use_step(db: sa.engine.Connection, user_id: int, step: int) -> bool:
    """Mark this step used; False if it (or a later one) was used already (a code works once)."""
    used = db.execute(
        staff_users.update()
        .where(
            staff_users.c.id == user_id,
            sa.or_(staff_users.c.totp_last_step.is_(None), staff_users.c.totp_last_step < step),
        )
        .values(totp_last_step=step)
    )
    return used.rowcount == 1


def _clean(code: str) -> str:
    return re.sub(r"[^0-9a-z]", "", code.lower())


def _new_recovery_codes(db: sa.engine.Connection, user_id: int) -> list[str]:
    """Replace someone's recovery codes with ten new ones; the codes, to show once."""
    codes = [
        "".join(secrets.choice(_RECOVERY_ALPHABET) for _ in range(_RECOVERY_LENGTH))
        for _ in range(RECOVERY_CODE_COUNT)
    ]
    db.execute(recovery_codes.delete().where(recovery_codes.c.staff_id == user_id))
    stamp = now()
    for code in codes:
        db.execute(
            recovery_codes.insert().values(
                staff_id=user_id, code_hash=accounts.hash_secret(code), created_at=stamp
            )
        )
    return [f"{code[:5]}-{code[5:]}" for code in codes]


def _confirm(engine: sa.engine.Engine, user_id: int, key: bytes, code: str) -> list[str] | None:
    secret = pending_secret(engine, user_id, key)
    step = _matching_step(secret, code) if secret else None
    if step is None:
        return None
    with engine.begin() as db:
        if not _use_step(db, user_id, step):
            return None
        db.execute(
            staff_users.update()
            .where(staff_users.c.id == user_id)
            .values(
                totp_secret=staff_users.c.totp_pending_secret,
                totp_pending_secret=None,
                totp_enabled_at=now(),
            )
        )
        return _new_recovery_codes(db, user_id)


def _verify(engine: sa.engine.Engine, user_id: int, key: bytes, code: str) -> str | None:
    """Which kind of code this was ("app" or "recovery"), None if it is not right or was used."""
    with engine.connect() as db:
        stored = db.execute(
            sa.select(staff_users.c.totp_secret).where(staff_users.c.id == user_id)
        ).scalar_one_or_none()
        unused = db.execute(
            sa.select(recovery_codes.c.id, recovery_codes.c.code_hash).where(
                recovery_codes.c.staff_id == user_id, recovery_codes.c.used_at.is_(None)
            )
        ).all()
    secret = _decrypt(key, stored)
    typed = _clean(code)
    if APP_CODE.fullmatch(typed):
        step = _matching_step(secret, typed) if secret else None
        if step is None:
            return None
        with engine.begin() as db:
            return "app" if _use_step(db, user_id, step) else None
    if len(typed) != _RECOVERY_LENGTH:
        return None
    for row in unused:
        if accounts.matches_secret(row.code_hash, typed):
            with engine.begin() as db:
                spent = db.execute(
                    recovery_codes.update()
                    .where(recovery_codes.c.id == row.id, recovery_codes.c.used_at.is_(None))
                    .values(used_at=now())
                )
            return "recovery" if spent.rowcount == 1 else None
    return None


@dataclass(frozen=True)
class CodeCheck:
    """The outcome of a code: right (and which kind), or the message for the page."""

    ok: bool
    kind: str = ""  # "app" or "recovery"
    message: str = ""
    throttled: bool = False
    codes: tuple[str, ...] = ()  # new recovery codes, after setting up


def _throttled(
    engine: sa.engine.Engine,
    key: bytes,
    user: accounts.StaffUser,
    address: str,
    check: Callable[[], CodeCheck | None],
) -> CodeCheck:
    """Run `check` as one sign-in attempt of this person from this address (counted, limited)."""
    attempt = accounts.begin_attempt(engine, key, user.name, address)
    if attempt is None:
        return CodeCheck(False, message=accounts.throttled_message(), throttled=True)
    outcome = check()
    accounts.settle_attempt(engine, attempt, outcome is not None)
    return outcome or CodeCheck(False, message=WRONG_CODE)


def check_code(
    engine: sa.engine.Engine, key: bytes, user: accounts.StaffUser, code: str, address: str
) -> CodeCheck:
    """Check a code from the app or a recovery code at sign-in, within the sign-in limit."""

    def verify() -> CodeCheck | None:
        kind = _verify(engine, user.id, key, code)
        return CodeCheck(True, kind) if kind else None

    return _throttled(engine, key, user, address, verify)


def confirm_enrolment(
    engine: sa.engine.Engine, key: bytes, user: accounts.StaffUser, code: str, address: str
) -> CodeCheck:
    """Turn the second factor on once a code from the app is right; the new recovery codes."""

    def confirm() -> CodeCheck | None:
        codes = _confirm(engine, user.id, key, _clean(code))
        return CodeCheck(True, "app", codes=tuple(codes)) if codes else None

    return _throttled(engine, key, user, address, confirm)


def new_recovery_codes(engine: sa.engine.Engine, user_id: int) -> list[str]:
    """Ten new recovery codes (the old ones stop working), to show once."""
    with engine.begin() as db:
        return _new_recovery_codes(db, user_id)


def unused_recovery_codes(engine: sa.engine.Engine, user_id: int) -> int:
    """How many recovery codes this person has left."""
    with engine.connect() as db:
        return db.execute(
            sa.select(sa.func.count())
            .select_from(recovery_codes)
            .where(recovery_codes.c.staff_id == user_id, recovery_codes.c.used_at.is_(None))
        ).scalar_one()


def reset(engine: sa.engine.Engine, user_id: int) -> None:
    """Remove someone's second factor and recovery codes; their sessions end.

    An admin then sets a new one up at their next sign-in; anyone else signs in with their
    password only until they turn it on again.
    """
    with engine.begin() as db:
        db.execute(recovery_codes.delete().where(recovery_codes.c.staff_id == user_id))
        db.execute(
            staff_users.update()
            .where(staff_users.c.id == user_id)
            .values(
                totp_secret=None,
                totp_pending_secret=None,
                totp_enabled_at=None,
                totp_last_step=None,
                session_version=staff_users.c.session_version + 1,
            )
        )
