"""Staff edits in production: a git repository on a volume, and each new release merged into it.

The production images hold the release's content read-only (CONTENT_RELEASE_DIR, the image's
/srv/scar-faq), so the console edits its own git repository on a persistent volume instead
(STAFF_PROJECT_ROOT, e.g. /var/lib/scar-faq/content). `prepare` runs at the console's start-up
(and as `clinic-content prepare`):

- An empty folder is seeded with the release's files (RELEASE_PARTS) as one commit, which both
  branches start from: `main`, which staff edit (every change a commit, staff/service/history.py),
  and `release`, which only ever holds what each release shipped.
- A release whose files differ from the last one is committed on `release` and merged into
  `main` with git's three-way merge (the base: the previous release). A clean merge is one commit
  that the History lists as "New release: ...".
- Where the release changed lines staff had also changed, staff's lines are kept (never a silent
  overwrite) and the release's version of them is kept aside as a proposal: a commit on top of
  the merge, named by a ref under refs/clinic/proposals/ (so a `git bundle --all` backup keeps
  it). The History shows it in words for staff to take (`accept`) or leave (`dismiss`).
- The same release again changes nothing, so a restart loses and repeats nothing.
"""

from __future__ import annotations

import logging
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import yaml

from common import yamlio
from staff.service import content, describe, history, plain
from staff.service.yamlfile import write_atomically

# What a release brings of the content staff edit, and what checking and training it need.
RELEASE_PARTS = (
    "clinic.yml",
    "config.yml",
    "domain",
    "data",
    "content",
    "actions",
    "tests/heldout",
    "tests/stories",
)
MAIN, RELEASE = "main", "release"
PROPOSALS = "refs/clinic/proposals/"
# Never part of the content's history: the console's lock, models, caches.
IGNORED = ("var/", "models/", ".rasa/", "__pycache__/", "*.pyc", "results/")
SEED_TITLE = "The clinic's content as installed"
# Folders a fresh volume may already hold (ext4's own).
HARMLESS = {"lost+found"}
log = logging.getLogger(__name__)


class ReleaseError(Exception):
    """The release could not be brought in; the message says why in plain words. Nothing was lost."""


@dataclass
class Prepared:
    """What `prepare` did, in plain words for the console's log and `clinic-content`."""

    outcome: str  # "seeded", "unchanged", "merged", "proposed"
    said: str
    proposals: int = 0


def _release_env() -> dict[str, str]:
    return {
        "GIT_AUTHOR_NAME": history.RELEASE_NAME,
        "GIT_AUTHOR_EMAIL": history.RELEASE_EMAIL,
        "GIT_COMMITTER_NAME": history.RELEASE_NAME,
        "GIT_COMMITTER_EMAIL": history.RELEASE_EMAIL,
    }


def _git(
    root: Path,
    *args: str,
    env: dict[str, str] | None = None,
    check: bool = True,
    cwd: Path | None = None,
    stdin: str | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run git on the workspace's history; a failure raises ReleaseError (unless check is False)."""
    result = subprocess.run(
        ["git", f"--git-dir={root / '.git'}", f"--work-tree={cwd or root}", *args],
        cwd=cwd or root,
        capture_output=True,
        text=True,
        input=stdin,
        env={**history._env(), **_release_env(), **(env or {})},
        timeout=120,
        check=False,
    )
    if check and result.returncode != 0:
        said = (result.stderr or result.stdout).strip().splitlines()
        raise ReleaseError(
            "The new release's content could not be brought in (git said: "
            f"{said[-1] if said else 'nothing'}). Staff's content is unchanged."
        )
    return result


def _revision(root: Path, name: str) -> str | None:
    result = _git(root, "rev-parse", "--verify", "--quiet", f"{name}^{{commit}}", check=False)
    return result.stdout.strip() or None


def _parts(release: Path) -> list[str]:
    return [part for part in RELEASE_PARTS if (release / part).exists()]


def _seed(root: Path, release: Path) -> Prepared:
    """A new workspace: the release's files, one commit on `main` and `release`."""
    if not _parts(release):
        raise ReleaseError(f"The release has none of the content to edit ({release}); nothing was made.")
    _git(root, "init", "--quiet", f"--initial-branch={MAIN}", cwd=root)
    _exclude(root)
    for part in _parts(release):
        source, target = release / part, root / part
        target.parent.mkdir(parents=True, exist_ok=True)
        if source.is_dir():
            shutil.copytree(source, target, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            shutil.copyfile(source, target)
    _git(root, "add", "--all", "--", *_parts(release))
    _git(root, "commit", "--quiet", "--no-verify", "-m", SEED_TITLE)
    _git(root, "branch", RELEASE, MAIN)
    return Prepared("seeded", f"The content staff edit was set up from this release in {root}.")


def _exclude(root: Path) -> None:
    """Keep the console's lock, models and caches out of the history (a restored clone has no list)."""
    exclude = root / ".git" / "info" / "exclude"
    exclude.parent.mkdir(parents=True, exist_ok=True)
    kept = exclude.read_text(encoding="utf-8").splitlines() if exclude.exists() else []
    missing = [pattern for pattern in IGNORED if pattern not in kept]
    if missing:
        exclude.write_text("\n".join([*kept, *missing]) + "\n", encoding="utf-8")


def _release_tree(root: Path, release: Path) -> str:
    """The release's files as a git tree in the workspace's history (the work tree is not touched)."""
    with tempfile.TemporaryDirectory(prefix="clinic-release-") as folder:
        index = {"GIT_INDEX_FILE": str(Path(folder) / "index")}
        _git(root, "add", "--all", "--", *_parts(release), env=index, cwd=release)
        return _git(root, "write-tree", env=index).stdout.strip()


def _changed_parts(root: Path, old: str, new: str) -> list[str]:
    names = _git(root, "diff", "--name-only", old, new).stdout.split()
    return list(dict.fromkeys(plain.part(name) for name in names))


def release_title(parts: list[str]) -> str:
    """A release's History title: "New release: Answers and Example questions updated"."""
    said = parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]
    return f"New release: {said or 'content'} updated"


def _stage(root: Path, number: int, name: str) -> str | None:
    result = _git(root, "show", f":{number}:{name}", check=False)
    return result.stdout if result.returncode == 0 else None


def merge_texts(ours: str, base: str, theirs: str, favour: str | None = None) -> tuple[str, bool]:
    """Merge three texts with git merge-file: (the result, whether it merged without a conflict).

    `favour` ("ours" or "theirs") settles each conflicting line range for that side.
    """
    with tempfile.TemporaryDirectory(prefix="clinic-merge-") as folder:
        paths = []
        for label, text in (("ours", ours), ("base", base), ("theirs", theirs)):
            path = Path(folder) / label
            path.write_text(text, encoding="utf-8")
            paths.append(str(path))
        merged = subprocess.run(
            ["git", "merge-file", "-p", "--quiet", *([f"--{favour}"] if favour else []), *paths],
            capture_output=True,
            text=True,
            env=history._env(),
            timeout=60,
            check=False,
        )
    if merged.returncode < 0 or merged.returncode > 127:
        raise ReleaseError("Two versions of the content could not be compared; nothing was changed.")
    return merged.stdout, merged.returncode == 0


def _dirty(root: Path) -> bool:
    return bool(_git(root, "status", "--porcelain", "--untracked-files=no").stdout.strip())


def _merge(root: Path, title: str) -> Prepared:
    """Merge `release` into `main` (checked out); conflicting lines keep staff's, with a proposal."""
    if _dirty(root):
        raise ReleaseError(
            "The content has changes that were never recorded, so the new release was not brought in "
            "yet (it will be at the next start once they are): tell a developer."
        )
    _git(root, "checkout", "--quiet", MAIN)
    attempt = _git(root, "merge", "--no-ff", "--no-commit", "--no-edit", RELEASE, check=False)
    conflicted = _git(root, "diff", "--name-only", "--diff-filter=U").stdout.split()
    if attempt.returncode != 0 and not conflicted:
        _git(root, "merge", "--abort", check=False)
        said = (attempt.stderr or attempt.stdout).strip().splitlines()
        raise ReleaseError(
            f"The new release could not be merged (git said: {said[-1] if said else 'nothing'}). "
            "Staff's content is unchanged."
        )
    proposed: dict[str, str | None] = {}
    for name in conflicted:
        base, ours, theirs = (_stage(root, n, name) for n in (1, 2, 3))
        if ours is not None and theirs is not None:
            kept, _ = merge_texts(ours, base or "", theirs, "ours")
            proposed[name], _ = merge_texts(ours, base or "", theirs, "theirs")
        else:  # one side removed the file: staff's side stands
            kept, proposed[name] = ours, theirs
        if kept is None:
            _git(root, "rm", "--quiet", "--cached", "--ignore-unmatch", "--", name)
            (root / name).unlink(missing_ok=True)
        else:
            write_atomically(root / name, kept)
            _git(root, "add", "--", name)
    problems = _merge_problems(root, proposed)
    if problems:
        return _propose_whole(root, title, proposed, problems)
    _git(root, "commit", "--quiet", "--no-verify", "-m", title)
    merged = _git(root, "rev-parse", "HEAD").stdout.strip()
    proposed = {name: text for name, text in proposed.items() if text != _file(root, merged, name)}
    if not proposed:
        return Prepared("merged", f"{title}: merged with staff's edits.")
    _propose(root, merged, proposed, title)
    return Prepared(
        "proposed",
        f"{title}: merged; where staff had changed the same words, theirs were kept and the release's "
        "version waits in the History for staff to take or leave.",
        len(proposed),
    )


def _staged(root: Path) -> dict[str, str | None]:
    """The files the merge in progress changes on `main`: their merged text (None: removed)."""
    names = _git(root, "diff", "--cached", "--name-only", "--no-renames", "HEAD").stdout.splitlines()
    return {name: _stage(root, 0, name) for name in names}


def _merge_problems(root: Path, proposed: dict[str, str | None]) -> list[str]:
    """What the checks an edit passes find in the merge in progress (the work tree holds it).

    The checks of a staff edit (content.new_problems: every YAML file must read as the console
    reads it, since a line merge can put a key in twice) must pass, judged against `main` as it
    is. The release's own version of conflicting lines counts too: the
    result of taking them later must pass as well.
    """
    changed = _staged(root)
    texts = {name: text for name, text in changed.items() if text is not None}
    texts |= {name: text for name, text in proposed.items() if text is not None}
    with tempfile.TemporaryDirectory(prefix="clinic-main-") as folder:  # main as it is, beside
        main, index = Path(folder) / "main", {"GIT_INDEX_FILE": str(Path(folder) / "index")}
        main.mkdir()
        for part in RELEASE_PARTS:  # its own index: the merge's stays as it is
            _git(root, "checkout", MAIN, "--", part, env=index, cwd=main, check=False)
        return content.new_problems(main, texts)


def _propose_whole(root: Path, title: str, proposed: dict[str, str | None], problems: list[str]) -> Prepared:
    """Keep `main` as it is and offer the whole release as one proposal (its merge failed the checks)."""
    texts = _staged(root) | {name: text for name, text in proposed.items()}
    _git(root, "merge", "--abort")
    log.warning(
        "%s: not merged into staff's content, because the result fails the checks; it waits as a "
        "proposal staff cannot take until the release is fixed. For the clinic's IT: %s",
        title,
        "; ".join(problems),
    )
    # `main` records the release as come (so a restart does not try again), with its own files.
    _git(root, "merge", "--quiet", "--no-ff", "--strategy=ours", "-m", title, RELEASE)
    merged = _git(root, "rev-parse", "HEAD").stdout.strip()
    texts = {name: text for name, text in texts.items() if text != _file(root, merged, name)}
    if texts:
        _propose(root, merged, texts, title)
    return Prepared(
        "proposed",
        f"{title}: not merged, because the result would not pass the checks; staff's content is "
        "unchanged, and the release's version waits in the History for staff to take or leave.",
        1 if texts else 0,
    )


def _file(root: Path, revision: str, name: str) -> str | None:
    result = _git(root, "show", f"{revision}:{name}", check=False)
    return result.stdout if result.returncode == 0 else None


def _propose(root: Path, merged: str, texts: dict[str, str | None], title: str) -> str:
    """Keep the release's version of the conflicting files aside, as a commit on top of the merge."""
    with tempfile.TemporaryDirectory(prefix="clinic-proposal-") as folder:
        index = {"GIT_INDEX_FILE": str(Path(folder) / "index")}
        _git(root, "read-tree", merged, env=index)
        for name, text in texts.items():
            if text is None:
                _git(root, "update-index", "--force-remove", "--", name, env=index)
                continue
            blob = _git(root, "hash-object", "-w", "--stdin", stdin=text).stdout.strip()
            _git(root, "update-index", "--add", "--cacheinfo", f"100644,{blob},{name}", env=index)
        tree = _git(root, "write-tree", env=index).stdout.strip()
    message = title.replace("New release:", "Proposed by the new release:", 1)
    proposal = _git(root, "commit-tree", tree, "-p", merged, "-m", message).stdout.strip()
    _git(root, "update-ref", f"{PROPOSALS}{proposal}", proposal)
    return proposal


def prepare(root: Path, release: Path) -> Prepared:
    """Set up the workspace from the release, or bring a new release into it (see the module's words)."""
    root.mkdir(parents=True, exist_ok=True)
    if not (root / ".git").exists():
        if any(path.name not in HARMLESS for path in root.iterdir()):
            raise ReleaseError(
                f"{root} holds files but no history of staff's edits, so it was left as it is: "
                "point STAFF_PROJECT_ROOT at an empty folder, or restore the content's backup there."
            )
        with content.locked(root):
            return _seed(root, release)
    with content.locked(root):
        _exclude(root)
        if (root / ".git" / "MERGE_HEAD").exists():  # a start that stopped half way through a merge
            _git(root, "merge", "--abort", check=False)
        last = _revision(root, RELEASE)
        if last is None:
            raise ReleaseError(
                "This content's history does not say which release it came from, so a new release "
                "cannot be merged into it: tell a developer."
            )
        tree = _release_tree(root, release)
        if tree != _git(root, "rev-parse", f"{last}^{{tree}}").stdout.strip():
            title = release_title(_changed_parts(root, last, tree))
            new = _git(root, "commit-tree", tree, "-p", last, "-m", title).stdout.strip()
            _git(root, "update-ref", f"refs/heads/{RELEASE}", new, last)
        if _git(root, "merge-base", "--is-ancestor", RELEASE, MAIN, check=False).returncode == 0:
            return Prepared("unchanged", "This release's content is already in the content staff edit.")
        return _merge(root, _git(root, "log", "-1", "--format=%s", RELEASE).stdout.strip())


# ---- proposals: the release's version of lines staff had also changed ----------------------
@dataclass
class Proposal:
    """A release's change staff had also edited: shown in words, to take or leave."""

    id: str
    when: datetime
    described: list[describe.Described] = field(default_factory=list)

    @property
    def title(self) -> str:
        """What the release would change, in words ("Answer “...” reworded")."""
        return "; ".join(item.what for item in self.described) or "A change to the layout of the files"


def proposals(root: Path) -> list[Proposal]:
    """The release changes waiting for staff, oldest first (none where there is no history)."""
    if history.problem(root):
        return []
    listed = history.git(
        root, "for-each-ref", "--sort=committerdate", "--format=%(objectname)", PROPOSALS, check=False
    ).stdout.split()
    found = []
    for sha in listed:
        item = history.change(root, sha)
        if item is not None:
            found.append(Proposal(sha, item.when, describe.describe(root, item)))
    return found


def waiting(root: Path) -> int:
    """How many release changes wait for staff (0 where there is no history); cheap, for Today."""
    if not (root / ".git").exists():
        return 0
    listed = history.git(root, "for-each-ref", "--format=%(objectname)", PROPOSALS, check=False)
    return len(listed.stdout.split())


def _proposal(root: Path, proposal_id: str) -> history.Change:
    if (
        not history.SHA.fullmatch(proposal_id)
        or history.git(
            root, "rev-parse", "--verify", "--quiet", f"{PROPOSALS}{proposal_id}", check=False
        ).returncode
    ):
        raise content.Refused("This change of the new release was already taken or left.")
    item = history.change(root, proposal_id)
    if item is None:
        raise content.Refused("This change of the new release was already taken or left.")
    return item


def accept(root: Path, proposal_id: str, staff_name: str, may_route: bool = False) -> str:
    """Take the release's version of lines staff had changed, as a commit by the staff member; its id.

    Refused (content.Refused, in plain words) if staff changed the same words again since, if it
    would change where requests are sent without `may_route`, or if the result fails the checks.
    """
    with content.locked(root):
        item = _proposal(root, proposal_id)
        words = "; ".join(d.what for d in describe.describe(root, item)) or "layout of the files"
        texts: dict[str, str] = {}
        for name in item.files:
            base, theirs = history.file_at(root, f"{item.sha}^", name), history.file_at(root, item.sha, name)
            path = root / name
            if base is None or theirs is None or not path.exists():
                raise content.Refused(
                    "This change of the new release adds or removes a whole file; a developer can take it."
                )
            merged, clean = merge_texts(path.read_text(encoding="utf-8"), base, theirs)
            if not clean:
                raise content.Refused(
                    f"Since the new release came, {plain.part(name)} changed again in the same words, "
                    "so its version cannot be taken as it is. Edit the text by hand, or leave the "
                    "release's change."
                )
            texts[name] = merged
        texts = {n: t for n, t in texts.items() if (root / n).read_text(encoding="utf-8") != t}
        if not may_route and content.CLINIC in texts:
            try:
                now, then = (
                    yamlio.load((root / content.CLINIC).read_text(encoding="utf-8")),
                    yamlio.load(texts[content.CLINIC]),
                )
            except yaml.YAMLError:
                now, then = None, {}
            if content.routing(now) != content.routing(then):
                raise content.Refused(content.ROUTING_REFUSAL)
        problems = content.new_problems(root, texts)
        if problems:
            raise content.Refused(
                "The new release's change was not taken, because the result would not pass the checks:",
                problems,
            )
        originals = {name: (root / name).read_text(encoding="utf-8") for name in texts}
        try:
            for name, text in texts.items():
                write_atomically(root / name, text)
            sha = (
                history.commit(root, sorted(texts), f"Taken from the new release: {words}", staff_name)
                if texts
                else history.git(root, "rev-parse", "HEAD").stdout.strip()
            )
        except BaseException:
            for name, text in originals.items():
                write_atomically(root / name, text)
            raise
        history.git(root, "update-ref", "-d", f"{PROPOSALS}{item.sha}", item.sha)
        return sha


def dismiss(root: Path, proposal_id: str) -> str:
    """Leave the release's change (staff's words stay); what it was, in words, for the audit log."""
    with content.locked(root):
        item = _proposal(root, proposal_id)
        words = "; ".join(d.what for d in describe.describe(root, item)) or "layout of the files"
        history.git(root, "update-ref", "-d", f"{PROPOSALS}{item.sha}", item.sha)
        return words


def release_dir_problem(release: Path) -> str | None:
    """Why `release` cannot seed or update the content (None: it can): missing, or parts missing."""
    if not release.is_dir():
        return f"The release's content is not in {release} (CONTENT_RELEASE_DIR)."
    missing = [part for part in RELEASE_PARTS if not (release / part).exists()]
    if missing:
        return (
            f"The release's content in {release} (CONTENT_RELEASE_DIR) lacks {', '.join(missing)}: "
            "the console image must ship every part staff edit and training reads."
        )
    return None
