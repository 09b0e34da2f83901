"""The staff console's browser tests' shared parts: one running stack, staff accounts, a browser.

The stack is the product's own (servers/launcher.py): action server, Rasa server, the demo
page with the chat widget and the console, each its own process, on free loopback ports,
with a fresh SQLite database. The console's editing pages write to a copy of the project in a
temporary git repository (every server reads its clinic.yml), never to the real files. The
stack is started once per pytest process (`console_stack` in tests/e2e/conftest.py) and shared
by the modules that import the fixtures (site, staff): the console's two families in
tests/conftest.py FAMILIES (test_console.py; the other four), each run in a row by one worker
(a stack on each worker that runs one). Their tests keep apart by their own visitors and
staff names, and count what changed rather than what is there. The first staff accounts are
made through the service (staff/service/accounts.py); tests that add one later use the staff
command (clinic-staff-user), as a clinic would (add_user).

Admins sign in with a code from an authenticator app: the first time one signs in, the
sign-in helper sets the app up from the page (the key it shows for typing) and keeps the
key, so later sign-ins type the code the app would show (tests/two_factor.py).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
from playwright.sync_api import Browser, BrowserContext, Cookie, Page

from common.paths import PROJECT_ROOT
from servers.launcher import Stack, StackConfig, free_port
from staff.service import accounts, db
from tests.helpers import AXE, METRICS_TOKEN, Chat, project_copy, squash
from tests.helpers import BROWSER_TIMEOUT_MS as TIMEOUT_MS
from tests.two_factor import next_code, secret_from_page

PASSWORD = "correct horse battery staple"
USERS = {"anna": "admin", "rita": "reception", "eddie": "editor", "tess": "reception"}
LAPTOP = {"width": 1280, "height": 800}
TABLET = {"width": 768, "height": 1024}
PHONE = {"width": 390, "height": 844}


EXPECTED_STATUS = re.compile(
    r"Failed to load resource: the server responded with a status of (400|401|403|404|409|429|501)"
)


# The staff's authenticator apps, by (console address, name): the key, the step of the last
# code typed, the recovery codes shown (any module's site: test_publish.py has its own).
APPS: dict[tuple[str, str], str] = {}
LAST_STEPS: dict[tuple[str, str], int] = {}
RECOVERY_CODES: dict[tuple[str, str], list[str]] = {}
# The browser cookies of each staff member's last sign-in with a code, by (console address, name).
# A code works once and the console takes at most the next step's code early, so a third code
# sign-in within a minute waited up to 30 s for the clock (some 280 s a run for the admins' 20 or
# so sign-ins): a later sign-in with the right password goes on in that session instead, as a
# browser that stays signed in does, unless the console has ended it (a new password, role or
# second factor: then the code is typed). The code step itself is tested where it is the subject
# (the first sign-in of each admin, test_console_second_factor.py, the keyboard's sign-in).
SESSIONS: dict[tuple[str, str], list[Cookie]] = {}


def has_app(console: str, name: str) -> bool:
    """Whether `name` has set up an authenticator app on this console (in this test run)."""
    return (console, name) in APPS


def app_code(console: str, name: str) -> str:
    """The code `name`'s authenticator app shows now (one the console has not seen used)."""
    code, LAST_STEPS[console, name] = next_code(APPS[console, name], LAST_STEPS.get((console, name)))
    return code


def resume_session(context: BrowserContext, page: Page, console: str, name: str) -> bool:
    """Go on in `name`'s kept session (SESSIONS) on the Today page; False if there is none or it ended."""
    kept = SESSIONS.get((console, name))
    if not kept:
        return False
    context.add_cookies(kept)
    page.goto(console + "/")
    if page.url == console + "/":
        return True
    SESSIONS.pop((console, name), None)  # ended by the console: sign in with a code
    context.clear_cookies()
    return False


def keep_session(context: BrowserContext, page: Page, console: str, name: str) -> None:
    """After a sign-in with a code: keep its cookies (SESSIONS) if it reached the Today page."""
    if page.url == console + "/":
        SESSIONS[console, name] = context.cookies(console)


def add_user(database_url: str, name: str, role: str) -> None:
    """Add a staff account with the staff command, as a clinic would (the password on stdin)."""
    added = subprocess.run(
        [sys.executable, "-m", "staff.commands.users", "add", name, "--role", role, "--password-stdin"],
        input=PASSWORD + "\n",
        text=True,
        capture_output=True,
        env={**os.environ, "DATABASE_URL": database_url},
        cwd=PROJECT_ROOT,  # this checkout's command (clinic-staff-user)
        timeout=60,
    )
    assert added.returncode == 0, added.stdout + added.stderr
    assert f"{name} can now sign in" in added.stdout and PASSWORD not in added.stdout


@dataclass
class Site:
    """The running stack, its console and the temporary project root the inbox edits."""

    stack: Stack
    console: str
    page: str
    root: Path
    database_url: str
    chat: Chat
    smtp_port: int = 0  # the console sends e-mail here (tests/mail.py listens when a test wants it); 0: none


@contextmanager
def running_site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    """Start the console's stack with USERS' accounts; stop it afterwards."""
    if not AXE.is_file():
        pytest.fail(f"axe-core is not installed ({AXE}): run `npm ci` in web/.")
    tmp = tmp_path_factory.mktemp("console")
    root = project_copy(tmp / "project")  # a git repository: the console commits each change there
    web_port = free_port()
    smtp_port = free_port()
    config = StackConfig(
        rasa_port=free_port(),
        action_port=free_port(),
        web_port=web_port,
        console_port=free_port(),
        console_root=root,
        database_url=f"sqlite:///{tmp / 'clinic.db'}",
        cors_origins=[f"http://127.0.0.1:{web_port}"],
        extra_env={
            "STAFF_SECRET_KEY": "test-only-console-key-" + "x" * 20,
            # Every server reads the copy's clinic.yml, which the console edits.
            "CLINIC_SETTINGS": str(root / "clinic.yml"),
            "METRICS_TOKEN": METRICS_TOKEN,  # the console's /metrics (tests/e2e/test_console.py)
            # E-mail notifications go to a mail server on this machine, nobody listening until a
            # test starts one (tests/mail.py); retried after 1 s, doubling.
            "SMTP_HOST": "127.0.0.1",
            "SMTP_PORT": str(smtp_port),
            "SMTP_SECURITY": "plain",
            "SMTP_FROM": "assistant@clinic.example",
            "NOTIFY_POLL_SECONDS": "1",
            "NOTIFY_RETRY_SECONDS": "1",
        },
    )
    with (tmp / "servers.log").open("w") as log, Stack(config, log) as stack:
        engine = db.engine(config.database_url)
        for name, role in USERS.items():
            accounts.create_user(engine, name, role, PASSWORD)
        engine.dispose()
        yield Site(
            stack,
            config.console_url or "",
            config.web_url or "",
            root,
            config.database_url,
            Chat(config.rasa_url),
            smtp_port,
        )


def as_copied(root: Path) -> None:
    """Put the project copy back as project_copy made it: the staff's commits and files since, gone.

    Each module that shares the console's stack edits the project from the same start, as it did
    with a stack of its own (answers reworded, clinic details changed, stories saved by another
    module are not there). The servers read the files at each request.
    """
    first = subprocess.run(
        ["git", "rev-list", "--max-parents=0", "HEAD"], cwd=root, check=True, capture_output=True, text=True
    ).stdout.split()[0]
    for command in (["reset", "-q", "--hard", first], ["clean", "-qfd"]):
        subprocess.run(["git", *command], cwd=root, check=True, capture_output=True)


@pytest.fixture(scope="module")
def site(console_stack: Site) -> Site:
    """The console's stack this test run shares (tests/e2e/conftest.py), its project as copied."""
    as_copied(console_stack.root)
    return console_stack


class Staff:
    """One staff member's browser (own cookies), and what went wrong on its pages."""

    def __init__(self, context: BrowserContext, site: Site) -> None:
        self.context = context
        self.site = site
        self.page: Page = context.new_page()
        self.page.set_default_timeout(TIMEOUT_MS)
        self.problems: list[str] = []
        self.page.on("console", self._console)
        self.page.on("pageerror", lambda e: self.problems.append(str(e)))
        self.page.on(
            "request",
            lambda r: None if r.url.startswith(site.console) else self.problems.append(f"request to {r.url}"),
        )

    def _console(self, message) -> None:
        # A refused sign-in (401/429), page (403, 404) or save (400, 409: the form again, with why)
        # is the answer the test expects.
        if message.type == "error" and not EXPECTED_STATUS.match(message.text):
            self.problems.append(message.text)

    def open(self, path: str) -> Page:
        """Go to a console page; return the browser page."""
        self.page.goto(self.site.console + path)
        return self.page

    def sign_in(self, name: str, password: str = PASSWORD) -> Page:
        """Sign in on the sign-in page, as a person types, with the code from their app if asked.

        An admin signing in for the first time sets the app up (and the page's recovery codes
        are kept in RECOVERY_CODES). An admin who signed in with a code before goes on in that
        session (SESSIONS).
        """
        if password == PASSWORD and resume_session(self.context, self.page, self.site.console, name):
            return self.page
        page = self.open("/login")
        page.get_by_label("Your name").fill(name)
        page.get_by_label("Password").fill(password)
        page.get_by_role("button", name="Sign in").click()
        page.wait_for_load_state()
        code_step = page.url.endswith(("/login/set-up", "/login/code"))
        if page.url.endswith("/login/set-up"):
            self.set_up_app(name)
            page.get_by_role("link", name="I have saved them: continue").click()
        elif page.url.endswith("/login/code"):
            page.get_by_label("Code (or a recovery code)").fill(app_code(self.site.console, name))
            page.get_by_role("button", name="Sign in").click()
        page.wait_for_load_state()
        if code_step:
            keep_session(self.context, page, self.site.console, name)
        return page

    def set_up_app(self, name: str) -> list[str]:
        """On the set-up page: add the key to the "app", type its code; the recovery codes shown."""
        page, key = self.page, (self.site.console, name)
        APPS[key] = secret_from_page(page.locator("#secret").inner_text())
        LAST_STEPS.pop(key, None)
        page.get_by_label("Code from the app").fill(app_code(*key))
        page.get_by_role("button", name="Turn on").click()
        page.get_by_role("heading", name="Save your recovery codes").wait_for()
        RECOVERY_CODES[key] = page.locator(".recovery-codes code").all_inner_texts()
        return RECOVERY_CODES[key]

    def heading(self) -> str:
        """The page's main heading."""
        return self.page.locator("h1").inner_text()

    def flash(self) -> str:
        """The page's messages (after a form), as one line, once the page that answers has them.

        A save runs the project's checks first, so its answer can take seconds under load; reading
        at once could find the form's page still there (it did, once, on a busy machine).
        """
        self.page.locator(".flash").first.wait_for()
        return squash(" ".join(self.page.locator(".flash").all_inner_texts()))


@pytest.fixture
def staff(browser: Browser, site: Site) -> Iterator[callable]:
    contexts: list[BrowserContext] = []
    people: list[Staff] = []

    def make(viewport: dict | None = None, **options) -> Staff:
        context = browser.new_context(viewport=viewport or LAPTOP, accept_downloads=True, **options)
        contexts.append(context)
        person = Staff(context, site)
        people.append(person)
        return person

    yield make
    for context in contexts:
        context.close()
    for person in people:
        assert not person.problems, person.problems
