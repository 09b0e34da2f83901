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
import threading
import time
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

import pytest
import sqlalchemy as sa

from common import metrics
from common.clinic import load_settings
from common.records import live_chat, notifications
from common.records.bookings import BookingRequest, BookingStore
from common.records.notifications import notification_outbox
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
    assert service._claim(store.engine, row["id"])  # another console process took it
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
    clinic = load_settings()
    zone_now = datetime.now(clinic.zone)
    midnight = datetime.combine(zone_now.date() + timedelta(days=1), datetime.min.time(), clinic.zone)
    if midnight - zone_now < timedelta(minutes=3):  # the day nearly over: the test's day is the next
        time.sleep((midnight - zone_now).total_seconds() + 1)
        zone_now = datetime.now(clinic.zone)
        midnight = datetime.combine(zone_now.date() + timedelta(days=1), datetime.min.time(), clinic.zone)
    staff_member(store, "anna", "anna@clinic.example", {notifications.SUMMARY})
    staff_member(store, "rita", "rita@clinic.example", {notifications.CONSULTATION})
    store.save(request(), "conversation-7")
    store.save(request("Ann Two", "ann@example.com"), "conversation-8")
    store.save(request(kind="callback"), "conversation-9")
    before = service.summary_due(clinic, zone_now.astimezone(timezone.utc))
    assert before is None or before == zone_now.date().isoformat()
    from dataclasses import replace

    # the summary time later today (an hour after these requests, or before midnight): it counts them
    ahead = min(timedelta(hours=1), midnight - zone_now - timedelta(minutes=2))
    at = (zone_now + ahead).strftime("%H:%M")
    timed = replace(clinic, daily_summary_time=at)
    assert service.queue_summary(store.engine, timed, datetime.now(timezone.utc)) == 0  # not yet
    later = datetime.now(timezone.utc) + ahead + timedelta(minutes=1)
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


def _due_now(store: BookingStore, **values) -> None:
    with store.engine.begin() as db:
        db.execute(notification_outbox.update().values(next_attempt_at=datetime.now(timezone.utc), **values))


def test_a_slow_mail_server_does_not_let_a_second_console_send_an_email_again(store, monkeypatch) -> None:
    """Each row's claim runs from when it was claimed, not from when the round began."""
    monkeypatch.setattr(service, "CLAIM", timedelta(seconds=2))
    staff_member(store, "rita", "rita@clinic.example", {notifications.CONSULTATION})
    first, _ = store.save(request(), "conversation-20")
    second, _ = store.save(request("Ann Two", "ann@example.com"), "conversation-21")
    with MailServer(free_port(), delay=2.5) as mail:
        settings = config(mail.port)
        console_a = threading.Thread(target=service.send_due, args=(store.engine, settings, load_settings()))
        console_a.start()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:  # console A has taken the second e-mail (after the first)
            rows = {row["reference"]: row for row in outbox(store)}
            if rows[second]["claimed_until"] is not None:
                break
            time.sleep(0.05)
        service.send_due(store.engine, settings, load_settings())  # console B's round
        console_a.join(30)
        subjects = [r.message["Subject"] for r in mail.received]
    assert sorted(subjects) == sorted(s for s in subjects if first in s or second in s)
    assert len([s for s in subjects if second in s]) == 1, subjects
    assert len([s for s in subjects if first in s]) == 1, subjects


def test_a_row_another_console_just_recorded_as_failed_is_not_retried_at_once(store) -> None:
    staff_member(store, "rita", "rita@clinic.example", {notifications.CONSULTATION})
    store.save(request(), "conversation-22")
    [row] = outbox(store)  # console B's list of what is due
    assert service.send_due(store.engine, config(free_port()), load_settings()) == (0, 1)  # A: refused
    assert not service._claim(store.engine, row["id"])  # B: its next try is later
    [after] = outbox(store)
    assert after["attempts"] == 1 and after["claimed_until"] is None


def test_a_sender_whose_claim_ran_out_records_nothing_over_the_one_that_took_the_row(store) -> None:
    staff_member(store, "rita", "rita@clinic.example", {notifications.CONSULTATION})
    store.save(request(), "conversation-23")
    [row] = outbox(store)
    mine = service._claim(store.engine, row["id"])
    with store.engine.begin() as db:  # the claim runs out (a console stalled)
        db.execute(
            notification_outbox.update().values(claimed_until=datetime.now(timezone.utc) - timedelta(1))
        )
    theirs = service._claim(store.engine, row["id"])
    assert mine and theirs
    service._record(store.engine, row, "late", config(25), mine)  # the stalled console comes back
    [after] = outbox(store)
    assert after["attempts"] == 0 and after["last_error"] is None and after["claimed_until"] is not None


def test_without_a_mail_server_or_sending_address_emails_wait_and_no_try_is_counted(store) -> None:
    staff_member(store, "rita", "rita@clinic.example", {notifications.CONSULTATION})
    store.save(request(), "conversation-24")
    failures = metrics.EMAIL_FAILURES._value.get()
    unset = Settings.from_env({"STAFF_PUBLIC_URL": PUBLIC}, lock_store=False, serves_chat=False)
    no_sender = config(25, SMTP_FROM="")
    for _ in range(15):
        for settings in (unset, no_sender):
            assert service.send_due(store.engine, settings, load_settings()) == (0, 0)
        _due_now(store)
    [row] = outbox(store)
    assert row["status"] == "pending" and row["attempts"] == 0 and row["last_failed_at"] is None
    assert metrics.EMAIL_FAILURES._value.get() == failures
    health = service.health(store.engine, unset)
    assert health.waiting == 1 and health.not_set_up and "mail server" in health.not_set_up
    assert "sending address" in service.health(store.engine, no_sender).not_set_up
    assert service.health(store.engine, config(25)).not_set_up is None


def test_emails_are_given_up_on_age_not_on_a_count_of_tries(store) -> None:
    staff_member(store, "rita", "rita@clinic.example", {notifications.CONSULTATION})
    young, _ = store.save(request(), "conversation-25")
    old, _ = store.save(request("Ann Two", "ann@example.com"), "conversation-26")
    with store.engine.begin() as db:
        db.execute(notification_outbox.update().values(attempts=30))
        db.execute(
            notification_outbox.update()
            .where(notification_outbox.c.reference == old)
            .values(created_at=datetime.now(timezone.utc) - timedelta(days=3, minutes=1))
        )
    service.send_due(store.engine, config(free_port()), load_settings())
    rows = {row["reference"]: row for row in outbox(store)}
    assert rows[young]["status"] == "pending"  # 31 tries, but queued just now: tried again
    assert rows[young]["next_attempt_at"] - rows[young]["last_attempt_at"] <= timedelta(hours=1)
    assert rows[old]["status"] == "failed"
    # a row that waited three days for a mail server to be set up is given up too, in words
    unset = Settings.from_env({"STAFF_PUBLIC_URL": PUBLIC}, lock_store=False, serves_chat=False)
    with store.engine.begin() as db:
        db.execute(
            notification_outbox.update().values(
                status="pending", created_at=datetime.now(timezone.utc) - timedelta(days=4)
            )
        )
    _due_now(store)
    service.send_due(store.engine, unset, load_settings())
    assert {row["status"] for row in outbox(store)} == {"failed"}
    assert all("3 days" in row["last_error"] for row in outbox(store))


def test_emails_queued_for_staff_who_no_longer_want_them_are_not_sent(store, mail) -> None:
    accounts.create_user(store.engine, "anna", "admin", PASSWORD)
    keep = staff_member(store, "rita", "rita@clinic.example", {notifications.CONSULTATION})
    gone = staff_member(store, "otto", "otto@clinic.example", {notifications.CONSULTATION})
    moved = staff_member(store, "ed", "ed@clinic.example", {notifications.CONSULTATION})
    quit_ = staff_member(store, "una", "una@clinic.example", {notifications.CONSULTATION})
    moves = staff_member(store, "mo", "mo@clinic.example", {notifications.CONSULTATION})
    blank = staff_member(store, "bo", "bo@clinic.example", {notifications.CONSULTATION})
    store.save(request(), "conversation-27")
    accounts.set_role_and_active(store.engine, gone, "reception", False)
    accounts.set_role_and_active(store.engine, moved, "editor", True)
    service.set_choices(store.engine, quit_, set())
    service.set_address(store.engine, moves, "mo.new@clinic.example")
    service.set_address(store.engine, blank, "")
    assert keep
    assert service.send_due(store.engine, config(mail.port), load_settings()) == (2, 0)
    assert sorted(r.recipients[0] for r in mail.received) == ["mo.new@clinic.example", "rita@clinic.example"]
    rows = {row["staff_id"]: row for row in outbox(store)}
    assert rows[moves]["address"] == "mo.new@clinic.example"
    for staff_id in (gone, moved, quit_, blank):
        assert rows[staff_id]["status"] == "failed" and rows[staff_id]["attempts"] == 0
        assert "no longer" in rows[staff_id]["last_error"]
    assert service.health(store.engine).last_failed_at is None  # not a failure of the mail server


def test_purge_and_erasure_reach_the_outbox(store) -> None:
    staff_member(store, "rita", "rita@clinic.example", {notifications.CONSULTATION})
    old, _ = store.save(request(), "conversation-28")
    new, _ = store.save(request("Ann Two", "ann@example.com"), "conversation-29")
    with store.engine.begin() as db:
        db.execute(
            notification_outbox.update()
            .where(notification_outbox.c.reference == old)
            .values(created_at=datetime.now(timezone.utc) - timedelta(days=40))
        )
    store.purge(30)
    assert [row["reference"] for row in outbox(store)] == [new]
    with store.engine.begin() as db:
        notifications.forget(db, ["conversation-29"])
    [row] = outbox(store)
    assert row["conversation_id"] is None and row["reference"] == new


def test_production_with_a_mail_server_needs_an_https_console_address() -> None:
    env = {
        "CLINIC_PROFILE": "production",
        "DATABASE_URL": "postgresql://clinic@db/clinic",
        "SMTP_HOST": "mail.clinic.example",
    }
    for public in ("", "http://console.clinic.example"):
        with pytest.raises(SettingsError) as refused:
            Settings.from_env({**env, "STAFF_PUBLIC_URL": public}, lock_store=False, serves_chat=False)
        assert "STAFF_PUBLIC_URL" in str(refused.value) and "https://" in str(refused.value)
    settings = Settings.from_env({**env, "STAFF_PUBLIC_URL": PUBLIC}, lock_store=False, serves_chat=False)
    assert settings.staff_public_url == PUBLIC
