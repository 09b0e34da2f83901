"""Staff command for consultation requests: list, export to CSV, purge old ones, re-deliver.

    python -m tools.bookings list [--days 7]
    python -m tools.bookings export requests.csv [--days 30]
    python -m tools.bookings purge --older-than 90   # requests AND conversations
    python -m tools.bookings deliver            # retry requests the booking system missed

The database is DATABASE_URL (default: the project's var/clinic.db).
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import sys
from datetime import datetime, timedelta, timezone
from typing import Any, Dict, List, Optional, Sequence

import sqlalchemy as sa

from actions.booking.delivery import deliver_pending
from actions.booking.store import BookingStore, booking_requests, default_database_url
from actions.settings import load_settings

COLUMNS = [c.name for c in booking_requests.columns if c.name not in ("id", "dedupe_key")]


def since(days: Optional[int]) -> Optional[datetime]:
    return datetime.now(timezone.utc) - timedelta(days=days) if days else None


def print_table(rows: List[Dict[str, Any]]) -> None:
    """One line per request, newest first."""
    print(f"{len(rows)} request(s)")
    for r in rows:
        status = "delivered" if r["delivered_at"] else ("not delivered" if r["delivery_attempts"] else "stored")
        print(f"{r['reference']}  {r['created_at']:%Y-%m-%d %H:%M}  {r['name']} | {r['contact']} | "
              f"{r['preferred_date']} {r['time_of_day']} | {r['scar'] or '-'} | {status}")


def export_csv(rows: List[Dict[str, Any]], path: str) -> None:
    with open(path, "w", newline="", encoding="utf-8") as out:
        writer = csv.DictWriter(out, fieldnames=COLUMNS, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    print(f"Wrote {len(rows)} request(s) to {path}")


def purge_conversations(store: BookingStore, older_than_days: int) -> int:
    """Delete conversation events (Rasa's SQL tracker store) older than N days."""
    if not sa.inspect(store.engine).has_table("events"):
        return 0
    cutoff = (datetime.now(timezone.utc) - timedelta(days=older_than_days)).timestamp()
    with store.engine.begin() as db:
        return db.execute(sa.text("DELETE FROM events WHERE timestamp < :cutoff"),
                          {"cutoff": cutoff}).rowcount


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    listing = commands.add_parser("list", help="show requests")
    listing.add_argument("--days", type=int, help="only the last N days")
    export = commands.add_parser("export", help="write requests to a CSV file")
    export.add_argument("path")
    export.add_argument("--days", type=int, help="only the last N days")
    purge = commands.add_parser("purge", help="delete requests and conversations older than N days")
    purge.add_argument("--older-than", type=int, required=True, metavar="DAYS")
    commands.add_parser("deliver", help="send undelivered requests to the booking system")
    args = parser.parse_args(argv)

    store = BookingStore(default_database_url())
    if args.command == "list":
        print_table(store.list(since(args.days)))
    elif args.command == "export":
        export_csv(store.list(since(args.days)), args.path)
    elif args.command == "purge":
        requests = store.purge(args.older_than)
        events = purge_conversations(store, args.older_than)
        print(f"Deleted {requests} request(s) and {events} conversation event(s) "
              f"older than {args.older_than} days")
    else:
        url = load_settings().booking_webhook_url
        if not url:
            print("No booking_webhook_url in clinic.yml: nothing to deliver to.")
            return 1
        pending = len(store.undelivered())
        delivered = asyncio.run(deliver_pending(store, url))
        print(f"Delivered {delivered} of {pending} pending request(s)")
        return 0 if delivered == pending else 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
