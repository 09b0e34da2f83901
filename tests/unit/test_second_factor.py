"""The second factor through Flask's test client on a real SQLite database.

Sign-in is two steps (password, then a code from the authenticator app), an admin without a
second factor sets one up before anything else, codes work once, recovery codes work once,
codes count in the sign-in limit, and the app's secret is stored encrypted. The browser tests
(tests/e2e/test_console_second_factor.py) show the same pages to a person.
"""

from __future__ import annotations

import re
from pathlib import Path

import pyotp
import pytest
import sqlalchemy as sa

from common.settings import Settings
from staff.commands import users
from staff.console.app import create_app
from staff.service import accounts, db, second_factor
from tests.two_factor import next_code, secret_from_page

PASSWORD = "correct horse battery staple"
KEY = "unit-test-console-key-" + "y" * 20


@pytest.fixture
def url(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 'console.db'}"
    accounts.create_user(db.engine(url), "anna", "admin", PASSWORD)
    accounts.create_user(db.engine(url), "rita", "reception", PASSWORD)
    return url


@pytest.fixture
def client(url: str):
    return create_app(
        Settings.from_env({"DATABASE_URL": url, "STAFF_SECRET_KEY": KEY}, lock_store=False)
    ).test_client()


def token(client, path: str) -> str:
    return re.search(r'name="csrf_token" value="([^"]+)"', client.get(path).text).group(1)


def password_step(client, name: str = "anna", password: str = PASSWORD):
    return client.post(
        "/login", data={"name": name, "password": password, "csrf_token": token(client, "/login")}
    )


def enrol(client) -> tuple[str, list[str], int]:
    """Set up the app from the set-up page (after the password): the secret, recovery codes, step."""
    page = client.get("/login/set-up").text
    secret = secret_from_page(re.search(r'<code id="secret" class="secret">([^<]+)</code>', page)[1])
    code, step = next_code(secret, None)
    answer = client.post("/login/set-up", data={"code": code, "csrf_token": token(client, "/login/set-up")})
    assert answer.status_code == 200 and "Save your recovery codes" in answer.text
    codes = re.findall(r"<li><code>([a-z0-9]{5}-[a-z0-9]{5})</code></li>", answer.text)
    return secret, codes, step


def test_an_admin_is_not_signed_in_until_the_app_is_set_up(client, url: str) -> None:
    answer = password_step(client)
    assert answer.status_code == 302 and answer.headers["Location"] == "/login/set-up"
    assert client.get("/").headers["Location"].startswith("/login")  # not signed in yet
    assert client.get("/admin/users").headers["Location"].startswith("/login")
    page = client.get("/login/set-up").text
    assert "<svg" in page and "Set up your authenticator app" in page
    wrong = client.post(
        "/login/set-up", data={"code": "000000", "csrf_token": token(client, "/login/set-up")}
    )
    assert wrong.status_code == 401 and "not right" in wrong.text
    secret, codes, _ = enrol(client)
    assert len(codes) == 10 and len(set(codes)) == 10
    assert client.get("/admin/users").status_code == 200
    with db.engine(url).connect() as connection:
        stored = connection.execute(
            sa.text("SELECT totp_secret FROM staff_users WHERE name='anna'")
        ).scalar_one()
        hashes = connection.execute(sa.text("SELECT code_hash FROM staff_recovery_codes")).scalars().all()
    assert secret not in stored and stored  # encrypted at rest
    assert all(h.startswith("$argon2id$") for h in hashes) and not set(codes) & set(hashes)


def test_the_second_sign_in_asks_for_a_code_that_works_once(client, url: str) -> None:
    password_step(client)
    secret, codes, step = enrol(client)
    client.post("/logout", data={"csrf_token": token(client, "/")})
    assert password_step(client).headers["Location"] == "/login/code"
    assert client.get("/").headers["Location"].startswith("/login")
    used = pyotp.TOTP(secret).generate_otp(step)  # the code that set the app up: used already
    replay = client.post("/login/code", data={"code": used, "csrf_token": token(client, "/login/code")})
    assert replay.status_code == 401 and "already used" in replay.text
    code, step = next_code(secret, step)
    assert (
        client.post(
            "/login/code", data={"code": code, "csrf_token": token(client, "/login/code")}
        ).status_code
        == 302
    )
    assert client.get("/").status_code == 200
    # A recovery code works once, too.
    client.post("/logout", data={"csrf_token": token(client, "/")})
    password_step(client)
    answer = client.post(
        "/login/code", data={"code": codes[0].upper(), "csrf_token": token(client, "/login/code")}
    )
    assert answer.status_code == 302
    assert "9 left" in client.get("/").text
    client.post("/logout", data={"csrf_token": token(client, "/")})
    password_step(client)
    again = client.post("/login/code", data={"code": codes[0], "csrf_token": token(client, "/login/code")})
    assert again.status_code == 401


def test_wrong_codes_count_in_the_sign_in_limit(client, url: str) -> None:
    password_step(client)
    enrol(client)
    client.post("/logout", data={"csrf_token": token(client, "/")})
    password_step(client)
    for _ in range(accounts.MAX_FAILURES_PER_NAME):
        answer = client.post(
            "/login/code", data={"code": "123456", "csrf_token": token(client, "/login/code")}
        )
        assert answer.status_code == 401
    refused = client.post("/login/code", data={"code": "123456", "csrf_token": token(client, "/login/code")})
    assert refused.status_code == 429 and "Too many failed sign-ins" in refused.text
    # ... and the name's limit holds for the password step too
    assert password_step(client).status_code == 429


def test_reception_signs_in_with_a_password_and_may_turn_the_app_on(client, url: str) -> None:
    assert password_step(client, "rita").headers["Location"] == "/"
    page = client.get("/account/").text
    assert "Off: you sign in with your password only" in page
    setup = client.get("/account/two-factor").text
    secret = secret_from_page(re.search(r'<code id="secret" class="secret">([^<]+)</code>', setup)[1])
    code, _ = next_code(secret, None)
    answer = client.post(
        "/account/two-factor", data={"code": code, "csrf_token": token(client, "/account/two-factor")}
    )
    assert "Save your recovery codes" in answer.text
    assert "On: you sign in with a code" in client.get("/account/").text
    client.post("/logout", data={"csrf_token": token(client, "/")})
    assert password_step(client, "rita").headers["Location"] == "/login/code"


def test_a_form_without_its_csrf_token_changes_nothing(client, url: str) -> None:
    password_step(client)
    assert client.post("/login/set-up", data={"code": "123456"}).status_code == 400
    assert client.post("/login/code", data={"code": "123456"}).status_code == 400


def test_an_admin_and_the_command_reset_a_lost_second_factor(client, url: str, capsys, monkeypatch) -> None:
    password_step(client)
    enrol(client)
    monkeypatch.setenv("DATABASE_URL", url)
    assert users.main(["reset-second-factor", "anna"]) == 0
    assert "set up their authenticator app again" in capsys.readouterr().out
    assert client.get("/").headers["Location"].startswith("/login")  # her sessions ended
    assert password_step(client).headers["Location"] == "/login/set-up"
    entries = accounts.audit_entries(db.engine(url))
    assert any(e["action"] == "reset a second factor" and e["target"] == "anna" for e in entries)
    assert (
        second_factor.unused_recovery_codes(db.engine(url), accounts.get_by_name(db.engine(url), "anna").id)
        == 0
    )
