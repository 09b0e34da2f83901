"""Back up and restore the clinic's data: the database, the model store and the edited content.

    clinic-backup [--output FOLDER_OR_FILE.tar] [--skip-uncommitted]
    clinic-restore FILE.tar [--replace] [--force]

`clinic-backup` writes one file (default: a dated clinic-backup-....tar in var/backups/),
readable only by its owner: it holds personal data. `clinic-restore` checks the file, then
restores it into the database (DATABASE_URL), the model store (MODEL_STORE_DIR) and the
edited content (STAFF_PROJECT_ROOT) the settings name; stop the servers first. It refuses a
target that already holds data unless --replace, and a running console (its lock on the content;
on PostgreSQL, other connections to the database, unless --force). On PostgreSQL the database is
replaced in one transaction: a failed restore leaves it as it was. Exit status 0 when done, 1 when refused
(the message says why; nothing was changed), 2 for a wrong command line. Secrets (.env,
STAFF_SECRET_KEY, tokens) are not in a backup. docs/deploy/backups.md.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

import sqlalchemy as sa

from common import settings
from common.paths import BACKUP_DIR
from staff.service import backup as service

MEGABYTE = 1024 * 1024


def target() -> service.Target:
    """Where this deployment's data is, from its settings."""
    current = settings.current()
    return service.Target(current.database_url, current.model_store_dir, current.staff_project_root)


def size(bytes_: int) -> str:
    """A file size in megabytes, as people read it."""
    return f"{bytes_ / MEGABYTE:.1f} MB"


def describe_counts(counts: dict[str, int]) -> str:
    """The counts of a manifest or a restored database, in words."""
    words = [
        ("consultation_requests", "consultation request(s)"),
        ("conversations", "conversation(s)"),
        ("staff_accounts", "staff account(s)"),
        ("publications", "model publication(s)"),
    ]
    return ", ".join(f"{counts[key]} {label}" for key, label in words if key in counts) or "no records"


def trouble(error: Exception) -> str:
    """What went wrong, in words (no data from the archive or the database)."""
    if isinstance(error, service.BackupError | settings.SettingsError):
        return str(error)
    if isinstance(error, sa.exc.SQLAlchemyError):
        return (
            "The database could not be reached or read: check DATABASE_URL and that the database is running."
        )
    if isinstance(error, OSError):
        where = f" ({error.filename})" if error.filename else ""
        return f"A file could not be read or written{where}: {error.strerror or error}."
    raise error


FAILURES = (service.BackupError, settings.SettingsError, sa.exc.SQLAlchemyError, OSError)


def backup_main(argv: Sequence[str] | None = None) -> int:
    """Write one backup file of the database, the model store and the edited content."""
    parser = argparse.ArgumentParser(
        prog="clinic-backup",
        description="Back up the database, the models and the edited content into one file "
        "(it holds personal data: it is readable by its owner only).",
    )
    parser.add_argument(
        "--output",
        type=Path,
        default=BACKUP_DIR,
        help="a folder for a dated backup file, or the file's name ending in .tar (default: var/backups)",
    )
    parser.add_argument(
        "--skip-uncommitted",
        action="store_true",
        help="back up even when the edited content has changes outside its history (they are left out)",
    )
    args = parser.parse_args(argv)
    try:
        made = service.write_backup(target(), args.output, args.skip_uncommitted)
    except FAILURES as error:
        print(f"No backup was made. {trouble(error)}", file=sys.stderr)
        return 1
    manifest, parts = made.manifest, service.list_parts(made.manifest)
    print(f"Backup written to {made.path} ({size(made.path.stat().st_size)}, readable by its owner only).")
    print(f"  The database ({manifest.database}): {describe_counts(manifest.counts)}.")
    print(f"  The model store: {len(parts['models'])} file(s).")
    if parts["content"] is not None:
        print("  The edited content, with its whole history.")
    else:
        print("  No edited content: the content folder is not a git workspace with a history.")
    for skipped in manifest.skipped:
        print(f"  Not in this backup: {skipped}.")
    print("It holds personal data: keep it somewhere only the clinic's administrators can read.")
    return 0


def restore_main(argv: Sequence[str] | None = None) -> int:
    """Restore a backup file into this deployment's database, model store and content folder."""
    parser = argparse.ArgumentParser(
        prog="clinic-restore",
        description="Restore a backup made by clinic-backup (stop the servers first).",
    )
    parser.add_argument("file", type=Path, help="the backup file (.tar)")
    parser.add_argument(
        "--replace",
        action="store_true",
        help="put the backup's data in place of what the database and content folder hold now",
    )
    parser.add_argument(
        "--force",
        action="store_true",
        help="restore even though other connections use the PostgreSQL database (only if they are your own)",
    )
    args = parser.parse_args(argv)
    try:
        restored = service.restore_backup(args.file, target(), args.replace, args.force)
    except FAILURES as error:
        first = "" if isinstance(error, service.PartlyRestored) else "Nothing was restored. "
        print(f"{first}{trouble(error)}", file=sys.stderr)
        return 1
    manifest = restored.manifest
    made = f"{manifest.made.day} {manifest.made:%B %Y at %H:%M} UTC"
    print(f"Restored the backup made on {made}.")
    print(f"  The database: {describe_counts(restored.counts)}.")
    if restored.migrated_from:
        print("  The database was made by an older version and has been brought up to date.")
    print(f"  The model store: {restored.models} model(s).")
    if restored.content_commits:
        print(f"  The edited content: {restored.content_commits} saved change(s) in its history.")
    for skipped in manifest.skipped:
        print(f"  Not in this backup: {skipped}.")
    print(
        f"Anyone whose data was erased after {made} is in this backup again: erase them once more "
        "(clinic-bookings erase) before the servers start. Then start the servers."
    )
    return 0
