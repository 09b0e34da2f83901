"""Consultation requests: find, follow up, export, re-deliver, purge, erase.

Shared by the console and `clinic-bookings`. Times are stored in UTC and shown and exported
in the clinic's time zone (clinic.yml).
"""

from __future__ import annotations

import asyncio
import csv
import io
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import phonenumbers
import sqlalchemy as sa
from openpyxl import Workbook
from openpyxl.cell.cell import TYPE_STRING

from common.clinic import ClinicSettings
from common.contacts import InvalidAnswer, parse_contact
from common.days import readable, weekday_phrase
from common.records import conversations
from common.records.bookings import STATUSES, BookingStore, booking_history, booking_requests
from common.records.delivery import deliver, deliver_withdrawal
from staff.service.db import as_utc, now

# The columns of an export, in order, with the heading staff see.
EXPORT_COLUMNS = {
    "reference": "Reference",
    "kind": "Kind",
    "created_at": "Received",
    "status": "Status",
    "name": "Name",
    "contact": "Contact",
    "contact_type": "Contact type",
    "availability": "When: the visitor's words",
    "understood": "Days understood",
    "preferred_date": "Earliest day",
    "latest_date": "Latest day",
    "weekdays": "Weekdays",
    "time_of_day": "Times understood",
    "flexible": "Flexible",
    "scar": "Scar",
    "question": "Message",
    "status_note": "Note",
    "status_changed_at": "Status changed",
    "status_changed_by": "Changed by",
    "history": "Follow-up history",
    "delivered_at": "Delivered to booking system",
}
# A spreadsheet runs a cell that starts with one of these as a formula.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
TIME_COLUMNS = ("created_at", "consent_at", "delivered_at", "status_changed_at")
XLSX_MIMETYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


@dataclass(frozen=True)
class BookingFilter:
    """What the bookings list shows: a status, a date range (clinic days) and a search text."""

    status: str = ""
    since: date | None = None
    until: date | None = None
    search: str = ""


def _local(row: dict[str, Any], zone: ZoneInfo) -> dict[str, Any]:
    """A stored row with its times in the clinic's zone."""
    out = dict(row)
    for column in TIME_COLUMNS:
        moment = as_utc(out.get(column))
        out[column] = moment.astimezone(zone) if moment else None
    return out


def _conditions(criteria: BookingFilter, zone: ZoneInfo) -> list[Any]:
    table = booking_requests.c
    conditions: list[Any] = []
    if criteria.status in STATUSES:
        conditions.append(table.status == criteria.status)
    conditions += _outside_status(criteria, zone)
    return conditions


def _outside_status(criteria: BookingFilter, zone: ZoneInfo) -> list[Any]:
    """The filter's conditions other than the status: dates and search text."""
    table = booking_requests.c
    conditions: list[Any] = []
    if criteria.since:
        conditions.append(
            table.created_at >= datetime.combine(criteria.since, time(), zone).astimezone(timezone.utc)
        )
    if criteria.until:
        end = datetime.combine(criteria.until + timedelta(days=1), time(), zone).astimezone(timezone.utc)
        conditions.append(table.created_at < end)
    text = criteria.search.strip()
    if text:
        pattern = f"%{text.lower()}%"
        conditions.append(
            sa.or_(
                sa.func.lower(table.reference).like(pattern, escape="\\"),
                sa.func.lower(table.name).like(pattern, escape="\\"),
                sa.func.lower(table.contact).like(pattern, escape="\\"),
            )
        )
    return conditions


def _like_safe(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def find(
    store: BookingStore, criteria: BookingFilter, zone: ZoneInfo, limit: int = 500
) -> list[dict[str, Any]]:
    """The requests that match, newest first, times in the clinic's zone."""
    criteria = BookingFilter(criteria.status, criteria.since, criteria.until, _like_safe(criteria.search))
    query = (
        sa.select(booking_requests)
        .where(*_conditions(criteria, zone))
        .order_by(booking_requests.c.created_at.desc(), booking_requests.c.id.desc())
        .limit(limit)
    )
    with store.engine.connect() as db:
        return [_local(dict(r), zone) for r in db.execute(query).mappings()]


def in_other_statuses(store: BookingStore, criteria: BookingFilter, zone: ZoneInfo) -> dict[str, int]:
    """How many requests a search finds outside the chosen status, by status ("contacted": 2).

    Empty without a search text or a status: a search for a name must not miss the request
    only because it was marked contacted since.
    """
    if not (criteria.search.strip() and criteria.status in STATUSES):
        return {}
    criteria = BookingFilter(criteria.status, criteria.since, criteria.until, _like_safe(criteria.search))
    table = booking_requests.c
    query = (
        sa.select(table.status, sa.func.count())
        .where(table.status != criteria.status, *_outside_status(criteria, zone))
        .group_by(table.status)
    )
    with store.engine.connect() as db:
        found = dict(db.execute(query).all())
    return {status: found[status] for status in STATUSES if found.get(status)}


def get(store: BookingStore, reference: str, zone: ZoneInfo) -> dict[str, Any] | None:
    """One request by its reference, times in the clinic's zone (None if there is none)."""
    row = store.get(reference.strip().upper())
    return _local(row, zone) if row else None


def counts(store: BookingStore) -> dict[str, int]:
    """How many requests are new, and how many the booking system has not received."""
    with store.engine.connect() as db:
        new = db.execute(
            sa.select(sa.func.count()).select_from(booking_requests).where(booking_requests.c.status == "new")
        ).scalar_one()
        undelivered = db.execute(
            sa.select(sa.func.count())
            .select_from(booking_requests)
            .where(booking_requests.c.delivered_at.is_(None), booking_requests.c.delivery_attempts > 0)
        ).scalar_one()
    return {"new": new, "undelivered": undelivered}


def set_status(store: BookingStore, reference: str, status: str, note: str, staff_name: str) -> bool:
    """Mark a request new, contacted or done and/or add a note, as one entry of its history.

    Every change and every note is kept (who, when, what) instead of overwriting the last
    note; the request keeps its latest note for the exports. Nothing is written when neither
    the status changes nor a note is given. False if there is no such request.
    """
    if status not in STATUSES:
        raise ValueError(f"status must be one of {', '.join(STATUSES)}")
    note = note.strip()
    with store.engine.begin() as db:
        row = db.execute(
            sa.select(booking_requests.c.id, booking_requests.c.status).where(
                booking_requests.c.reference == reference
            )
        ).first()
        if row is None:
            return False
        changed = row.status != status
        if not changed and not note:
            return True
        at = now()
        values: dict[str, Any] = {"status": status, "status_changed_at": at, "status_changed_by": staff_name}
        if note:
            values["status_note"] = note
        db.execute(booking_requests.update().where(booking_requests.c.id == row.id).values(**values))
        db.execute(
            booking_history.insert().values(
                request_id=row.id,
                at=at,
                staff_name=staff_name,
                status_from=row.status if changed else None,
                status_to=status if changed else None,
                note=note or None,
            )
        )
    return True


def history(store: BookingStore, reference: str, zone: ZoneInfo) -> list[dict[str, Any]]:
    """A request's follow-up, oldest first: at (clinic time), staff_name, status_from/to, note."""
    query = (
        sa.select(booking_history)
        .join(booking_requests, booking_requests.c.id == booking_history.c.request_id)
        .where(booking_requests.c.reference == reference)
        .order_by(booking_history.c.at, booking_history.c.id)
    )
    with store.engine.connect() as db:
        entries = [dict(r) for r in db.execute(query).mappings()]
    for entry in entries:
        entry["at"] = as_utc(entry["at"]).astimezone(zone)
    return entries


def describe_entry(entry: dict[str, Any]) -> str:
    """One history entry in words: "05 Dec 2026 10:12 rita: new -> contacted. Called back"."""
    what = f"{entry['status_from'] or 'new'} -> {entry['status_to']}" if entry.get("status_to") else ""
    if entry.get("note"):
        what = f"{what}. {entry['note']}" if what else entry["note"]
    return f"{entry['at']:%d %b %Y %H:%M} {entry['staff_name'] or 'staff'}: {what}"


def with_history(store: BookingStore, rows: list[dict[str, Any]], zone: ZoneInfo) -> list[dict[str, Any]]:
    """The rows, each with its follow-up history as one text ("history"), for the exports."""
    ids = [row["id"] for row in rows if row.get("id") is not None]
    entries: dict[int, list[str]] = {}
    with store.engine.connect() as db:
        for start in range(0, len(ids), 500):
            query = (
                sa.select(booking_history)
                .where(booking_history.c.request_id.in_(ids[start : start + 500]))
                .order_by(booking_history.c.at, booking_history.c.id)
            )
            for entry in db.execute(query).mappings():
                local = {**entry, "at": as_utc(entry["at"]).astimezone(zone)}
                entries.setdefault(entry["request_id"], []).append(describe_entry(local))
    return [{**row, "history": "\n".join(entries.get(row.get("id"), []))} for row in rows]


def when(row: dict[str, Any]) -> dict[str, str]:
    """What a consultation request says about when, in words: range, weekdays, times, flexible."""
    first, last = row["preferred_date"], row.get("latest_date")
    days = tuple(d for d in (row.get("weekdays") or "").split(",") if d)
    start = readable(first)
    if last:
        span = f"{start} to {readable(last)}"
    elif row.get("understood") == start or not (row.get("understood") or days or row.get("flexible")):
        span = f"{start} only"
    else:
        span = f"from {start}, no last day given"
    return {
        "words": row.get("availability") or "",
        "understood": row.get("understood") or start,
        "range": span,
        "weekdays": weekday_phrase(days) or "any day the clinic is open",
        "times": row.get("time_of_day") or "-",
        "flexible": flexibility(row),
    }


def flexibility(row: dict[str, Any]) -> str:
    """Whether any day suits, as read back: "the sooner the better" only for "asap", not "whenever"."""
    if not row.get("flexible"):
        return "no"
    return "yes: the sooner the better" if "sooner" in (row.get("understood") or "") else "yes: any day suits"


def _export_value(column: str, row: dict[str, Any]) -> Any:
    """A row's value for one export column, in words where staff would otherwise read codes."""
    value = row.get(column)
    if column == "weekdays":
        days = tuple(d for d in (value or "").split(",") if d)
        return weekday_phrase(days) or ("any day" if row.get("kind") == "consultation" else "")
    if column == "flexible":
        return "yes" if value else "no"
    return value


def _cell(value: Any) -> str:
    """A value as a spreadsheet cell: dates as YYYY-MM-DD HH:MM, formulas defused."""
    if value is None:
        return ""
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M")
    if isinstance(value, date):
        return value.isoformat()
    text = str(value)
    return f"'{text}" if text.startswith(FORMULA_STARTS) else text


def _headings(zone: ZoneInfo) -> list[str]:
    zone_name = datetime.now(zone).strftime("%Z")
    return [
        f"{title} ({zone_name})" if column in TIME_COLUMNS else title
        for column, title in EXPORT_COLUMNS.items()
    ]


def export_csv(rows: list[dict[str, Any]], zone: ZoneInfo) -> bytes:
    """The requests as a CSV file Excel opens correctly: UTF-8 with a BOM, times in the clinic's zone.

    Every cell that starts with = + - or @ (phone numbers included) gets an apostrophe first:
    a CSV has no cell types, so this is the only way to stop a spreadsheet running it as a
    formula. The XLSX export (export_xlsx) types its cells instead and needs none.
    """
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(_headings(zone))
    for row in rows:
        local = _local(row, zone)
        writer.writerow([_cell(_export_value(column, local)) for column in EXPORT_COLUMNS])
    return ("\ufeff" + out.getvalue()).encode("utf-8")


def export_xlsx(rows: list[dict[str, Any]], zone: ZoneInfo) -> bytes:
    """The requests as an Excel workbook (openpyxl): text cells stay text, times are real times.

    Phone numbers and any text starting with = + - @ are typed as text (shown as typed, never
    run as a formula, no apostrophe); received / changed times are date cells in the clinic's
    zone, days are date cells.
    """
    book = Workbook()
    sheet = book.active
    sheet.title = "Requests"
    sheet.append(_headings(zone))
    for row in rows:
        local = _local(row, zone)
        cells = []
        for column in EXPORT_COLUMNS:
            value = _export_value(column, local)
            if isinstance(value, datetime):
                cells.append(value.replace(tzinfo=None))
            elif isinstance(value, date) or value is None:
                cells.append(value)
            else:
                cells.append(str(value))
        sheet.append(cells)
    for line in sheet.iter_rows(min_row=2):
        for cell in line:
            if isinstance(cell.value, str):
                cell.data_type = TYPE_STRING  # never a formula, whatever it starts with
                cell.number_format = "@"
            elif isinstance(cell.value, datetime):
                cell.number_format = "yyyy-mm-dd hh:mm"
            elif isinstance(cell.value, date):
                cell.number_format = "yyyy-mm-dd"
    sheet.freeze_panes = "A2"
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def purge_preview(store: BookingStore, older_than_days: int) -> dict[str, int]:
    """How many requests and conversation events a purge of that age would delete."""
    cutoff = now() - timedelta(days=older_than_days)
    with store.engine.connect() as db:
        requests = db.execute(
            sa.select(sa.func.count())
            .select_from(booking_requests)
            .where(booking_requests.c.created_at < cutoff)
        ).scalar_one()
    return {"requests": requests, "events": conversations.count_older_than(store.engine, older_than_days)}


def purge(store: BookingStore, older_than_days: int) -> dict[str, int]:
    """Delete requests and conversation events older than N days; return how many of each went."""
    requests = store.purge(older_than_days)
    events = conversations.purge_older_than(store.engine, older_than_days)
    return {"requests": requests, "events": events}


def redeliver(store: BookingStore, reference: str, webhook_url: str) -> bool:
    """Send one request to the booking system again (one attempt, recorded); whether it got through."""
    row = store.get(reference)
    if row is None:
        raise LookupError(reference)
    return asyncio.run(deliver(store, webhook_url, row, attempts=1))


class NotAContact(ValueError):
    """What staff typed as an email address or phone number is neither."""


@dataclass(frozen=True)
class Erasure:
    """What an erasure removed: requests (by reference), conversations and their events.

    `told`: the erased requests the booking system was told to delete now; `not_told`: those
    it may hold and has not been told yet (no webhook, or it did not answer: `clinic-bookings
    deliver` retries). Nothing here is personal data, so it may go in the audit log.
    """

    requests: tuple[str, ...] = ()
    conversations: int = 0
    events: int = 0
    told: tuple[str, ...] = ()
    not_told: tuple[str, ...] = ()
    examples: int = 0  # examples taken out of the training data (added from their messages)

    @property
    def found_anything(self) -> bool:
        """Whether anything matched (and was erased)."""
        return bool(self.requests or self.conversations)

    def summary(self) -> str:
        """One line of counts and references for staff and the audit log (no personal data)."""
        text = (
            f"{len(self.requests)} request(s)"
            + (f" ({', '.join(self.requests)})" if self.requests else "")
            + f", {self.conversations} conversation(s) ({self.events} event(s))"
        )
        if self.examples:
            text += f"; {self.examples} example(s) taken out of the training data"
        if self.told:
            text += f"; booking system told to delete {', '.join(self.told)}"
        if self.not_told:
            text += f"; booking system not told yet about {', '.join(self.not_told)}"
        return text


def typed_forms(contact: str, clinic: ClinicSettings) -> list[str]:
    """The ways a visitor may have typed this (normalised) contact in a conversation."""
    if "@" in contact:
        return [contact]
    number = phonenumbers.parse(contact, clinic.country)
    national = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.NATIONAL)
    return [
        contact,
        national,
        national.replace(" ", ""),
        phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.INTERNATIONAL),
    ]


def normalised_contacts(emails: Iterable[str], phones: Iterable[str], clinic: ClinicSettings) -> list[str]:
    """Emails and phone numbers as the form stores them; NotAContact names the first that is neither."""
    contacts = []
    for kind, given in [*(("email address", e) for e in emails), *(("phone number", p) for p in phones)]:
        try:
            contact = parse_contact(given.strip(), clinic)
        except InvalidAnswer:
            raise NotAContact(f"{given!r} is not a valid {kind}: nothing was erased.") from None
        if ("@" in contact) != (kind == "email address"):
            raise NotAContact(f"{given!r} is not a valid {kind}: nothing was erased.")
        contacts.append(contact)
    return contacts


def find_person(
    store: BookingStore,
    clinic: ClinicSettings,
    references: Iterable[str] = (),
    emails: Iterable[str] = (),
    phones: Iterable[str] = (),
) -> tuple[list[dict[str, Any]], set[str]]:
    """One person's requests and the ids of their conversations (see erase_person)."""
    wanted = sorted({r.strip().upper() for r in references if r.strip()})
    contacts = normalised_contacts(emails, phones, clinic)
    requests = store.find(references=wanted, contacts=contacts)
    contacts += [row["contact"] for row in requests if row["contact"] not in contacts]
    requests = store.find(references=wanted, contacts=contacts)  # the person's other requests too
    found = {row["conversation_id"] for row in requests if row["conversation_id"]}
    found |= conversations.mentioning(
        store.engine, [form for c in contacts for form in typed_forms(c, clinic)]
    )
    found |= conversations.mentioning(store.engine, [*wanted, *(row["reference"] for row in requests)])
    # Their conversations' other requests (e.g. a message left with a phone number) are theirs too.
    known = {row["reference"] for row in requests}
    requests += [row for row in store.find(conversation_ids=sorted(found)) if row["reference"] not in known]
    return requests, found


def erase_preview(
    store: BookingStore,
    clinic: ClinicSettings,
    references: Iterable[str] = (),
    emails: Iterable[str] = (),
    phones: Iterable[str] = (),
) -> Erasure:
    """What erase_person would remove, removing nothing (told / not_told stay empty)."""
    requests, found = find_person(store, clinic, references, emails, phones)
    counts = conversations.event_counts(store.engine, found)
    return Erasure(
        requests=tuple(sorted(row["reference"] for row in requests)),
        conversations=len(counts),
        events=sum(counts.values()),
    )


def erase_person(
    store: BookingStore,
    clinic: ClinicSettings,
    references: Iterable[str] = (),
    emails: Iterable[str] = (),
    phones: Iterable[str] = (),
    root: Path | None = None,
    staff_name: str = "",
) -> Erasure:
    """Erase one person: every request with their reference, email or phone, and their conversations.

    With the conversations go their live chat rows and the Unanswered questions decisions
    made on their words; with `root` (the project the console edits) an example added to
    data/nlu from their words is taken out again, as `staff_name`'s change in the History.

    A reference stands for its person: the request's contact details find their other
    requests too. The conversations erased are those that made a request erased here and
    those whose stored events mention the email, the phone number (in the usual ways of
    writing it) or a reference. Requests the booking system may hold leave a withdrawal
    notice; with a webhook in clinic.yml it is sent now (one try each; `clinic-bookings
    deliver` retries the rest). Raises NotAContact, erasing nothing, for a malformed email or
    phone number.
    """
    requests, found = find_person(store, clinic, references, emails, phones)
    counts = conversations.event_counts(store.engine, found)
    erased = store.erase([row["reference"] for row in requests])
    events = conversations.erase(store.engine, found)
    examples = 0
    if root is not None:
        from staff.service import inbox  # the encoder and the review's charts load only when needed

        examples = inbox.remove_erased_examples(store.engine, root, staff_name or "erasure")
    held = [request.reference for request in erased if request.tell_booking_system]
    told: list[str] = []
    url = clinic.booking_webhook_url
    if held and url:
        for row in store.pending_withdrawals(held):
            if asyncio.run(deliver_withdrawal(store, url, row, attempts=1)):
                told.append(row["reference"])
    return Erasure(
        requests=tuple(sorted(request.reference for request in erased)),
        conversations=len(counts),
        events=events,
        told=tuple(sorted(told)),
        not_told=tuple(sorted(set(held) - set(told))),
        examples=examples,
    )
