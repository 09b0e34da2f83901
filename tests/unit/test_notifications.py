"""E-mail notifications: queued with the request, sent through a real SMTP server on loopback (aiosmtpd).

A real SQLite database (migrated), staff accounts made as the console makes them, and a real mail
server (tests/mail.py) that can be down and come back: what arrives is what a staff member's
mailbox would get.
"""

from __future__ import annotations

import re
import smtplib
import socket
import ssl
import time
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

import pytest
import sqlalchemy as sa

from actions.booking.store import BookingRequest, BookingStore
from common import live_chat, metrics, notifications
from common.clinic import load_settings
from common.notifications import notification_outbox
from common.settings import Settings, SettingsError
from servers.launcher import free_port
from staff.service import accounts
from staff.service import notifications as service
from tests.mail import MailServer, certificate

PUBLIC = "https://console.clinic.example"
PASSWORD = "correct horse battery staple"


def request(
    name: str = "Jo Biscuit", contact: str = "jo@example.com", kind: str = "consultation"
) -> BookingRequest:
    return BookingRequest(
        name, contact, "email", date(2026, 12, 9), "morning", "a scar on my arm", kind=kind,
        question="please call me about the price" if kind == "callback" else "",
    )  # fmt: skip


def config(port: int, **extra: str) -> Settings:
    env = {
        "SMTP_HOST": "127.0.0.1",
        "SMTP_PORT": str(port),
        "SMTP_SECURITY": "plain",
        "SMTP_FROM": "assistant@clinic.example",
        "STAFF_PUBLIC_URL": PUBLIC,
        "NOTIFY_RETRY_SECONDS": "1",
        **extra,
    }
    return Settings.from_env(env, lock_store=False, serves_chat=False)


@pytest.fixture
def store(tmp_path: Path) -> BookingStore:
    return BookingStore(f"sqlite:///{tmp_path / 'clinic.db'}", secret=b"k" * 32)


@pytest.fixture
def mail() -> MailServer:
    with MailServer(free_port()) as server:
        yield server


def staff_member(store: BookingStore, name: str, address: str | None, kinds: set[str]) -> int:
    user = accounts.create_user(store.engine, name, "reception", PASSWORD)
    if address:
        service.set_address(store.engine, user.id, address)
    service.set_choices(store.engine, user.id, kinds)
    return user.id


def outbox(store: BookingStore) -> list[dict]:
    with store.engine.connect() as db:
        return [dict(r) for r in db.execute(sa.select(notification_outbox)).mappings()]


def send_until(store: BookingStore, settings: Settings, arrived, timeout: float = 20.0) -> None:
    """Run the sender's rounds (as its thread does) until `arrived()` or the timeout."""
    deadline = time.monotonic() + timeout
    while not arrived() and time.monotonic() < deadline:
        service.send_due(store.engine, settings, load_settings())
        time.sleep(0.2)


def test_a_request_sends_one_email_with_its_link_and_no_details_to_those_who_chose_it(store, mail) -> None:
    staff_member(store, "rita", "rita@clinic.example", {notifications.CONSULTATION})
    staff_member(store, "tess", "tess@clinic.example", set())  # has an address, chose nothing
    staff_member(store, "carl", "carl@clinic.example", {notifications.CALLBACK})  # another kind
    reference, created = store.save(request(), "conversation-1")
    assert created
    store.save(request(), "conversation-1")  # the same request again (a retried action)
    settings = config(mail.port)

    assert service.send_due(store.engine, settings, load_settings()) == (1, 0)
    assert service.send_due(store.engine, settings, load_settings()) == (0, 0)  # nothing twice

    [received] = mail.received
    assert received.recipients == ["rita@clinic.example"]
    assert received.sender == "assistant@clinic.example"
    assert reference in received.message["Subject"] and "consultation request" in received.message["Subject"]
    assert f"{PUBLIC}/bookings/{reference}" in received.body
    for personal in ("Jo Biscuit", "jo@example.com", "a scar on my arm"):
        assert personal not in received.body and personal not in str(received.message)
    [row] = outbox(store)
    assert row["status"] == "sent" and row["details"] is None and row["attempts"] == 1


def test_with_the_mail_server_down_the_email_waits_and_arrives_once_when_it_is_back(store) -> None:
    staff_member(store, "rita", "rita@clinic.example", {notifications.CALLBACK})
    port = free_port()
    settings = config(port)
    reference, _ = store.save(request(kind="callback"), "conversation-2")
    failures = metrics.EMAIL_FAILURES._value.get()

    assert service.send_due(store.engine, settings, load_settings()) == (0, 1)  # nobody listens
    assert metrics.EMAIL_FAILURES._value.get() == failures + 1  # the console's /metrics shows it
    health = service.health(store.engine)
    assert health.last_failed_at is not None and health.waiting == 1 and health.last_sent_at is None
    assert "refused the connection" in health.last_error and str(port) in health.last_error
    [row] = outbox(store)
    assert row["status"] == "pending" and row["next_attempt_at"] > row["created_at"]  # backoff

    with MailServer(port) as mail:
        send_until(store, settings, lambda: mail.received)
        for _ in range(5):  # more rounds, after the retry time: still one e-mail
            service.send_due(store.engine, settings, load_settings())
        time.sleep(1.2)
        service.send_due(store.engine, settings, load_settings())
        [received] = mail.received
    assert reference in received.message["Subject"] and "message for the team" in received.message["Subject"]
    assert f"{PUBLIC}/bookings/{reference}" in received.body
    health = service.health(store.engine)
    assert health.waiting == 0 and health.last_sent_at > health.last_failed_at
    assert metrics.EMAILS_SENT.labels(kind="callback")._value.get() >= 1


def test_an_email_is_claimed_by_one_sender_only(store, mail) -> None:
    staff_member(store, "rita", "rita@clinic.example", {notifications.CONSULTATION})
    store.save(request(), "conversation-3")
    settings = config(mail.port)
    [row] = outbox(store)
    moment = datetime.now(timezone.utc)
    assert service._claim(store.engine, row["id"], moment)  # another console process took it
    assert service.send_due(store.engine, settings, load_settings()) == (0, 0)
    assert mail.received == []


def test_details_only_when_the_clinic_turns_them_on_and_erasure_erases_them(store, mail) -> None:
    staff_member(store, "rita", "rita@clinic.example", {notifications.CONSULTATION})
    service.save_clinic_settings(store.engine, "", True, "anna")
    reference, _ = store.save(request(), "conversation-4")
    other, _ = store.save(request("Sam Other", "sam@example.com"), "conversation-5")
    assert {row["reference"]: bool(row["details"]) for row in outbox(store)} == {reference: True, other: True}

    store.erase([reference])  # the person asked to be forgotten before the e-mail went
    assert [row["reference"] for row in outbox(store)] == [other]
    service.send_due(store.engine, config(mail.port), load_settings())
    [received] = mail.received
    assert "Sam Other" in received.body and "sam@example.com" in received.body
    assert "Jo Biscuit" not in str([r.body for r in mail.received])


def test_nobody_is_sent_anything_without_an_address_or_when_switched_off(store, mail) -> None:
    accounts.create_user(store.engine, "anna", "admin", PASSWORD)
    staff_member(store, "nora", None, {notifications.CONSULTATION})  # no address yet
    off = staff_member(store, "otto", "otto@clinic.example", {notifications.CONSULTATION})
    accounts.set_role_and_active(store.engine, off, "reception", False)
    store.save(request(), "conversation-6")
    assert outbox(store) == []
    assert service.send_due(store.engine, config(mail.port), load_settings()) == (0, 0)
    assert mail.received == []


def test_a_visitor_asking_for_a_person_with_nobody_available_is_told_once_in_a_while(store, mail) -> None:
    staff_member(store, "rita", "rita@clinic.example", {notifications.LIVE_CHAT})
    with store.engine.begin() as db:
        first = notifications.enqueue(db, notifications.LIVE_CHAT, "C-AAAA", "/conversations/view?id=C-AAAA",
                                      quiet=notifications.LIVE_CHAT_QUIET)  # fmt: skip
        again = notifications.enqueue(
            db, notifications.LIVE_CHAT, "C-AAAA", "/x", quiet=notifications.LIVE_CHAT_QUIET
        )
        other = notifications.enqueue(
            db, notifications.LIVE_CHAT, "C-BBBB", "/x", quiet=notifications.LIVE_CHAT_QUIET
        )
    assert (first, again, other) == (1, 0, 0)  # one e-mail, however many visitors ask in ten minutes
    service.send_due(store.engine, config(mail.port), load_settings())
    [received] = mail.received
    assert f"{PUBLIC}/conversations/view?id=C-AAAA" in received.body
    assert "asking for a person" in received.message["Subject"]


def test_the_daily_summary_counts_the_day_and_goes_once(store, mail, tmp_path: Path) -> None:
    staff_member(store, "anna", "anna@clinic.example", {notifications.SUMMARY})
    staff_member(store, "rita", "rita@clinic.example", {notifications.CONSULTATION})
    store.save(request(), "conversation-7")
    store.save(request("Ann Two", "ann@example.com"), "conversation-8")
    store.save(request(kind="callback"), "conversation-9")
    clinic = load_settings()
    zone_now = datetime.now(clinic.zone)
    before = service.summary_due(clinic, zone_now.astimezone(timezone.utc))
    assert before is None or before == zone_now.date().isoformat()
    from dataclasses import replace

    # the summary time an hour after these requests: tomorrow's morning counts them
    at = (zone_now + timedelta(hours=1)).strftime("%H:%M")
    timed = replace(clinic, daily_summary_time=at)
    assert service.queue_summary(store.engine, timed, datetime.now(timezone.utc)) == 0  # not yet
    later = datetime.now(timezone.utc) + timedelta(hours=1, minutes=1)
    assert service.queue_summary(store.engine, timed, later) == 1
    assert service.queue_summary(store.engine, timed, later + timedelta(minutes=5)) == 0  # once a day
    settings = config(mail.port)
    service.send_due(store.engine, settings, timed)
    [summary] = [r for r in mail.received if "daily summary" in r.message["Subject"]]
    assert summary.recipients == ["anna@clinic.example"]
    assert "New consultation requests: 2" in summary.body
    assert "New messages for the team: 1" in summary.body
    assert "Unanswered questions to review: 0" in summary.body and "Thumbs-down: 0" in summary.body
    assert "Jo Biscuit" not in summary.body


def test_starttls_with_a_user_and_password_and_a_certificate_it_can_check(
    store, tmp_path, monkeypatch
) -> None:
    cert, key = certificate(tmp_path)
    staff_member(store, "rita", "rita@clinic.example", {notifications.CONSULTATION})
    store.save(request(), "conversation-10")
    port = free_port()
    with MailServer(port, tls=(cert, key), login=("assistant", "mail-password")) as mail:
        # a certificate nobody vouches for is refused, in words
        secure = config(port, SMTP_SECURITY="starttls", SMTP_USER="assistant", SMTP_PASSWORD="mail-password")
        assert service.send_due(store.engine, secure, load_settings()) == (0, 1)
        assert "certificate could not be checked" in service.health(store.engine).last_error
        with store.engine.begin() as db:  # retry at once, as the backoff would later
            db.execute(notification_outbox.update().values(next_attempt_at=datetime.now(timezone.utc)))
        monkeypatch.setenv("SSL_CERT_FILE", str(cert))  # the clinic's own certificate authority
        wrong = config(port, SMTP_SECURITY="starttls", SMTP_USER="assistant", SMTP_PASSWORD="not-it")
        assert service.send_due(store.engine, wrong, load_settings()) == (0, 1)
        assert "user name or password" in service.health(store.engine).last_error
        with store.engine.begin() as db:
            db.execute(notification_outbox.update().values(next_attempt_at=datetime.now(timezone.utc)))
        assert service.send_due(store.engine, secure, load_settings()) == (1, 0)
        assert [r.recipients for r in mail.received] == [["rita@clinic.example"]]


def test_settings_refuse_plain_smtp_beyond_this_machine_and_a_user_without_password() -> None:
    with pytest.raises(SettingsError) as refused:
        Settings.from_env({"SMTP_HOST": "mail.clinic.example", "SMTP_SECURITY": "plain", "SMTP_USER": "x"})
    assert "unencrypted" in str(refused.value) and "SMTP_PASSWORD" in str(refused.value)
    assert Settings.from_env({"SMTP_HOST": "mail.clinic.example", "SMTP_SECURITY": "tls"}).smtp_port == 465
    assert Settings.from_env({}).smtp_port == 587


def test_the_live_chat_action_queues_only_when_nobody_is_available(store, monkeypatch) -> None:
    from actions import live_chat as actions

    staff_member(store, "rita", "rita@clinic.example", {notifications.LIVE_CHAT})
    monkeypatch.setenv("DATABASE_URL", str(store.engine.url))
    actions.tell_staff_nobody_available(live_chat.Reach(False, live_chat.OUTSIDE_HOURS), "conversation-11")
    actions.tell_staff_nobody_available(live_chat.Reach(True), "conversation-11")
    assert outbox(store) == []
    actions.tell_staff_nobody_available(live_chat.Reach(False, live_chat.NOBODY_AVAILABLE), "conversation-11")
    [row] = outbox(store)
    assert row["kind"] == "live_chat" and row["path"] == f"/conversations/view?id={row['reference']}"
    assert row["reference"].startswith("C-") and "conversation-11" not in row["reference"]


@pytest.mark.parametrize(
    "error",
    [
        smtplib.SMTPAuthenticationError(535, b"no"),
        smtplib.SMTPSenderRefused(550, b"no", "a@b"),
        smtplib.SMTPNotSupportedError("starttls"),
        ssl.SSLError("handshake"),
        socket.gaierror("unknown host"),
        ConnectionRefusedError(),
        TimeoutError(),
        OSError("reset"),
        ValueError("x"),
    ],
)
def test_why_an_email_failed_is_said_without_setting_or_program_names(error: BaseException) -> None:
    """Admins read these on Today and E-mail notifications: no SMTP_ names, no exception class."""
    reason = service.plain_reason(error, config(25))
    assert reason and not re.search(r"SMTP_|[A-Z][a-z]+(Error|Exception)|gaierror", reason), reason
