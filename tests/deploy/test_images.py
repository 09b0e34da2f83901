"""The images, started as a clinic runs them: the whole stack from `make images`' images (issue 22).

PostgreSQL and Redis (Debian's, on this host), the action server, the console and two Rasa
servers, each a process in its image's root file system with compose.yml's environment and
volumes (tests/deploy/image_stack.py). Then, as people would: a visitor chats and books over
REST and another over socket.io; staff accounts are made with clinic-staff-user inside the
console's image and staff sign in; an editor rewords an answer, it is checked, trained and
published, and both Rasa servers answer with it; everything is stopped and started again, and
the bookings, the accounts, the published model and the edit are all still there. Last, a
backup is taken with clinic-backup in the console's image, everything is deleted (database,
volumes), and clinic-restore into a fresh PostgreSQL and a fresh stack brings it all back.

The console's edits live on the content volume compose gives it (STAFF_PROJECT_ROOT), which the
console seeds from the release in its image on the first start.

Not part of `make test` (the `deploy` marker is deselected in pyproject's addopts): `make
test-deploy` builds the images if needed and runs this module with `-m deploy` (measured: 4 min
48 s on a quiet 2-core machine, 12 min 50 s while other test suites ran); .ci/run runs it after
`make test`.
"""

from __future__ import annotations

import asyncio
import re
import secrets
import shutil
import subprocess
import time
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import sqlalchemy as sa
from playwright.sync_api import Browser, BrowserContext

from devtools.images import TARGETS, image_exists, image_name
from devtools.services import PostgresServer, RedisServer
from tests.deploy.image_stack import ImageStack, dot_env, owned_directory
from tests.e2e.conftest import browser, playwright  # noqa: F401 (the browser fixtures)
from tests.e2e.console_site import LAPTOP, PASSWORD, Site, Staff
from tests.e2e.test_publish import NEW, OLD, QUESTION, answer_of, check_and_train, wait_for_answer
from tests.helpers import Chat, WidgetSession, open_day, squash

pytestmark = [pytest.mark.deploy, pytest.mark.e2e]

USERS = {"anna": "admin", "eddie": "editor", "rita": "reception"}
WORKSPACE = "/var/lib/scar-faq/content"  # where the console edits the project in production
BOOKED: dict[str, str] = {}  # channel -> the reference the visitor was given
REST_VISITOR = f"rest-{secrets.token_hex(3)}"
# The next release's rewording of test_publish's OLD (in the document's words: a release's wording
# that is not would be held back whole, tests/unit/test_releases.py).
RELEASE_OLD = "and it then repairs itself naturally."


@dataclass
class Deployment:
    """The running stack, its PostgreSQL and Redis, where its volumes and log are, and its timings."""

    stack: ImageStack
    postgres: PostgresServer
    redis: RedisServer
    directory: Path
    log: Path
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def chats(self) -> list[Chat]:
        """A REST client for each Rasa server."""
        return [Chat(self.stack.url(name)) for name in self.stack.ports if name.startswith("rasa")]

    @property
    def console(self) -> str:
        """The console's address."""
        return self.stack.url("console-1")

    def restart(self) -> None:
        """Stop everything (the services, PostgreSQL, Redis) and start it all again."""
        self.stack.stop()
        self.postgres.halt()
        if self.redis.process is not None:
            self.redis.process.terminate()
            self.redis.process.wait(timeout=20)
        started = time.monotonic()
        self.postgres.resume()
        self.redis.start()
        with self.log.open("a") as log:
            self.stack.start(log)
        self.timings["restart"] = time.monotonic() - started


@pytest.fixture(scope="module")
def deployment(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    missing = [target for target in TARGETS if not image_exists(image_name(target))]
    if missing:
        pytest.fail(f"no image for {', '.join(missing)}: build them first (make images)")
    tmp = tmp_path_factory.mktemp("deploy")
    with ExitStack() as running:
        postgres = running.enter_context(PostgresServer())
        redis = running.enter_context(RedisServer())
        deployment = Deployment(
            ImageStack(tmp, postgres, redis, dot_env()), postgres, redis, tmp, tmp / "servers.log"
        )
        # Whichever stack and servers run at the end (the restore test starts new ones).
        running.callback(lambda: deployment.redis.stop())
        running.callback(lambda: deployment.postgres.stop())
        running.callback(lambda: deployment.stack.stop())
        started = time.monotonic()
        with deployment.log.open("w") as out:
            deployment.stack.start(out)
        deployment.timings["start"] = time.monotonic() - started
        yield deployment
        print(
            f"\nimage stack (s): {deployment.timings}, last start of each: {deployment.stack.started_seconds}"
            f"; log: {deployment.log}"
        )


@pytest.fixture
def staff(browser: Browser, deployment: Deployment) -> Iterator[callable]:  # noqa: F811
    contexts: list[BrowserContext] = []
    people: list[Staff] = []
    site = Site(None, deployment.console, "", deployment.directory, "", deployment.chats[0])  # type: ignore[arg-type]

    def make() -> Staff:
        context = browser.new_context(viewport=LAPTOP)
        contexts.append(context)
        person = Staff(context, site)
        people.append(person)
        return person

    yield make
    for context in contexts:
        context.close()
    for person in people:
        assert not person.problems, person.problems


def booking_turns(expected) -> list[tuple[str, list[str]]]:
    """A visitor's booking, message by message, with the replies they read."""
    day = open_day()
    return [
        ("what is PIH", [expected("utter_faq/what_is_pih")]),
        (
            "I'd like to book a consultation",
            [expected("utter_booking_intro"), expected("utter_ask_booking_name")],
        ),
        ("Jordan Imaged", [expected("utter_ask_booking_contact")]),
        ("jordan.imaged@example.com", [expected("utter_ask_booking_date", contact_promise="email you")]),
        (f"{day.day} {day:%B}", [expected("utter_ask_booking_time")]),
        ("morning", [expected("utter_ask_booking_scar")]),
        ("skip", [expected("utter_ask_booking_consent")]),
    ]


def reference_in(texts: list[str]) -> str:
    """The request reference a confirmation gives."""
    found = re.search(r"Your reference is (SR-[A-Z0-9]{8})", " ".join(texts))
    assert found, texts
    return found.group(1)


def test_a_visitor_books_over_rest_alternating_between_the_two_servers(
    deployment: Deployment, expected
) -> None:
    me, chats = REST_VISITOR, deployment.chats
    for turn, (text, answers) in enumerate(booking_turns(expected)):
        assert chats[turn % 2].texts(me, text) == answers, f"turn {turn + 1}"
    assert "Jordan Imaged" in " ".join(chats[0].texts(me, "/affirm"))
    BOOKED["rest"] = reference_in(chats[1].texts(me, "/affirm"))


def test_a_visitor_books_over_socketio(deployment: Deployment, expected) -> None:
    async def book() -> list[str]:
        async with WidgetSession(deployment.stack.url("rasa-2")) as widget:
            assert await widget.request_session() is not None
            for text, answers in booking_turns(expected):
                assert await widget.say(text, replies=len(answers)) == answers, text
            await widget.say("/affirm")
            return await widget.say("/affirm")

    BOOKED["socket.io"] = reference_in(asyncio.run(book()))


def test_staff_accounts_are_made_in_the_console_image_and_staff_sign_in(
    deployment: Deployment, staff
) -> None:
    for name, role in USERS.items():
        added = deployment.stack.exec(
            "console", ["clinic-staff-user", "add", name, "--role", role, "--password-stdin"], PASSWORD + "\n"
        )
        assert added.returncode == 0 and f"{name} can now sign in" in added.stdout, (
            added.stdout + added.stderr
        )
    reception = staff()
    reception.sign_in("rita")
    listed = reception.open("/bookings/").inner_text("main")
    assert BOOKED["rest"] in listed and BOOKED["socket.io"] in listed


def test_an_edit_is_trained_published_and_served_by_both_servers(deployment: Deployment, staff) -> None:
    visitor = f"publish-{secrets.token_hex(3)}"
    assert all(OLD in answer_of(chat, visitor) for chat in deployment.chats)
    editor = staff()
    editor.sign_in("eddie")
    page = editor.open("/answers/topic/what_is")
    answer = page.get_by_label("Answer", exact=True)
    answer.fill(answer.input_value().replace(OLD, NEW))
    page.get_by_role("button", name="Save").click()
    assert "Saved" in editor.flash()
    started = time.monotonic()
    assert "Ready to publish" in check_and_train(editor).locator("#run-outcome").inner_text()
    deployment.timings["train"] = time.monotonic() - started
    admin = staff()
    admin.sign_in("anna")
    admin.open("/models/").get_by_role("button", name="Publish training").click()
    admin.page.get_by_role("button", name="Yes, publish training").click()
    assert "Published" in admin.flash()
    for chat in deployment.chats:  # each server on its own
        wait_for_answer([chat], visitor, NEW)


def test_after_a_restart_bookings_accounts_the_published_model_and_the_edit_are_all_there(
    deployment: Deployment, staff
) -> None:
    deployment.restart()
    for chat in deployment.chats:  # a new visitor, on each server, reads the published wording
        assert NEW in answer_of(chat, f"after-{secrets.token_hex(3)}", QUESTION)
    reception = staff()
    reception.sign_in("rita")
    listed = reception.open("/bookings/").inner_text("main")
    assert BOOKED["rest"] in listed and BOOKED["socket.io"] in listed
    admin = staff()
    admin.sign_in("anna")  # with the code from the app set up before the restart
    assert "published by anna" in squash(admin.open("/").locator("#live-model").inner_text())
    editor = staff()
    editor.sign_in("eddie")
    page = editor.open("/answers/topic/what_is")
    assert NEW in page.get_by_label("Answer", exact=True).input_value()


def upgraded_console_image(old: str, changes: list[tuple[str, str, str]]) -> str:
    """A next release of the console's image: `old` with its release files changed (file, from, to)."""
    name = f"scar-faq-test-upgrade-{secrets.token_hex(3)}"
    subprocess.run(["buildah", "from", "--quiet", "--name", name, old], check=True, stdout=subprocess.DEVNULL)
    try:
        root = Path(
            subprocess.run(
                ["buildah", "mount", name], check=True, capture_output=True, text=True
            ).stdout.strip()
        )
        for file, before, after in changes:
            path = root / "srv" / "scar-faq" / file
            text = path.read_text(encoding="utf-8")
            assert before in text, (file, before)
            path.write_text(text.replace(before, after, 1), encoding="utf-8")
        image = old.rsplit(":", 1)[0] + ":next-release"
        subprocess.run(["buildah", "commit", "--quiet", name, image], check=True, stdout=subprocess.DEVNULL)
        return image
    finally:
        subprocess.run(["buildah", "umount", name], capture_output=True)
        subprocess.run(["buildah", "rm", name], capture_output=True)


def test_a_new_console_image_merges_its_release_into_staffs_edits_and_never_overwrites_them(
    deployment: Deployment, staff
) -> None:
    """An upgrade: the next image changed the words staff had changed (a clean merge: test_releases)."""
    upgrade = upgraded_console_image(
        deployment.stack.image("console"),
        [("domain/faq.yml", OLD, RELEASE_OLD)],
    )
    deployment.stack.images["console"] = upgrade
    with deployment.log.open("a") as log:
        deployment.stack.restart("console-1", log)
    editor = staff()
    editor.sign_in("eddie")
    card = editor.open("/").locator(".card", has_text="from a new release")
    assert "1 change from a new release to words staff had changed" in squash(card.inner_text())
    page = editor.open("/history/")
    waiting = page.get_by_role("region", name="A new release would change words you had changed")
    assert NEW in squash(waiting.locator(".before").inner_text())
    assert RELEASE_OLD in squash(waiting.locator(".after").inner_text())
    answer = editor.open("/answers/topic/what_is").get_by_label("Answer", exact=True).input_value()
    assert NEW in answer and RELEASE_OLD not in answer  # staff's words kept, never overwritten
    assert all(NEW in answer_of(chat, f"upgraded-{secrets.token_hex(3)}") for chat in deployment.chats)

    # Starting the same image again changes nothing and offers nothing twice.
    listed = editor.open("/history/").locator("tbody tr").all_inner_texts()
    assert listed and "What is Scar Relaxation?” reworded" in listed[0]  # staff's edit, still there
    with deployment.log.open("a") as log:
        deployment.stack.restart("console-1", log)
    page = editor.open("/history/")
    assert page.locator("tbody tr").all_inner_texts() == listed
    assert page.get_by_role("region", name="A new release would change words you had changed").count() == 1


def visitor_events(deployment: Deployment) -> int:
    """How many events of the REST visitor's conversation the database holds."""
    engine = sa.create_engine(deployment.postgres.url)
    try:
        with engine.connect() as db:
            return db.execute(
                sa.text("SELECT COUNT(*) FROM events WHERE sender_id = :s"),
                {"s": Chat.conversation_id(REST_VISITOR)},
            ).scalar_one()
    finally:
        engine.dispose()


def test_a_backup_restored_into_a_fresh_stack_brings_everything_back(deployment: Deployment, staff) -> None:
    """clinic-backup in the console image, everything deleted, clinic-restore into a new stack."""
    backups = owned_directory(deployment.directory / "backups")
    mounted = {backups: "/var/backups/scar-faq"}
    events = visitor_events(deployment)
    assert events > 10
    started = time.monotonic()
    made = deployment.stack.exec(
        "console", ["clinic-backup", "--output", "/var/backups/scar-faq"], volumes=mounted
    )
    assert made.returncode == 0, made.stdout + made.stderr
    deployment.timings["backup"] = time.monotonic() - started
    [archive] = list(backups.glob("*.tar"))
    assert archive.stat().st_mode & 0o077 == 0  # patients' data: its owner only

    # Everything goes: the services, the database server with its data, every volume.
    old = deployment.stack
    old.stop()
    deployment.postgres.stop()
    deployment.redis.stop()
    shutil.rmtree(deployment.directory / "volumes")
    started = time.monotonic()
    deployment.postgres = PostgresServer().start()  # a fresh, empty database
    deployment.redis = RedisServer().start()
    fresh = ImageStack(deployment.directory, deployment.postgres, deployment.redis, old.variables)
    fresh.ports = dict(old.ports)  # the same addresses (the staff's authenticator app is keyed by it)
    fresh.images = dict(old.images)  # the same images (the upgraded console)
    deployment.stack = fresh
    restored = fresh.exec(
        "console", ["clinic-restore", f"/var/backups/scar-faq/{archive.name}"], volumes=mounted
    )
    assert restored.returncode == 0, restored.stdout + restored.stderr
    deployment.timings["restore"] = time.monotonic() - started
    with deployment.log.open("a") as log:
        fresh.start(log)
    deployment.timings["restored_stack_start"] = time.monotonic() - started

    assert visitor_events(deployment) == events  # the conversation, every event of it
    for chat in deployment.chats:  # the published model, on both servers
        assert NEW in answer_of(chat, f"restored-{secrets.token_hex(3)}", QUESTION)
    reception = staff()
    reception.sign_in("rita")
    listed = reception.open("/bookings/").inner_text("main")
    assert BOOKED["rest"] in listed and BOOKED["socket.io"] in listed
    admin = staff()
    admin.sign_in("anna")  # the same second factor
    assert "published by anna" in squash(admin.open("/").locator("#live-model").inner_text())
    editor = staff()
    editor.sign_in("eddie")
    page = editor.open("/answers/topic/what_is")
    assert NEW in page.get_by_label("Answer", exact=True).input_value()  # the edit, in the content volume
