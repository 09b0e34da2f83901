"""Every change staff make to the assistant is a commit in the project's git history.

The author is the staff member (their name and a placeholder address, name@staff.invalid);
the committer is the console. Developers' commits to the same files show in the same
history, so staff and developers share one record of who changed what. Undoing a change is
a new commit: git's three-way merge (`git merge-file`) takes the change back out of the
files as they are now, and refuses if later changes touched the same lines.
"""

from __future__ import annotations

import logging
import os
import re
import subprocess
import tempfile
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from staff.service import plain

# What the console edits (relative to the project root): the history lists changes to these.
EDITABLE = ("clinic.yml", "domain", "data", "content", "tests/stories")
COMMITTER_NAME = "Staff console"
STAFF_EMAIL_DOMAIN = "staff.invalid"
# The author of what a new release brings (staff/service/releases.py): its merges into staff's
# content are listed in the History; its own line of history is not.
RELEASE_NAME, RELEASE_EMAIL = "New release", "release@release.invalid"
SHA = re.compile(r"[0-9a-f]{7,40}")
SEPARATOR, FIELD = "\x1e", "\x1f"
# Staff read these (History page, flash messages): plain words; the technical detail goes to the log.
NO_HISTORY = (
    "The history of changes cannot be kept here, so changes cannot be recorded with their author: "
    "ask the clinic's IT."
)
NOT_RECORDED = (
    "The change could not be recorded in the history of changes. Nothing was changed: ask the clinic's "
    "IT (the console's log says why)."
)
log = logging.getLogger(__name__)


class HistoryError(Exception):
    """The history cannot do what was asked; the message says why, in plain words."""


def _env() -> dict[str, str]:
    return {
        **os.environ,
        "GIT_COMMITTER_NAME": COMMITTER_NAME,
        "GIT_COMMITTER_EMAIL": f"console@{STAFF_EMAIL_DOMAIN}",
        "GIT_TERMINAL_PROMPT": "0",
        "LC_ALL": "C",
    }


def git(root: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run git in the project; a failure raises HistoryError (unless check is False)."""
    result = subprocess.run(
        ["git", *args], cwd=root, capture_output=True, text=True, env=_env(), timeout=60, check=False
    )
    if check and result.returncode != 0:
        said = (result.stderr or result.stdout).strip().splitlines()
        log.warning("git %s failed in %s: %s", args[0] if args else "", root, said[-1] if said else "nothing")
        raise HistoryError(NOT_RECORDED)
    return result


def problem(root: Path) -> str | None:
    """Why the project's history cannot be kept here (None: it can)."""
    try:
        result = git(root, "rev-parse", "--is-inside-work-tree", check=False)
    except (OSError, subprocess.SubprocessError) as error:
        log.warning("The content's history cannot be kept in %s: git cannot run (%s)", root, error)
        return NO_HISTORY
    if result.returncode != 0 or result.stdout.strip() != "true":
        log.warning("The content's history cannot be kept in %s: it is not a git checkout", root)
        return NO_HISTORY
    top = git(root, "rev-parse", "--show-toplevel", check=False).stdout.strip()
    if not top or Path(top).resolve() != root.resolve():  # never commit to a checkout around it
        log.warning(
            "The content's history cannot be kept in %s: it is inside another git checkout (%s)", root, top
        )
        return NO_HISTORY
    return None


def author(staff_name: str) -> str:
    """The git author of a staff member's change."""
    return f"{staff_name} <{staff_name}@{STAFF_EMAIL_DOMAIN}>"


def commit(root: Path, files: list[str], message: str, staff_name: str) -> str:
    """Commit exactly `files` (as they are on disk) with the staff member as author; the new commit's id."""
    git(
        root,
        "commit",
        "--no-verify",
        "--quiet",
        "--only",
        f"--author={author(staff_name)}",
        "-m",
        message,
        "--",
        *files,
    )
    return git(root, "rev-parse", "HEAD").stdout.strip()


# The end of the title of a commit that took an erased visitor's examples out of the data
# (staff/service/inbox.py); such a change is never undone (content.undo refuses it).
ERASURE_TITLE_END = "the visitor they came from was erased"


@dataclass
class Change:
    """One commit that changed what the console edits."""

    sha: str
    author: str
    email: str
    when: datetime
    message: str
    files: list[str] = field(default_factory=list)
    parents: int = 1

    @property
    def is_erasure(self) -> bool:
        """Whether this change took an erased visitor's examples out of the data."""
        return self.message.splitlines()[0].endswith(ERASURE_TITLE_END) if self.message else False

    @property
    def short(self) -> str:
        """The commit's short id."""
        return self.sha[:10]

    @property
    def by_staff(self) -> bool:
        """Whether a staff member made it in the console (else a developer)."""
        return self.email.endswith(f"@{STAFF_EMAIL_DOMAIN}")

    @property
    def is_release(self) -> bool:
        """Whether this is a new release's content merged into staff's (staff/service/releases.py)."""
        return self.email == RELEASE_EMAIL and self.parents == 2


def _changes(output: str) -> list[Change]:
    found = []
    for record in output.split(SEPARATOR):
        if not record.strip():
            continue
        header, _, names = record.partition("\n")
        sha, name, email, when, parents, message = header.split(FIELD)
        found.append(
            Change(
                sha,
                name,
                email,
                datetime.fromisoformat(when),
                message,
                [line for line in names.splitlines() if line.strip()],
                len(parents.split()),
            )
        )
    return found


LOG_FORMAT = f"--format={SEPARATOR}%H{FIELD}%an{FIELD}%ae{FIELD}%aI{FIELD}%P{FIELD}%s"


def changes(root: Path, limit: int = 50, skip: int = 0) -> list[Change]:
    """The newest changes to the files the console edits, newest first."""
    output = git(
        root, "log", LOG_FORMAT, "--name-only", "--relative", f"-n{limit}", f"--skip={skip}", "--", *EDITABLE
    ).stdout
    return _changes(output)


def change(root: Path, sha: str) -> Change | None:
    """One change by its id (None if there is no such commit)."""
    if not SHA.fullmatch(sha) or git(root, "cat-file", "-e", f"{sha}^{{commit}}", check=False).returncode:
        return None
    found = _changes(
        git(
            root, "show", LOG_FORMAT, "--name-only", "--relative", "--diff-merges=first-parent", sha, "--"
        ).stdout
    )
    return found[0] if found else None


def diff(root: Path, sha: str) -> str:
    """What the change did to the files the console edits, as a unified diff."""
    return git(
        root, "show", "--format=", "--relative", "--no-color", "--no-ext-diff", sha, "--", *EDITABLE
    ).stdout


def file_at(root: Path, revision: str, name: str) -> str | None:
    """A file's text at a revision (None if it did not exist then)."""
    result = git(root, "show", f"{revision}:./{name}", check=False)
    return result.stdout if result.returncode == 0 else None


def undone(root: Path, item: Change) -> dict[str, str]:
    """The files' texts with the change taken back out of them as they are now (git merge-file).

    Raises HistoryError, in plain words, when that cannot be done cleanly.
    """
    if item.parents != 1:
        raise HistoryError(
            "This entry joins two lines of work (a merge); a developer can undo it, the console cannot."
        )
    outside = [
        name
        for name in item.files
        if not any(name.startswith(f"{part}/") or name == part for part in EDITABLE)
    ]
    if outside:
        log.info("Undo refused: %s also changed %s", item.sha, ", ".join(outside[:3]))
        raise HistoryError(
            "This change also changed the assistant's program, which the console does not edit: "
            "ask the clinic's IT to undo it."
        )
    texts: dict[str, str] = {}
    with tempfile.TemporaryDirectory(prefix="clinic-undo-") as folder:
        for name in item.files:
            before, after = file_at(root, f"{item.sha}^", name), file_at(root, item.sha, name)
            path = root / name
            if before is None or after is None or not path.exists():
                raise HistoryError(
                    f"This change added or removed a whole part ({plain.part(name)}); "
                    "the clinic's IT can undo it."
                )
            parts = []
            for label, text in (
                ("now", path.read_text(encoding="utf-8")),
                ("change", after),
                ("before", before),
            ):
                part = Path(folder) / label
                part.write_text(text, encoding="utf-8")
                parts.append(str(part))
            merged = subprocess.run(
                ["git", "merge-file", "-p", "--quiet", *parts],
                capture_output=True,
                text=True,
                env=_env(),
                timeout=60,
            )
            if merged.returncode != 0:
                raise HistoryError(
                    "This change cannot be undone on its own: later changes edited the same lines of "
                    f"{plain.part(name)}. "
                    "Nothing was changed. Edit the text by hand instead, or ask a developer."
                )
            texts[name] = merged.stdout
    return texts


# ---- the history in words ----------------------------------------------------------------
# An undo's title: "Undone: <what>", and an undo of that "Put back: <what>" (never nested).
UNDONE, PUT_BACK = "Undone: ", "Put back: "
_OLD_UNDO = re.compile(r'^Undo "(.*)"$', re.S)


def unwrap(message: str) -> tuple[int, str]:
    """How many undos wrap a change's title, and the title they wrap."""
    depth = 0
    while True:
        old = _OLD_UNDO.match(message)
        if old:
            depth, message = depth + 1, old.group(1)
        elif message.startswith(UNDONE):
            depth, message = depth + 1, message.removeprefix(UNDONE)
        elif message.startswith(PUT_BACK):
            depth, message = depth + 2, message.removeprefix(PUT_BACK)
        else:
            return depth, message


def undo_message(message: str) -> str:
    """The title of a change that undoes the change titled `message` (never nested)."""
    depth, inner = unwrap(message)
    return (UNDONE if (depth + 1) % 2 else PUT_BACK) + inner


def staff_changes(root: Path, limit: int = 50, skip: int = 0) -> list[Change]:
    """The newest changes staff made in the console (no developer's commits, no merges), newest first."""
    output = git(
        root,
        "log",
        LOG_FORMAT,
        "--name-only",
        "--relative",
        "--no-merges",
        f"--author=@{re.escape(STAFF_EMAIL_DOMAIN)}>",
        f"-n{limit}",
        f"--skip={skip}",
        "--",
        *EDITABLE,
    ).stdout
    return [item for item in _changes(output) if item.by_staff]


def release_merges(root: Path, limit: int = 50, skip: int = 0) -> list[Change]:
    """The new releases merged into staff's content (what each changed, against staff's), newest first."""
    output = git(
        root,
        "log",
        LOG_FORMAT,
        "--name-only",
        "--relative",
        "--first-parent",
        "--merges",
        "--diff-merges=first-parent",
        f"--author={re.escape(RELEASE_EMAIL)}",
        f"-n{limit}",
        f"--skip={skip}",
        "--",
        *EDITABLE,
    ).stdout
    return [item for item in _changes(output) if item.is_release]


def shown_changes(root: Path, limit: int = 50, skip: int = 0) -> list[Change]:
    """What the History lists: staff's changes and the new releases merged in, newest first."""
    found = staff_changes(root, limit + skip) + release_merges(root, limit + skip)
    if not any(item.is_release for item in found):
        return found[skip : skip + limit]
    # Newest first as the history runs (commits of the same second keep their order).
    order = {sha: n for n, sha in enumerate(git(root, "rev-list", "--topo-order", "HEAD").stdout.split())}
    found.sort(key=lambda item: (-item.when.timestamp(), order.get(item.sha, len(order))))
    return found[skip : skip + limit]
