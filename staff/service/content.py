"""What the assistant says, edited by staff: FAQ topics (answer, button title, examples) and clinic.yml.

Every change goes the same way, under one lock per project:
1. the version the staff member started from is still the current one (else: refused, nothing
   written: someone else saved first);
2. an FAQ answer passes the grounding check (common/grounding.py) sentence by sentence;
3. the changed files are written to a copy of the project and `make validate`'s own checks
   (staff/service/validate.py) run on it: a change that adds a problem is refused, nothing written;
4. the files are written (ruamel.yaml round trip: only the changed lines differ, see
   yamlfile.py) and committed with the staff member as author (history.py).

Answers and examples reach visitors at the next training; clinic.yml in the next new
conversation (common/clinic.py reads it again when it changes; no restart).
"""

from __future__ import annotations

import fcntl
import hashlib
import logging
import re
import shutil
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml
from ruamel.yaml import YAML as RoundTrip
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import YAMLError as RoundTripError
from ruamel.yaml.scalarstring import DoubleQuotedScalarString

from common import grounding, paths, personal_data, yamlio
from common.clinic import WEEKDAYS, is_clock_time, load_settings
from common.names import FAQ_RESPONSE_PREFIX, RETRIEVAL_INTENT
from staff.service import clinic_hours, history, plain, validate
from staff.service.yamlfile import (
    LayoutError,
    YamlFile,
    answer_text,
    examples_block,
    open_yaml,
    quoted,
    write_atomically,
)

FAQ_DOMAIN = paths.relative(paths.DOMAIN_DIR / "faq.yml")
FAQ_NLU = paths.relative(paths.DATA_DIR / "nlu" / "faq.yml")
DOMAIN = paths.relative(paths.DOMAIN_DIR)
CLINIC = paths.relative(paths.CLINIC_YML)
DOCUMENT = paths.relative(paths.DOCUMENT)
WORDING = paths.relative(paths.APPROVED_WORDING)
# What validate.load reads, copied to check a change before it is written.
CHECKED_PARTS = ("clinic.yml", "domain", "data", "content", "actions", "tests/heldout", "tests/stories")
# Clinic details staff edit in the form (the rest of clinic.yml stays a developer's job).
# (The opening hours are per day: staff/service/clinic_hours.py.)
CLINIC_FIELDS = ("phone", "address", "booking_link", "booking_webhook_url", "daily_summary_time")
# Where visitors' personal details are sent (every consultation request's name and contact):
# only an admin changes it, from the form or by undoing a change, and each change is audited.
# The webhook's token is in the environment (BOOKING_WEBHOOK_TOKEN), never in clinic.yml.
ROUTING_FIELDS = ("booking_webhook_url",)
ROUTING_REFUSAL = (
    "Only an admin can change where consultation requests are sent (the booking system address)."
)
MAX_FIELD_CHARS = 300
MAX_EXAMPLE_CHARS = 200
TOPIC_PAYLOAD = re.compile(r'"faq_topic"\s*:\s*"([a-z0-9_]+)"')
TRAINING_NOTE = (
    "Visitors get this at the next training (on Check and publish); until then the "
    "assistant keeps giving the current version."
)
CHECK_LOCK = threading.Lock()  # one grounding check at a time (one MiniLM encoder per process)
_writes = threading.Lock()
log = logging.getLogger(__name__)


class Refused(Exception):
    """A change that was not saved; `problems` say why, in plain words. Nothing was written."""

    def __init__(self, summary: str, problems: list[str] | None = None) -> None:
        super().__init__(summary)
        self.summary = summary
        self.problems = problems or []


# ---- reading -----------------------------------------------------------------------------
@dataclass
class Topic:
    """One FAQ topic: the answer `utter_faq/<key>`, its button title and its example questions."""

    key: str
    title: str
    answer: str
    source: str
    quote: str
    examples: list[str] = field(default_factory=list)

    @property
    def intent(self) -> str:
        """The topic's question, e.g. faq/what_is."""
        return f"{RETRIEVAL_INTENT}/{self.key}"


def _read(root: Path, name: str) -> Any:
    return yamlio.load((root / name).read_text(encoding="utf-8")) or {}


def topics(root: Path) -> list[Topic]:
    """The FAQ topics, in the order of domain/faq.yml."""
    responses = _read(root, FAQ_DOMAIN).get("responses") or {}
    examples: dict[str, list[str]] = {}
    for item in _read(root, FAQ_NLU).get("nlu") or []:
        if isinstance(item, dict) and str(item.get("intent", "")).startswith(f"{RETRIEVAL_INTENT}/"):
            examples[item["intent"]] = validate.example_lines(item.get("examples"))
    found = []
    for name, variations in responses.items():
        if not name.startswith(FAQ_RESPONSE_PREFIX) or not variations:
            continue
        first = variations[0] or {}
        metadata = first.get("metadata") or {}
        key = name.removeprefix(FAQ_RESPONSE_PREFIX)
        found.append(
            Topic(
                key=key,
                title=str(metadata.get("topic") or key),
                answer=str(first.get("text") or ""),
                source=str(metadata.get("source") or ""),
                quote=str(metadata.get("quote") or ""),
                examples=examples.get(f"{RETRIEVAL_INTENT}/{key}", []),
            )
        )
    return found


def topic(root: Path, key: str) -> Topic | None:
    """One topic by its key (None if there is none)."""
    return next((t for t in topics(root) if t.key == key), None)


def version(root: Path, names: tuple[str, ...]) -> str:
    """A token of the files' current contents: a save from an older token is refused."""
    digest = hashlib.sha256()
    for name in names:
        path = root / name
        digest.update(name.encode() + b"\0" + (path.read_bytes() if path.exists() else b"") + b"\0")
    return digest.hexdigest()[:20]


def domain_files(root: Path) -> tuple[str, ...]:
    """The domain's files, as written from the project root."""
    return tuple(validate.relative(root, p) for p in sorted((root / DOMAIN).glob("*.yml")))


def topic_files(root: Path) -> tuple[str, ...]:
    """The files a topic's change may touch: the domain (answers, buttons) and the FAQ examples."""
    return (*domain_files(root), FAQ_NLU)


# ---- the document and the grounding check ------------------------------------------------
@dataclass(frozen=True)
class Line:
    """One line of the clinic's document: a heading, or a paragraph of numbered sentences."""

    heading: bool
    sentences: tuple[tuple[int, str], ...]


def document_lines(root: Path) -> list[Line]:
    """The document as lines of sentences, numbered as the grounding check numbers them."""
    text = (root / DOCUMENT).read_text(encoding="utf-8")
    sections = set(validate.document_sections(text))
    lines, number = [], 0
    for raw in text.splitlines():
        parts = grounding.sentences(raw)
        if not parts:
            continue
        numbered = tuple((number + i, part) for i, part in enumerate(parts))
        number += len(parts)
        lines.append(Line(validate.collapse(raw) in sections, numbered))
    return lines


def checker(root: Path) -> grounding.Checker:
    """The grounding check of this project's document and approved wording (made once)."""
    try:
        wording = grounding.read_wording(root / WORDING)
    except grounding.WordingError as error:
        raise Refused(str(error)) from None
    return grounding.Checker.cached((root / DOCUMENT).read_text(encoding="utf-8"), wording)


@dataclass
class Check:
    """The grounding check of an answer as staff type it."""

    problems: list[str]
    supporting: list[int]  # numbers of the document's sentences that support it
    sentences: list[Any] = field(default_factory=list)  # wording.Reason: why each sentence passed or not

    @property
    def ok(self) -> bool:
        """Whether every sentence is supported."""
        return not self.problems


def answer_problems(root: Path, answer: str) -> list[str]:
    """What the document does not support in an answer, sentence by sentence (empty: all of it).

    What saving checks; the console shows why each sentence passed or not (wording.check_answer).
    """
    if not answer.strip():
        return ["Write the answer first."]
    check = checker(root)
    with CHECK_LOCK:
        return [verdict.explain() for verdict in check.verdicts(answer) if not verdict.supported]


def section_of(root: Path, sentence: str) -> str:
    """The document's section (validate.document_sections) a sentence is in."""
    text = (root / DOCUMENT).read_text(encoding="utf-8")
    sections = set(validate.document_sections(text))
    current = validate.FIRST_SECTION
    for raw in text.splitlines():
        line = validate.collapse(raw)
        if line in sections:
            current = line
        if validate.collapse(sentence) in line:
            return current
    return current


# ---- writing -----------------------------------------------------------------------------
def lock_file(root: Path) -> Path:
    """The file whose lock the console holds while it changes the project under `root`."""
    return root / "var" / "console-edit.lock"


@contextmanager
def locked(root: Path) -> Iterator[None]:
    """One change at a time to this project, across threads and console processes."""
    path = lock_file(root)
    path.parent.mkdir(parents=True, exist_ok=True)
    with _writes, path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _problem_key(problem: validate.Problem) -> str:
    return f"{problem.place.path}: {problem.message}"


def problems_of(root: Path) -> list[validate.Problem]:
    """What `make validate`'s checks (without Rasa's) find in the project under `root`."""
    with CHECK_LOCK:
        project, problems = validate.load(root)
        return problems or validate.run_checks(project)


def new_problems(root: Path, texts: dict[str, str]) -> list[str]:
    """The problems the checks find with `texts` written, that the project does not have now.

    First every YAML text must read as the console reads it (a key twice, as a line merge can
    leave it, stops the console's editor); the detail goes to the log for IT.
    """
    unreadable = []
    for name, text in texts.items():
        if name.endswith((".yml", ".yaml")):
            try:
                RoundTrip(typ="rt").load(text)
            except RoundTripError as error:
                log.warning("%s cannot be read: %s", name, " ".join(str(error).split()))
                unreadable.append(
                    f"{plain.part(name)}: the text cannot be read (a name is given twice, or its layout "
                    "is broken)"
                )
    if unreadable:
        return unreadable
    with tempfile.TemporaryDirectory(prefix="clinic-change-") as folder:
        copy = Path(folder)
        for part in CHECKED_PARTS:
            source, target = root / part, copy / part
            if not source.exists():
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            if source.is_dir():
                shutil.copytree(source, target, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
            else:
                shutil.copyfile(source, target)
        for name, text in texts.items():
            (copy / name).write_text(text, encoding="utf-8")
        after = problems_of(copy)
    if not after:
        return []
    before = {_problem_key(p) for p in problems_of(root)}
    return [plain.problem(root, p.place.path, p.message) for p in after if _problem_key(p) not in before]


def refuse_if_stale(root: Path, watched: tuple[str, ...], started_from: str) -> None:
    """Refuse a change made on a version of the files that is no longer the current one."""
    if version(root, watched) != started_from:
        raise Refused(
            "Someone else saved a change here after you opened this page, so your change was not saved "
            "(it would have undone theirs). Open the page again to see the current version, then make your "
            "change again."
        )


def save(
    root: Path,
    files: dict[str, YamlFile],
    started_from: str,
    watched: tuple[str, ...],
    message: str,
    staff_name: str,
) -> str:
    """Check, write and commit the changed files (already locked); the commit's id.

    Refused (nothing written) when the history cannot be kept, the version is old, or a check fails.
    """
    missing = history.problem(root)
    if missing:
        raise Refused(missing)
    refuse_if_stale(root, watched, started_from)
    new = {name: f.text() for name, f in files.items()}  # each a round-trip dump: once
    texts = {name: text for name, text in new.items() if text != files[name].original}
    if not texts:
        raise Refused("Nothing was changed, so there was nothing to save.")
    problems = new_problems(root, texts)
    if problems:
        raise Refused(
            "The change was not saved, because the project's checks found a problem with it:", problems
        )
    originals = {name: (root / name).read_text(encoding="utf-8") for name in texts}
    try:
        for name, text in texts.items():
            write_atomically(root / name, text)
        return history.commit(root, sorted(texts), message, staff_name)
    except BaseException:
        for name, text in originals.items():  # put the files back as they were
            write_atomically(root / name, text)
        raise


# ---- topics ------------------------------------------------------------------------------
@dataclass
class TopicChange:
    """What the topic form sends: the new answer and title, what to do with each example, new ones."""

    answer: str
    title: str
    version: str
    moves: dict[str, str] = field(default_factory=dict)  # example -> "remove" or another topic's key
    added: list[str] = field(default_factory=list)


def lines_of(text: str) -> list[str]:
    """A text's non-empty lines, each with its spaces made single: what a change of wording changes."""
    return [" ".join(line.split()) for line in text.splitlines() if line.strip()]


def _nlu_items(nlu: YamlFile) -> dict[str, Any]:
    return {str(item.get("intent")): item for item in nlu.data.get("nlu") or [] if isinstance(item, dict)}


def _buttons(files: dict[str, YamlFile], key: str) -> Iterator[CommentedMap]:
    """The buttons in the domain that open topic `key`."""
    for name, f in files.items():
        if not name.startswith(f"{DOMAIN}/"):
            continue
        for variations in (f.data.get("responses") or {}).values():
            for variation in variations or []:
                for button in (variation or {}).get("buttons") or []:
                    match = TOPIC_PAYLOAD.search(str(button.get("payload") or ""))
                    if match and match.group(1) == key:
                        yield button


def _clean_examples(lines: list[str]) -> list[str]:
    """The new examples typed or pasted in, one per line; refused if too long or personal.

    An example may have been copied from a visitor's message (the inbox's "new topic needed"
    list): what the inbox's screen refuses (an email, a phone number, a date, a name) is
    refused here too, since the examples are committed to the project's history.
    """
    found = []
    screen = personal_data.Screen(load_settings().country)
    for line in lines:
        text = " ".join(line.split()).removeprefix("- ").strip()
        if text:
            if len(text) > MAX_EXAMPLE_CHARS:
                raise Refused(
                    f'The example "{text[:60]}..." is too long: keep questions under '
                    f"{MAX_EXAMPLE_CHARS} characters."
                )
            why = screen.reason(text)
            if why:
                raise Refused(f'The example "{text[:60]}" was not saved. {why}.')
            found.append(text)
    return found


def _check_answer_or_refuse(root: Path, answer: str) -> None:
    problems = answer_problems(root, answer)
    if problems:
        raise Refused(
            "The answer was not saved: the clinic's document does not support all of it. Say only what "
            "the document says (the highlighted sentences show what it does say).",
            problems,
        )


def _set_examples(item: Any, examples: list[str]) -> None:
    item["examples"] = examples_block(examples)


def change_topic(root: Path, key: str, change: TopicChange, staff_name: str) -> str:
    """Save a topic's new answer, title and examples as one commit; its id. Raises Refused."""
    title = " ".join(change.title.split())
    if not title:
        raise Refused("Write the button title: the words on the button that opens this topic.")
    if len(title) > 60:
        raise Refused("The button title is too long: keep it under 60 characters so it fits on a phone.")
    with locked(root):
        current = topic(root, key)
        if current is None:
            raise Refused("This topic no longer exists (someone may have removed it).")
        refuse_if_stale(root, topic_files(root), change.version)
        answer_changed = lines_of(change.answer) != lines_of(current.answer)
        if answer_changed:
            _check_answer_or_refuse(root, change.answer)
        watched = topic_files(root)
        try:
            files = {name: open_yaml(root / name, name) for name in watched}
        except LayoutError as error:
            raise Refused(str(error)) from None
        variation = files[FAQ_DOMAIN].data["responses"][f"{FAQ_RESPONSE_PREFIX}{key}"][0]
        summary = []
        if answer_changed:
            variation["text"] = answer_text(change.answer)
            summary.append("answer reworded")
        if title != current.title:
            variation.setdefault("metadata", CommentedMap())["topic"] = quoted(title)
            for button in _buttons(files, key):
                button["title"] = quoted(title)
            summary.append(f'button title was "{current.title}"')
        items = _nlu_items(files[FAQ_NLU])
        known = {t.key: t for t in topics(root)}
        kept = list(current.examples)
        moved: dict[str, list[str]] = {}
        removed = 0
        for example, target in change.moves.items():
            if example not in kept or not target:
                continue
            kept.remove(example)
            if target == "remove":
                removed += 1
            elif target in known and target != key:
                moved.setdefault(target, []).append(example)
            else:
                raise Refused(f'"{target}" is not a topic: choose one from the list.')
        added = _clean_examples(change.added)
        kept += [
            text for text in added if validate.normalise(text) not in {validate.normalise(k) for k in kept}
        ]
        if kept != current.examples:
            _set_examples(items[current.intent], kept)
        for target, texts in moved.items():
            _set_examples(items[known[target].intent], known[target].examples + texts)
            summary.append(f'{len(texts)} example(s) moved to "{known[target].title}"')
        if added:
            summary.append(f"{len(added)} example(s) added")
        if removed:
            summary.append(f"{removed} example(s) removed")
        message = f'Topic "{title}": ' + (", ".join(summary) or "changed")
        return save(root, files, change.version, watched, message, staff_name)


@dataclass
class NewTopic:
    """What the new-topic form sends."""

    title: str
    answer: str
    quotes: list[int]  # numbers of the document's sentences the answer is based on
    examples: list[str]
    version: str


def topic_key(title: str, taken: set[str]) -> str:
    """A new topic's key from its title ("Who can have it?" -> who_can_have_it), not yet taken."""
    words = re.findall(r"[a-z0-9]+", title.lower())
    base = "_".join(words[:6]) or "topic"
    key, number = base, 2
    while key in taken:
        key, number = f"{base}_{number}", number + 1
    return key


def add_topic(root: Path, new: NewTopic, staff_name: str) -> tuple[str, str]:
    """Add a topic (answer, title, source, quote, examples) as one commit: (its key, the commit id)."""
    title = " ".join(new.title.split())
    if not title:
        raise Refused("Write the title: the question as the topic's button shows it.")
    if len(title) > 60:
        raise Refused("The title is too long: keep it under 60 characters so it fits on a phone.")
    examples = _clean_examples(new.examples)
    if len({validate.normalise(e) for e in examples}) < validate.MIN_EXAMPLES:
        raise Refused(
            f"Give at least {validate.MIN_EXAMPLES} different example questions (you gave "
            f"{len(examples)}): the ways visitors ask it, one per line, so the assistant learns to "
            "recognise it."
        )
    sentences = [s for line in document_lines(root) for s in line.sentences]
    chosen = [text for number, text in sentences if number in set(new.quotes)]
    if not chosen:
        raise Refused("Tick the sentence (or sentences) of the clinic's document the answer is based on.")
    with locked(root):
        refuse_if_stale(root, topic_files(root), new.version)
        _check_answer_or_refuse(root, new.answer)
        watched = topic_files(root)
        try:
            files = {name: open_yaml(root / name, name) for name in watched}
        except LayoutError as error:
            raise Refused(str(error)) from None
        existing = topics(root)
        if any(t.title.lower() == title.lower() for t in existing):
            raise Refused(
                f'There is already a topic called "{title}": edit that one, or choose another title.'
            )
        key = topic_key(title, {t.key for t in existing})
        metadata = CommentedMap()
        metadata["topic"] = quoted(title)
        metadata["source"] = quoted(section_of(root, chosen[0]))
        joined = " ".join(chosen)
        document = validate.collapse((root / DOCUMENT).read_text(encoding="utf-8"))
        metadata["quote"] = quoted(joined if validate.collapse(joined) in document else chosen[0])
        variation = CommentedMap()
        variation["text"] = answer_text(new.answer)
        variation["metadata"] = metadata
        files[FAQ_DOMAIN].data["responses"][f"{FAQ_RESPONSE_PREFIX}{key}"] = CommentedSeq([variation])
        item = CommentedMap()
        item["intent"] = f"{RETRIEVAL_INTENT}/{key}"
        item["examples"] = examples_block(examples)
        files[FAQ_NLU].data["nlu"].append(item)
        message = f'New topic "{title}" with {len(examples)} example questions'
        return key, save(root, files, new.version, watched, message, staff_name)


# ---- clinic details ----------------------------------------------------------------------
@dataclass
class ClinicChange:
    """What the clinic form sends."""

    values: dict[str, str]  # CLINIC_FIELDS
    opening_days: list[str]
    closed_dates: list[str]
    version: str
    hours: clinic_hours.HoursChange | None = None  # None: the hours stay as they are


def clinic_values(root: Path) -> dict[str, Any]:
    """clinic.yml's values as the form shows them."""
    return _read(root, CLINIC)


def _scalar_like(old: Any, value: str) -> Any:
    """A new value written in the old one's style (double quotes if it had them)."""
    return quoted(value) if isinstance(old, DoubleQuotedScalarString) or old is None else value


def _replace_list(data: CommentedMap, name: str, values: list[Any]) -> None:
    old = data.get(name)
    if isinstance(old, CommentedSeq):
        old.clear()
        old.extend(values)  # keeps the list's flow style ([a, b]) and its comment
    else:
        seq = CommentedSeq(values)
        seq.fa.set_flow_style()
        data[name] = seq


def routing(values: dict[str, Any] | None) -> dict[str, str]:
    """The settings that decide where personal details are sent, from clinic.yml's values."""
    return {name: " ".join(str((values or {}).get(name) or "").split()) for name in ROUTING_FIELDS}


def _host(url: str) -> str:
    if not url:
        return "(none)"
    return urlsplit(url).hostname or "(not a web address)"


def routing_changes(before: dict[str, str], after: dict[str, str]) -> str:
    """What changed in where data is sent, as old host -> new host (for the audit log; no path, no token)."""
    return "; ".join(
        f"{_host(before[name])} -> {_host(after[name])}"
        for name in ROUTING_FIELDS
        if before[name] != after[name]
    )


def change_clinic(root: Path, change: ClinicChange, staff_name: str, may_route: bool = False) -> str:
    """Save new clinic details as one commit; its id. Raises Refused (nothing written).

    Changing where requests are sent (ROUTING_FIELDS) needs `may_route` (an admin).
    """
    problems = []
    for name, value in change.values.items():
        if len(value) > MAX_FIELD_CHARS:
            problems.append(f"{name.replace('_', ' ')}: keep it under {MAX_FIELD_CHARS} characters.")
    summary_time = change.values.get("daily_summary_time", "").strip()
    if summary_time and not is_clock_time(summary_time):
        problems.append("Daily summary e-mail: write the time as HH:MM, e.g. 08:00.")
    days = [day for day in WEEKDAYS if day in change.opening_days]
    if not days:
        problems.append("Opening days: tick at least one day the clinic sees patients.")
    dates = [" ".join(d.split()) for d in change.closed_dates if d.strip()]
    if change.hours is not None:
        problems.extend(clinic_hours.check(change.hours)[-1])
    if problems:
        raise Refused("The clinic details were not saved:", problems)
    with locked(root):
        refuse_if_stale(root, (CLINIC,), change.version)
        try:
            clinic = open_yaml(root / CLINIC, CLINIC)
        except LayoutError as error:
            raise Refused(str(error)) from None
        data = clinic.data
        wanted = routing(change.values)
        if not may_route and routing(data) != wanted:
            raise Refused(ROUTING_REFUSAL)
        changed = []
        for name in CLINIC_FIELDS:
            value = " ".join(change.values.get(name, "").split())
            if name == "daily_summary_time" and not value:
                continue  # a form without it (or emptied) keeps the time set
            if str(data.get(name) or "") != value:
                data[name] = _scalar_like(data.get(name), value)
                changed.append(name.replace("_", " "))
        if list(data.get("opening_days") or []) != days:
            _replace_list(data, "opening_days", days)
            changed.append("opening days")
        if [str(d) for d in data.get("closed_dates") or []] != dates:
            _replace_list(data, "closed_dates", [quoted(d) for d in dates])
            changed.append("closed dates")
        if change.hours is not None:
            changed.extend(clinic_hours.apply(data, change.hours))
        message = "Clinic details: " + (", ".join(changed) or "no change")
        return save(root, {CLINIC: clinic}, change.version, (CLINIC,), message, staff_name)


# ---- undo --------------------------------------------------------------------------------
def undo(root: Path, sha: str, staff_name: str, may_route: bool = False) -> str:
    """Take one change back out, as a new commit with the staff member as author; its id. Raises Refused.

    Undoing a change of where requests are sent (ROUTING_FIELDS) needs `may_route` (an admin).
    """
    with locked(root):
        missing = history.problem(root)
        if missing:
            raise Refused(missing)
        item = history.change(root, sha)
        if item is None:
            raise Refused("There is no such change in the history.")
        if item.is_erasure:
            raise Refused(
                "This change took the words of a visitor who asked to be forgotten out of the "
                "assistant's examples; it cannot be undone."
            )
        try:
            texts = history.undone(root, item)
        except history.HistoryError as error:
            raise Refused(str(error)) from None
        texts = {
            name: text for name, text in texts.items() if (root / name).read_text(encoding="utf-8") != text
        }
        if not texts:
            raise Refused("This change has already been undone: the files are as they were before it.")
        if not may_route and CLINIC in texts:
            try:
                now_values = yamlio.load((root / CLINIC).read_text(encoding="utf-8"))
                then_values = yamlio.load(texts[CLINIC])
            except yaml.YAMLError:
                now_values, then_values = None, {}
            if routing(now_values) != routing(then_values):
                raise Refused(ROUTING_REFUSAL)
        problems = new_problems(root, texts)
        if problems:
            raise Refused(
                "Undoing this change was refused, because the result would not pass the project's checks:",
                problems,
            )
        originals = {name: (root / name).read_text(encoding="utf-8") for name in texts}
        try:
            for name, text in texts.items():
                write_atomically(root / name, text)
            return history.commit(root, sorted(texts), history.undo_message(item.message), staff_name)
        except BaseException:
            for name, text in originals.items():
                write_atomically(root / name, text)
            raise
