"""The content staff edit in production (clinic-content): set it up, bring in a new release, see what waits.

    clinic-content prepare [--root DIR] [--release DIR]   seed an empty DIR, or merge a new release
    clinic-content status  [--root DIR]                   the release's changes waiting for staff

DIR is STAFF_PROJECT_ROOT (a git repository on a persistent volume in production, e.g.
/var/lib/scar-faq/content); the release is CONTENT_RELEASE_DIR (the image's /srv/scar-faq). The
console runs `prepare` itself at start-up when CONTENT_RELEASE_DIR is set, so this command is
for a first look or a check after an upgrade (staff/service/releases.py says what it does).
Exit codes: 0 done (or nothing to do), 2 the settings or the release are missing, 1 refused.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from common import settings as deployment
from staff.service import releases


def prepare(root: Path, release: Path | None) -> int:
    """Seed or update `root` from `release`; print what happened in plain words."""
    if release is None:
        print("Say where the release's content is: --release or CONTENT_RELEASE_DIR.", file=sys.stderr)
        return 2
    missing = releases.release_dir_problem(release)
    if missing:
        print(missing, file=sys.stderr)
        return 2
    try:
        done = releases.prepare(root, release)
    except releases.ReleaseError as error:
        print(error, file=sys.stderr)
        return 1
    print(done.said)
    return 0


def status(root: Path) -> int:
    """List the release's changes that wait for staff (to take or leave on the History page)."""
    waiting = releases.proposals(root)
    if not waiting:
        print("No change of a new release is waiting for staff.")
    for proposal in waiting:
        print(f"Waiting for staff (History page): {proposal.title}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Parse the command line and run the command."""
    parser = argparse.ArgumentParser(
        prog="clinic-content", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("command", choices=("prepare", "status"))
    parser.add_argument("--root", type=Path, default=None, help="the content (default: STAFF_PROJECT_ROOT)")
    parser.add_argument(
        "--release", type=Path, default=None, help="the release's content (default: CONTENT_RELEASE_DIR)"
    )
    args = parser.parse_args(argv)
    try:
        settings = deployment.load(lock_store=False, serves_chat=False)
    except deployment.SettingsError as error:
        print(error, file=sys.stderr)
        return 2
    root = (args.root or settings.staff_project_root).resolve()
    if args.command == "status":
        return status(root)
    return prepare(root, (args.release or settings.content_release_dir))


if __name__ == "__main__":
    sys.exit(main())
