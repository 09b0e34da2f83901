"""What visitors get after a restart is what the console says is live (issue 20, finding 2).

Before: restarting with `make run` after a roll back retrained from the saved, unpublished
changes and served them, while the console said nothing was published; the model roll back
returned to had been overwritten. Here the whole stack (console, action and Rasa servers, on
one SQLite database and one model store) is restarted as `make run` does it, its training step
first (`clinic-train`, staff/service/train.py), after an unpublished save, after publishing, with the
console down, and after rolling back; each time a new visitor asks over REST and gets the
wording of the model the console's Today page names.

No model is trained here: "the model `make train` builds from the saved change" and the
published candidate are the installed model with one answer reworded (the answers are in
the archive's domain), written where training would write them, with the training's stamp,
so the train step finds them up to date. Five stack starts, about 4-6 minutes on a busy
2-core machine.
"""

from __future__ import annotations

import html
import io
import re
import secrets
import shutil
import subprocess
import sys
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import pytest
import requests
import sqlalchemy as sa

from servers.launcher import Stack, StackConfig, free_port
from staff.service import accounts, db, evaluate, train
from staff.service import models as service
from tests.helpers import Chat, project_copy, squash

pytestmark = pytest.mark.e2e

PASSWORD = "correct horse battery staple"
QUESTION = "what is scar relaxation"
INSTALLED = "and it repairs itself naturally."
SAVED = "and it repairs itself, as saved but never published."
PUBLISHED = "and it repairs itself, as an admin published."
START_TIMEOUT_S = 300


def reworded(source: Path, target: Path, old: str, new: str) -> None:
    """A copy of the model archive `source` whose answer wording `old` reads `new`."""
    buffer = io.BytesIO()
    with tarfile.open(source) as model, tarfile.open(fileobj=buffer, mode="w:gz") as out:
        for member in model.getmembers():
            if member.isfile():
                data = model.extractfile(member).read().replace(old.encode(), new.encode())  # type: ignore[union-attr]
                member.size = len(data)
                out.addfile(member, io.BytesIO(data))
            else:
                out.addfile(member)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(buffer.getvalue())


@dataclass
class World:
    """The project copy the console edits, its make-train model, the stack's settings, a log."""

    root: Path
    model: Path
    store: Path
    config: StackConfig
    log: Path
    stack: Stack | None = None

    @property
    def engine(self) -> sa.engine.Engine:
        """The stack's database (the console's tables)."""
        return db.engine(self.config.database_url)

    def make_run(self, console: bool = True) -> None:
        """Stop everything, then what `make run` does: `clinic-train`, then the servers."""
        self.stop()
        trained = subprocess.run(
            [sys.executable, "-m", "staff.commands.train", "--root", str(self.root)],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert trained.returncode == 0 and "Model is up to date" in trained.stdout, (
            trained.stdout + trained.stderr
        )
        config = self.config if console else replace(self.config, console_port=None)
        with self.log.open("a") as log:
            log.write(f"\n==== make run (console {'up' if console else 'down'}) ====\n")
            log.flush()
            self.stack = Stack(config, log)
            try:
                self.stack.start(timeout=START_TIMEOUT_S)
            except BaseException:
                self.stop()
                raise

    def stop(self) -> None:
        """Stop every server of the stack (as Ctrl-C on `make run`)."""
        if self.stack is not None:
            self.stack.stop()
            self.stack = None

    def make_train_builds(self, wording: str) -> None:
        """What `make train` writes after a saved change to the answer: that wording, up to date."""
        reworded(self.store.parent / "installed.tar.gz", self.model, INSTALLED, wording)
        self.model.with_suffix(".sha256").write_text(train.inputs_digest(self.root) + "\n")

    def visitor_gets(self) -> str:
        """A new visitor's answer to the question, over REST."""
        chat = Chat(self.config.rasa_url)
        return squash(" ".join(chat.texts(f"restart-{secrets.token_hex(4)}", QUESTION)))

    def console_says(self) -> str:
        """The Today page's "Live model" card, as an editor reads it."""
        session = requests.Session()
        base = self.config.console_url

        def token(page: str) -> str:
            return re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)  # type: ignore[union-attr]

        login = session.get(f"{base}/login", timeout=30).text
        session.post(
            f"{base}/login",
            data={"name": "eddie", "password": PASSWORD, "csrf_token": token(login)},
            timeout=30,
        )
        today = session.get(f"{base}/", timeout=30).text
        card = re.search(r'<li class="card" id="live-model">(.*?)</li>', today, re.S)
        assert card, "the Today page has no live model card"
        return squash(html.unescape(re.sub(r"<[^>]+>", " ", card.group(1))))


def saved_change(root: Path, wording: str) -> None:
    """An editor's saved (committed, unpublished) change to the answer, as the console writes it."""
    faq = root / "domain" / "faq.yml"
    faq.write_text(faq.read_text(encoding="utf-8").replace(INSTALLED, wording), encoding="utf-8")
    developer = ["-c", "user.name=Eddie", "-c", "user.email=eddie@example.test"]
    subprocess.run(["git", *developer, "commit", "-qam", "Reworded an answer"], cwd=root, check=True)


def published_candidate(world: World, wording: str) -> int:
    """A run that passed the gate, whose model has the answer reworded, published by anna."""
    engine = world.engine
    live = service.live(engine, world.model, world.store)
    run_id = service.start_run(engine, "eddie")
    archive = world.store / "candidates" / f"candidate-{run_id}.tar.gz"
    reworded(live.archive, archive, INSTALLED, wording)
    service.record_model(engine, run_id, archive, "digest", 1.0)
    questions = [("what is it", "faq/what_is")]
    comparison = evaluate.compare(questions, ["faq/what_is"], ["faq/what_is"], str)
    comparison.live_sha256 = live.sha256 or ""
    report = {"comparison": comparison.as_dict(), "reasons": []}
    service.finish(engine, run_id, service.READY, "Ready to publish", report)
    service.publish(engine, run_id, "anna", world.model, world.store)
    return run_id


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    tmp = tmp_path_factory.mktemp("restart")
    root = project_copy(tmp / "project")
    model = root / "models" / "scar-faq.tar.gz"
    model.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(train.MODEL, tmp / "installed.tar.gz")
    shutil.copyfile(train.MODEL, model)
    model.with_suffix(".sha256").write_text(train.inputs_digest(root) + "\n")  # built from these files
    store = tmp / "store"
    console_port = free_port()
    config = StackConfig(
        rasa_port=free_port(),
        action_port=free_port(),
        console_port=console_port,
        console_root=root,
        database_url=f"sqlite:///{tmp / 'clinic.db'}",
        model=model,
        extra_env={
            "STAFF_SECRET_KEY": "test-only-console-key-" + "r" * 20,
            "CLINIC_SETTINGS": str(root / "clinic.yml"),
            "MODEL_PULL_SECONDS": "2",
            "MODEL_STORE_DIR": str(store),
            # The same across restarts, as a deployment's .env: with the console down, the
            # Rasa server still asks the same address.
            "MODEL_SERVER_TOKEN": secrets.token_urlsafe(32),
            "MODEL_SERVER_URL": f"http://127.0.0.1:{console_port}/models/live.tar.gz",
        },
    )
    world = World(root, model, store, config, tmp / "servers.log")
    # The page is read by an editor (Today is everyone's; admins sign in with a second factor,
    # which tests/e2e/test_console_second_factor.py covers); anna publishes through the service.
    accounts.create_user(world.engine, "eddie", "editor", PASSWORD)
    try:
        world.make_run()
        yield world
    finally:
        world.stop()
        print(f"\nservers' log: {world.log}")


def test_a_restart_after_an_unpublished_save_keeps_the_assistant_as_installed(world: World) -> None:
    assert INSTALLED in world.visitor_gets()
    assert "The assistant as installed" in world.console_says()
    saved_change(world.root, SAVED)
    world.make_train_builds(SAVED)  # make run's training, from the saved change
    world.make_run()
    says = world.console_says()
    assert "The assistant as installed" in says and "Nothing published yet" in says
    assert INSTALLED in world.visitor_gets()


def test_a_restart_after_publishing_serves_the_published_model_even_with_the_console_down(
    world: World,
) -> None:
    run_id = published_candidate(world, PUBLISHED)
    world.make_run()
    assert f"Training {run_id}, published by anna" in world.console_says()
    assert PUBLISHED in world.visitor_gets()
    world.make_run(console=False)  # the console is down when the Rasa server starts
    assert PUBLISHED in world.visitor_gets()
    log = world.log.read_text(encoding="utf-8", errors="replace")
    assert "the last model the console gave this server (kept on disk)" in log
    assert "not confirmed as the published model" in log


def test_a_restart_after_rolling_back_serves_exactly_the_assistant_as_installed(world: World) -> None:
    service.roll_back(world.engine, "anna", world.model, world.store)
    world.make_run()
    says = world.console_says()
    assert "The assistant as installed" in says and "Nothing published since the roll-back" in says
    assert INSTALLED in world.visitor_gets()
