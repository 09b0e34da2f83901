"""Signing in with a second factor, setting one up, and each staff member's account page.

Sign-in is two steps: the password (views.login), then a code from the authenticator app or a
recovery code (here). Between the two the session holds only who passed the password and
when; nobody is signed in until both steps pass. An admin without a second factor is sent to
set one up straight after the password and can open nothing else until it is done. Every
code checked counts in the sign-in limit (staff/service/second_factor.py).
"""

from __future__ import annotations

import time
from typing import Any

from flask import Blueprint, abort, flash, redirect, render_template, request, session, url_for
from flask_login import current_user, login_user

from common import metrics
from staff.console.base import SignedIn, console, safe_next
from staff.service import accounts, second_factor

signin = Blueprint("signin", __name__, url_prefix="/login")
account = Blueprint("account", __name__, url_prefix="/account")
BLUEPRINTS = (signin, account)
PENDING = "signin"
PENDING_SECONDS = 10 * 60  # time to give the code (or set up the app) after the password


def issuer() -> str:
    """The name the authenticator app shows beside the code."""
    return f"{console().clinic.name} staff".replace(":", " ")


def needs_second_factor(user: accounts.StaffUser) -> bool:
    """Whether this person gives a code after their password (set up, or an admin who must)."""
    return user.two_factor or user.role == "admin"


def begin(user: accounts.StaffUser, next_page: str | None) -> Any:
    """After a right password: ask for the code, or (an admin without one) set it up."""
    session.clear()
    session[PENDING] = {
        "id": user.id,
        "version": user.session_version,
        "at": int(time.time()),
        "next": safe_next(next_page),
    }
    return redirect(url_for("signin.code" if user.two_factor else "signin.enrol"))


def pending_user() -> accounts.StaffUser | None:
    """Who passed the password in this browser, in the last 10 minutes (None: start again)."""
    pending = session.get(PENDING)
    if not isinstance(pending, dict) or time.time() - pending.get("at", 0) > PENDING_SECONDS:
        return None
    user = accounts.get(console().engine, int(pending.get("id", 0)))
    if user is None or not user.active or user.session_version != pending.get("version"):
        return None
    return user


def complete(user: accounts.StaffUser, how: str) -> str:
    """Sign this person in (both steps passed); where to go next."""
    state = console()
    target = (session.get(PENDING) or {}).get("next") or url_for("today.home")
    session.clear()
    session.permanent = True
    login_user(SignedIn(accounts.get(state.engine, user.id) or user))
    accounts.signed_in(state.engine, user.id)
    accounts.audit(state.engine, user.name, "signed in", detail=how)
    return safe_next(target)


def start_again() -> Any:
    """The password step again (the first step was not done, or too long ago)."""
    session.pop(PENDING, None)
    flash("Sign in with your name and password first (after 10 minutes you start again).", "info")
    return redirect(url_for("auth.login"))


def address() -> str:
    """The address the sign-in limit counts by."""
    return request.remote_addr or ""


# ---- the second step of signing in -------------------------------------------------------
@signin.route("/code", methods=["GET", "POST"])
def code() -> Any:
    """The code from the authenticator app, or a recovery code."""
    user = pending_user()
    if user is None or not user.two_factor:
        return start_again()
    message, status = "", 200
    if request.method == "POST":
        typed = (request.form.get("code") or "").strip()[:40]
        if not typed:
            message, status = "Enter the 6-digit code your authenticator app shows now.", 400
        else:
            state = console()
            result = second_factor.check_code(state.engine, state.secret, user, typed, address())
            if result.ok:
                target = complete(user, "with a recovery code" if result.kind == "recovery" else "")
                if result.kind == "recovery":
                    left = second_factor.unused_recovery_codes(state.engine, user.id)
                    flash(
                        f"You signed in with a recovery code; it cannot be used again. You have {left} "
                        "left: make new ones on Your account if you are running out.",
                        "info",
                    )
                return redirect(target)
            message, status = result.message, 429 if result.throttled else 401
            metrics.SIGN_IN_FAILURES.labels(reason="throttled" if result.throttled else "code").inc()
    return render_template("code.html", message=message, name=user.name), status


def enrol_page(user: accounts.StaffUser, action: str, message: str = "", status: int = 200) -> Any:
    """The set-up page: the QR code and the secret to type, and the box for the first code."""
    state = console()
    secret = second_factor.pending_secret(state.engine, user.id, state.secret)
    if secret is None:
        secret = second_factor.start_enrolment(state.engine, user.id, state.secret)
    setup = second_factor.enrolment(secret, user.name, issuer())
    required = user.role == "admin"
    return (
        render_template("enrol.html", setup=setup, action=action, message=message, required=required),
        status,
    )


def confirm(user: accounts.StaffUser) -> tuple[second_factor.CodeCheck | None, str, int]:
    """The first code from the app: the outcome, or the page's message and status."""
    typed = (request.form.get("code") or "").strip()[:40]
    if not typed:
        return None, "Enter the 6-digit code your authenticator app shows now.", 400
    state = console()
    result = second_factor.confirm_enrolment(state.engine, state.secret, user, typed, address())
    if result.ok:
        return result, "", 200
    return None, result.message, 429 if result.throttled else 401


@signin.route("/set-up", methods=["GET", "POST"])
def enrol() -> Any:
    """An admin without a second factor sets it up before the console opens."""
    user = pending_user()
    if user is None or user.two_factor:
        return start_again()
    if request.method == "GET":
        return enrol_page(user, url_for("signin.enrol"))
    result, message, status = confirm(user)
    if result is None:
        return enrol_page(user, url_for("signin.enrol"), message, status)
    target = complete(user, "after setting up a second factor")
    accounts.audit(console().engine, user.name, "set up a second factor", user.name)
    return render_template("recovery_codes.html", codes=result.codes, target=target)


# ---- your account ------------------------------------------------------------------------
@account.get("/", endpoint="index")
def show() -> Any:
    """Your second factor: set it up, new recovery codes, turn it off (not for admins)."""
    state = console()
    user = current_user.user
    left = second_factor.unused_recovery_codes(state.engine, user.id) if user.two_factor else 0
    from staff.console import notify

    return render_template("account.html", user=user, left=left, **notify.account_values(user.id, user.role))


@account.route("/two-factor", methods=["GET", "POST"], endpoint="enrol")
def account_enrol() -> Any:
    """Set up an authenticator app while signed in."""
    user = current_user.user
    if user.two_factor:
        return redirect(url_for("account.index"))
    if request.method == "GET":
        return enrol_page(user, url_for("account.enrol"))
    result, message, status = confirm(user)
    if result is None:
        return enrol_page(user, url_for("account.enrol"), message, status)
    state = console()
    state.audit("set up a second factor", user.name)
    # The user's sessions are unchanged: this one stays signed in.
    login_user(SignedIn(accounts.get(state.engine, user.id) or user))
    return render_template("recovery_codes.html", codes=result.codes, target=url_for("account.index"))


def code_checked(action: str) -> bool:
    """Whether the form's code (app or recovery) is right; flashes why not."""
    state = console()
    typed = (request.form.get("code") or "").strip()[:40]
    if not typed:
        flash(f"Enter a code from your authenticator app to {action}.", "error")
        return False
    result = second_factor.check_code(state.engine, state.secret, current_user.user, typed, address())
    if not result.ok:
        flash(result.message, "error")
    return result.ok


@account.post("/recovery-codes")
def recovery_codes() -> Any:
    """Ten new recovery codes (the old ones stop working), after a code from the app."""
    state = console()
    user = current_user.user
    if not user.two_factor:
        abort(404)
    if not code_checked("make new recovery codes"):
        return redirect(url_for("account.index"))
    codes = second_factor.new_recovery_codes(state.engine, user.id)
    state.audit("made new recovery codes", user.name)
    return render_template("recovery_codes.html", codes=codes, target=url_for("account.index"))


@account.post("/turn-off")
def turn_off() -> Any:
    """Turn the second factor off (not for admins, who must have one), after a code from the app."""
    state = console()
    user = current_user.user
    if not user.two_factor:
        return redirect(url_for("account.index"))
    if user.role == "admin":
        flash("Admins always sign in with a second factor; it cannot be turned off.", "error")
        return redirect(url_for("account.index"))
    if not code_checked("turn the second factor off"):
        return redirect(url_for("account.index"))
    second_factor.reset(state.engine, user.id)  # ends every session, this one included
    state.audit("turned off their second factor", user.name)
    login_user(SignedIn(accounts.get(state.engine, user.id) or user))
    flash("The second factor is off: you sign in with your password only.", "success")
    return redirect(url_for("account.index"))
