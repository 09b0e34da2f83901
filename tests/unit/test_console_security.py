"""The console's sign-in, sessions and CSRF through Flask's test client on a real SQLite database.

The browser tests (tests/e2e/test_console.py) show the same pages to a person; these check
what a browser cannot easily reach: cookie flags, expiry, sign-out of a copied cookie, and
throttling shared by two console processes (two apps on one database).
"""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest
import sqlalchemy as sa
from argon2 import PasswordHasher

from common.settings import Settings
from staff.commands import users
from staff.console.app import COOKIE_NAME, create_app
from staff.service import accounts, db, second_factor
from tests.two_factor import next_code

PASSWORD = "correct horse battery staple"
KEY = "unit-test-console-key-" + "y" * 20
# anna (an admin) has an authenticator app: its secret, and the step of the last code used.
APP: dict[str, object] = {}


def make_app(url: str, **env: str):
    settings = Settings.from_env(
        {"DATABASE_URL": url, "STAFF_SECRET_KEY": KEY, **env},
        lock_store=False,
    )
    app = create_app(settings)
    return app


@pytest.fixture
def url(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 'console.db'}"
    anna = accounts.create_user(db.engine(url), "anna", "admin", PASSWORD)
    secret = second_factor.start_enrolment(db.engine(url), anna.id, KEY.encode())
    code, step = next_code(secret, None)
    assert second_factor.confirm_enrolment(db.engine(url), KEY.encode(), anna, code, "set-up").ok
    APP.update(secret=secret, step=step)
    return url


def token(client, path: str = "/login") -> str:
    return re.search(r'name="csrf_token" value="([^"]+)"', client.get(path).text).group(1)


def sign_in(client, name: str = "anna", password: str = PASSWORD, path: str = "/login", **options):
    """The password, then (if asked) the code from anna's app: the last answer."""
    answer = client.post(
        path, data={"name": name, "password": password, "csrf_token": token(client)}, **options
    )
    if answer.status_code == 302 and answer.headers["Location"] == "/login/code":
        code, APP["step"] = next_code(APP["secret"], APP["step"])
        page = client.get("/login/code", **options).text
        csrf = re.search(r'name="csrf_token" value="([^"]+)"', page)[1]
        answer = client.post("/login/code", data={"code": code, "csrf_token": csrf}, **options)
    return answer


def test_passwords_are_stored_as_argon2_hashes_only(url: str, production_password_hashes: None) -> None:
    # a password hashed at the console's own cost (the unit tests' others, anna's too, at the
    # smallest: tests/unit/conftest.py)
    accounts.create_user(db.engine(url), "paula", "reception", PASSWORD)
    with db.engine(url).connect() as connection:
        stored = dict(connection.execute(sa.text("SELECT name, password_hash FROM staff_users")).all())
    assert all(h.startswith("$argon2id$") and PASSWORD not in h for h in stored.values())
    assert not PasswordHasher().check_needs_rehash(stored["paula"])


def test_the_session_cookie_is_httponly_samesite_and_secure_behind_https(url: str) -> None:
    client = make_app(url).test_client()
    cookie = sign_in(client).headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie and "Secure" not in cookie
    secure = make_app(url, STAFF_HTTPS="1").test_client()
    site = "https://console.example"
    page = secure.get("/login", base_url=site).text
    response = secure.post(
        "/login",
        data={
            "name": "anna",
            "password": PASSWORD,
            "csrf_token": re.search(r'csrf_token" value="([^"]+)"', page)[1],
        },
        base_url=site,
        headers={"Referer": f"{site}/login"},  # checked on HTTPS, as browsers send it
    )
    assert response.status_code == 302 and response.headers["Location"] == "/login/code"
    assert "Secure" in response.headers["Set-Cookie"]


def test_a_session_expires_after_the_idle_time(url: str, monkeypatch) -> None:
    client = make_app(url, STAFF_SESSION_MINUTES="1").test_client()
    assert sign_in(client).status_code == 302
    assert client.get("/").status_code == 200
    later = time.time() + 120
    monkeypatch.setattr("itsdangerous.timed.time.time", lambda: later)
    response = client.get("/")
    assert response.status_code == 302 and response.headers["Location"].startswith("/login")


def test_signing_out_ends_every_copy_of_the_cookie(url: str) -> None:
    client = make_app(url).test_client()
    sign_in(client)
    copied = client.get_cookie(COOKIE_NAME).value
    client.post("/logout", data={"csrf_token": token(client, "/")})
    thief = make_app(url).test_client()
    thief.set_cookie(COOKIE_NAME, copied)
    response = thief.get("/bookings/")
    assert response.status_code == 302 and response.headers["Location"].startswith("/login")


def test_throttling_holds_across_two_console_processes(url: str) -> None:
    first, second = make_app(url).test_client(), make_app(url).test_client()
    for client in (first, second, first, second, first):
        assert sign_in(client, password="wrong password").status_code == 401
    response = sign_in(second)
    assert response.status_code == 429 and "Too many failed sign-ins" in response.text


def test_a_post_without_the_csrf_token_changes_nothing(url: str) -> None:
    client = make_app(url).test_client()
    sign_in(client)
    response = client.post("/admin/users", data={"action": "create", "name": "mallory", "role": "admin"})
    assert response.status_code == 400 and "Nothing was changed" in response.text
    assert accounts.get_by_name(db.engine(url), "mallory") is None


def test_only_pages_of_this_site_follow_a_sign_in(url: str) -> None:
    client = make_app(url).test_client()
    response = sign_in(client, path="/login?next=//evil.example/x")
    assert response.headers["Location"] == "/"


def test_the_staff_user_command_asks_for_a_long_enough_password(url: str, monkeypatch, capsys) -> None:
    monkeypatch.setenv("DATABASE_URL", url)
    monkeypatch.setattr("sys.stdin", __import__("io").StringIO("short\n"))
    assert users.main(["add", "rita", "--role", "reception", "--password-stdin"]) == 1
    assert "at least 12 characters" in capsys.readouterr().out
    with pytest.raises(SystemExit):  # there is no way to pass a password as an argument
        users.main(["add", "rita", "--role", "reception", "--password", PASSWORD])
    prompts = iter([PASSWORD, PASSWORD])
    monkeypatch.setattr("getpass.getpass", lambda prompt="": next(prompts))
    assert users.main(["add", "rita", "--role", "reception"]) == 0
    assert accounts.get_by_name(db.engine(url), "rita").role == "reception"


def test_the_console_refuses_to_start_in_production_without_its_key() -> None:
    settings = Settings.from_env(
        {"CLINIC_PROFILE": "production", "DATABASE_URL": "postgresql://u:p@h/db"},
        lock_store=False,
        serves_chat=False,
    )
    assert any("STAFF_SECRET_KEY" in problem for problem in settings.console_problems())
    exposed = Settings.from_env({"STAFF_HOST": "0.0.0.0"}, lock_store=False)
    assert any("HTTPS" in problem for problem in exposed.console_problems())


def test_a_tampered_staff_id_on_the_email_page_is_answered_politely(url: str) -> None:
    """The address form's hidden id, changed by hand: a plain message, not a server error."""
    client = make_app(url).test_client()
    sign_in(client)
    page = "/admin/notifications/"
    for tampered in ("abc", "1.5", "99999999999999999999999"):
        response = client.post(
            page,
            data={
                "action": "address",
                "id": tampered,
                "address": "x@clinic.example",
                "csrf_token": token(client, page),
            },
            follow_redirects=True,
        )
        assert response.status_code in (200, 400), response.status_code
        assert "no such staff account" in response.text


def test_today_says_emails_wait_while_no_mail_server_is_set_up(url: str) -> None:
    """No SMTP_HOST: queued e-mails wait (no failed tries), and Today says why, in words."""
    from common.records import notifications
    from staff.service import notifications as service

    engine = db.engine(url)
    anna = accounts.get_by_name(engine, "anna")
    service.set_address(engine, anna.id, "anna@clinic.example")
    service.set_choices(engine, anna.id, {notifications.SUMMARY})
    with engine.begin() as connection:
        assert notifications.enqueue(connection, notifications.SUMMARY, "2026-12-05", "/") == 1
    client = make_app(url).test_client()
    sign_in(client)
    today = client.get("/").text
    assert "E-mail notifications are not sent yet: no mail server is set up yet" in today
    assert "1 waiting to be sent" in today and "SMTP_" not in today
    page = client.get("/admin/notifications/").text
    assert "Not sent yet because" in page and "waiting to be sent" in page
