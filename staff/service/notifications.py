"""Sending the queued e-mails to staff through the clinic's mail server, and their settings.

The console runs `Sender` (a thread beside its pages; staff/console/server.py): every
NOTIFY_POLL_SECONDS it queues the daily summary when its time (Clinic details) has come, then
sends whatever waits in the outbox (common/records/notifications.py) with the standard library's
smtplib, over STARTTLS or TLS. Each row is claimed with one conditional UPDATE just before it
is sent (still pending, due, and not claimed by another sender), for CLAIM from that moment;
the outcome is recorded only while the row is still this sender's claim, so two console
processes never send the same e-mail. The row is marked sent as soon as the mail server
accepted it, and every e-mail carries a Message-ID made from its row, so a mail program shows a
rare resend (the console stopped between the two) as one e-mail. At send time the staff member
must still be active, in a role that may open the page, have chosen the kind and have an
address (their current one is used); otherwise the row is dropped, in words. A failure is
recorded in plain words and retried with exponential backoff (NOTIFY_RETRY_SECONDS, doubling,
at most an hour apart); a row still not sent NOTIFY_GIVE_UP_DAYS after it was queued is given
up. While no mail server or sending address is set up nothing is tried: e-mails wait (up to
NOTIFY_GIVE_UP_DAYS) and the pages say it is not set up. Admins see all of it on the E-mail
notifications page; the Today page says when sending last failed or is not set up.

Nothing a visitor does waits for this: their turn only queued a row.
"""

from __future__ import annotations

import logging
import re
import smtplib
import socket
import ssl
import threading
from dataclasses import dataclass
from datetime import datetime, time, timedelta, timezone
from email.message import EmailMessage
from email.utils import formataddr, parseaddr
from typing import Any

import sqlalchemy as sa

from common import metrics
from common.clinic import ClinicSettings, load_settings
from common.records import notifications
from common.records.bookings import booking_requests
from common.records.notifications import (
    FAILED,
    KIND_ROLES,
    KINDS,
    PENDING,
    SENT,
    SUMMARY,
    notification_choices,
    notification_outbox,
    notification_settings,
)
from common.records.tables import staff_users
from common.settings import NOTIFY_GIVE_UP_DAYS, SMTP_TIMEOUT_SECONDS, Settings
from staff.service.db import as_utc, now

logger = logging.getLogger(__name__)

GIVE_UP = timedelta(days=NOTIFY_GIVE_UP_DAYS)  # not sent this long after queued: given up
MAX_BACKOFF = timedelta(hours=1)
CLAIM = timedelta(minutes=2)  # a claimed row another sender may take after this (a crash)
BATCH = 20
ADDRESS = re.compile(r"[^@\s<>\"]+@[^@\s<>\"]+\.[^@\s<>\"]+")
SUBJECTS = {
    notifications.CONSULTATION: "New consultation request",
    notifications.CALLBACK: "New message for the team",
    notifications.LIVE_CHAT: "A visitor is asking for a person",
    SUMMARY: "Daily summary",
}
NO_DETAILS = (
    "The visitor's details are in the console only: this e-mail carries none. " "Sign in to read them."
)
DETAILS_WARNING = (
    "With details on, every e-mail carries the visitor's name, contact and words: they then sit "
    "in staff's mailboxes and on the mail servers between, beyond the console's sign-in, erasure "
    "and retention. Turn it on only if the clinic's e-mail is as protected as the console."
)


# ---- hooks (metrics) ----------------------------------------------------------------------
def on_sent(kind: str) -> None:
    """Called once for each e-mail the mail server accepted: counted on the console's /metrics."""
    metrics.EMAILS_SENT.labels(kind=kind).inc()


def on_send_failed(kind: str) -> None:
    """Called once for each failed attempt to send an e-mail: counted on the console's /metrics."""
    metrics.EMAIL_FAILURES.inc()


# ---- settings, addresses and choices ------------------------------------------------------
class NotificationError(ValueError):
    """A setting that cannot be saved; the message says why in plain words."""


@dataclass(frozen=True)
class NotificationSettings:
    """The clinic's e-mail settings: the sending address (None: SMTP_FROM) and details on or off."""

    sender: str | None
    with_details: bool
    changed_at: datetime | None = None
    changed_by: str | None = None


def clinic_settings(engine: sa.engine.Engine) -> NotificationSettings:
    """The clinic's e-mail settings (defaults while an admin has set none)."""
    with engine.connect() as db:
        row = db.execute(sa.select(notification_settings).where(notification_settings.c.slot == 1)).first()
    if row is None:
        return NotificationSettings(None, False)
    return NotificationSettings(
        row.sender or None, bool(row.with_details), as_utc(row.changed_at), row.changed_by
    )


def check_address(address: str) -> str:
    """An e-mail address as typed, tidied; raises NotificationError if it is not one."""
    address = address.strip()
    if len(address) > 254 or not ADDRESS.fullmatch(address):
        raise NotificationError(f'"{address[:60]}" is not an e-mail address (like name@clinic.example).')
    return address


def save_clinic_settings(engine: sa.engine.Engine, sender: str, with_details: bool, staff_name: str) -> None:
    """Store the sending address ("" : SMTP_FROM) and whether e-mails carry details."""
    values = {
        "sender": check_address(sender) if sender.strip() else None,
        "with_details": with_details,
        "changed_at": now(),
        "changed_by": staff_name,
    }
    with engine.begin() as db:
        updated = db.execute(
            notification_settings.update().where(notification_settings.c.slot == 1).values(**values)
        ).rowcount
        if not updated:
            db.execute(notification_settings.insert().values(slot=1, **values))


def set_address(engine: sa.engine.Engine, staff_id: int, address: str) -> None:
    """Set a staff member's e-mail address ("" removes it: they get no e-mail)."""
    value = check_address(address) if address.strip() else None
    with engine.begin() as db:
        db.execute(staff_users.update().where(staff_users.c.id == staff_id).values(email=value))


def addresses(engine: sa.engine.Engine) -> dict[int, str]:
    """Every staff member's e-mail address, by id (those without one are left out)."""
    with engine.connect() as db:
        rows = db.execute(
            sa.select(staff_users.c.id, staff_users.c.email).where(staff_users.c.email.is_not(None))
        )
        return {row.id: row.email for row in rows if row.email}


def choices(engine: sa.engine.Engine, staff_id: int) -> set[str]:
    """The kinds of e-mail this staff member chose."""
    with engine.connect() as db:
        return set(
            db.execute(
                sa.select(notification_choices.c.kind).where(notification_choices.c.staff_id == staff_id)
            ).scalars()
        )


def all_choices(engine: sa.engine.Engine) -> dict[int, set[str]]:
    """Every staff member's chosen kinds, by id."""
    chosen: dict[int, set[str]] = {}
    with engine.connect() as db:
        for row in db.execute(sa.select(notification_choices)):
            chosen.setdefault(row.staff_id, set()).add(row.kind)
    return chosen


def set_choices(engine: sa.engine.Engine, staff_id: int, kinds: set[str]) -> None:
    """Replace this staff member's chosen kinds (unknown kinds are ignored)."""
    wanted = sorted(kinds & set(KINDS))
    with engine.begin() as db:
        db.execute(notification_choices.delete().where(notification_choices.c.staff_id == staff_id))
        for kind in wanted:
            db.execute(notification_choices.insert().values(staff_id=staff_id, kind=kind))


# ---- what admins and the Today page see ---------------------------------------------------
def recent(engine: sa.engine.Engine, limit: int = 50) -> list[dict[str, Any]]:
    """The newest outbox rows (no details), newest first, with staff names."""
    query = (
        sa.select(
            notification_outbox.c.id,
            notification_outbox.c.kind,
            notification_outbox.c.reference,
            notification_outbox.c.created_at,
            notification_outbox.c.status,
            notification_outbox.c.attempts,
            notification_outbox.c.next_attempt_at,
            notification_outbox.c.last_error,
            notification_outbox.c.sent_at,
            notification_outbox.c.address,
            staff_users.c.name.label("staff_name"),
        )
        .select_from(
            notification_outbox.outerjoin(staff_users, staff_users.c.id == notification_outbox.c.staff_id)
        )
        .order_by(notification_outbox.c.id.desc())
        .limit(limit)
    )
    with engine.connect() as db:
        rows = [dict(row) for row in db.execute(query).mappings()]
    for row in rows:
        for name in ("created_at", "next_attempt_at", "sent_at"):
            row[name] = as_utc(row[name])
        row["kind_words"] = SUBJECTS.get(row["kind"], row["kind"])
    return rows


@dataclass(frozen=True)
class Health:
    """How e-mail notifications are doing: the last failure, the last success, what waits."""

    last_failed_at: datetime | None
    last_error: str | None
    last_sent_at: datetime | None
    waiting: int
    given_up: int
    not_set_up: str | None = None


def not_set_up(engine: sa.engine.Engine, config: Settings) -> str | None:
    """Why nothing can be sent yet (no mail server, no sending address), in words; None if set up."""
    if not config.smtp_host:
        return "no mail server is set up yet: the clinic's IT sets it up where the console runs."
    if not sender_address(engine, config):
        return "no sending address is set: set one on the E-mail notifications page."
    return None


def health(engine: sa.engine.Engine, config: Settings | None = None) -> Health:
    """The last failed attempt (and why), the last e-mail sent, how many wait or were given up.

    With the console's `config`, also why nothing can be sent yet (`not_set_up`).
    """
    with engine.connect() as db:
        failed = db.execute(
            sa.select(notification_outbox.c.last_failed_at, notification_outbox.c.last_error)
            .where(notification_outbox.c.last_failed_at.is_not(None))
            .order_by(notification_outbox.c.last_failed_at.desc())
            .limit(1)
        ).first()
        sent = db.execute(sa.select(sa.func.max(notification_outbox.c.sent_at))).scalar()
        counts = dict(
            db.execute(
                sa.select(notification_outbox.c.status, sa.func.count()).group_by(
                    notification_outbox.c.status
                )
            ).all()
        )
    return Health(
        as_utc(failed.last_failed_at) if failed else None,
        failed.last_error if failed else None,
        as_utc(sent),
        int(counts.get(PENDING, 0)),
        int(counts.get(FAILED, 0)),
        not_set_up(engine, config) if config is not None else None,
    )


# ---- the daily summary --------------------------------------------------------------------
@dataclass(frozen=True)
class Summary:
    """One day's figures for the summary e-mail."""

    requests: int
    messages: int
    unanswered: int
    thumbs_down: int

    def words(self) -> str:
        """The figures as the e-mail lists them."""
        return (
            f"New consultation requests: {self.requests}\n"
            f"New messages for the team: {self.messages}\n"
            f"Unanswered questions to review: {self.unanswered}\n"
            f"Thumbs-down: {self.thumbs_down}"
        )


def summary_figures(engine: sa.engine.Engine, database_url: str, start: datetime, end: datetime) -> Summary:
    """Requests, messages left, unanswered questions (undecided) and thumbs-down from start to end."""
    from staff.service import inbox, review

    with engine.connect() as db:
        kinds = dict(
            db.execute(
                sa.select(booking_requests.c.kind, sa.func.count())
                .where(booking_requests.c.created_at >= start, booking_requests.c.created_at < end)
                .group_by(booking_requests.c.kind)
            ).all()
        )
    turns = review.read_turns(database_url, start.timestamp(), end.timestamp())
    unanswered = len(inbox.candidates(turns, inbox.decided_keys(engine)))
    return Summary(
        int(kinds.get("consultation", 0)),
        int(kinds.get("callback", 0)),
        unanswered,
        review.Numbers.of(turns).thumbs_down,
    )


def summary_window(clinic: ClinicSettings, day: str) -> tuple[datetime, datetime]:
    """The 24 hours a day's summary covers: up to that day's summary time (UTC)."""
    hours, minutes = (int(part) for part in clinic.daily_summary_time.split(":"))
    at = datetime.combine(datetime.fromisoformat(day).date(), time(hours, minutes), clinic.zone)
    return (at - timedelta(days=1)).astimezone(timezone.utc), at.astimezone(timezone.utc)


def summary_due(clinic: ClinicSettings, moment: datetime) -> str | None:
    """The day (YYYY-MM-DD) whose summary is due at `moment`; None before today's summary time."""
    day = moment.astimezone(clinic.zone).date().isoformat()
    return day if moment >= summary_window(clinic, day)[1] else None


def queue_summary(engine: sa.engine.Engine, clinic: ClinicSettings, moment: datetime) -> int:
    """Queue today's summary for the staff who chose it once its time has come; how many were queued.

    Each staff member gets one a day however often this runs; the figures are counted when it
    is sent (counts only, never details).
    """
    day = summary_due(clinic, moment)
    if day is None:
        return 0
    with engine.begin() as db:
        return notifications.enqueue(db, SUMMARY, day, "/")


# ---- sending ------------------------------------------------------------------------------
def plain_reason(error: BaseException, config: Settings) -> str:
    """Why an e-mail could not be sent, in words an admin can act on (no personal data)."""
    server = f"the mail server ({config.smtp_host}:{config.smtp_port})"
    if isinstance(error, smtplib.SMTPAuthenticationError):
        return f"{server} refused the user name or password it was given: ask the clinic's IT to check them."
    if isinstance(error, smtplib.SMTPSenderRefused):
        return f"{server} refused the sending address: check it on this page."
    if isinstance(error, smtplib.SMTPRecipientsRefused):
        return f"{server} refused the staff member's address: check it on this page."
    if isinstance(error, smtplib.SMTPNotSupportedError):
        return f"{server} does not offer the secure connection asked for: ask the clinic's IT to check it."
    if isinstance(error, ssl.SSLCertVerificationError):
        return (
            f"{server}'s certificate could not be checked ({error.verify_message}): the mail provider "
            "must use a certificate this server trusts, for the name it is reached by (ask the clinic's IT)."
        )
    if isinstance(error, ssl.SSLError):
        return f"the secure connection to {server} failed: ask the clinic's IT to check how it is reached."
    if isinstance(error, socket.gaierror):
        return f"the mail server's name {config.smtp_host!r} could not be found: ask the clinic's IT."
    if isinstance(error, ConnectionRefusedError):
        return f"{server} refused the connection: is it running at this address? (ask the clinic's IT)"
    if isinstance(error, socket.timeout | TimeoutError):
        return f"{server} did not answer within {SMTP_TIMEOUT_SECONDS} seconds."
    if isinstance(error, smtplib.SMTPResponseException):
        return f"{server} answered with an error ({error.smtp_code}); it will be tried again."
    if isinstance(error, smtplib.SMTPException | OSError):
        return f"the connection to {server} failed; it will be tried again."
    return "the e-mail could not be made or sent; it will be tried again."


def sender_address(engine: sa.engine.Engine, config: Settings) -> str:
    """The sending address: the admin's setting, else SMTP_FROM ("" if neither)."""
    return clinic_settings(engine).sender or config.smtp_from


def message_for(
    row: dict[str, Any], config: Settings, sender: str, clinic_name: str, figures: Summary | None = None
) -> EmailMessage:
    """The e-mail of one outbox row: the kind, the reference and the console page's link.

    A summary's row gets its `figures`.
    """
    kind = row["kind"]
    link = config.staff_public_url + row["path"]
    message = EmailMessage()
    message["From"] = formataddr((f"{clinic_name} assistant", sender))
    message["To"] = row["address"]
    domain = parseaddr(sender)[1].rpartition("@")[2] or "localhost"
    message["Message-ID"] = f"<notification-{row['id']}-{row['dedupe_key'][:16]}@{domain}>"
    message["Auto-Submitted"] = "auto-generated"
    if kind == SUMMARY:
        words = figures.words() if figures else ""
        message["Subject"] = f"{clinic_name}: daily summary for {row['reference']}"
        body = (
            f"The last 24 hours at {clinic_name}, up to {row['reference']}'s summary time:\n\n{words}\n\n"
            f"Open the console: {config.staff_public_url}/"
        )
    else:
        what = SUBJECTS.get(kind, kind)
        message["Subject"] = f"{clinic_name}: {what} {row['reference']}"
        body = (
            f"{what} through the website assistant.\n\nReference: {row['reference']}\n"
            f"Open it in the console: {link}\n\n"
            + (
                f"Details (the clinic turned details on):\n{row['details']}"
                if row.get("details")
                else NO_DETAILS
            )
        )
    body += (
        "\n\n--\nYou get these e-mails because you chose them on your account page in the staff "
        f"console: {config.staff_public_url}/account/"
    )
    message.set_content(body)
    return message


def deliver(config: Settings, message: EmailMessage) -> None:
    """Send one e-mail through the clinic's mail server (STARTTLS, TLS, or plain on loopback)."""
    context = ssl.create_default_context()
    if config.smtp_security == "tls":
        smtp: smtplib.SMTP = smtplib.SMTP_SSL(
            config.smtp_host, config.smtp_port, timeout=SMTP_TIMEOUT_SECONDS, context=context
        )
    else:
        smtp = smtplib.SMTP(config.smtp_host, config.smtp_port, timeout=SMTP_TIMEOUT_SECONDS)
    with smtp:
        if config.smtp_security == "starttls":
            smtp.starttls(context=context)
        if config.smtp_user:
            smtp.login(config.smtp_user, config.smtp_password)
        smtp.send_message(message)


def _claim(engine: sa.engine.Engine, row_id: int) -> datetime | None:
    """Take one row for this sender if it is still pending, due and unclaimed; the claim's token.

    One conditional UPDATE (exactly one sender wins), checked against the time of the claim, not
    of the sender's list: a row another sender just recorded as failed is not due any more. The
    token (the claim's end, unique to this claim) is what `_record` checks. None: not taken.
    """
    moment = now()
    until = moment + CLAIM
    with engine.begin() as db:
        taken = db.execute(
            notification_outbox.update()
            .where(
                notification_outbox.c.id == row_id,
                notification_outbox.c.status == PENDING,
                notification_outbox.c.next_attempt_at <= moment,
                sa.or_(
                    notification_outbox.c.claimed_until.is_(None),
                    notification_outbox.c.claimed_until < moment,
                ),
            )
            .values(claimed_until=until)
        ).rowcount
    return until if taken == 1 else None


def _drop(engine: sa.engine.Engine, row_id: int, token: datetime | None, reason: str) -> None:
    """Mark a row not sent, without an attempt (no longer wanted, or waited too long to be set up)."""
    if token is not None:
        condition = notification_outbox.c.claimed_until == token
    else:  # a row nobody is sending
        condition = sa.and_(
            notification_outbox.c.status == PENDING,
            sa.or_(
                notification_outbox.c.claimed_until.is_(None), notification_outbox.c.claimed_until < now()
            ),
        )
    with engine.begin() as db:
        db.execute(
            notification_outbox.update()
            .where(notification_outbox.c.id == row_id, condition)
            .values(status=FAILED, claimed_until=None, last_error=reason[:300])
        )


def _record(
    engine: sa.engine.Engine, row: dict[str, Any], error: str | None, config: Settings, token: datetime
) -> bool:
    """Record one attempt: sent, to be retried later (backoff), or given up (queued too long ago).

    Only while the row is still this sender's claim (`token`); False if another took it since.
    """
    moment = now()
    attempts = row["attempts"] + 1
    values: dict[str, Any] = {
        "attempts": attempts,
        "last_attempt_at": moment,
        "claimed_until": None,
        "address": row["address"],  # the staff member's address at this try (the page shows it)
    }
    if error is None:
        values.update(status=SENT, sent_at=moment)
    else:
        wait = min(timedelta(seconds=config.notify_retry_seconds * 2 ** min(attempts - 1, 20)), MAX_BACKOFF)
        too_old = as_utc(row["created_at"]) + GIVE_UP <= moment + wait
        values.update(
            status=FAILED if too_old else PENDING,
            next_attempt_at=moment + wait,
            last_error=error[:300],
            last_failed_at=moment,
        )
    with engine.begin() as db:
        return (
            db.execute(
                notification_outbox.update()
                .where(notification_outbox.c.id == row["id"], notification_outbox.c.claimed_until == token)
                .values(**values)
            ).rowcount
            == 1
        )


def current_address(engine: sa.engine.Engine, row: dict[str, Any]) -> str | None:
    """Where this row's e-mail goes now: None if its staff member no longer wants or may get it.

    They must still be active, in a role that may open what it links to, have chosen its kind
    and have an address (the current one: an address changed since it was queued is followed).
    """
    with engine.connect() as db:
        user = db.execute(
            sa.select(staff_users.c.active, staff_users.c.role, staff_users.c.email).where(
                staff_users.c.id == row["staff_id"]
            )
        ).first()
        chosen = db.execute(
            sa.select(notification_choices.c.kind).where(
                notification_choices.c.staff_id == row["staff_id"], notification_choices.c.kind == row["kind"]
            )
        ).first()
    if user is None or not user.active or user.role not in KIND_ROLES.get(row["kind"], ()):
        return None
    return (user.email or None) if chosen else None


NO_LONGER = (
    "not sent: the staff member no longer gets these e-mails (account, role, choice or address changed)."
)
NEVER_SET_UP = f"not sent: no mail server or sending address was set up within {NOTIFY_GIVE_UP_DAYS} days."


def send_due(engine: sa.engine.Engine, config: Settings, clinic: ClinicSettings) -> tuple[int, int]:
    """Send every e-mail whose time has come; return (sent, failed attempts).

    While nothing can be sent (no mail server or sending address) nothing is tried or counted:
    the e-mails wait, and only those queued more than NOTIFY_GIVE_UP_DAYS ago are given up.
    """
    figures: dict[str, Summary] = {}
    moment = now()
    with engine.connect() as db:
        due = [
            dict(row)
            for row in db.execute(
                sa.select(notification_outbox)
                .where(
                    notification_outbox.c.status == PENDING, notification_outbox.c.next_attempt_at <= moment
                )
                .order_by(notification_outbox.c.id)
                .limit(BATCH)
            ).mappings()
        ]
    if not_set_up(engine, config):
        for row in due:
            if as_utc(row["created_at"]) + GIVE_UP <= moment:
                _drop(engine, row["id"], None, NEVER_SET_UP)
        return 0, 0
    sender = sender_address(engine, config)
    sent = failed = 0
    for row in due:
        token = _claim(engine, row["id"])
        if token is None:
            continue  # another console process has it, or has just tried it
        address = current_address(engine, row)
        if address is None:
            _drop(engine, row["id"], token, NO_LONGER)
            continue
        row = {**row, "address": address}
        error: str | None = None
        try:
            if row["kind"] == SUMMARY and row["reference"] not in figures:
                start, end = summary_window(clinic, row["reference"])
                figures[row["reference"]] = summary_figures(engine, config.database_url, start, end)
            deliver(config, message_for(row, config, sender, clinic.name, figures.get(row["reference"])))
        except Exception as problem:  # recorded in words; the row waits for its next try
            error = plain_reason(problem, config)
        if not _record(engine, row, error, config, token):
            logger.warning("E-mail notification %d: its claim ran out before it was recorded", row["id"])
        if error is None:
            sent += 1
            on_sent(row["kind"])
            logger.info("E-mail notification %d (%s) sent", row["id"], row["kind"])
        else:
            failed += 1
            on_send_failed(row["kind"])
            logger.warning("E-mail notification %d (%s) not sent: %s", row["id"], row["kind"], error)
    return sent, failed


class Sender(threading.Thread):
    """The console's background sender: the daily summary when due, then what waits, every few seconds."""

    def __init__(self, engine: sa.engine.Engine, config: Settings) -> None:
        super().__init__(name="e-mail notifications", daemon=True)
        self.engine = engine
        self.config = config
        self.stopping = threading.Event()

    def run_once(self) -> tuple[int, int]:
        """One round: queue a due summary, send what is due; (sent, failed attempts)."""
        clinic = load_settings()
        try:
            queue_summary(self.engine, clinic, now())
        except Exception as error:  # the summary waits for the next round; sending goes on
            logger.error("Could not queue the daily summary: %s", type(error).__name__)
        return send_due(self.engine, self.config, clinic)

    def run(self) -> None:
        """Rounds until stopped; a round that fails is logged and the next one tries again."""
        while not self.stopping.is_set():
            try:
                self.run_once()
            except Exception as error:
                logger.error("E-mail notifications: a round failed: %s", type(error).__name__)
            self.stopping.wait(self.config.notify_poll_seconds)

    def stop(self) -> None:
        """Finish the current round and stop."""
        self.stopping.set()
