"""Check and train, compare, publish and roll back: the records, one training at a time.

A training run is a row of `training_runs`, worked by its own process (staff/service/candidate.py)
that writes its stage, progress and report there. At most one run is queued or running,
across every console process: its `active` column is 1 and unique, so the database refuses a
second.

What visitors get is decided here and only here (`live`), from the database: the newest
publication not withdrawn (`published_models`), else the assistant as installed
(`installed_model`). The console's pages show `live`, and its model server serves it to every
Rasa server, which pulls it (servers/model_pull.py). Both kinds of model are copies in the
model store named by their SHA-256 (`keep`), written once and never changed: training writes
elsewhere (the store's candidates, models/scar-faq.tar.gz), so neither `make train` nor a
candidate can change a published model, and rolling back returns to exactly the model that
was live before. The assistant as installed is the model `make train` built, recorded the
first time the console needs it (usually the first start): a later `make train`, even from
saved but unpublished changes, does not change what visitors get.
"""

from __future__ import annotations

import functools
import json
import os
import shutil
import subprocess
import sys
import tarfile
import threading
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import sqlalchemy as sa
import yaml

from common import model_archive, yamlio
from common import settings as deployment
from common.records.tables import installed_model, published_models, training_runs
from staff.service import evaluate
from staff.service.db import as_utc, now

# Statuses of a training run. Queued/checking/training/evaluating are active.
ACTIVE = ("queued", "checking", "training", "evaluating")
READY = "ready"  # trained and compared; the report says whether it may be published
REFUSED = "refused"  # the checks failed: nothing was trained
FAILED = "failed"  # training or the comparison could not finish
# A run whose process has not reported for this long has stopped (killed, machine restarted).
STALE_AFTER = timedelta(minutes=3)
TRAINING_SECONDS_GUESS = 90.0  # for the progress bar before any run has been timed


class ModelError(Exception):
    """What staff asked cannot be done; the message says why and what to do."""


@dataclass
class Run:
    """One check-and-train run, as the console shows it."""

    id: int
    requested_by: str
    requested_at: datetime
    finished_at: datetime | None
    status: str
    stage: str
    progress: int
    archive: str | None
    sha256: str | None
    train_seconds: float | None
    report: dict[str, Any]
    publishable: bool

    @property
    def active(self) -> bool:
        """Whether the run is still going."""
        return self.status in ACTIVE

    @property
    def comparison(self) -> evaluate.Comparison | None:
        """The comparison with the live model (None before it is made)."""
        data = self.report.get("comparison")
        return evaluate.Comparison.from_dict(data) if data else None

    @property
    def reasons(self) -> list[str]:
        """Why it may not be published (empty when it may, or before the comparison)."""
        return list(self.report.get("reasons", []))


@dataclass
class Live:
    """The model every Rasa server is told to use."""

    sha256: str | None  # None: there is no model at all (make train never ran)
    archive: Path
    publication_id: int | None  # None: the assistant as installed (nothing published)
    run_id: int | None
    published_by: str | None
    since: datetime | None  # live since (publication, or the roll-back back to the installed model)
    built_at: datetime | None = None  # the assistant as installed: when `make train` built it
    rolled_back_at: datetime | None = None  # the assistant as installed again: the last roll-back

    @property
    def installed(self) -> bool:
        """Whether visitors get the assistant as installed (nothing published, or all rolled back)."""
        return self.publication_id is None


def _run(row: Any) -> Run:
    return Run(
        id=row.id,
        requested_by=row.requested_by,
        requested_at=as_utc(row.requested_at),  # type: ignore[arg-type]
        finished_at=as_utc(row.finished_at),
        status=row.status,
        stage=row.stage,
        progress=row.progress,
        archive=row.archive,
        sha256=row.sha256,
        train_seconds=row.train_seconds,
        report=json.loads(row.report) if row.report else {},
        publishable=bool(row.publishable),
    )


def get_run(engine: sa.engine.Engine, run_id: int) -> Run | None:
    """The run with this id (None if there is none)."""
    forget_stopped(engine)
    with engine.connect() as db:
        row = db.execute(sa.select(training_runs).where(training_runs.c.id == run_id)).first()
    return _run(row) if row else None


def recent_runs(engine: sa.engine.Engine, limit: int = 10) -> list[Run]:
    """The newest runs first."""
    forget_stopped(engine)
    with engine.connect() as db:
        rows = db.execute(sa.select(training_runs).order_by(training_runs.c.id.desc()).limit(limit))
        return [_run(row) for row in rows]


def forget_stopped(engine: sa.engine.Engine) -> None:
    """Mark failed an active run whose process stopped reporting (it frees the one training slot)."""
    limit = now() - STALE_AFTER
    with engine.begin() as db:
        db.execute(
            training_runs.update()
            .where(training_runs.c.active == 1, training_runs.c.heartbeat_at < limit)
            .values(
                status=FAILED,
                active=None,
                finished_at=now(),
                stage="The training stopped unexpectedly (its process ended). Start it again.",
            )
        )


def last_training_seconds(engine: sa.engine.Engine) -> float:
    """How long the last training took (for the progress bar's estimate)."""
    with engine.connect() as db:
        seconds = db.execute(
            sa.select(training_runs.c.train_seconds)
            .where(training_runs.c.train_seconds.is_not(None))
            .order_by(training_runs.c.id.desc())
            .limit(1)
        ).scalar()
    return float(seconds or TRAINING_SECONDS_GUESS)


def start_run(engine: sa.engine.Engine, staff_name: str) -> int:
    """Record a new run (queued); ModelError if one is already queued or running."""
    forget_stopped(engine)
    moment = now()
    try:
        with engine.begin() as db:
            return int(
                db.execute(
                    training_runs.insert().values(
                        requested_by=staff_name,
                        requested_at=moment,
                        heartbeat_at=moment,
                        status="queued",
                        stage="Waiting to start",
                        progress=0,
                        active=1,
                        publishable=False,
                    )
                ).inserted_primary_key[0]
            )
    except sa.exc.IntegrityError:
        raise ModelError(
            "A training is already running (only one at a time). Wait for it to finish; "
            "its progress is shown on this page."
        ) from None


def launch(run_id: int, root: Path, log: Path) -> subprocess.Popen:
    """Start the run's own process (staff/service/candidate.py); it outlives the request that asked."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("ab") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "staff.commands.candidate", str(run_id), "--root", str(root)],
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env={**os.environ, "RASA_TELEMETRY_ENABLED": "false", "TF_CPP_MIN_LOG_LEVEL": "3"},
            start_new_session=True,
        )
    threading.Thread(target=process.wait, daemon=True).start()  # reaped when it ends, no zombie
    return process


def report_progress(engine: sa.engine.Engine, run_id: int, status: str, stage: str, progress: int) -> None:
    """Record where a run is (also its heartbeat)."""
    with engine.begin() as db:
        db.execute(
            training_runs.update()
            .where(training_runs.c.id == run_id)
            .values(
                status=status,
                stage=stage,
                progress=max(0, min(progress, 100)),
                heartbeat_at=now(),
                pid=os.getpid(),
            )
        )


def record_model(engine: sa.engine.Engine, run_id: int, archive: Path, digest: str, seconds: float) -> None:
    """Record the trained candidate's archive, fingerprint and training time."""
    with engine.begin() as db:
        db.execute(
            training_runs.update()
            .where(training_runs.c.id == run_id)
            .values(
                archive=str(archive),
                sha256=model_archive.sha256(archive),
                inputs_digest=digest,
                train_seconds=seconds or None,  # None: an earlier model was reused
                heartbeat_at=now(),
            )
        )


def finish(engine: sa.engine.Engine, run_id: int, status: str, stage: str, report: dict[str, Any]) -> None:
    """End a run: its status, last words, report; it may be published only if READY with no reasons."""
    publishable = status == READY and not report.get("reasons")
    with engine.begin() as db:
        db.execute(
            training_runs.update()
            .where(training_runs.c.id == run_id)
            .values(
                status=status,
                stage=stage,
                progress=100,
                active=None,
                finished_at=now(),
                heartbeat_at=now(),
                report=json.dumps(report),
                publishable=publishable,
            )
        )


PUBLISHED_DIR = "published"  # in the model store: every model visitors have been given, by SHA-256


def keep(store: Path, archive: Path) -> tuple[Path, str]:
    """A copy of `archive` in the store, named by its SHA-256, written once (never overwritten).

    Returns the copy and its SHA-256. The copy is written beside its final name and renamed
    into place, so a reader never sees half a model.
    """
    digest = model_archive.sha256(archive)
    kept = store / PUBLISHED_DIR / f"{digest}.tar.gz"
    if kept.is_file() and model_archive.sha256(kept) == digest:
        return kept, digest
    kept.parent.mkdir(parents=True, exist_ok=True)
    draft = kept.with_suffix(f".{os.getpid()}.{threading.get_ident()}.tmp")
    shutil.copy2(archive, draft)  # keeps the build time (the file's modification time)
    if model_archive.sha256(draft) != digest:  # changed while it was copied (make train running)
        draft.unlink()
        raise ModelError("The model changed while it was being kept; try again in a minute.")
    draft.replace(kept)
    return kept, digest


def record_installed(engine: sa.engine.Engine, base_model: Path, store: Path) -> dict[str, Any] | None:
    """The assistant as installed, recorded from `base_model` (make train's) the first time (None: none)."""
    query = sa.select(installed_model).where(installed_model.c.slot == 1)
    with engine.connect() as db:
        row = db.execute(query).first()
    if row is not None:
        return dict(row._mapping)
    if not base_model.is_file():
        return None
    kept, digest = keep(store, base_model)
    built = datetime.fromtimestamp(kept.stat().st_mtime, tz=timezone.utc)
    try:
        with engine.begin() as db:
            db.execute(
                installed_model.insert().values(
                    slot=1, sha256=digest, archive=str(kept), built_at=built, recorded_at=now()
                )
            )
    except sa.exc.IntegrityError:  # another console process recorded it first: theirs stands
        pass
    with engine.connect() as db:
        return dict(
            db.execute(sa.select(installed_model).where(installed_model.c.slot == 1)).first()._mapping
        )


def live(engine: sa.engine.Engine, base_model: Path, store: Path | None = None) -> Live:
    """What visitors get: the newest publication not withdrawn, else the assistant as installed.

    `base_model` is the model `make train` built; it is recorded as the assistant as installed
    (a copy in `store`, default MODEL_STORE_DIR of the settings) only if nothing was recorded
    yet, and never read again after that.
    """
    with engine.connect() as db:
        row = db.execute(
            sa.select(published_models)
            .where(published_models.c.withdrawn_at.is_(None))
            .order_by(published_models.c.id.desc())
            .limit(1)
        ).first()
        if row is None:
            withdrawn = db.execute(sa.select(sa.func.max(published_models.c.withdrawn_at))).scalar()
    if row is not None:
        return Live(
            row.sha256,
            Path(row.archive),
            row.id,
            row.training_run_id,
            row.published_by,
            as_utc(row.live_since),
        )
    installed = record_installed(engine, base_model, store or deployment.current().model_store_dir)
    if installed is None:
        return Live(None, base_model, None, None, None, None)
    return Live(
        installed["sha256"],
        Path(installed["archive"]),
        None,
        None,
        None,
        as_utc(withdrawn) or as_utc(installed["recorded_at"]),
        as_utc(installed["built_at"]),
        as_utc(withdrawn),
    )


def publish(
    engine: sa.engine.Engine, run_id: int, staff_name: str, base_model: Path, store: Path | None = None
) -> Run:
    """Make the run's candidate live (a kept copy, never overwritten); ModelError with the reason if not."""
    run = get_run(engine, run_id)
    if run is None:
        raise ModelError("There is no such training.")
    if not run.publishable or run.status != READY:
        reasons = run.reasons or ["It has not passed the checks and the comparison."]
        raise ModelError("This model cannot be published: " + " ".join(reasons))
    store = store or deployment.current().model_store_dir
    current = live(engine, base_model, store)
    if current.sha256 == run.sha256:
        raise ModelError("This model is already live.")
    comparison = run.comparison
    if comparison is None or comparison.live_sha256 != current.sha256:
        raise ModelError(
            "The live model has changed since this model was compared with it: "
            "check and train again, so the comparison is with the model visitors get now."
        )
    if (
        run.archive is None
        or not Path(run.archive).is_file()
        or model_archive.sha256(Path(run.archive)) != run.sha256
    ):
        raise ModelError("This model's file is missing or damaged: check and train again.")
    kept, _ = keep(store, Path(run.archive))
    moment = now()
    with engine.begin() as db:
        db.execute(
            published_models.insert().values(
                training_run_id=run.id,
                sha256=run.sha256,
                archive=str(kept),
                published_by=staff_name,
                published_at=moment,
                live_since=moment,
            )
        )
    return run


def roll_back(engine: sa.engine.Engine, staff_name: str, base_model: Path, store: Path | None = None) -> Live:
    """Withdraw the live publication: the one before it (or the assistant as installed) is live again."""
    current = live(engine, base_model, store)
    if current.publication_id is None:
        raise ModelError("Nothing has been published: visitors get the assistant as installed.")
    moment = now()
    with engine.begin() as db:
        db.execute(
            published_models.update()
            .where(published_models.c.id == current.publication_id)
            .values(withdrawn_by=staff_name, withdrawn_at=moment)
        )
        previous = db.execute(
            sa.select(published_models.c.id)
            .where(published_models.c.withdrawn_at.is_(None))
            .order_by(published_models.c.id.desc())
            .limit(1)
        ).scalar()
        if previous is not None:
            db.execute(
                published_models.update().where(published_models.c.id == previous).values(live_since=moment)
            )
    return live(engine, base_model, store)


def publications(engine: sa.engine.Engine, limit: int = 10) -> list[dict[str, Any]]:
    """The newest publications first: which run, who, when, withdrawn by whom and when."""
    with engine.connect() as db:
        rows = db.execute(sa.select(published_models).order_by(published_models.c.id.desc()).limit(limit))
        return [
            {
                "id": row.id,
                "run_id": row.training_run_id,
                "published_by": row.published_by,
                "published_at": as_utc(row.published_at),
                "withdrawn_by": row.withdrawn_by,
                "withdrawn_at": as_utc(row.withdrawn_at),
            }
            for row in rows
        ]


def reach_seconds(pull_seconds: int) -> int:
    """How long until every Rasa server answers with a newly live model: one pull, then its load."""
    return pull_seconds + deployment.MODEL_LOAD_SECONDS


def after_roll_back(engine: sa.engine.Engine, base_model: Path, store: Path | None = None) -> Live | None:
    """What visitors would get after a roll back (None: nothing is published, there is none)."""
    current = live(engine, base_model, store)
    if current.publication_id is None:
        return None
    with engine.connect() as db:
        row = db.execute(
            sa.select(published_models)
            .where(
                published_models.c.withdrawn_at.is_(None),
                published_models.c.id != current.publication_id,
            )
            .order_by(published_models.c.id.desc())
            .limit(1)
        ).first()
    if row is not None:
        return Live(row.sha256, Path(row.archive), row.id, row.training_run_id, row.published_by, None)
    installed = record_installed(engine, base_model, store or deployment.current().model_store_dir)
    if installed is None:
        return None
    return Live(
        installed["sha256"], Path(installed["archive"]), None, None, None, None, as_utc(installed["built_at"])
    )


@dataclass
class Wording:
    """An answer whose wording differs between two models, as staff read it."""

    title: str  # the topic's title on Answers (or the start of the message, for the assistant's others)
    before: str  # "" when the answer is new
    after: str  # "" when the answer is gone


DOMAIN_MEMBER = "components/domain_provider/domain.yml"  # where a Rasa 3.6 model keeps its answers


def answers_of(archive: Path) -> dict[str, tuple[str, str]]:
    """Every answer a model gives, by response: (title, text); empty if the archive cannot be read."""
    try:
        with tarfile.open(archive) as model:
            for member in model:
                if member.name.lstrip("/") == DOMAIN_MEMBER:
                    handle = model.extractfile(member)
                    domain = yamlio.load(handle.read()) if handle else {}
                    break
            else:
                return {}
    except (OSError, tarfile.TarError, yaml.YAMLError):
        return {}
    found = {}
    for name, variations in ((domain or {}).get("responses") or {}).items():
        texts = [" ".join(str(v.get("text") or "").split()) for v in variations or [] if isinstance(v, dict)]
        texts = [text for text in texts if text]
        if not texts:
            continue
        first = variations[0] if isinstance(variations[0], dict) else {}
        title = str((first.get("metadata") or {}).get("topic") or "")
        found[name] = (title, "\n\n".join(texts))
    return found


@functools.lru_cache(maxsize=16)
def _answers_cached(archive: str, sha256: str) -> dict[str, tuple[str, str]]:
    return answers_of(Path(archive))


def wording_changes(before: Path, before_sha: str, after: Path, after_sha: str) -> list[Wording]:
    """Every answer whose wording differs from model `before` to model `after`, topics first."""
    old, new = _answers_cached(str(before), before_sha), _answers_cached(str(after), after_sha)
    changes = []
    for name in sorted(set(old) | set(new), key=lambda n: (not (old.get(n) or new.get(n))[0], n)):
        was, now_is = old.get(name, ("", ""))[1], new.get(name, ("", ""))[1]
        if was == now_is:
            continue
        title = (old.get(name) or new.get(name))[0]
        if not title:
            start = (was or now_is).split(".")[0]
            title = f'The assistant\'s message "{start[:60]}{"..." if len(start) > 60 else ""}"'
        changes.append(Wording(title, was, now_is))
    return changes
