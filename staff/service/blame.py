"""Which saved change most likely made a new model answer a held-out question wrongly, and taking it out.

When "Check and train" finds held-out questions the new model answers wrongly that the live
model answers rightly, each is given a suspect: of the example questions added or removed
since the data the live model learned from (`baseline`, a git revision), the one nearest to
the question (character n-gram TF-IDF), preferring an example added to the topic the new model
now answers, or removed from the topic it should answer. Its author and date come from the
history. "Take this change out" removes that one example (or puts that one removed example
back) in the data as it is now, as a new commit by the staff member: later edits stay.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import yaml

from common import paths, yamlio
from common.names import RETRIEVAL_INTENT
from staff.service import content, history, validate
from staff.service.yamlfile import LayoutError, examples_block, open_yaml

NLU = paths.relative(paths.DATA_DIR / "nlu")
ADDED, REMOVED = "added", "removed"


@dataclass
class Suspect:
    """The saved change most likely behind one new wrong answer."""

    question: str  # the held-out question answered wrongly
    kind: str  # ADDED or REMOVED
    label: str  # the topic (or other intent) the example was added to or removed from
    example: str
    place: str  # that topic as staff name it: '"Who is it for?"'
    author: str | None = None
    when: str | None = None  # ISO time of the change (None: not found in the history)

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready (stored with the training run)."""
        return asdict(self)

    def moment(self) -> datetime | None:
        """When the change was saved."""
        return datetime.fromisoformat(self.when) if self.when else None


def place(label: str, titles: dict[str, str], plain: dict[str, str]) -> str:
    """Where an example belongs, in staff words."""
    if label.startswith(f"{RETRIEVAL_INTENT}/"):
        key = label.split("/", 1)[1]
        return f'"{titles.get(key, key.replace("_", " "))}"'
    return f"the questions to which the assistant {plain.get(label, label.replace('_', ' '))}"


def examples_in(files: dict[str, str]) -> set[tuple[str, str]]:
    """(intent, example) of every example in these NLU files' texts (by name)."""
    found = set()
    for text in files.values():
        try:
            data = yamlio.load(text) or {}
        except yaml.YAMLError:
            continue
        for item in data.get("nlu") or [] if isinstance(data, dict) else []:
            if isinstance(item, dict) and item.get("intent") and item.get("examples"):
                found.update((str(item["intent"]), e) for e in validate.example_lines(item["examples"]))
    return found


def examples_at(root: Path, revision: str | None) -> set[tuple[str, str]]:
    """The examples of the data at a git revision (None: the files as they are now)."""
    if revision is None:
        return examples_in(
            {p.name: p.read_text(encoding="utf-8") for p in sorted((root / NLU).glob("*.yml"))}
        )
    names = history.git(root, "ls-tree", "--name-only", revision, f"{NLU}/", check=False).stdout.split()
    return examples_in({n: history.file_at(root, revision, n) or "" for n in names if n.endswith(".yml")})


def head(root: Path) -> str | None:
    """The project's current commit (None: not a git checkout)."""
    result = history.git(root, "rev-parse", "HEAD", check=False)
    return result.stdout.strip() if result.returncode == 0 else None


def revision_at(root: Path, moment: datetime | None) -> str | None:
    """The commit the project was at, at `moment` (the first one if it is older than all)."""
    if moment is not None:
        found = history.git(root, "rev-list", "-1", f"--before={moment.isoformat()}", "HEAD", check=False)
        if found.returncode == 0 and found.stdout.strip():
            return found.stdout.strip()
    first = history.git(root, "rev-list", "--max-parents=0", "HEAD", check=False).stdout.split()
    return first[-1] if first else None


def _normal(pair: tuple[str, str]) -> tuple[str, str]:
    return pair[0], validate.normalise(pair[1])


def changed_examples(root: Path, baseline: str) -> list[tuple[str, str, str]]:
    """(kind, intent, example) of every example added or removed since `baseline`."""
    before, now = examples_at(root, baseline), examples_at(root, None)
    old, new = {_normal(p) for p in before}, {_normal(p) for p in now}
    added = [
        (ADDED, label, text) for label, text in sorted(now) if (label, validate.normalise(text)) not in old
    ]
    removed = [
        (REMOVED, label, text)
        for label, text in sorted(before)
        if (label, validate.normalise(text)) not in new
    ]
    return added + removed


def saved_by(root: Path, baseline: str, example: str) -> tuple[str | None, str | None]:
    """Who saved the change that added or removed `example` since `baseline`, and when (ISO)."""
    log = history.git(
        root, "log", "--format=%an%x1f%aI", f"-S{example}", f"{baseline}..HEAD", "--", NLU, check=False
    ).stdout.splitlines()
    if not log:
        return None, None
    name, when = log[0].split("\x1f")
    return name, when


def suspects(
    root: Path,
    baseline: str | None,
    wrong: Sequence[tuple[str, str, str]],
    titles: dict[str, str],
    plain: dict[str, str],
) -> list[Suspect | None]:
    """For each (question, should-get label, new model's label), the saved change most likely behind it."""
    if not wrong or baseline is None:
        return [None] * len(wrong)
    changes = changed_examples(root, baseline)
    if not changes:
        return [None] * len(wrong)
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.metrics.pairwise import cosine_similarity

    texts = [text for _, _, text in changes]
    vectorizer = TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 4), lowercase=True)
    vectorizer.fit(texts + [question for question, _, _ in wrong])
    similarity = cosine_similarity(
        vectorizer.transform([q for q, _, _ in wrong]), vectorizer.transform(texts)
    )
    found: list[Suspect | None] = []
    for row, (question, gold, got) in enumerate(wrong):

        def score(index: int, row: int = row, gold: str = gold, got: str = got) -> float:
            kind, label, _ = changes[index]
            fits = (kind == ADDED and label == got) or (kind == REMOVED and label == gold)
            return float(similarity[row, index]) + (1.0 if fits else 0.0)

        best = max(range(len(changes)), key=score)
        kind, label, example = changes[best]
        author, when = saved_by(root, baseline, example)
        found.append(Suspect(question, kind, label, example, place(label, titles, plain), author, when))
    return found


def _nlu_file_with(root: Path, label: str) -> str | None:
    """The NLU file (from the project root) that holds the examples of `label`."""
    for path in sorted((root / NLU).glob("*.yml")):
        data = yamlio.load(path.read_text(encoding="utf-8")) or {}
        for item in data.get("nlu") or []:
            if isinstance(item, dict) and item.get("intent") == label:
                return f"{NLU}/{path.name}"
    return None


def take_out(root: Path, suspect: Suspect, staff_name: str) -> str:
    """Undo this one change in the data as it is now (later edits stay); the new commit. Raises Refused."""
    with content.locked(root):
        name = _nlu_file_with(root, suspect.label)
        if name is None:
            raise content.Refused(f"{suspect.place} no longer has example questions: nothing to take out.")
        try:
            nlu = open_yaml(root / name, name)
        except LayoutError as error:
            raise content.Refused(str(error)) from None
        item = next(i for i in nlu.data["nlu"] if isinstance(i, dict) and i.get("intent") == suspect.label)
        examples = validate.example_lines(item.get("examples"))
        wanted = validate.normalise(suspect.example)
        if suspect.kind == ADDED:
            kept = [e for e in examples if validate.normalise(e) != wanted]
            if len(kept) == len(examples):
                raise content.Refused(
                    f'The question "{suspect.example}" is no longer in {suspect.place}: '
                    "it was already taken out."
                )
            what = f'example "{suspect.example}" taken out'
        else:
            if any(validate.normalise(e) == wanted for e in examples):
                raise content.Refused(f'The question "{suspect.example}" is already back in {suspect.place}.')
            kept = [*examples, suspect.example]
            what = f'example "{suspect.example}" put back'
        item["examples"] = examples_block(kept)
        title = (
            suspect.place.strip('"') if suspect.label.startswith(f"{RETRIEVAL_INTENT}/") else suspect.place
        )
        message = f'Topic "{title}": {what}' if title != suspect.place else f"Examples of {title}: {what}"
        return content.save(root, {name: nlu}, content.version(root, (name,)), (name,), message, staff_name)
