"""E-mail notifications in the console: each staff member's choices, and the admins' page.

Staff choose on their account page which e-mails they want; an admin sets each staff member's
address, the sending address and whether e-mails carry the visitor's details (with a warning),
and sees every e-mail queued, sent or failed, and why (staff/service/notifications.py). Every
change an admin makes here is in the audit log.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, flash, redirect, render_template, request, url_for
from flask_login import current_user

from common.records.notifications import KIND_ROLES, KINDS
from staff.console.base import console, requires
from staff.service import accounts
from staff.service import notifications as service

notify = Blueprint("notify", __name__, url_prefix="/admin/notifications")
choose = Blueprint("choose", __name__, url_prefix="/account/notifications")
BLUEPRINTS = (notify, choose)


def kinds_for(role: str) -> dict[str, str]:
    """The kinds of e-mail a role may choose (about pages it may open), in staff's words."""
    return {kind: words for kind, words in KINDS.items() if role in KIND_ROLES[kind]}


def account_values(user_id: int, role: str) -> dict[str, Any]:
    """What the account page shows of e-mails: the kinds the role may choose, those chosen, the address."""
    engine = console().engine
    return {
        "kinds": kinds_for(role),
        "chosen": service.choices(engine, user_id),
        "address": service.addresses(engine).get(user_id),
    }


@choose.post("/", endpoint="save")
def save_choices() -> Any:
    """Save which e-mails the signed-in staff member wants."""
    state = console()
    kinds = set(request.form.getlist("kind")) & set(kinds_for(current_user.role))
    service.set_choices(state.engine, current_user.user.id, kinds)
    chosen = [KINDS[kind].lower() for kind in KINDS if kind in kinds]
    state.audit("chose e-mail notifications", current_user.name, ", ".join(chosen)[:200] or "none")
    flash("Your e-mail choices are saved.", "success")
    return redirect(url_for("account.index") + "#email-title")


@notify.route("/", methods=["GET", "POST"], endpoint="index")
@requires("users")
def index() -> Any:
    """The clinic's e-mail settings, staff's addresses, and the e-mails sent, waiting or failed."""
    state = console()
    if request.method == "POST":
        action = request.form.get("action")
        try:
            if action == "settings":
                sender = request.form.get("sender") or ""
                details = request.form.get("with_details") == "yes"
                before = service.clinic_settings(state.engine)
                service.save_clinic_settings(state.engine, sender, details, current_user.name)
                state.audit(
                    "changed the e-mail settings",
                    detail=f"sending address {sender.strip() or 'from the server settings'}; "
                    f"details {'on' if details else 'off'} (were {'on' if before.with_details else 'off'})",
                )
                flash("E-mail settings saved.", "success")
            elif action == "address":
                staff_id = request.form.get("id") or ""
                # a hand-changed form (not a number, or beyond any id) names nobody: said plainly
                user = (
                    accounts.get(state.engine, int(staff_id))
                    if staff_id.isascii() and staff_id.isdigit() and len(staff_id) < 10
                    else None
                )
                if user is None:
                    flash("There is no such staff account.", "error")
                else:
                    address = request.form.get("address") or ""
                    service.set_address(state.engine, user.id, address)
                    state.audit(
                        "set a staff e-mail address", user.name, "removed" if not address.strip() else "set"
                    )
                    flash(f"{user.name}'s e-mail address is saved.", "success")
        except service.NotificationError as problem:
            flash(str(problem), "error")
        return redirect(url_for("notify.index"))
    settings = service.clinic_settings(state.engine)
    return render_template(
        "notifications.html",
        settings=settings,
        server=state.settings,
        users=accounts.list_users(state.engine),
        addresses=service.addresses(state.engine),
        chosen=service.all_choices(state.engine),
        kinds=KINDS,
        rows=service.recent(state.engine),
        health=service.health(state.engine, state.settings),
        warning=service.DETAILS_WARNING,
        zone=state.clinic.zone,
    )
