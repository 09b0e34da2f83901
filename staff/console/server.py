"""Serve the staff console with waitress (clinic-console; `make run` starts it too).

    clinic-console [--root PROJECT]   on STAFF_HOST:STAFF_PORT (127.0.0.1:8081)

The project it edits (answers, examples, clinic.yml, committed to its git history) is
STAFF_PROJECT_ROOT (default: this checkout); --root overrides it.

In production it runs as its own process or container, behind the clinic's HTTPS reverse
proxy (STAFF_HTTPS=1, STAFF_SECRET_KEY set), on the same database as the assistant. It also
sends the staff's e-mail notifications (staff/service/notifications.py) through SMTP_HOST.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from waitress import serve

from common import settings as deployment

THREADS = 4


def main(argv: Sequence[str] | None = None) -> int:
    """Check the settings, upgrade the database, serve until stopped."""
    parser = argparse.ArgumentParser(
        prog="clinic-console", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--root",
        type=Path,
        default=None,
        help="the project whose answers, examples and clinic.yml the console edits "
        "(default: STAFF_PROJECT_ROOT, else this one)",
    )
    args = parser.parse_args(argv)
    try:
        settings = deployment.load(lock_store=False, serves_chat=False)
    except deployment.SettingsError as error:
        print(f'{error}\n(see README, "Configuration")', file=sys.stderr)
        return 2
    problems = settings.console_problems()
    if problems:
        print("The staff console cannot start:\n  - " + "\n  - ".join(problems), file=sys.stderr)
        return 2
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    from staff.console.app import create_app  # after the settings check: it opens the database
    from staff.service.db import engine
    from staff.service.notifications import Sender

    app = create_app(settings, (args.root or settings.staff_project_root).resolve())
    # E-mail notifications are sent from here, beside the pages (several console processes
    # may run: each e-mail is claimed by one of them before it is sent).
    Sender(engine(settings.database_url), settings).start()
    print(f"Staff console on http://{settings.staff_host}:{settings.staff_port}", flush=True)
    serve(app, host=settings.staff_host, port=settings.staff_port, threads=THREADS, ident="clinic-console")
    return 0


if __name__ == "__main__":
    sys.exit(main())
