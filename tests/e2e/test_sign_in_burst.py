"""Sign-in throttling under a burst: 40 wrong sign-ins at once at a real console server.

The console is its own process (waitress, several threads), as in production, on SQLite and on
a throw-away PostgreSQL server (devtools/services.py). Every request first opens the sign-in
page (its own cookie and CSRF token), then all 40 are sent together. A refusal without a check
answers 429 ("Too many failed sign-ins"); a checked wrong password answers 401 ("not right"),
so the 401s are the passwords actually checked; the database's counted failures must agree.
The limits are 5 per name and 20 per address (staff/service/accounts.py).
"""

from __future__ import annotations

import http.client
import os
import re
import subprocess
import sys
import threading
import time
import urllib.parse
import urllib.request
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from common.paths import PROJECT_ROOT
from common.records import tables
from devtools.services import PostgresServer
from servers.launcher import free_port
from staff.service import accounts, db, second_factor
from tests.two_factor import next_code

pytestmark = pytest.mark.e2e
PASSWORD = "correct horse battery staple"
KEY = "test-only-console-key-" + "b" * 20
BURST = 40


class Console:
    """A console process on a free loopback port, and its database."""

    def __init__(self, url: str, log: Path) -> None:
        self.url = url
        self.port = free_port()
        env = {
            **os.environ,
            "DATABASE_URL": url,
            "STAFF_HOST": "127.0.0.1",
            "STAFF_PORT": str(self.port),
            "STAFF_SECRET_KEY": KEY,
        }
        self.log = log.open("w")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "staff.console"],
            cwd=PROJECT_ROOT,
            env=env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + 120
        while True:
            assert self.process.poll() is None, log.read_text()
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/health", timeout=2):
                    break
            except OSError:
                assert time.monotonic() < deadline, "the console did not start"
                time.sleep(0.3)

    def stop(self) -> None:
        """Stop the process."""
        self.process.terminate()
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.log.close()


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def console(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Console]:
    tmp = tmp_path_factory.mktemp(f"burst-{request.param}")
    if request.param == "sqlite":
        server = None
        url = f"sqlite:///{tmp / 'clinic.db'}"
    else:
        server = PostgresServer().start()
        url = server.url
    try:
        accounts.create_user(db.engine(url), "anna", "admin", PASSWORD)
        running = Console(url, tmp / "console.log")
        try:
            yield running
        finally:
            running.stop()
    finally:
        db.engine(url).dispose()
        if server is not None:
            server.stop()


FORM = {"Content-Type": "application/x-www-form-urlencoded"}


def page_token(connection: http.client.HTTPConnection, path: str, cookie: str = "") -> tuple[str, str]:
    """Open a page: its session cookie (or the one given, if it sets none) and its CSRF token."""
    connection.request("GET", path, headers={"Cookie": cookie} if cookie else {})
    page = connection.getresponse()
    cookie = (page.getheader("Set-Cookie") or cookie).split(";")[0]
    return cookie, re.search(r'name="csrf_token" value="([^"]+)"', page.read().decode())[1]


def burst(console: Console, source: str, names: list[str], password: str = "not the password") -> Counter:
    """Sign in as each name at once from `source`; the statuses of the step sent at once.

    With a wrong password, that step is the password; with the right one, the passwords are
    sent one at a time and then a wrong code from each at once.
    """
    statuses: list[int] = []
    ready = threading.Barrier(len(names))
    code_step = password == PASSWORD

    def one(name: str) -> None:
        connection = http.client.HTTPConnection(
            "127.0.0.1", console.port, timeout=120, source_address=(source, 0)
        )
        try:
            cookie, token = page_token(connection, "/login")
            body = urllib.parse.urlencode({"name": name, "password": password, "csrf_token": token})
            if code_step:  # the right password first, one at a time; then the codes all at once
                with lock:
                    connection.request("POST", "/login", body, {**FORM, "Cookie": cookie})
                    answer = connection.getresponse()
                    answer.read()
                    assert answer.getheader("Location") == "/login/code", answer.status
                cookie = (answer.getheader("Set-Cookie") or cookie).split(";")[0]
                cookie, token = page_token(connection, "/login/code", cookie)
                path, body = "/login/code", urllib.parse.urlencode({"code": "000000", "csrf_token": token})
            else:
                path = "/login"
            ready.wait(timeout=120)
            connection.request("POST", path, body, {**FORM, "Cookie": cookie})
            answer = connection.getresponse()
            answer.read()
            statuses.append(answer.status)
        finally:
            connection.close()

    lock = threading.Lock()

    threads = [threading.Thread(target=one, args=(name,)) for name in names]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(180)
    assert len(statuses) == len(names)
    return Counter(statuses)


def counted_failures(url: str) -> int:
    """The failed sign-ins the database holds (each one a checked password)."""
    with db.engine(url).connect() as connection:
        return connection.execute(
            sa.select(sa.func.count())
            .select_from(tables.login_attempts)
            .where(tables.login_attempts.c.succeeded.is_(False))
        ).scalar_one()


def test_a_burst_at_one_name_checks_no_more_passwords_than_the_limit(console: Console) -> None:
    answered = burst(console, "127.0.0.2", ["anna"] * BURST)
    assert answered[401] == accounts.MAX_FAILURES_PER_NAME, answered
    assert answered[429] == BURST - accounts.MAX_FAILURES_PER_NAME, answered
    assert counted_failures(console.url) == accounts.MAX_FAILURES_PER_NAME


def test_a_burst_from_one_address_checks_no_more_passwords_than_the_limit(console: Console) -> None:
    before = counted_failures(console.url)
    answered = burst(console, "127.0.0.3", [f"someone{n}" for n in range(BURST)])
    assert answered[401] == accounts.MAX_FAILURES_PER_ADDRESS, answered
    assert answered[429] == BURST - accounts.MAX_FAILURES_PER_ADDRESS, answered
    assert counted_failures(console.url) - before == accounts.MAX_FAILURES_PER_ADDRESS


def test_a_burst_of_wrong_codes_checks_no_more_codes_than_the_limit(console: Console) -> None:
    engine = db.engine(console.url)
    nina = accounts.create_user(engine, "nina", "admin", PASSWORD)
    secret = second_factor.start_enrolment(engine, nina.id, KEY.encode())
    assert second_factor.confirm_enrolment(
        engine, KEY.encode(), nina, next_code(secret, None)[0], "set-up"
    ).ok
    before = counted_failures(console.url)
    answered = burst(console, "127.0.0.4", ["nina"] * BURST, PASSWORD)
    assert answered[401] == accounts.MAX_FAILURES_PER_NAME, answered
    assert answered[429] == BURST - accounts.MAX_FAILURES_PER_NAME, answered
    assert counted_failures(console.url) - before == accounts.MAX_FAILURES_PER_NAME
