"""Check and train, compare, publish and roll back; and the model server every Rasa server pulls from.

Editors start "Check and train" (one at a time, across console processes) and watch its
progress; the page then shows the comparison with the live model in plain words. Admins
publish a candidate that passed the gate, or roll back to the previous model. What the pages
show as live and what the model server serves are one value (`live_model`, from the
database). The Rasa servers take the live model from `GET /models/live.tar.gz` (Rasa's model server protocol:
`If-None-Match` with the fingerprint they have; 304 when it is the live one, else 200 with
the archive and its SHA-256 as ETag), authenticated with MODEL_SERVER_TOKEN.
"""

from __future__ import annotations

import hmac
import logging
from datetime import datetime
from pathlib import Path
from typing import Any

from flask import (
    Blueprint,
    Response,
    abort,
    flash,
    jsonify,
    redirect,
    render_template,
    request,
    send_file,
    url_for,
)
from flask_login import current_user

from common import model_archive
from staff.console.base import console, csrf, requires
from staff.service import blame, candidate, content, inbox
from staff.service import models as service

models = Blueprint("models", __name__, url_prefix="/models")
BLUEPRINTS = (models,)
logger = logging.getLogger(__name__)
SERVE_ENDPOINT = "models.live_archive"  # public: the Rasa servers authenticate with a token


@models.app_template_filter("clinic_time")
def clinic_time(moment: datetime | None, pattern: str = "%d %B %Y, %H:%M") -> str:
    """A moment in the clinic's time zone (clinic.yml), as on every other page."""
    if moment is None:
        return ""
    return moment.astimezone(console().clinic.zone).strftime(pattern)


def reach_seconds() -> int:
    """How long until every chat server answers with a newly live model (what the pages promise)."""
    return service.reach_seconds(console().settings.model_pull_seconds)


def live_model() -> service.Live:
    """The live model of this console's database."""
    state = console()
    return service.live(state.engine, state.settings.model, state.settings.model_store_dir)


@models.get("/", endpoint="index")
@requires("training")
def page() -> Any:
    """The live model, the newest (or chosen) training run with its progress or report, history."""
    state = console()
    runs = service.recent_runs(state.engine)
    chosen = request.args.get("run", "")
    run = None
    if chosen.isdigit():
        run = service.get_run(state.engine, int(chosen))
        if run is None:
            abort(404)
    elif runs:
        run = runs[0]
    live = live_model()
    return render_template(
        "models.html",
        live=live,
        run=run,
        runs=runs,
        publications=service.publications(state.engine),
        busy=any(r.active for r in runs),
        reach=reach_seconds(),
        wording=wording_of(run, live),
        suspects=suspects_of(run),
        may_roll_back=service.after_roll_back(
            state.engine, state.settings.model, state.settings.model_store_dir
        )
        is not None,
    )


def wording_of(run: service.Run | None, live: service.Live) -> list[service.Wording]:
    """The answers whose wording the run's model changes from the live model's (none: not comparable)."""
    if run is None or run.archive is None or run.sha256 is None or live.sha256 is None:
        return []
    if run.sha256 == live.sha256 or not Path(run.archive).is_file() or not live.archive.is_file():
        return []
    return service.wording_changes(live.archive, live.sha256, Path(run.archive), run.sha256)


def suspects_of(run: service.Run | None) -> list[blame.Suspect | None]:
    """The saved change most likely behind each of the run's new wrong answers (None: not found)."""
    if run is None:
        return []
    return [blame.Suspect(**s) if s else None for s in run.report.get("suspects") or []]


@models.get("/run/<int:run_id>/progress")
@requires("training")
def progress(run_id: int) -> Any:
    """A run's status for the page's progress bar (static/training.js)."""
    run = service.get_run(console().engine, run_id)
    if run is None:
        abort(404)
    return jsonify(active=run.active, status=run.status, stage=run.stage, progress=run.progress)


@models.post("/train")
@requires("training")
def start() -> Any:
    """Start "Check and train" (refused while another runs).

    Examples added from a conversation whose visitor has since erased it (in the chat) leave
    the data first, so no model learns from an erased visitor's words.
    """
    state = console()
    inbox.remove_erased_examples(state.engine, state.root, current_user.name)
    try:
        run_id = service.start_run(state.engine, current_user.name)
    except service.ModelError as error:
        flash(str(error), "error")
        return redirect(url_for("models.index"))
    store = state.settings.model_store_dir
    service.launch(run_id, state.root, candidate.log_path(store, run_id))
    state.audit("started check and train", f"training {run_id}")
    flash(
        "Checking and training started. This page shows its progress; you may leave it and come back.",
        "success",
    )
    return redirect(url_for("models.index", run=run_id))


@models.get("/run/<int:run_id>/publish", endpoint="confirm_publish")
@requires("publish")
def confirm_publish(run_id: int) -> Any:
    """Ask the admin to confirm: what the training changes for visitors, and how long until all have it."""
    state = console()
    run = service.get_run(state.engine, run_id)
    if run is None:
        abort(404)
    live = live_model()
    if live.sha256 is not None and live.sha256 == run.sha256:
        flash(f"Training {run.id} is already live: visitors get it now.", "info")
        return redirect(url_for("models.index", run=run_id))
    return render_template(
        "models_confirm.html",
        action="publish",
        run=run,
        live=live,
        wording=wording_of(run, live),
        comparison=run.comparison,
        reach=reach_seconds(),
    )


@models.post("/run/<int:run_id>/publish")
@requires("publish")
def publish(run_id: int) -> Any:
    """Make a candidate live on every server (refused, with the reason, unless it passed the gate).

    Only from the confirmation page (its "confirmed" field): a publish from anywhere else shows it.
    """
    state = console()
    if request.form.get("confirmed") != "yes":
        return redirect(url_for("models.confirm_publish", run_id=run_id))
    try:
        service.publish(
            state.engine, run_id, current_user.name, state.settings.model, state.settings.model_store_dir
        )
    except service.ModelError as error:
        flash(str(error), "error")
        return redirect(url_for("models.index", run=run_id))
    state.audit("published a model", f"training {run_id}")
    flash(
        f"Published. Every chat server answers with training {run_id} within {reach_seconds()} seconds "
        "(usually sooner), without a restart; conversations carry on.",
        "success",
    )
    return redirect(url_for("models.index", run=run_id))


@models.get("/rollback", endpoint="confirm_roll_back")
@requires("publish")
def confirm_roll_back() -> Any:
    """Ask the admin to confirm a roll back: which model comes back, what changes, how long."""
    state = console()
    live = live_model()
    back = service.after_roll_back(state.engine, state.settings.model, state.settings.model_store_dir)
    if back is None:
        flash("Nothing has been published: visitors get the assistant as installed.", "info")
        return redirect(url_for("models.index"))
    wording = []
    if live.sha256 and back.sha256 and live.archive.is_file() and back.archive.is_file():
        wording = service.wording_changes(live.archive, live.sha256, back.archive, back.sha256)
    return render_template(
        "models_confirm.html",
        action="roll back",
        live=live,
        back=back,
        wording=wording,
        reach=reach_seconds(),
    )


@models.post("/rollback")
@requires("publish")
def roll_back() -> Any:
    """Return to exactly the model published before the live one (or the assistant as installed).

    Only from the confirmation page (its "confirmed" field).
    """
    state = console()
    if request.form.get("confirmed") != "yes":
        return redirect(url_for("models.confirm_roll_back"))
    try:
        now_live = service.roll_back(
            state.engine, current_user.name, state.settings.model, state.settings.model_store_dir
        )
    except service.ModelError as error:
        flash(str(error), "error")
        return redirect(url_for("models.index"))
    what = f"training {now_live.run_id}" if now_live.run_id else "the assistant as installed"
    state.audit("rolled back the model", what)
    flash(
        f"Rolled back: {what} is live again. Every chat server answers with it within "
        f"{reach_seconds()} seconds (usually sooner).",
        "success",
    )
    return redirect(url_for("models.index"))


@models.post("/run/<int:run_id>/take-out/<int:number>", endpoint="take_out")
@requires("training")
def take_out(run_id: int, number: int) -> Any:
    """Take out the one saved change most likely behind a new wrong answer, keeping later edits."""
    state = console()
    if not current_user.may("content"):
        abort(403)
    run = service.get_run(state.engine, run_id)
    found = suspects_of(run)
    if run is None or not 0 <= number < len(found) or found[number] is None:
        abort(404)
    suspect = found[number]
    try:
        blame.take_out(state.root, suspect, current_user.name)
    except content.Refused as error:
        flash(" ".join([error.summary, *error.problems]), "error")
        return redirect(url_for("models.index", run=run_id))
    state.audit("took a change out", f"training {run_id}", suspect.example)
    done = "taken out of" if suspect.kind == blame.ADDED else "put back in"
    flash(
        f'The question "{suspect.example}" was {done} {suspect.place}; later changes stay. '
        "Check and train again to see the effect.",
        "success",
    )
    return redirect(url_for("models.index", run=run_id))


@models.get("/live.tar.gz", endpoint="live_archive")
@csrf.exempt
def live_archive() -> Any:
    """Rasa's model server: 304 if the caller has the live model, else the archive with its ETag."""
    state = console()
    token = state.settings.model_server_token
    if not token:
        abort(404)  # no token configured: the model server is off
    sent = request.headers.get("Authorization", "")
    if not hmac.compare_digest(sent.encode(), f"Bearer {token}".encode()):
        return Response("A valid model server token is required.\n", 401, {"Content-Type": "text/plain"})
    current = live_model()
    archive = Path(current.archive)
    if current.sha256 is None or not archive.is_file():
        return Response("No model to serve.\n", 404, {"Content-Type": "text/plain"})
    if model_archive.sha256(archive) != current.sha256:  # kept models never change: refuse a changed one
        logger.error("The live model's file %s has changed since it was published; not serving it.", archive)
        return Response("The live model's file is damaged.\n", 404, {"Content-Type": "text/plain"})
    if request.headers.get("If-None-Match", "").strip('"') == current.sha256:
        return Response(status=304, headers={"ETag": current.sha256})
    response = send_file(current.archive, mimetype="application/gzip", conditional=False, etag=False)
    response.headers["ETag"] = current.sha256  # Rasa keeps the header's value, unquoted, as the fingerprint
    response.headers["filename"] = "model.tar.gz"
    return response
