"""Staff command for consultation requests: list, export to CSV, purge old ones, erase, re-deliver.

    make bookings [DAYS=7]                 (clinic-bookings list [--days 7])
    make bookings-export FILE=requests.csv (clinic-bookings export requests.csv [--days 30]; .xlsx: Excel)
    make bookings-purge DAYS=90            (clinic-bookings purge --older-than 90: requests AND conversations)
    make bookings-erase EMAIL=... | PHONE=... | REFERENCE=SR-...
                                           (clinic-bookings erase --email/--phone/--reference: one person's
                                            requests AND the conversations that made or mention them)
    make bookings-deliver                  (clinic-bookings deliver: retry what the booking system missed)

The database is DATABASE_URL (default: the project's var/clinic.db). The staff console
(Bookings page) does the same and more; both use staff/service/bookings.py. Exports are
CSV files Excel opens correctly (UTF-8 with a BOM), with times in the clinic's time zone.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

from common import settings
from common.clinic import load_settings
from common.records.bookings import BookingStore, default_database_url
from common.records.delivery import deliver_pending
from staff.service import bookings as service


def since(days: int | None) -> date | None:
    """The clinic day `days` days ago (None: no limit)."""
    return datetime.now(load_settings().zone).date() - timedelta(days=days - 1) if days else None


def print_table(rows: list[dict[str, Any]]) -> None:
    """One line per request, newest first."""
    print(f"{len(rows)} request(s)")
    for r in rows:
        delivery = (
            "delivered" if r["delivered_at"] else ("not delivered" if r["delivery_attempts"] else "stored")
        )
        print(
            f"{r['reference']}  {r['created_at']:%Y-%m-%d %H:%M}  {r['name']} | {r['contact']} | "
            f"{r['preferred_date']} {r['time_of_day']} ({r.get('availability') or '-'}) | {r['scar'] or '-'}"
            f" | {r['status']} | {delivery}"
        )


def erase(store: BookingStore, args: argparse.Namespace) -> int:
    """Erase one person's requests and conversations; report what went. 1 if nothing matched."""
    try:
        erasure = service.erase_person(
            store,
            load_settings(),
            args.reference or [],
            args.email or [],
            args.phone or [],
            root=settings.current().staff_project_root,
            staff_name="clinic-bookings",
        )
    except service.NotAContact as problem:
        print(problem)
        return 2
    if not erasure.found_anything:
        print("Nothing found: no request or conversation matches. Nothing was erased.")
        return 1
    print(f"Erased {len(erasure.requests)} request(s): {', '.join(erasure.requests) or '-'}")
    print(f"Erased {erasure.conversations} conversation(s) ({erasure.events} event(s)).")
    if erasure.examples:
        print(f"Took {erasure.examples} example(s) added from their messages out of the training data.")
    if erasure.told:
        print(f"Told the booking system to delete {', '.join(erasure.told)}.")
    if erasure.not_told:
        print(
            f"The booking system may hold {', '.join(erasure.not_told)}: "
            + (
                "it did not answer; `make bookings-deliver` tells it later."
                if load_settings().booking_webhook_url
                else "there is no booking_webhook_url in clinic.yml, so delete it there by hand."
            )
        )
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Run one of the commands; 1 if a delivery failed or there is nowhere to deliver."""
    parser = argparse.ArgumentParser(
        prog="clinic-bookings", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    commands = parser.add_subparsers(dest="command", required=True)
    listing = commands.add_parser("list", help="show requests")
    listing.add_argument("--days", type=int, help="only the last N days")
    export = commands.add_parser("export", help="write requests to a CSV file (or .xlsx for Excel)")
    export.add_argument("path", type=Path)
    export.add_argument("--days", type=int, help="only the last N days")
    purge = commands.add_parser("purge", help="delete requests and conversations older than N days")
    purge.add_argument("--older-than", type=int, required=True, metavar="DAYS")
    erasing = commands.add_parser(
        "erase", help="erase one person's requests and conversations (by reference, email or phone)"
    )
    erasing.add_argument("--reference", action="append", metavar="SR-...", help="a request's reference")
    erasing.add_argument("--email", action="append", help="an email address they gave")
    erasing.add_argument("--phone", action="append", help="a phone number they gave (any usual format)")
    commands.add_parser("deliver", help="send undelivered requests and withdrawals to the booking system")
    args = parser.parse_args(argv)
    if args.command == "erase" and not (args.reference or args.email or args.phone):
        parser.error("erase needs --reference, --email or --phone")

    store = BookingStore(default_database_url())
    zone = load_settings().zone
    if args.command in ("list", "export"):
        rows = service.find(store, service.BookingFilter(since=since(args.days)), zone, limit=1_000_000)
        if args.command == "list":
            print_table(rows)
        else:
            rows = service.with_history(store, rows, zone)
            xlsx = args.path.suffix.lower() == ".xlsx"  # Excel with text cells; else CSV
            args.path.write_bytes(service.export_xlsx(rows, zone) if xlsx else service.export_csv(rows, zone))
            print(f"Wrote {len(rows)} request(s) to {args.path}")
    elif args.command == "erase":
        return erase(store, args)
    elif args.command == "purge":
        gone = service.purge(store, args.older_than)
        print(
            f"Deleted {gone['requests']} request(s) and {gone['events']} conversation event(s) "
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
