"""One "Check and train" run, in its own process: check, train a candidate, compare it with the live model.

The process is staff/commands/candidate.py (python -m staff.commands.candidate RUN_ID --root PROJECT),
started by the console (staff/service/models.py `launch`); writes its stage, progress and
report to the run's row, which the console's page shows. The checks are `make validate`'s;
a candidate is trained with `make train`'s command into MODEL_STORE_DIR, named by the
digest of the files it learns from (so when nothing it learns from changed, for instance
only a conversation test, the model already there is reused). Rasa's own checks (a Rasa start of
their own) run while the candidate starts training, which they stop if they refuse the data, and
`rasa train` does not repeat them; the live model answers the held-out questions while the
candidate trains; then the candidate answers them and runs the conversation tests
(staff/service/evaluate.py). Staff see plain words; the details are in the run's log file.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from common import model_archive
from common import settings as deployment
from common.records import tables
from staff.service import blame, content, db, evaluate, plain, train, validate
from staff.service import models as service

HEARTBEAT_SECONDS = 5.0


def log_path(store: Path, run_id: int) -> Path:
    """Where a run's process writes Rasa's output (for developers; staff see the page)."""
    return store / f"candidate-{run_id}.log"


def keep_alive(engine: sa.engine.Engine, run_id: int, stop: threading.Event) -> None:
    """Refresh the run's heartbeat until `stop` (so a live run is never taken for a stopped one)."""
    while not stop.wait(HEARTBEAT_SECONDS):
        with engine.begin() as connection:
            connection.execute(
                tables.training_runs.update()
                .where(tables.training_runs.c.id == run_id)
                .values(heartbeat_at=db.now())
            )


class RasaCheck:
    """Rasa's own data checks (`rasa data validate`, staff/service/validate.py) in the background.

    The project's own checks come first and are quick; Rasa's load Rasa first (a few seconds in
    this process, which needs it for the comparison anyway), so they run while the candidate
    starts training, and a training they refuse is stopped.
    """

    def __init__(self, root: Path) -> None:
        self.root = root
        self.ran: tuple[int, str] | None = None
        self.failure: Exception | None = None  # the check itself could not run: a fault, not the data's
        self.found: list[str] | None = None
        self.thread = threading.Thread(target=self._run, name="rasa-check", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        try:
            self.ran = validate.rasa_output(self.root)
        except Exception as error:  # raised again by problems(): the run fails, staff's data is not blamed
            self.failure = error

    def problems(self) -> list[str]:
        """Rasa's problems with the project, in plain words, once its check ended (empty: none)."""
        if self.found is None:
            self.thread.join()
            if self.failure is not None:
                raise RuntimeError("Rasa's own data check could not run") from self.failure
            project, _ = validate.load(self.root)
            found = validate.rasa_problems(project, self.root, self.ran)
            self.found = [plain.problem(self.root, p.place.path, p.message) for p in found]
        return self.found

    def refused(self) -> bool:
        """Whether the check has ended and found problems (without waiting for it)."""
        return not self.thread.is_alive() and bool(self.problems())


def rasa_cache(store: Path) -> Path:
    """Rasa's training cache for the candidates of this model store (RASA_CACHE_DIRECTORY)."""
    return store / "rasa-cache"


def archive_path(store: Path, digest: str) -> Path:
    """Where the model trained from files with this digest is kept (the same files, the same model)."""
    return store / f"model-{digest[:24]}.tar.gz"


def train_candidate(
    engine: sa.engine.Engine,
    run_id: int,
    root: Path,
    store: Path,
    digest: str,
    give_up: Callable[[], bool] = lambda: False,
) -> tuple[Path, float]:
    """Train the candidate, reporting progress from the last training's time; its archive and seconds.

    `give_up` is asked every 2 s; when it says so the training is stopped (and RuntimeError raised).
    """
    estimate = service.last_training_seconds(engine)
    name = f"training-{run_id}-{os.getpid()}"
    store.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    with log_path(store, run_id).open("ab") as log:
        process = subprocess.Popen(
            train.train_command(root, store, name, checked=True),  # check() just ran Rasa's
            cwd=root,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=train.train_environment(
                {
                    # Rasa's training cache in the store (the project may be read-only), kept between runs.
                    "RASA_CACHE_DIRECTORY": str(rasa_cache(store)),
                    **os.environ,
                    "RASA_TELEMETRY_ENABLED": "false",
                    "TF_CPP_MIN_LOG_LEVEL": "3",
                }
            ),
        )
        try:
            while process.poll() is None:
                elapsed = time.monotonic() - started
                left = max(estimate - elapsed, 0)
                stage = (
                    f"Training the new model (about {left:.0f} s left)"
                    if left
                    else "Training the new model (nearly done)"
                )
                service.report_progress(
                    engine, run_id, "training", stage, 10 + int(70 * min(elapsed / estimate, 0.97))
                )
                try:
                    process.wait(timeout=2)
                except subprocess.TimeoutExpired:
                    if give_up():
                        break
        finally:  # stopped, refused, or anything above raising: no training left running on its own
            if process.poll() is None:
                process.terminate()
                process.wait()
    trained = store / f"{name}.tar.gz"
    if process.returncode != 0 or not trained.is_file():
        raise RuntimeError(f"rasa train ended with {process.returncode}")
    archive = archive_path(store, digest)
    trained.replace(archive)  # whole or not at all: never a half-written model under its name
    return archive, time.monotonic() - started


def folder_digest(root: Path, folder: Path) -> str:
    """SHA-256 over the YAML files of a folder (the held-out questions, or the conversation tests)."""
    digest = hashlib.sha256()
    for path in sorted((root / folder).rglob("*.yml")):
        digest.update(path.relative_to(root).as_posix().encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


def judged(
    store: Path, kind: str, model: Path, tests: str, work: Callable[[], dict[str, Any]]
) -> dict[str, Any]:
    """`work()`'s results for this model and these tests, kept in the store: a model is judged once."""
    kept = store / f"{kind}-{model_archive.sha256(model)[:24]}-{tests[:16]}.json"
    if kept.is_file():
        return json.loads(kept.read_text(encoding="utf-8"))
    results = work()
    draft = kept.with_suffix(f".{os.getpid()}.tmp")
    draft.write_text(json.dumps(results), encoding="utf-8")
    draft.replace(kept)
    return results


def live_heldout(
    engine: sa.engine.Engine, root: Path, settings: deployment.Settings, checked: RasaCheck
) -> threading.Thread:
    """Ask the live model the held-out questions in the background (kept in the store by `judged`).

    Started while the candidate trains, in another process: the live model's answers do not depend
    on the candidate, and a 2-core machine has a core to spare while `rasa train` runs (mostly on
    one), so staff no longer wait for them after the training. `compare` finds them kept; if this
    fails, `compare` asks again (and reports what went wrong). It waits for Rasa's check first:
    data it refuses ends the run at once, without waiting for a model to load.
    """

    def work() -> None:
        try:
            if checked.problems():
                return
            live = service.live(engine, settings.model, settings.model_store_dir)
            if not live.archive.is_file():
                return
            questions = evaluate.heldout_questions(root)
            judged(
                settings.model_store_dir,
                "heldout",
                live.archive,
                folder_digest(root, evaluate.HELDOUT_QUESTIONS.parent),
                lambda: {
                    "answers": evaluate.labels(
                        evaluate.load_agent(live.archive), [text for text, _ in questions]
                    )
                },
            )
        except Exception:
            traceback.print_exc()

    thread = threading.Thread(target=work, name="live-heldout", daemon=True)
    thread.start()
    return thread


def baseline(engine: sa.engine.Engine, root: Path, live: service.Live) -> str | None:
    """The commit of the data the live model learned from (None: unknown).

    A candidate records the commit it was trained from; for older candidates and the assistant
    as installed, the commit the project was at when it was trained or built.
    """
    if live.run_id is not None:
        run = service.get_run(engine, live.run_id)
        if run is not None:
            return run.report.get("commit") or blame.revision_at(root, run.requested_at)
    return blame.revision_at(root, live.built_at)


def compare(
    engine: sa.engine.Engine,
    run_id: int,
    root: Path,
    candidate: Path,
    settings: deployment.Settings,
    commit: str | None = None,
) -> dict[str, Any]:
    """The candidate against the live model: held-out questions, conversation tests, the gate.

    Each model's results are kept per model and per test files (`judged`): the live model is
    usually an earlier candidate, already judged, and a changed conversation test reruns only
    the conversation tests.
    """
    live = service.live(engine, settings.model, settings.model_store_dir)
    if not live.archive.is_file():
        raise RuntimeError(f"the live model's file {live.archive} is missing")
    project, _ = validate.load(root)
    describe = evaluate.Describer(
        {topic.key: topic.title for topic in content.topics(root)}, validate.responses(project)
    )
    questions = evaluate.heldout_questions(root)
    texts = [text for text, _ in questions]
    heldout = folder_digest(root, evaluate.HELDOUT_QUESTIONS.parent)
    stories = folder_digest(root, evaluate.CONVERSATION_TESTS)
    store = settings.model_store_dir
    agents: dict[Path, Any] = {}

    def agent(model: Path) -> Any:
        if model not in agents:
            agents.clear()  # one model in memory at a time
            agents[model] = evaluate.load_agent(model)
        return agents[model]

    def answers(model: Path, stage: str, progress: int) -> dict[str, Any]:
        service.report_progress(engine, run_id, "evaluating", stage, progress)
        return {"answers": evaluate.labels(agent(model), texts)}

    def tests() -> dict[str, Any]:
        service.report_progress(engine, run_id, "evaluating", "Running the conversation tests", 88)
        count, failed = evaluate.conversation_tests(agent(candidate), root, describe)
        return {"tests": count, "failed": [asdict(f) for f in failed]}

    after = judged(
        store,
        "heldout",
        candidate,
        heldout,
        lambda: answers(candidate, "Asking the new model the held-out questions", 82),
    )
    ran = judged(store, "conversations", candidate, stories, tests)
    before = judged(
        store,
        "heldout",
        live.archive,
        heldout,
        lambda: answers(live.archive, "Asking the live model the same questions", 93),
    )
    comparison = evaluate.compare(questions, before["answers"], after["answers"], describe.label)
    comparison.tests = ran["tests"]
    comparison.failed_tests = [evaluate.FailedTest(**f) for f in ran["failed"]]
    comparison.live_sha256 = live.sha256 or ""
    wrong = [
        (text, gold, got)
        for (text, gold), was, got in zip(questions, before["answers"], after["answers"])
        if was == gold and got != gold
    ]
    titles = {topic.key: topic.title for topic in content.topics(root)}
    found = blame.suspects(root, baseline(engine, root, live), wrong, titles, evaluate.PLAIN_INTENTS)
    return {
        "comparison": comparison.as_dict(),
        "reasons": evaluate.gate(comparison),
        "suspects": [s.as_dict() if s else None for s in found],
        "commit": commit,
    }


def refuse(engine: sa.engine.Engine, run_id: int, problems: list[str]) -> int:
    """End the run refused by the checks' problems (no model to publish); 0, the run finished."""
    reasons = [
        f"The checks found {len(problems)} problem(s) (such as an answer the clinic's document "
        "does not support): nothing was trained. Fix them and check again."
    ]
    service.finish(
        engine,
        run_id,
        service.REFUSED,
        "The checks found problems",
        {"problems": problems, "reasons": reasons},
    )
    return 0


def run(run_id: int, root: Path) -> int:
    """Work the run to its end; 0 when it finished (published or not), 1 when it failed."""
    settings = deployment.current()
    engine = db.engine(settings.database_url)
    stop = threading.Event()
    threading.Thread(target=keep_alive, args=(engine, run_id, stop), daemon=True).start()
    commit = blame.head(root)  # the data this run learns from (what later blame compares with)
    try:
        service.report_progress(engine, run_id, "checking", "Checking the answers and data", 3)
        project, problems = validate.load(root)
        problems = problems or validate.run_checks(project)
        if problems:
            return refuse(engine, run_id, [str(problem) for problem in problems])
        rasa = RasaCheck(root)  # while the candidate starts training (stopped if Rasa refuses the data)
        digest = train.inputs_digest(root)
        archive = archive_path(settings.model_store_dir, digest)
        meanwhile = live_heldout(engine, root, settings, rasa)
        if archive.is_file():
            seconds = 0.0
            service.report_progress(
                engine, run_id, "training", "Nothing the model learns from has changed: reusing its model", 80
            )
        else:
            try:
                archive, seconds = train_candidate(
                    engine, run_id, root, settings.model_store_dir, digest, rasa.refused
                )
            except RuntimeError:
                if not rasa.problems():  # else stopped, or failed, on data Rasa's check refuses
                    raise
                meanwhile.join()  # at once: it does not start on data Rasa's check refuses
                return refuse(engine, run_id, rasa.problems())
        meanwhile.join()  # it waited for Rasa's check: data the check refuses is refused before comparing
        if rasa.problems():
            return refuse(engine, run_id, rasa.problems())
        report = compare(engine, run_id, root, archive, settings, commit)
        service.record_model(engine, run_id, archive, digest, seconds)
        stage = "Ready to publish" if not report["reasons"] else "Cannot be published"
        service.finish(engine, run_id, service.READY, stage, report)
        return 0
    except Exception:
        traceback.print_exc()
        service.finish(
            engine,
            run_id,
            service.FAILED,
            "The training could not finish. Try again; if it fails again, tell the developers "
            f"(the log of training {run_id} has the details).",
            {},
        )
        return 1
    finally:
        stop.set()
