"""Staff command for consultation requests: list, export to CSV, purge old ones, erase, re-deliver.

    make bookings [DAYS=7]                 (clinic-bookings list [--days 7])
    make bookings-export FILE=requests.csv (clinic-bookings export requests.csv [--days 30])
    make bookings-purge DAYS=90            (clinic-bookings purge --older-than 90: requests AND conversations)
    make bookings-erase EMAIL=... | PHONE=... | REFERENCE=SR-...
                                           (clinic-bookings erase --email/--phone/--reference: one person's
                                            requests AND the conversations that made or mention them)
    make bookings-deliver                  (clinic-bookings deliver: retry what the booking system missed)

The database is DATABASE_URL (default: the project's var/clinic.db).
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import sys
from collections.abc import Sequence
from datetime import datetime, timedelta, timezone
from typing import Any

import phonenumbers

from actions.booking.delivery import deliver_pending, deliver_withdrawal
from actions.booking.store import BookingStore, booking_requests, default_database_url
from actions.booking.validators import InvalidAnswer, parse_contact
from common import conversations
from common.clinic import ClinicSettings, load_settings

COLUMNS = [c.name for c in booking_requests.columns if c.name not in ("id", "dedupe_key", "conversation_id")]


def since(days: int | None) -> datetime | None:
    """The moment `days` days ago (None: no limit)."""
    return datetime.now(timezone.utc) - timedelta(days=days) if days else None


def print_table(rows: list[dict[str, Any]]) -> None:
    """One line per request, newest first."""
    print(f"{len(rows)} request(s)")
    for r in rows:
        status = (
            "delivered" if r["delivered_at"] else ("not delivered" if r["delivery_attempts"] else "stored")
        )
        print(
            f"{r['reference']}  {r['created_at']:%Y-%m-%d %H:%M}  {r['name']} | {r['contact']} | "
            f"{r['preferred_date']} {r['time_of_day']} | {r['scar'] or '-'} | {status}"
        )


def export_csv(rows: list[dict[str, Any]], path: str) -> None:
    """Write the requests to a CSV file."""
    with open(path, "w", newline="", encoding="utf-8") as out:
        writer = csv.DictWriter(out, fieldnames=COLUMNS, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    print(f"Wrote {len(rows)} request(s) to {path}")


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


def erase(store: BookingStore, args: argparse.Namespace) -> int:
    """Erase one person's requests and conversations; report what went. 1 if nothing matched."""
    clinic = load_settings()
    contacts: list[str] = []
    for given in filter(None, [args.email, args.phone]):
        try:
            contacts.append(parse_contact(given, clinic))
        except InvalidAnswer:
            print(f"{given!r} is not a valid {'email address' if '@' in given else 'phone number'}.")
            return 2
    requests = store.find(references=args.reference or [], contacts=contacts)
    found = {row["conversation_id"] for row in requests if row["conversation_id"]}
    found |= conversations.mentioning(
        store.engine, [form for c in contacts for form in typed_forms(c, clinic)]
    )
    found |= conversations.mentioning(store.engine, [r.upper() for r in args.reference or []])
    if not requests and not found:
        print("Nothing found: no request or conversation matches.")
        return 1
    counts = conversations.event_counts(store.engine, found)
    erased = store.erase([row["reference"] for row in requests])
    events = conversations.erase(store.engine, found)
    print(f"Erased {len(erased)} request(s): {', '.join(r.reference for r in erased) or '-'}")
    print(f"Erased {len(counts)} conversation(s) ({events} event(s)).")
    told = [r.reference for r in erased if r.tell_booking_system]
    url = clinic.booking_webhook_url
    if told and url:
        sent = [asyncio.run(deliver_withdrawal(store, url, row)) for row in store.pending_withdrawals(told)]
        print(
            f"Told the booking system to delete {', '.join(told)}: {sum(sent)} of {len(told)} sent"
            + ("" if all(sent) else " (the rest is retried by `make bookings-deliver`)")
        )
    elif told:
        print(f"The booking system may hold {', '.join(told)}: delete it there too.")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Run one of the commands; 1 if a delivery failed or there is nowhere to deliver."""
    parser = argparse.ArgumentParser(
        prog="clinic-bookings", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    commands = parser.add_subparsers(dest="command", required=True)
    listing = commands.add_parser("list", help="show requests")
    listing.add_argument("--days", type=int, help="only the last N days")
    export = commands.add_parser("export", help="write requests to a CSV file")
    export.add_argument("path")
    export.add_argument("--days", type=int, help="only the last N days")
    purge = commands.add_parser("purge", help="delete requests and conversations older than N days")
    purge.add_argument("--older-than", type=int, required=True, metavar="DAYS")
    erasing = commands.add_parser(
        "erase", help="erase one person's requests and conversations (by reference, email or phone)"
    )
    erasing.add_argument("--reference", action="append", metavar="SR-...", help="a request's reference")
    erasing.add_argument("--email", help="the email address they gave")
    erasing.add_argument("--phone", help="the phone number they gave (any usual format)")
    commands.add_parser("deliver", help="send undelivered requests and withdrawals to the booking system")
    args = parser.parse_args(argv)
    if args.command == "erase" and not (args.reference or args.email or args.phone):
        parser.error("erase needs --reference, --email or --phone")

    store = BookingStore(default_database_url())
    if args.command == "list":
        print_table(store.list(since(args.days)))
    elif args.command == "export":
        export_csv(store.list(since(args.days)), args.path)
    elif args.command == "erase":
        return erase(store, args)
    elif args.command == "purge":
        requests = store.purge(args.older_than)
        events = conversations.purge_older_than(store.engine, args.older_than)
        print(
            f"Deleted {requests} request(s) and {events} conversation event(s) "
            f"older than {args.older_than} days"
        )
    else:
        url = load_settings().booking_webhook_url
        if not url:
            print("No booking_webhook_url in clinic.yml: nothing to deliver to.")
            return 1
        delivered, pending = asyncio.run(deliver_pending(store, url))
        print(f"Delivered {delivered} of {pending} pending request(s) and withdrawal(s)")
        return 0 if delivered == pending else 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
