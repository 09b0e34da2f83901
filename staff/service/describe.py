"""A staff change in words: "Answer 'How long do results take?' reworded", with before and after.

The History (staff/console/editing.py) shows what a change did to the answers, example
questions, clinic details, the clinic's document, approved wording and stories as a person
would say it, never as a diff of files: each file's YAML is read before and after the change
(history.file_at) and compared item by item. Topics are named by their titles on Answers and
the assistant's other parts by staff/service/plain.py.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from common import yamlio
from staff.service import history, plain
from staff.service.history import Change

CLINIC, WORDING = plain.CLINIC, plain.WORDING


@dataclass
class Described:
    """One thing a change did, in words, with the text before and after (lines to show)."""

    what: str
    before: list[str] = field(default_factory=list)
    after: list[str] = field(default_factory=list)


TOPIC_CHANGE = re.compile(r'^Topic "(?P<title>.*)": (?P<parts>.*)$')
EXAMPLES = re.compile(r"^(?P<count>\d+) example\(s\) (?P<how>added|removed)$")
MOVED = re.compile(r'^(?P<count>\d+) example\(s\) moved to "(?P<to>.*)"$')
RENAMED = re.compile(r'^button title was "(?P<was>.*)"$')
ADDED_TO = re.compile(r"^(?P<count>\d+) example\(s\) added to (?P<name>\S+)(?P<rest>.*)$")


def questions(count: str) -> str:
    """How many example questions, in words ("3 example questions")."""
    return f"{count} example question{'' if count == '1' else 's'}"


def _topic_parts(topic: str, parts: str) -> str:
    said = []
    for piece in parts.split(", "):
        if piece == "answer reworded":
            said.append(f"Answer “{topic}” reworded")
        elif match := RENAMED.match(piece):
            said.append(f"Topic “{match['was']}” renamed “{topic}”")
        elif match := EXAMPLES.match(piece):
            where = "added to" if match["how"] == "added" else "taken out of"
            said.append(f"{questions(match['count'])} {where} “{topic}”")
        elif match := MOVED.match(piece):
            said.append(f"{questions(match['count'])} moved from “{topic}” to “{match['to']}”")
        else:
            said.append(f"Topic “{topic}”: {piece}")
    return "; ".join(said)


def title(root: Path, item: Change) -> str:
    """The change's title in words ("Answer “How long do results take?” reworded").

    Read from the title the console gave the change (no file is read: the History lists fifty);
    an undo is "Undone: ..." and an undo of that "Put back: ...", never nested.
    """
    depth, inner = history.unwrap(item.message.splitlines()[0] if item.message else "")
    prefix = "" if not depth else history.UNDONE if depth % 2 else history.PUT_BACK
    if match := TOPIC_CHANGE.match(inner):
        inner = _topic_parts(match["title"], match["parts"])
    elif match := ADDED_TO.match(inner):
        topic = plain.topic_title(root, match["name"])
        inner = f"{questions(match['count'])} added to “{topic}”{match['rest']}"
    return prefix + plain.in_words(root, inner or "A change")


def parts(item: Change) -> list[str]:
    """The parts of the assistant a change touched, each once, in order."""
    return list(dict.fromkeys(plain.part(name) for name in item.files))


def _load(text: str | None) -> Any:
    if text is None:
        return None
    try:
        return yamlio.load(text)
    except yaml.YAMLError:
        return None


def _texts(variations: Any) -> list[str]:
    return [
        " ".join(str(v.get("text") or "").split())
        for v in variations or []
        if isinstance(v, dict) and v.get("text")
    ]


def _responses(root: Path, before: Any, after: Any) -> list[Described]:
    old = (before or {}).get("responses") or {} if isinstance(before, dict) else {}
    new = (after or {}).get("responses") or {} if isinstance(after, dict) else {}
    found = []
    for name in list(dict.fromkeys([*old, *new])):
        was, now = old.get(name), new.get(name)
        if was == now:
            continue
        key = plain.faq_key(str(name))
        label = (
            f"Answer “{plain.topic_title(root, name)}”"
            if key is not None
            else (f"The assistant's message “{plain.topic_title(root, name)}”")
        )
        if was is None:
            found.append(Described(f"{label} added", after=_texts(now)))
            continue
        if now is None:
            found.append(Described(f"{label} removed", before=_texts(was)))
            continue
        if _texts(was) != _texts(now):
            found.append(Described(f"{label} reworded", _texts(was), _texts(now)))
        if key is not None:
            old_title = str(((was[0] or {}).get("metadata") or {}).get("topic") or "")
            new_title = str(((now[0] or {}).get("metadata") or {}).get("topic") or "")
            if old_title != new_title:
                found.append(Described(f"Topic “{old_title}” renamed", [old_title], [new_title]))
    return found


def _examples(data: Any) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for item in (data or {}).get("nlu") or [] if isinstance(data, dict) else []:
        if isinstance(item, dict) and item.get("intent"):
            lines = str(item.get("examples") or "").splitlines()
            found[str(item["intent"])] = [
                line.strip().removeprefix("- ").strip() for line in lines if line.strip()
            ]
    return found


def _nlu(root: Path, before: Any, after: Any, private: bool) -> list[Described]:
    old, new = _examples(before), _examples(after)
    found = []
    for intent in list(dict.fromkeys([*old, *new])):
        was, now = old.get(intent, []), new.get(intent, [])
        added = [e for e in now if e not in was]
        removed = [e for e in was if e not in now]
        topic = plain.topic_title(root, intent)
        if added:
            count = f"{len(added)} example question{'' if len(added) == 1 else 's'}"
            found.append(Described(f"{count} added to “{topic}”", after=[] if private else added))
        if removed:
            count = f"{len(removed)} example question{'' if len(removed) == 1 else 's'}"
            found.append(Described(f"{count} taken out of “{topic}”", before=[] if private else removed))
    return found


def _shown(value: Any) -> list[str]:
    if value is None or value == "":
        return ["(empty)"]
    if isinstance(value, list):
        return [", ".join(str(v) for v in value) or "(none)"]
    if isinstance(value, dict):
        return [f"{k.replace('_', ' ')}: {v}" for k, v in value.items()]
    return [str(value)]


def _clinic(before: Any, after: Any) -> list[Described]:
    old = before if isinstance(before, dict) else {}
    new = after if isinstance(after, dict) else {}
    return [
        Described(
            f"Clinic details: {str(name).replace('_', ' ')} changed",
            _shown(old.get(name)),
            _shown(new.get(name)),
        )
        for name in list(dict.fromkeys([*old, *new]))
        if old.get(name) != new.get(name)
    ]


def _lists(label: str, before: Any, after: Any) -> list[Described]:
    old = before if isinstance(before, dict) else {}
    new = after if isinstance(after, dict) else {}
    found = []
    for name in list(dict.fromkeys([*old, *new])):
        was = [str(v) for v in old.get(name) or []] if isinstance(old.get(name) or [], list) else []
        now = [str(v) for v in new.get(name) or []] if isinstance(new.get(name) or [], list) else []
        kind = str(name).replace("_", " ")
        added, removed = [v for v in now if v not in was], [v for v in was if v not in now]
        if added:
            found.append(Described(f"{label}: {kind} added", after=added))
        if removed:
            found.append(Described(f"{label}: {kind} retired", before=removed))
    return found


def _document(before: str | None, after: str | None) -> list[Described]:
    old, new = (before or "").splitlines(), (after or "").splitlines()
    removed, added = [], []
    for line in difflib.unified_diff(old, new, lineterm="", n=0):
        if line.startswith(("---", "+++", "@@")):
            continue
        (added if line.startswith("+") else removed).append(line[1:])
    if not added and not removed:
        return []
    return [
        Described(
            "The clinic's document changed",
            [r for r in removed if r.strip()],
            [a for a in added if a.strip()],
        )
    ]


def _stories(root: Path, before: Any, after: Any) -> list[Described]:
    def named(data: Any) -> dict[str, Any]:
        items = (data or {}).get("stories") or [] if isinstance(data, dict) else []
        return {str(s.get("story")): s for s in items if isinstance(s, dict) and s.get("story")}

    old, new = named(before), named(after)
    found = []
    for name in list(dict.fromkeys([*old, *new])):
        shown = plain.in_words(root, name)
        if name not in old:
            found.append(Described(f"Story “{shown}” saved"))
        elif name not in new:
            found.append(Described(f"Story “{shown}” deleted"))
        elif old[name] != new[name]:
            found.append(Described(f"Story “{shown}” changed"))
    return found


def describe(root: Path, item: Change) -> list[Described]:
    """What the change did, item by item, in words (each answer, example, clinic detail...)."""
    found: list[Described] = []
    for name in item.files:
        before = history.file_at(root, f"{item.sha}^", name)
        after = history.file_at(root, item.sha, name)
        if name == CLINIC:
            found += _clinic(_load(before), _load(after))
        elif name == WORDING:
            found += _lists("Approved wording", _load(before), _load(after))
        elif name.startswith("content/"):
            found += _document(before, after)
        elif name.startswith("domain/"):
            found += _responses(root, _load(before), _load(after))
        elif name.startswith("data/"):
            found += _nlu(root, _load(before), _load(after), item.is_erasure)
        elif name.startswith("tests/stories"):
            found += _stories(root, _load(before), _load(after))
        elif before != after:
            found.append(Described(f"{plain.part(name)} changed"))
    return found
