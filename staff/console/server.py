"""Serve the staff console with waitress (clinic-console; `make run` starts it too).

    clinic-console [--root PROJECT]   on STAFF_HOST:STAFF_PORT (127.0.0.1:8081)

The project it edits (answers, examples, clinic.yml, committed to its git history) is
STAFF_PROJECT_ROOT (default: this checkout); --root overrides it. With CONTENT_RELEASE_DIR set
(production), it first seeds an empty STAFF_PROJECT_ROOT from the release, or merges a new
release into staff's edits (staff/service/releases.py; `clinic-content prepare` does the same).

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

from common import logs
from common import settings as deployment

THREADS = 4


def bring_in_release(root: Path, release: Path) -> bool:
    """Seed the content staff edit from the release, or merge a new release; False: cannot start.

    A release that cannot be merged (e.g. changes never recorded) is logged and staff's content
    served as it is; only content that cannot be set up at all stops the console.
    """
    from staff.service import releases

    missing = releases.release_dir_problem(release)
    if missing and not (root / ".git").exists():
        print(f"The staff console cannot start: {missing}", file=sys.stderr)
        return False
    if missing:
        logging.warning("%s Staff's content is served as it is.", missing)
        return True
    try:
        logging.info(releases.prepare(root, release).said)
    except releases.ReleaseError as error:
        if not (root / ".git").exists():
            print(f"The staff console cannot start: {error}", file=sys.stderr)
            return False
        logging.warning("%s", error)
    return True


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
        print(f"{error}\n(see docs/deploy/configuration.md)", file=sys.stderr)
        return 2
    problems = settings.console_problems()
    if problems:
        print("The staff console cannot start:\n  - " + "\n  - ".join(problems), file=sys.stderr)
        return 2
    logging.basicConfig(level=logging.INFO, format=logs.TEXT_FORMAT)
    logs.configure("console", settings.log_format)  # LOG_FORMAT=json: one JSON object a line
    from staff.console.app import create_app  # after the settings check: it opens the database
    from staff.service.db import engine
    from staff.service.notifications import Sender

    root = (args.root or settings.staff_project_root).resolve()
    if settings.content_release_dir is not None and not bring_in_release(root, settings.content_release_dir):
        return 2
    app = create_app(settings, root)
    # E-mail notifications are sent from here, beside the pages (several console processes
    # may run: each e-mail is claimed by one of them before it is sent).
    Sender(engine(settings.database_url), settings).start()
    print(f"Staff console on http://{settings.staff_host}:{settings.staff_port}", flush=True)
    serve(app, host=settings.staff_host, port=settings.staff_port, threads=THREADS, ident="clinic-console")
    return 0


if __name__ == "__main__":
    sys.exit(main())
