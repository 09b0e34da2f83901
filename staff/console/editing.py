"""The editor's pages: FAQ topics (answer, button title, examples), new topics, clinic details, history.

Each page reads and writes through staff/service/content.py (checks, round-trip writing, a
git commit per change) and staff/service/history.py; nothing here loads Rasa's model or
TensorFlow (the grounding check uses components/minilm.py).
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, abort, flash, jsonify, redirect, render_template, request, url_for
from flask_login import current_user

from common.clinic import WEEKDAYS
from common.names import RETRIEVAL_INTENT
from staff.console.base import console, requires
from staff.service import clinic_hours, describe, history, inbox, plain, releases, review, validate, wording
from staff.service import content as service

content = Blueprint("content", __name__, url_prefix="/answers")
clinic = Blueprint("clinic", __name__, url_prefix="/clinic")
changes = Blueprint("history", __name__, url_prefix="/history")
BLUEPRINTS = (content, clinic, changes)
MAX_ANSWER_FORM_CHARS = 2000
REMOVE = "remove"


def refusal_page(template: str, error: service.Refused, status: int = 400, **values: Any) -> Any:
    """The form again, with what the staff member typed and what is wrong (nothing was saved)."""
    return render_template(template, refusal=error, **values), status


def page_values() -> dict[str, Any]:
    """What every editing page shows: the topics, the document, the history's availability."""
    root = console().root
    return {
        "topics": service.topics(root),
        "document": service.document_lines(root),
        "history_problem": history.problem(root),
        "min_examples": validate.MIN_EXAMPLES,
        "max_answer": validate.MAX_ANSWER_CHARS,
    }


# ---- topics ------------------------------------------------------------------------------
@content.get("/", endpoint="index")
@requires("content")
def list_topics() -> Any:
    """Every FAQ topic with its button title, answer and number of examples."""
    return render_template("topics.html", **page_values())


@content.route("/topic/<key>", methods=["GET", "POST"])
@requires("content")
def edit_topic(key: str) -> Any:
    """One topic: its answer, button title and examples, beside the clinic's document."""
    state = console()
    current = service.topic(state.root, key)
    if current is None:
        abort(404)
    values = page_values()
    if request.method == "GET":
        return render_template(
            "topic.html",
            topic=current,
            answer=current.answer,
            title=current.title,
            version=service.version(state.root, service.topic_files(state.root)),
            check=wording.check_answer(state.root, current.answer),
            moves={},
            added="",
            **values,
        )
    form = request.form
    answer = (form.get("answer") or "")[:MAX_ANSWER_FORM_CHARS]
    moves = {}
    for index, example in enumerate(current.examples):
        target = form.get(f"move-{index}") or ""
        if target:
            moves[example] = target
    added = form.get("added") or ""
    change = service.TopicChange(
        answer=answer,
        title=form.get("title") or "",
        version=form.get("version") or "",
        moves=moves,
        added=added.splitlines(),
    )
    try:
        sha = service.change_topic(state.root, key, change, current_user.name)
    except (service.Refused, history.HistoryError) as error:
        refused = error if isinstance(error, service.Refused) else service.Refused(str(error))
        return refusal_page(
            "topic.html",
            refused,
            409 if "Someone else" in refused.summary else 400,
            topic=current,
            answer=answer,
            title=change.title,
            version=change.version,
            check=wording.check_answer(state.root, answer),
            moves={str(i): moves.get(e, "") for i, e in enumerate(current.examples)},
            added=added,
            **values,
        )
    state.audit(
        "changed a topic", plain.topic_title(state.root, f"{RETRIEVAL_INTENT}/{key}"), change_words(sha)
    )
    flash(f"Saved: it is listed in the History under your name. {service.TRAINING_NOTE}", "success")
    return redirect(url_for("content.edit_topic", key=key))


@content.route("/new", methods=["GET", "POST"])
@requires("content")
def new_topic() -> Any:
    """A new topic: title, answer, the document's supporting sentence(s), example questions."""
    state = console()
    # Questions marked "new topic needed" in the inbox (never one with [email] or [phone] in it).
    suggestions = [
        row["text"] for row in inbox.new_topics(state.engine) if review.unusable(row["text"]) is None
    ]
    values = page_values()
    if request.method == "GET":
        return render_template(
            "new_topic.html",
            title="",
            answer="",
            quotes=[],
            examples="",
            suggestions=suggestions,
            version=service.version(state.root, service.topic_files(state.root)),
            check=None,
            **values,
        )
    form = request.form
    answer = (form.get("answer") or "")[:MAX_ANSWER_FORM_CHARS]
    quotes = [int(n) for n in form.getlist("quote") if n.isdigit()]
    chosen = [text for text in form.getlist("suggestion") if text in suggestions]
    examples = (form.get("examples") or "").splitlines() + chosen
    new = service.NewTopic(
        title=form.get("title") or "",
        answer=answer,
        quotes=quotes,
        examples=examples,
        version=form.get("version") or "",
    )
    try:
        key, sha = service.add_topic(state.root, new, current_user.name)
    except (service.Refused, history.HistoryError) as error:
        refused = error if isinstance(error, service.Refused) else service.Refused(str(error))
        return refusal_page(
            "new_topic.html",
            refused,
            409 if "Someone else" in refused.summary else 400,
            title=new.title,
            answer=answer,
            quotes=quotes,
            examples="\n".join(e for e in examples if e.strip()),
            suggestions=[s for s in suggestions if s not in examples],
            version=new.version,
            check=wording.check_answer(state.root, answer) if answer.strip() else None,
            **values,
        )
    inbox.used_for_topic(state.engine, chosen, f"{RETRIEVAL_INTENT}/{key}")
    state.audit(
        "added a topic", plain.topic_title(state.root, f"{RETRIEVAL_INTENT}/{key}"), change_words(sha)
    )
    flash(f"The topic was added and listed in the History. {service.TRAINING_NOTE}", "success")
    return redirect(url_for("content.edit_topic", key=key))


@content.post("/check")
@requires("content")
def check() -> Any:
    """The grounding check as staff type (JSON, CSRF token in the X-CSRFToken header)."""
    data = request.get_json(silent=True) or {}
    answer = str(data.get("answer") or "")[:MAX_ANSWER_FORM_CHARS]
    try:
        result = wording.check_answer(console().root, answer)
    except service.Refused as error:
        return jsonify({"ok": False, "problems": [error.summary], "supporting": [], "sentences": []}), 200
    sentences = [
        {"sentence": r.sentence, "ok": r.ok, "why": r.why, "approvable": r.approvable}
        for r in result.sentences
    ]
    return jsonify(
        {
            "ok": result.ok,
            "problems": result.problems,
            "supporting": result.supporting,
            "sentences": sentences,
        }
    )


# ---- clinic details ----------------------------------------------------------------------
def refusal_status(refused: service.Refused) -> int:
    """403 for a change only an admin may make, 409 for a stale form, else 400."""
    if refused.summary == service.ROUTING_REFUSAL:
        return 403
    return 409 if "Someone else" in refused.summary else 400


def audit_routing(before: dict[str, str]) -> None:
    """Audit a change of where requests are sent (old host -> new host), if the save made one."""
    state = console()
    changes = service.routing_changes(before, service.routing(service.clinic_values(state.root)))
    if changes:
        state.audit("changed where requests are sent", "clinic details", changes)


def clinic_form_values(raw: dict[str, Any]) -> dict[str, Any]:
    """clinic.yml's values as the form's fields."""
    return {
        "values": {name: str(raw.get(name) or "") for name in service.CLINIC_FIELDS},
        "opening_days": [str(d).lower() for d in raw.get("opening_days") or []],
        "closed_dates": "\n".join(str(d) for d in raw.get("closed_dates") or []),
        "week": clinic_hours.week_rows(raw),
        "wait_minutes": f"{float(raw.get('live_chat_wait_minutes') or 3):g}",
        "max_waiting": str(raw.get("live_chat_max_waiting") or 5),
    }


def hours_from_form(form: Any) -> clinic_hours.HoursChange:
    """The hours part of the clinic form: a row per day, the wait, how many may wait."""
    return clinic_hours.HoursChange(
        week=[
            clinic_hours.DayHours(
                day,
                form.get(f"opens_{day}") or "",
                form.get(f"closes_{day}") or "",
                form.get(f"live_chat_{day}") == "1",
            )
            for day in WEEKDAYS
        ],
        wait_minutes=form.get("live_chat_wait_minutes") or "",
        max_waiting=form.get("live_chat_max_waiting") or "",
    )


@clinic.route("/", methods=["GET", "POST"], endpoint="edit")
@requires("content")
def edit_clinic() -> Any:
    """Phone, hours, address, opening days, closed dates, booking link and webhook."""
    state = console()
    extra = {
        "weekdays": WEEKDAYS,
        "history_problem": history.problem(state.root),
        "elsewhere": state.settings.clinic_settings.resolve() != (state.root / service.CLINIC).resolve(),
        "reads": state.settings.clinic_settings,
        "may_route": current_user.may("routing"),
        "timezone": state.clinic.timezone,
    }
    if request.method == "GET":
        return render_template(
            "clinic.html",
            version=service.version(state.root, (service.CLINIC,)),
            **clinic_form_values(service.clinic_values(state.root)),
            **extra,
        )
    form = request.form
    may_route = current_user.may("routing")
    before = service.routing(service.clinic_values(state.root))
    values = {name: form.get(name) or "" for name in service.CLINIC_FIELDS}
    if not may_route:  # the editor's form has no field for it: it stays as it is
        values.update({name: before[name] for name in service.ROUTING_FIELDS if name not in form})
    change = service.ClinicChange(
        values=values,
        opening_days=form.getlist("opening_days"),
        closed_dates=(form.get("closed_dates") or "").splitlines(),
        version=form.get("version") or "",
        # A form without the hours (an older page, a script) leaves them as they are.
        hours=hours_from_form(form) if f"opens_{WEEKDAYS[0]}" in form else None,
    )
    try:
        sha = service.change_clinic(state.root, change, current_user.name, may_route)
    except (service.Refused, history.HistoryError) as error:
        refused = error if isinstance(error, service.Refused) else service.Refused(str(error))
        if refused.summary == service.ROUTING_REFUSAL:
            state.audit("refused: change where requests are sent", "clinic details")
        return refusal_page(
            "clinic.html",
            refused,
            refusal_status(refused),
            version=change.version,
            values=change.values,
            opening_days=change.opening_days,
            closed_dates=form.get("closed_dates") or "",
            week=change.hours.week
            if change.hours
            else clinic_hours.week_rows(service.clinic_values(state.root)),
            wait_minutes=change.hours.wait_minutes if change.hours else "",
            max_waiting=change.hours.max_waiting if change.hours else "",
            **extra,
        )
    state.audit("changed clinic details", "clinic details", change_words(sha))
    audit_routing(before)
    flash(
        "Saved, and listed in the History. Every new conversation gets the new details at once: "
        "no training and no restart needed.",
        "success",
    )
    return redirect(url_for("clinic.edit"))


# ---- history -----------------------------------------------------------------------------
@changes.get("/", endpoint="index")
@requires("content")
def list_changes() -> Any:
    """Who changed what in the answers, examples, document and clinic details, newest first."""
    state = console()
    problem = history.problem(state.root)
    page = int(request.args.get("page", "1")) if request.args.get("page", "1").isdigit() else 1
    page = max(page, 1)
    found = [] if problem else history.shown_changes(state.root, limit=50, skip=(page - 1) * 50)
    rows = [(item, describe.title(state.root, item), describe.parts(item)) for item in found]
    return render_template(
        "history.html",
        rows=rows,
        more=len(found) == 50,
        problem=problem,
        page=page,
        zone=state.clinic.zone,
        proposals=releases.proposals(state.root),
    )


def change_words(sha: str) -> str:
    """A saved change's title in words, for the audit log (never its commit id)."""
    item = history.change(console().root, sha)
    return describe.title(console().root, item) if item else "a change"


@changes.get("/<sha>")
@requires("content")
def show(sha: str) -> Any:
    """One staff change: who, when, what it did in words (before and after), and its undo button."""
    state = console()
    if history.problem(state.root):
        abort(404)
    item = history.change(state.root, sha)
    shown = item is not None and ((item.by_staff and item.parents == 1) or item.is_release)
    if not shown:  # developers' work is not shown
        abort(404)
    return render_template(
        "change.html",
        item=item,
        title=describe.title(state.root, item),
        parts=describe.parts(item),
        described=describe.describe(state.root, item),
        zone=state.clinic.zone,
    )


def flash_refusal(error: service.Refused | history.HistoryError) -> None:
    """Show staff why a change was refused: the summary, then each problem."""
    refused = error if isinstance(error, service.Refused) else service.Refused(str(error))
    flash(refused.summary, "error")
    for problem in refused.problems:
        flash(problem, "error")


@changes.post("/<sha>/undo")
@requires("content")
def undo(sha: str) -> Any:
    """Undo one change as a new commit (refused, with the reason, if it conflicts or fails the checks)."""
    state = console()
    before = service.routing(service.clinic_values(state.root))
    try:
        new = service.undo(state.root, sha, current_user.name, current_user.may("routing"))
    except (service.Refused, history.HistoryError) as error:
        flash_refusal(error)
        return redirect(url_for("history.show", sha=sha))
    state.audit("undid a change", change_words(new))
    audit_routing(before)
    flash(
        "The change was undone, and the undo is listed in the History under your name. Clinic details "
        "take effect at once; answers and examples at the next training (Check and publish).",
        "success",
    )
    return redirect(url_for("history.index"))


# ---- a new release's change to words staff had changed (staff/service/releases.py) --------
@changes.post("/release/<proposal>/accept")
@requires("content")
def take_release_change(proposal: str) -> Any:
    """Take the release's version of words staff had changed, as a change under their name."""
    state = console()
    before = service.routing(service.clinic_values(state.root))
    try:
        sha = releases.accept(state.root, proposal, current_user.name, current_user.may("routing"))
    except (service.Refused, history.HistoryError) as error:
        flash_refusal(error)
        return redirect(url_for("history.index"))
    state.audit("took a new release's change", change_words(sha))
    audit_routing(before)
    flash(
        "The new release's version was taken, and is listed in the History under your name. Clinic "
        "details take effect at once; answers and examples at the next training (Check and publish).",
        "success",
    )
    return redirect(url_for("history.index"))


@changes.post("/release/<proposal>/dismiss")
@requires("content")
def leave_release_change(proposal: str) -> Any:
    """Keep staff's words: the release's version of them is no longer offered."""
    state = console()
    try:
        words = releases.dismiss(state.root, proposal)
    except (service.Refused, history.HistoryError) as error:
        flash(str(error), "error")
        return redirect(url_for("history.index"))
    state.audit("kept staff's words over a new release's change", words)
    flash("Your words were kept; the new release's version is no longer offered.", "success")
    return redirect(url_for("history.index"))
