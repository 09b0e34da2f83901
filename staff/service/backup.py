"""Backups that restore: the database, the model store and the edited content in one archive file.

One backup is one tar file (`write_backup`) holding:

- `database/clinic.sqlite` (SQLite, copied with SQLite's online backup API, safe while the
  servers write) or `database/clinic.pgdump` (PostgreSQL, `pg_dump --format=custom`): every
  table of the one database: consultation requests and their history, conversations (Rasa's
  `events`, in the same database), staff accounts with their second factor, Unanswered
  questions decisions, the audit log, training runs and which model is live;
- `models/...`: the model store (MODEL_STORE_DIR): published models, candidates and their
  judgements, named by content (the Rasa servers' own copies in `served/` are left out: each
  server fetches the live model again from the console);
- `content.bundle`: the edited content's whole git history (`git bundle --all` of
  STAFF_PROJECT_ROOT); changes not in that history are refused unless asked to skip them;
- `manifest.json`, first: when, which versions, the database's schema revision, a few counts
  (no personal data) and the size and SHA-256 of every other part.

The archive holds personal data: it is created with mode 0600 and nothing of its contents is
printed or logged. `restore_backup` checks every part against the manifest before it changes
anything, refuses a schema newer than this code knows and a target that already holds data
(unless `replace`), restores, points the model records at this store, and migrates an older
schema forward with Alembic. Secrets (STAFF_SECRET_KEY, tokens, passwords) are not in a backup.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import platform
import shutil
import sqlite3
import subprocess
import tarfile
import tempfile
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any, BinaryIO

import sqlalchemy as sa
from alembic.script import ScriptDirectory
from alembic.util import CommandError

from common import database, migrations
from staff.service import content as content_service

FORMAT = 1  # the archive layout this code writes and reads
MANIFEST = "manifest.json"
SQLITE_PART = "database/clinic.sqlite"
POSTGRES_PART = "database/clinic.pgdump"
MODELS_PART = "models"
CONTENT_PART = "content.bundle"
SERVED_DIR = "served"  # servers/model_pull.py KEPT_DIR: each Rasa server's copy, fetched again
ARCHIVE_MODE = 0o600
NAME_FORMAT = "clinic-backup-%Y%m%dT%H%M%SZ.tar"
# Tables whose rows mean a database holds the clinic's data (a fresh, migrated one has none).
DATA_TABLES = ("booking_requests", "events", "staff_users", "published_models", "training_runs", "audit_log")
# Rows that name a file in the model store, by absolute path (rewritten to the new store on restore).
MODEL_PATH_COLUMNS = (
    ("training_runs", "archive"),
    ("published_models", "archive"),
    ("installed_model", "archive"),
)


class BackupError(Exception):
    """The backup or the restore cannot go ahead; the message says why and what to do."""


class PartlyRestored(BackupError):
    """The database was restored but a later step stopped; the message says which and what to do."""


@dataclass(frozen=True)
class Target:
    """Where the clinic's data lives: what a backup reads and a restore writes."""

    database_url: str
    model_store: Path
    content_root: Path


@dataclass
class Part:
    """One file of the archive, as the manifest records it."""

    name: str
    size: int
    sha256: str


@dataclass
class Manifest:
    """What an archive holds: written first into it, checked before anything is restored."""

    format: int
    created_at: str  # ISO 8601, UTC
    versions: dict[str, str]
    database: str  # "sqlite" or "postgresql"
    schema_revision: str | None
    model_store: str  # where the store was (the database's model records name files there)
    content_head: str | None  # the branch checked out in the content workspace (None: detached)
    content_commit: str | None  # its commit (None: no content in the archive)
    counts: dict[str, int] = field(default_factory=dict)
    parts: list[Part] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # what the person asked to leave out, in words

    def as_json(self) -> bytes:
        """The manifest as the archive stores it."""
        data = {**self.__dict__, "parts": [part.__dict__ for part in self.parts]}
        return json.dumps(data, indent=2, sort_keys=True).encode("utf-8")

    @classmethod
    def from_json(cls, raw: bytes) -> Manifest:
        """The manifest read from an archive; BackupError if it is not one this code can read."""
        try:
            data = json.loads(raw)
            parts = [Part(**part) for part in data.pop("parts")]
            return cls(**data, parts=parts)
        except (ValueError, TypeError, KeyError) as error:
            raise BackupError(
                "This file is not a clinic backup (its list of contents cannot be read)."
            ) from error

    @property
    def made(self) -> datetime:
        """When the backup was made (UTC)."""
        return datetime.fromisoformat(self.created_at)


# --- reading what there is --------------------------------------------------------------------


def sha256_of(path: Path) -> str:
    """The SHA-256 (hex) of a file."""
    with path.open("rb") as handle:
        return _digest(handle)


def _digest(handle: BinaryIO) -> str:
    """The SHA-256 (hex) of an open file, read from its start."""
    digest = hashlib.sha256()
    handle.seek(0)
    for block in iter(lambda: handle.read(1 << 20), b""):
        digest.update(block)
    return digest.hexdigest()


def _run(command: list[str], cwd: Path | None = None, env: dict[str, str] | None = None) -> str:
    """Run a program; its standard output, or BackupError with its own last words."""
    try:
        done = subprocess.run(
            command, cwd=cwd, env=env, capture_output=True, text=True, check=False, timeout=3600
        )
    except FileNotFoundError:
        raise BackupError(f"The program {command[0]} is not installed on this machine.") from None
    if done.returncode != 0:
        raise BackupError(f"{Path(command[0]).name} failed: {(done.stderr or done.stdout).strip()[-500:]}")
    return done.stdout


def _git(root: Path, *args: str) -> str:
    return _run(["git", "-C", str(root), *args])


def is_git_workspace(root: Path) -> bool:
    """Whether `root` is the top of a git workspace."""
    if not (root / ".git").exists():
        return False
    try:
        return Path(_git(root, "rev-parse", "--show-toplevel").strip()).resolve() == root.resolve()
    except BackupError:
        return False


def uncommitted(root: Path) -> list[str]:
    """The files of the content workspace changed or added outside its history (git status)."""
    lines = _git(root, "status", "--porcelain", "--untracked-files=all").splitlines()
    lock = content_service.lock_file(root).relative_to(root).as_posix()  # the console's, not content
    return [line[3:] for line in lines if line.strip() and line[3:] != lock]


def schema_revision(url: str) -> str | None:
    """The Alembic revision the database is at (None: never migrated, or no database)."""
    if not database.exists(url):
        return None
    engine = database.create_engine(url)
    try:
        with engine.connect() as connection:
            return migrations.current(connection)
    finally:
        engine.dispose()


def counts(url: str) -> dict[str, int]:
    """How many requests, conversations, staff accounts and publications the database holds."""
    queries = {
        "consultation_requests": "SELECT COUNT(*) FROM booking_requests",
        "conversations": "SELECT COUNT(DISTINCT sender_id) FROM events",
        "staff_accounts": "SELECT COUNT(*) FROM staff_users",
        "publications": "SELECT COUNT(*) FROM published_models",
        "audit_entries": "SELECT COUNT(*) FROM audit_log",
    }
    if not database.exists(url):
        return {}
    engine = database.create_engine(url)
    found: dict[str, int] = {}
    try:
        tables = set(sa.inspect(engine).get_table_names())
        with engine.connect() as connection:
            for key, query in queries.items():
                if query.split(" FROM ")[1] in tables:
                    found[key] = int(connection.execute(sa.text(query)).scalar() or 0)
    finally:
        engine.dispose()
    return found


def holds_data(url: str) -> bool:
    """Whether the database already holds the clinic's data (any row in DATA_TABLES)."""
    if not database.exists(url):
        return False
    engine = database.create_engine(url)
    try:
        tables = set(sa.inspect(engine).get_table_names())
        with engine.connect() as connection:
            return any(
                connection.execute(sa.text(f"SELECT 1 FROM {table} LIMIT 1")).first() is not None
                for table in DATA_TABLES
                if table in tables
            )
    finally:
        engine.dispose()


def versions() -> dict[str, str]:
    """The versions that made the archive (for whoever reads its manifest later)."""
    try:
        app = metadata.version("scar-faq-assistant")
    except metadata.PackageNotFoundError:
        app = "unknown"
    return {
        "clinic": app,
        "python": platform.python_version(),
        "sqlite": sqlite3.sqlite_version,
        "schema_head": migrations.head(),
    }


# --- the database -----------------------------------------------------------------------------


def postgres_program(name: str) -> str:
    """pg_dump or pg_restore: on PATH, else Debian's newest (Debian keeps them out of PATH)."""
    found = shutil.which(name)
    if found:
        return found
    candidates = sorted(Path("/usr/lib/postgresql").glob(f"*/bin/{name}"))
    if not candidates:
        raise BackupError(
            f"{name} is not installed: install PostgreSQL's client programs (postgresql-client)."
        )
    return str(candidates[-1])


def postgres_arguments(url: str) -> tuple[list[str], dict[str, str]]:
    """The connection options for `url`, and an environment with its password (never an argument)."""
    parsed = sa.engine.make_url(url)
    options = ["--host", parsed.host or "localhost", "--port", str(parsed.port or 5432)]
    if parsed.username:
        options += ["--username", parsed.username]
    options += ["--dbname", parsed.database or ""]
    env = {**os.environ}
    if parsed.password:
        env["PGPASSWORD"] = str(parsed.password)
    return options, env


def dump_database(url: str, out_dir: Path) -> Path:
    """A consistent copy of the whole database in `out_dir` (the servers may keep running)."""
    file = database.sqlite_file(url)
    if file is not None:
        if not file.is_file():
            raise BackupError(f"There is no database at {file}: nothing to back up.")
        copy = out_dir / Path(SQLITE_PART).name
        source = sqlite3.connect(f"file:{file}?mode=ro", uri=True, timeout=30)
        target = sqlite3.connect(copy)
        try:
            with target:
                source.backup(target)  # page by page, consistent even while servers write
        finally:
            target.close()
            source.close()
        return copy
    if sa.engine.make_url(url).get_backend_name() != "postgresql":
        raise BackupError("Backups support SQLite and PostgreSQL databases only.")
    copy = out_dir / Path(POSTGRES_PART).name
    options, env = postgres_arguments(url)
    _run(
        [postgres_program("pg_dump"), "--format=custom", "--no-owner", "--file", str(copy), *options], env=env
    )
    return copy


def load_database(url: str, dump: Path, kind: str) -> None:
    """Replace the database at `url` with the archive's copy."""
    file = database.sqlite_file(url)
    if kind == "sqlite":
        if file is None:
            raise BackupError(
                "This backup is of an SQLite database, but DATABASE_URL names another kind: "
                "restore it with DATABASE_URL set to an SQLite file."
            )
        file.parent.mkdir(parents=True, exist_ok=True)
        source = sqlite3.connect(f"file:{dump}?mode=ro", uri=True)
        target = sqlite3.connect(file, timeout=30)
        try:
            with target:
                source.backup(target)
        finally:
            target.close()
            source.close()
        return
    if file is not None or sa.engine.make_url(url).get_backend_name() != "postgresql":
        raise BackupError(
            "This backup is of a PostgreSQL database: restore it with DATABASE_URL set to a "
            "PostgreSQL database (an empty one, or with --replace)."
        )
    options, env = postgres_arguments(url)
    # One transaction: every table there now is dropped (the target is empty of data, or
    # --replace was given; a table a newer version made would otherwise stay and stop the
    # migrations after the restore) and the dump loaded, or, if anything fails, nothing at all
    # changes. pg_restore only turns the dump into SQL here (it cannot put a drop of its own in
    # its transaction); psql runs that SQL with ON_ERROR_STOP in a single transaction.
    script = dump.with_suffix(".sql")
    _run(
        [
            postgres_program("pg_restore"),
            "--clean",
            "--if-exists",
            "--no-owner",
            "--no-privileges",
            "--file",
            str(script),
            str(dump),
        ]
    )
    engine = database.create_engine(url)
    try:
        tables = sa.inspect(engine).get_table_names()
        quote = engine.dialect.identifier_preparer.quote
    finally:
        engine.dispose()
    drops = dump.with_name("drop-first.sql")
    drops.write_text("".join(f"DROP TABLE IF EXISTS {quote(name)} CASCADE;\n" for name in tables))
    _run(
        [
            postgres_program("psql"),
            "--no-psqlrc",
            "--quiet",
            "--single-transaction",
            "--set",
            "ON_ERROR_STOP=1",
            *options,
            "--file",
            str(drops),
            "--file",
            str(script),
        ],
        env=env,
    )


def other_sessions(url: str) -> int:
    """How many other sessions are connected to the PostgreSQL database (0 for SQLite)."""
    if database.sqlite_file(url) is not None or not database.exists(url):
        return 0
    engine = database.create_engine(url)
    try:
        with engine.connect() as connection:
            return int(
                connection.execute(
                    sa.text(
                        "SELECT COUNT(*) FROM pg_stat_activity "
                        "WHERE datname = current_database() AND pid <> pg_backend_pid()"
                    )
                ).scalar()
                or 0
            )
    finally:
        engine.dispose()


def repoint_models(url: str, old_store: str, new_store: Path) -> None:
    """Point the database's model records at the files in this model store (it may have moved)."""
    old = old_store.rstrip("/") + "/"
    new = str(new_store).rstrip("/") + "/"
    if old == new:
        return
    engine = database.create_engine(url)
    try:
        tables = set(sa.inspect(engine).get_table_names())
        with engine.begin() as connection:
            for table, column in MODEL_PATH_COLUMNS:
                if table in tables:
                    connection.execute(
                        sa.text(
                            f"UPDATE {table} SET {column} = :new || substr({column}, :cut) "
                            f"WHERE substr({column}, 1, :length) = :old"
                        ),
                        {"new": new, "old": old, "cut": len(old) + 1, "length": len(old)},
                    )
    finally:
        engine.dispose()


# --- the model store --------------------------------------------------------------------------


def store_files(store: Path) -> Iterator[Path]:
    """The model store's files worth keeping: all but the servers' own copies and half-written ones."""
    if not store.is_dir():
        return
    for path in sorted(store.rglob("*")):
        relative = path.relative_to(store)
        if (
            path.is_file()
            and relative.parts[0] != SERVED_DIR
            and not relative.parts[0].startswith(".")  # a restore's own work in progress
            and not path.name.endswith(".tmp")
        ):
            yield path


# --- the archive ------------------------------------------------------------------------------


def _private_file(path: Path) -> int:
    """A new file only its owner can read (mode 0600 from the start, never wider)."""
    return os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, ARCHIVE_MODE)


def archive_path(destination: Path, moment: datetime) -> Path:
    """Where the backup goes: `destination` itself if it names a .tar file, else a dated file in it."""
    if destination.suffix == ".tar":
        return destination
    return destination / moment.strftime(NAME_FORMAT)


@dataclass
class Backup:
    """A backup made: its file and manifest."""

    path: Path
    manifest: Manifest


def write_backup(target: Target, destination: Path, skip_uncommitted: bool = False) -> Backup:
    """Back up the database, the model store and the edited content into one new archive file.

    `destination` is a folder (a dated file is made in it) or a .tar file's name. Raises
    BackupError, writing nothing, when the content workspace has changes outside its history
    (unless `skip_uncommitted`: then they are left out and the manifest says so).
    """
    moment = datetime.now(timezone.utc).replace(microsecond=0)
    out = archive_path(destination, moment)
    if out.exists():
        raise BackupError(f"{out} already exists: choose another name (a backup never overwrites one).")
    skipped: list[str] = []
    content = target.content_root
    has_content = is_git_workspace(content)
    head: str | None = None
    commit: str | None = None
    if has_content:
        changed = uncommitted(content)
        if changed and not skip_uncommitted:
            raise BackupError(
                f"The edited content has {len(changed)} change(s) that are not in its history "
                f"(made outside the console): {', '.join(changed[:5])}{' ...' if len(changed) > 5 else ''}. "
                "Save them in its history (git commit) or undo them, then back up again; or run with "
                "--skip-uncommitted to back up without them."
            )
        if changed:
            skipped.append(f"{len(changed)} change(s) to the edited content that were not in its history")
        try:
            commit = _git(content, "rev-parse", "--verify", "HEAD").strip()
        except BackupError:
            has_content = False  # a workspace with no history yet: nothing to keep
        else:
            symbolic = subprocess.run(
                ["git", "-C", str(content), "symbolic-ref", "-q", "HEAD"], capture_output=True, text=True
            )
            head = symbolic.stdout.strip() or None
    out.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    work = Path(tempfile.mkdtemp(prefix=".clinic-backup-", dir=out.parent))  # mode 0700
    try:
        parts: list[tuple[str, Path]] = []
        dump = dump_database(target.database_url, work)
        kind = "sqlite" if database.sqlite_file(target.database_url) is not None else "postgresql"
        parts.append((SQLITE_PART if kind == "sqlite" else POSTGRES_PART, dump))
        for path in store_files(target.model_store):
            parts.append((f"{MODELS_PART}/{path.relative_to(target.model_store).as_posix()}", path))
        if has_content:
            bundle = work / CONTENT_PART
            _git(content, "bundle", "create", "--quiet", str(bundle), "--all")
            parts.append((CONTENT_PART, bundle))
        manifest = Manifest(
            format=FORMAT,
            created_at=moment.isoformat(),
            versions=versions(),
            database=kind,
            schema_revision=schema_revision(target.database_url),
            model_store=str(target.model_store),
            content_head=head,
            content_commit=commit,
            counts=counts(target.database_url),
            skipped=skipped,
        )
        # Each part is opened once: its digest, size and the bytes archived are of that one
        # file, even if a file of the same name replaced it meanwhile (the store renames whole
        # files into place).
        with ExitStack() as files:
            opened = [(name, files.enter_context(path.open("rb"))) for name, path in parts]
            manifest.parts = [Part(name, os.fstat(h.fileno()).st_size, _digest(h)) for name, h in opened]
            draft = work / "archive.tar"
            with os.fdopen(_private_file(draft), "wb") as raw, tarfile.open(fileobj=raw, mode="w") as tar:
                _add_bytes(tar, MANIFEST, manifest.as_json(), moment)
                for (name, handle), part in zip(opened, manifest.parts):
                    handle.seek(0)
                    info = tar.gettarinfo(arcname=name, fileobj=handle)
                    info.mode, info.uid, info.gid, info.uname, info.gname = 0o600, 0, 0, "", ""
                    info.size = part.size
                    tar.addfile(info, handle)
        os.link(draft, out)  # fails rather than overwrite a file that appeared meanwhile
        return Backup(out, manifest)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _add_bytes(tar: tarfile.TarFile, name: str, data: bytes, moment: datetime) -> None:
    import io

    info = tarfile.TarInfo(name)
    info.size, info.mode, info.mtime = len(data), 0o600, int(moment.timestamp())
    tar.addfile(info, io.BytesIO(data))


def read_manifest(archive: Path) -> Manifest:
    """The archive's manifest; BackupError if the file is not a clinic backup."""
    try:
        with tarfile.open(archive, mode="r:") as tar:
            member = tar.next()
            if member is None or member.name != MANIFEST:
                raise BackupError(
                    "This file is not a clinic backup (it does not start with its list of contents)."
                )
            handle = tar.extractfile(member)
            return Manifest.from_json(handle.read() if handle else b"")
    except FileNotFoundError:
        raise BackupError(f"There is no file {archive}.") from None
    except (tarfile.TarError, OSError) as error:
        raise BackupError(f"This file is not a clinic backup, or it is damaged ({error}).") from None


def check_schema(manifest: Manifest) -> None:
    """BackupError if the backup's format or database schema is newer than this code knows."""
    if manifest.format > FORMAT:
        raise BackupError(
            "This backup was made by a newer version of the assistant (its file layout is newer): "
            "restore it with that version or a later one."
        )
    if manifest.schema_revision is None:
        return
    try:
        known = ScriptDirectory.from_config(migrations.config()).get_revision(manifest.schema_revision)
    except CommandError:
        known = None
    if known is None:
        raise BackupError(
            "This backup's database was made by a newer version of the assistant than this one "
            f"(its database layout is {manifest.schema_revision}, which this version does not know): "
            "install that version or a later one, then restore. Nothing was changed."
        )


def extract_checked(archive: Path, manifest: Manifest, into: Path) -> None:
    """Unpack every part into `into` and check its size and SHA-256; BackupError at the first that differs."""
    expected = {part.name: part for part in manifest.parts}
    seen: set[str] = set()
    with tarfile.open(archive, mode="r:") as tar:
        for member in tar:
            if member.name == MANIFEST:
                continue
            part = expected.get(member.name)
            if part is None or not member.isfile() or ".." in Path(member.name).parts:
                raise BackupError(
                    f"The backup holds a file its list of contents does not name ({member.name})."
                )
            path = into / member.name
            path.parent.mkdir(parents=True, exist_ok=True)
            handle = tar.extractfile(member)
            with os.fdopen(_private_file(path), "wb") as out:
                shutil.copyfileobj(handle, out)  # type: ignore[arg-type]
            if path.stat().st_size != part.size or sha256_of(path) != part.sha256:
                raise BackupError(
                    f"The backup is damaged: its part {part.name} is not what was written. "
                    "Use another backup."
                )
            seen.add(member.name)
    missing = sorted(set(expected) - seen)
    if missing:
        raise BackupError(f"The backup is incomplete: {', '.join(missing)} missing. Use another backup.")


@dataclass
class Restored:
    """What a restore brought back, for the person who ran it."""

    manifest: Manifest
    counts: dict[str, int]
    models: int
    content_commits: int
    migrated_from: str | None  # the older schema revision the database was upgraded from


def content_is_empty(root: Path) -> bool:
    """Whether the content workspace is missing or an empty folder."""
    return not root.exists() or (root.is_dir() and not any(root.iterdir()))


def restore_content(bundle: Path, root: Path, head: str | None, commit: str, replace: bool) -> int:
    """Bring the content's history back into `root` and check out what was checked out; the commit count.

    An empty or missing `root` becomes a new workspace; with `replace`, an existing workspace
    gets the backup's branches (its own files outside git, such as a virtual environment, stay).
    """
    # git 2.39 (Debian bookworm's) verifies a bundle only inside a repository: a throw-away one,
    # since the restore may run where no repository is (the console image's /srv/scar-faq).
    with tempfile.TemporaryDirectory(prefix="clinic-restore-") as scratch:
        _run(["git", "init", "--quiet", scratch])
        _run(["git", "bundle", "verify", "--quiet", str(bundle)], cwd=Path(scratch))
    if content_is_empty(root):
        root.mkdir(parents=True, exist_ok=True)
        _git(root, "init", "--quiet")
    elif not is_git_workspace(root):
        raise BackupError(
            f"{root} (where the edited content goes) holds files but is not a git workspace: "
            "empty it or point STAFF_PROJECT_ROOT at an empty folder, then restore again."
        )
    elif not replace:
        raise BackupError(
            f"{root} already holds edited content: restore with --replace to put the backup's in its place."
        )
    _git(root, "fetch", "--quiet", "--update-head-ok", str(bundle), "+refs/*:refs/*")
    if head:
        _git(root, "symbolic-ref", "HEAD", head)
    else:
        _git(root, "update-ref", "--no-deref", "HEAD", commit)
    _git(root, "reset", "--quiet", "--hard", commit)
    return int(_git(root, "rev-list", "--count", commit).strip())


RUNNING = "The console is running (it is changing the edited content now): stop the servers first."


def _hold_content_lock(root: Path, stack: ExitStack) -> None:
    """Hold the console's own lock on the content workspace until `stack` closes; BackupError if held."""
    path = content_service.lock_file(root)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle = stack.enter_context(path.open("a"))
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        raise BackupError(f"{RUNNING} Nothing was changed.") from None
    stack.callback(fcntl.flock, handle, fcntl.LOCK_UN)


def restore_backup(archive: Path, target: Target, replace: bool = False, force: bool = False) -> Restored:
    """Restore an archive into `target`: checked first, then database, model store, content, migration.

    Nothing is changed when the archive is damaged, its schema is newer than this code's, the
    target's database or content workspace already holds data and `replace` is False, the
    console holds the content's lock, or (PostgreSQL) other sessions use the database and `force`
    is False. SQLite: a server with the file open is not detected (stop the servers first).
    """
    with ExitStack() as stack:
        if is_git_workspace(target.content_root):
            _hold_content_lock(target.content_root, stack)
        return _restore(archive, target, replace, force)


def _restore(archive: Path, target: Target, replace: bool, force: bool) -> Restored:
    manifest = read_manifest(archive)
    check_schema(manifest)
    content = target.content_root
    if manifest.content_commit and not content_is_empty(content) and not is_git_workspace(content):
        raise BackupError(
            f"{content} (where the edited content goes) holds files but is not a git workspace: "
            "empty it or point STAFF_PROJECT_ROOT at an empty folder, then restore again. "
            "Nothing was changed."
        )
    if not replace:
        if holds_data(target.database_url):
            raise BackupError(
                "The database already holds the clinic's data (requests, conversations or staff "
                "accounts): restore with --replace to put the backup's in its place, or point "
                "DATABASE_URL at an empty database. Nothing was changed."
            )
        if manifest.content_commit and not content_is_empty(target.content_root):
            raise BackupError(
                f"{target.content_root} (where the edited content goes) is not empty: restore with "
                "--replace to put the backup's in its place, or point STAFF_PROJECT_ROOT at an empty folder. "
                "Nothing was changed."
            )
    others = 0 if force else other_sessions(target.database_url)
    if others:
        raise BackupError(
            f"The database is in use ({others} other connection(s): the servers are running?): stop the "
            "servers first, or restore with --force if those connections are your own. Nothing was changed."
        )
    # In the store itself: writable by the console's user (a volume), and renames stay on its disk.
    target.model_store.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=".clinic-restore-", dir=target.model_store))  # mode 0700
    try:
        extract_checked(archive, manifest, work)  # before anything changes
        dump = work / (SQLITE_PART if manifest.database == "sqlite" else POSTGRES_PART)
        load_database(target.database_url, dump, manifest.database)
        try:
            models = 0
            store_dir = work / MODELS_PART
            if store_dir.is_dir():
                for path in sorted(p for p in store_dir.rglob("*") if p.is_file()):
                    kept = target.model_store / path.relative_to(store_dir)
                    kept.parent.mkdir(parents=True, exist_ok=True)
                    path.replace(kept)  # the same disk: each file appears whole
                    models += path.name.endswith(".tar.gz")
            repoint_models(target.database_url, manifest.model_store, target.model_store)
            commits = 0
            if manifest.content_commit:
                commits = restore_content(
                    work / CONTENT_PART,
                    target.content_root,
                    manifest.content_head,
                    manifest.content_commit,
                    replace,
                )
            migrated_from = None
            if manifest.schema_revision is not None and manifest.schema_revision != migrations.head():
                migrations.upgrade(target.database_url)
                migrated_from = manifest.schema_revision
        except (BackupError, OSError, sa.exc.SQLAlchemyError) as error:
            if isinstance(error, OSError):
                reason = f"{error.strerror or error} ({error.filename})"
            elif isinstance(error, BackupError):
                reason = str(error)
            else:
                reason = "the database refused a change"
            raise PartlyRestored(
                f"The database was restored, but the rest stopped half way ({reason}). Fix that, "
                "then restore again with --replace."
            ) from error
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return Restored(manifest, counts(target.database_url), models, commits, migrated_from)


def list_parts(manifest: Manifest) -> dict[str, Any]:
    """The manifest's parts grouped for a summary: database, models (count), content."""
    models = [part for part in manifest.parts if part.name.startswith(MODELS_PART + "/")]
    return {
        "database": next((part for part in manifest.parts if part.name.startswith("database/")), None),
        "models": models,
        "content": next((part for part in manifest.parts if part.name == CONTENT_PART), None),
    }
