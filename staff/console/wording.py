"""The Approved wording page: the framing sentences answers may use beyond the clinic's document.

Editors see the list (who added each sentence, when, and which answers use it); admins add a
sentence (refused, in plain words, if it states a figure, price, time or promise) or retire
one (refused, naming the answers, while an answer still uses it). Each change is a commit in
the History (undoable there) and a line in the audit log; staff/service/wording.py does the work.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from flask_login import current_user

from staff.console.base import console, requires
from staff.service import content as content_service
from staff.service import history
from staff.service import wording as service

wording = Blueprint("wording", __name__, url_prefix="/wording")
BLUEPRINTS = (wording,)
AUDIT_TARGET = "approved wording"


def page(refusal: content_service.Refused | None = None, typed: str = "", status: int = 200) -> Any:
    """The list of framing sentences, and for an admin the form to add one (with what was typed)."""
    state = console()
    return (
        render_template(
            "wording.html",
            sentences=service.framing_sentences(state.root),
            version=service.version(state.root),
            may_change=current_user.may("wording"),
            history_problem=history.problem(state.root),
            refusal=refusal,
            typed=typed,
            zone=state.clinic.zone,
            max_chars=service.MAX_SENTENCE_CHARS,
        ),
        status,
    )


def status_of(refused: content_service.Refused) -> int:
    """409 for a page opened before someone else's save, else 400."""
    return 409 if "Someone else" in refused.summary else 400


@wording.get("/", endpoint="index")
@requires("content")
def index() -> Any:
    """The framing sentences; `?sentence=` fills the admin's form (from the answer editor's link)."""
    typed = (request.args.get("sentence") or "")[: service.MAX_SENTENCE_CHARS * 2]
    return page(typed=typed if current_user.may("wording") else "")


@wording.post("/add")
@requires("wording")
def add() -> Any:
    """Approve a framing sentence (admins)."""
    state = console()
    sentence = (request.form.get("sentence") or "")[: service.MAX_SENTENCE_CHARS * 2]
    try:
        service.add(state.root, sentence, request.form.get("version") or "", current_user.name)
    except (content_service.Refused, history.HistoryError) as error:
        refused = error if isinstance(error, content_service.Refused) else content_service.Refused(str(error))
        return page(refused, sentence, status_of(refused))
    state.audit("approved a framing sentence", AUDIT_TARGET, service.clean(sentence))
    flash(
        "The sentence is approved: answers may now use it word for word, and the check on Answers passes "
        "it at once. It is listed in the History, where it can be undone.",
        "success",
    )
    return redirect(url_for("wording.index"))


@wording.post("/retire")
@requires("wording")
def retire() -> Any:
    """Retire a framing sentence (admins); refused, naming them, while answers use it."""
    state = console()
    sentence = request.form.get("sentence") or ""
    if not sentence:
        abort(400)
    try:
        service.retire(state.root, sentence, request.form.get("version") or "", current_user.name)
    except (content_service.Refused, history.HistoryError) as error:
        refused = error if isinstance(error, content_service.Refused) else content_service.Refused(str(error))
        return page(refused, status=status_of(refused))
    state.audit("retired a framing sentence", AUDIT_TARGET, sentence)
    flash(
        "The sentence is retired: the check on Answers no longer passes it. It is listed in the History, "
        "where it can be undone.",
        "success",
    )
    return redirect(url_for("wording.index"))
