"""The images, started as a clinic runs them: the whole stack from `make images`' images (issue 22).

PostgreSQL and Redis (Debian's, on this host), the action server, the console and two Rasa
servers, each a process in its image's root file system with compose.yml's environment and
volumes (tests/deploy/image_stack.py). Then, as people would: a visitor chats and books over
REST and another over socket.io; staff accounts are made with clinic-staff-user inside the
console's image and staff sign in; an editor rewords an answer, it is checked, trained and
published, and both Rasa servers answer with it; everything is stopped and started again, and
the bookings, the accounts, the published model and the edit are all still there.

Not part of `make test` (the `deploy` marker is deselected by default): `make test-deploy`
builds the images if needed and runs this module, about 15 minutes on a busy 2-core machine.
"""

from __future__ import annotations

import asyncio
import os
import re
import secrets
import shutil
import time
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from playwright.sync_api import Browser, BrowserContext

from common.paths import CLINIC_YML, DATA_DIR
from devtools.images import TARGETS, image_exists, image_name
from devtools.services import PostgresServer, RedisServer
from tests.deploy.image_stack import APP_UID, ImageStack, dot_env, owned_directory
from tests.e2e.conftest import browser, playwright  # noqa: F401 (the browser fixtures)
from tests.e2e.console_site import LAPTOP, PASSWORD, Site, Staff
from tests.e2e.test_publish import NEW, OLD, QUESTION, answer_of, check_and_train, wait_for_answer
from tests.helpers import Chat, WidgetSession, open_day, project_copy, squash

pytestmark = [pytest.mark.deploy, pytest.mark.e2e]

USERS = {"anna": "admin", "eddie": "editor", "rita": "reception"}
WORKSPACE = "/var/lib/scar-faq/content"  # where the console edits the project in production
BOOKED: dict[str, str] = {}  # channel -> the reference the visitor was given


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
    shutil.copyfile(CLINIC_YML, tmp / "clinic.yml")
    shutil.copytree(DATA_DIR, tmp / "data")  # the console adds inbox examples there
    shutil.chown(tmp / "data", APP_UID, APP_UID)
    for path in (tmp / "data").rglob("*"):
        shutil.chown(path, APP_UID, APP_UID)
    with ExitStack() as running:
        postgres = running.enter_context(PostgresServer())
        redis = running.enter_context(RedisServer())
        stack = ImageStack(tmp, postgres, redis, dot_env(tmp))
        if "STAFF_PROJECT_ROOT" not in stack.environment("console-1"):
            # The project the console edits: a git workspace on a volume of its own.
            workspace = project_copy(tmp / "volumes" / "content")
            for path in workspace.rglob("*"):
                os.chown(path, APP_UID, APP_UID, follow_symlinks=False)
            owned_directory(workspace)
            stack.extra_env["console"] = {"STAFF_PROJECT_ROOT": WORKSPACE}
            stack.services["console"].setdefault("volumes", []).append(f"{workspace}:{WORKSPACE}")
        log = tmp / "servers.log"
        started = time.monotonic()
        with log.open("w") as out:
            running.callback(stack.stop)
            stack.start(out)
        deployment = Deployment(stack, postgres, redis, tmp, log, {"start": time.monotonic() - started})
        yield deployment
        print(f"\nimage stack: {deployment.timings} (each: {stack.started_seconds}); log: {log}")


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
    me, chats = f"rest-{secrets.token_hex(3)}", deployment.chats
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
