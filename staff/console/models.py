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
from staff import candidate
from staff.console.app import console, csrf, requires
from staff.service import inbox
from staff.service import models as service

models = Blueprint("models", __name__, url_prefix="/models")
BLUEPRINTS = (models,)
logger = logging.getLogger(__name__)
SERVE_ENDPOINT = "models.live_archive"  # public: the Rasa servers authenticate with a token


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
    return render_template(
        "models.html",
        live=live_model(),
        run=run,
        runs=runs,
        publications=service.publications(state.engine),
        busy=any(r.active for r in runs),
        pull_seconds=state.settings.model_pull_seconds,
    )


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


@models.post("/run/<int:run_id>/publish")
@requires("publish")
def publish(run_id: int) -> Any:
    """Make a candidate live on every server (refused, with the reason, unless it passed the gate)."""
    state = console()
    try:
        service.publish(
            state.engine, run_id, current_user.name, state.settings.model, state.settings.model_store_dir
        )
    except service.ModelError as error:
        flash(str(error), "error")
        return redirect(url_for("models.index", run=run_id))
    state.audit("published a model", f"training {run_id}")
    flash(
        f"Published. Every chat server takes the new model within {state.settings.model_pull_seconds} "
        "seconds, without a restart; conversations carry on.",
        "success",
    )
    return redirect(url_for("models.index", run=run_id))


@models.post("/rollback")
@requires("publish")
def roll_back() -> Any:
    """Return to exactly the model published before the live one (or the assistant as installed)."""
    state = console()
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
        f"Rolled back: {what} is live again. Every chat server takes it within "
        f"{state.settings.model_pull_seconds} seconds.",
        "success",
    )
    return redirect(url_for("models.index"))


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
