"""Unanswered questions: the review inbox that replaces the CSV round trip of `make review`.

Messages that ended in a fallback, "I don't have that information", a rejected "did you
mean" or a thumbs-down (staff/service/review.py decides which) are grouped by meaning with the
MiniLM encoder the assistant uses (components/sentence_embeddings.py). For each group staff
add it as a way of asking an existing question, mark it "not in the document" (an
out_of_scope example), "new topic needed" (a list for the editor) or ignore it. Additions
go through the same rules as `make merge` (staff/service/review.py: never masked text, never a
held-out test question, never a duplicate) into data/nlu under the project root, where
they wait for the next training. Every decision is kept in `review_decisions`, by a hash
of the masked message, so a decided message leaves the inbox.

Staff see the questions by the titles of the Answers page (`choices`; form-filling and
conversation mechanics such as affirm or inform are not offered), nothing is chosen for them
(the assistant's guess is a labelled hint), single messages of a group can be decided apart,
and an addition whose nearest training examples belong to another question is only made after
a warning (`nearer_elsewhere`): such an example pulls that question's visitors to this answer.

Personal data (issue 20): answers to a form never reach the inbox (staff/service/review.py), what
would be added is screened (common/personal_data.py: emails, phones, dates, names, the words
of stored requests) and refused with the reason, and each decision records the conversations
it came from (`review_sources`): erasing one deletes the decision, and an example added from
it is taken out of data/nlu again (`remove_erased_examples`, a commit without the text in
its message).
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import tarfile
import threading
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
import sqlalchemy as sa

from common import personal_data
from common.clinic import load_settings
from common.names import RETRIEVAL_INTENT
from common.records import conversations
from common.records.bookings import request_words
from common.records.tables import review_decisions
from staff.service import content, history, review
from staff.service.content import locked
from staff.service.db import as_utc, now
from staff.service.validate import load, normalise

# Two messages are grouped when the cosine similarity of their MiniLM embeddings is at least
# this. Measured on pairs (2026-12-03): same question in other words 0.50-0.68 ("how much
# does it cost" / "what is the price of a session" 0.50, "is there parking near the clinic" /
# "where can i park my car" 0.55), different questions 0.13-0.21. Staff see every wording of a
# group before deciding, so a group that is too wide is seen, not silently merged.
SAME_MEANING = 0.5
logger = logging.getLogger(__name__)
OUT_OF_SCOPE = "out_of_scope"
# The decisions that put the wording into the training data are named where erasure reads them.
ADDED, NOT_IN_DOCUMENT = conversations.IN_TRAINING_DATA
NEW_TOPIC, IGNORED, SKIPPED = "new_topic", "ignored", "skipped"
DECISIONS = (ADDED, NOT_IN_DOCUMENT, NEW_TOPIC, IGNORED)
REASON_LABELS = {
    review.FALLBACK: "not understood",
    review.UNKNOWN: '"I don\'t have that information"',
    review.REJECTED: 'rejected "did you mean"',
    review.THUMBS_DOWN: "thumbs-down",
}

# The other questions an editor may add ways of asking to, in staff's words. Form-filling and
# conversation mechanics (inform, affirm, deny, change_booking_field, faq_followup, cancel,
# unclear, feedback) are left out: an example added there would break the booking form or
# the "did that help?" step, and no editor means to.
OTHER_TOPICS = {
    "ask_contact": "The clinic's phone number and email",
    "ask_hours": "Opening hours",
    "ask_address": "The clinic's address",
    "book_consultation": "Booking a consultation",
    "live_chat_request": "Talking to a person (live chat)",
    "leave_message": "Leaving a message for the team",
    "medical_advice": "Personal medical advice (the assistant says it can't assess their skin)",
    "urgent_symptoms": "Urgent symptoms (the assistant sends them to medical help)",
    "greet": "Hello",
    "goodbye": "Goodbye",
    "thanks": "Thank you",
    "help": "What can the assistant do?",
    "bot_challenge": "Am I talking to a person or a computer?",
    "ask_privacy": "Privacy: what happens to what they type",
    "ask_my_data": "What this conversation holds about them",
    "erase_data": "Erasing their conversation",
}
OUT_OF_SCOPE_LABEL = "Not something the clinic answers (the assistant says it doesn't have that information)"
OUT_OF_SCOPE_TITLE = "Not something the clinic answers"
# How much nearer (cosine similarity of the nearest examples) another topic must be before the
# editor is warned that an addition may pull that topic's questions to the chosen one.
NEARER_MARGIN = 0.0

_encoder_lock = threading.Lock()
_encoder: Any = None


def encoder() -> Any:
    """The MiniLM sentence encoder, loaded once per process on first use."""
    global _encoder
    with _encoder_lock:
        if _encoder is None:
            from components.minilm import load_encoder  # numpy weights (~90 MB), no TensorFlow

            _encoder = load_encoder()
        return _encoder


def text_key(text: str) -> str:
    """The key a message is decided under: a hash of its normalised, masked text."""
    return hashlib.sha256(normalise(text).encode()).hexdigest()


@dataclass
class Member:
    """One wording in a group, how often visitors sent it, and why it is here."""

    text: str
    count: int
    key: str
    reasons: Counter[str] = field(default_factory=Counter)
    explanations: list[str] = field(default_factory=list)
    conversations: set[str] = field(default_factory=set)  # the conversations that sent it


@dataclass
class Group:
    """Messages that mean the same, for one decision."""

    members: list[Member]
    guessed_intent: str
    reason: str

    @property
    def key(self) -> str:
        """The group's id: its most frequent wording's key."""
        return self.members[0].key

    @property
    def count(self) -> int:
        """How many messages the group holds."""
        return sum(m.count for m in self.members)

    @property
    def example(self) -> str:
        """The most frequent wording."""
        return self.members[0].text

    @property
    def reason_label(self) -> str:
        """Why these messages are here, in staff's words."""
        return REASON_LABELS.get(self.reason, self.reason)

    @property
    def explanations(self) -> list[str]:
        """What visitors said was missing after a thumbs-down."""
        return [text for m in self.members for text in m.explanations]


def decided_keys(engine: sa.engine.Engine) -> set[str]:
    """The keys of every message already decided."""
    with engine.connect() as db:
        return set(db.execute(sa.select(review_decisions.c.text_key)).scalars())


def period(days: int, zone: ZoneInfo, until: date | None = None) -> tuple[float, float]:
    """The last `days` clinic days up to `until` (today) as epoch seconds [start, end)."""
    last = until or datetime.now(zone).date()
    start = datetime.combine(last - timedelta(days=days - 1), time(), zone).timestamp()
    end = datetime.combine(last + timedelta(days=1), time(), zone).timestamp()
    return start, end


def candidates(turns: list[review.Turn], decided: set[str]) -> list[Member]:
    """The undecided messages to review, one Member per wording, most frequent first."""
    by_form: dict[str, Member] = {}
    for turn in turns:
        form = " ".join(review.words(turn.text))
        if not turn.reason or not form or turn.text.startswith("/") or turn.is_explanation:
            continue
        key = text_key(turn.text)
        if key in decided:
            continue
        member = by_form.setdefault(form, Member(turn.text, 0, key))
        member.count += 1
        member.conversations.add(turn.sender)
        member.reasons[turn.reason] += 1
        if turn.explanation:
            member.explanations.append(turn.explanation)
    return sorted(by_form.values(), key=lambda m: (-m.count, m.text.lower()))


def group(members: list[Member], guesses: dict[str, str]) -> list[Group]:
    """Members grouped by meaning: each joins the first group whose lead it is close enough to."""
    if not members:
        return []
    vectors = encoder().encode([m.text for m in members])
    vectors = vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
    leads: list[int] = []
    groups: list[list[Member]] = []
    for index, member in enumerate(members):
        scores = [float(vectors[index] @ vectors[lead]) for lead in leads]
        best = int(np.argmax(scores)) if scores else -1
        if best >= 0 and scores[best] >= SAME_MEANING:
            groups[best].append(member)
        else:
            leads.append(index)
            groups.append([member])
    result = []
    for found in groups:
        reasons: Counter[str] = sum((m.reasons for m in found), Counter())
        guess = Counter(guesses.get(m.key, "") for m in found for _ in range(m.count)).most_common(1)[0][0]
        result.append(Group(found, guess, reasons.most_common(1)[0][0]))
    return sorted(result, key=lambda g: (-g.count, g.example.lower()))


def inbox(engine: sa.engine.Engine, url: str, zone: ZoneInfo, days: int = 7) -> list[Group]:
    """The groups of undecided unanswered messages of the last `days` days."""
    start, end = period(days, zone)
    turns = review.read_turns(url, start, end)
    guesses: dict[str, str] = {}
    for turn in turns:
        guesses.setdefault(text_key(turn.text), turn.guess)
    return group(candidates(turns, decided_keys(engine)), guesses)


def find_group(groups: list[Group], keys: list[str]) -> list[Member]:
    """The current members whose keys the form posted (a group may have changed meanwhile)."""
    wanted = set(keys)
    return [m for g in groups for m in g.members if m.key in wanted]


@dataclass
class Outcome:
    """What a decision did: examples added (by intent) and wordings skipped with the reason."""

    added: dict[str, list[str]] = field(default_factory=dict)
    skipped: list[tuple[str, str]] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    commit: str = ""  # the change's id in the project's history (empty: not recorded)


@dataclass(frozen=True)
class Choice:
    """A question staff may add ways of asking to: its intent and the words staff see."""

    intent: str
    label: str  # in the list next to "Add"
    title: str  # in confirmations and warnings: the topic's title on the Answers page

    @property
    def value(self) -> str:
        """What the page's form sends for it: "topic:<key>" for a topic, else the intent."""
        if self.intent.startswith(FAQ_INTENT_PREFIX):
            return TOPIC_VALUE + self.intent.removeprefix(FAQ_INTENT_PREFIX)
        return self.intent


def intent_of(value: str) -> str:
    """The intent a form's value names (`Choice.value` read back)."""
    return FAQ_INTENT_PREFIX + value.removeprefix(TOPIC_VALUE) if value.startswith(TOPIC_VALUE) else value


TOPIC_VALUE = "topic:"
FAQ_INTENT_PREFIX = f"{RETRIEVAL_INTENT}/"


def choices(root: Path) -> list[Choice]:
    """What the list next to "Add" offers: the FAQ topics by title, then the other questions.

    Only intents the training data has are offered, so an addition always has a file to go to.
    """
    project, _ = load(root)
    files = review.training_files(project)
    found = [
        Choice(topic.intent, topic.title, topic.title)
        for topic in content.topics(root)
        if topic.intent in files
    ]
    found += [Choice(intent, label, label) for intent, label in OTHER_TOPICS.items() if intent in files]
    if OUT_OF_SCOPE in files:
        found.append(Choice(OUT_OF_SCOPE, OUT_OF_SCOPE_LABEL, OUT_OF_SCOPE_TITLE))
    return found


def intents(root: Path) -> list[str]:
    """The intents examples can be added to, by name (those `choices` offers)."""
    return [choice.intent for choice in choices(root)]


def title_of(root: Path, intent: str) -> str:
    """What staff call an intent: its topic's title or its label; never its name ("another question")."""
    return next((c.title for c in choices(root) if c.intent == intent), "another question")


def questions(count: int) -> str:
    """How many questions, in words: 1 question, 2 questions."""
    return f"{count} question{'' if count == 1 else 's'}"


@dataclass
class Nearer:
    """An added wording that is nearer another question's examples than the chosen one's."""

    text: str
    chosen: str  # titles, as staff see them
    other: str

    @property
    def warning(self) -> str:
        """The warning, in staff's words."""
        if self.other == OUT_OF_SCOPE_TITLE:  # said in words that read well
            return (
                f"“{self.text}” is closer to the questions the clinic does not answer than to "
                f"'{self.chosen}'; adding it may make the assistant answer those questions with "
                f"'{self.chosen}' instead of saying it doesn't have that information."
            )
        return (
            f"“{self.text}” is closer to '{self.other}' than to '{self.chosen}'; adding it may make the "
            f"assistant answer '{self.other}' questions with '{self.chosen}'."
        )


_vectors: dict[str, np.ndarray] = {}  # unit-length MiniLM embeddings by text, kept for the process
# Where a trained model keeps its classifier's embeddings of the training examples (as
# components/linear_classifier.py writes them; importing it would load Rasa into the console).
CLASSIFIER_FOLDER, WEIGHTS_FILE, META_FILE = "LinearIntentClassifier", "weights.npz", "meta.json"
_trained: dict[tuple[str, float], tuple[np.ndarray, np.ndarray] | None] = {}


def _unit_vectors(texts: list[str]) -> np.ndarray:
    """The unit-length embeddings of `texts` (each text encoded once per process)."""
    missing = sorted({t for t in texts if t not in _vectors})
    if missing:
        vectors = encoder().encode(missing)
        vectors = vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
        with _encoder_lock:
            _vectors.update(zip(missing, vectors, strict=True))
    return np.array([_vectors[t] for t in texts]).reshape(len(texts), -1)


def _read_trained(archive: Path) -> tuple[np.ndarray, np.ndarray] | None:
    with tarfile.open(archive) as tar:
        members = {m.name.lstrip("/"): m for m in tar.getmembers()}
        weights_names = [n for n in members if CLASSIFIER_FOLDER in n and n.endswith(f"/{WEIGHTS_FILE}")]
        folder = weights_names[0].rsplit("/", 1)[0] if weights_names else None
        weights_file = tar.extractfile(members[f"{folder}/{WEIGHTS_FILE}"]) if folder else None
        meta_file = tar.extractfile(members[f"{folder}/{META_FILE}"]) if folder else None
        if weights_file is None or meta_file is None:
            return None
        classes = np.array(json.loads(meta_file.read())["classes"])
        with np.load(io.BytesIO(weights_file.read()), allow_pickle=False) as weights:
            if "examples" not in weights.files:
                return None
            return weights["examples"], classes[weights["example_classes"]]


def trained_examples(archive: Path) -> tuple[np.ndarray, np.ndarray] | None:
    """The examples a trained model learnt: (unit-length MiniLM embeddings, each one's intent).

    The assistant's classifier keeps them in the model (its nearest-example features), so the
    inbox need not encode the whole training data again. None if the model has none.
    """
    try:
        key = (str(archive), archive.stat().st_mtime)
    except OSError:
        return None
    with _encoder_lock:
        if key in _trained:
            return _trained[key]
    try:
        found = _read_trained(archive)
    except (OSError, tarfile.TarError, KeyError, ValueError):
        logger.warning("The trained model's examples could not be read: the training data is encoded.")
        found = None
    with _encoder_lock:
        if len(_trained) >= 4:  # a few models' examples at most (each publication is a new key)
            _trained.clear()
        _trained[key] = found
    return found


def nearer_elsewhere(
    root: Path, texts: list[str], intent: str, model: Path | None = None, waiting: list[tuple[str, str]] = ()
) -> list[Nearer]:
    """The wordings whose nearest examples (by meaning, MiniLM) belong to another question.

    Each wording is compared with the examples of the questions staff may add to: those the
    `model` learnt (else the training data's, encoded here) and the `waiting` additions
    (text, intent) made since. If the closest example of another question is closer than the
    closest one of `intent`, adding the wording would pull that question's visitors towards
    `intent`'s answer.
    """
    offered = {c.intent: c.title for c in choices(root)}
    if not texts or intent not in offered:
        return []
    trained = trained_examples(model) if model else None
    if trained is None:
        project, _ = load(root)
        known = [(e.text, e.intent) for e in project.examples]
        vectors, labels = _unit_vectors([t for t, _ in known]), np.array([i for _, i in known])
    else:
        vectors, labels = trained
    if waiting:
        vectors = np.vstack([vectors, _unit_vectors([t for t, _ in waiting])])
        labels = np.concatenate([labels, np.array([i for _, i in waiting])])
    keep = np.isin(labels, list(offered))
    vectors, labels = vectors[keep], labels[keep]
    if not (labels == intent).any():
        return []
    found = []
    for text, row in zip(texts, _unit_vectors(texts) @ vectors.T, strict=True):
        own = float(row[labels == intent].max())
        others = np.where(labels == intent, -1.0, row)
        best = int(np.argmax(others))
        if float(others[best]) > own + NEARER_MARGIN:
            found.append(Nearer(text, offered[intent], offered[str(labels[best])]))
    return found


def _record(engine: sa.engine.Engine, members: list[tuple[Member, str, str | None]], staff_name: str) -> None:
    """Keep each decision, and the conversations its wording came from (erasing one deletes it)."""
    sources = conversations.review_sources
    with engine.begin() as db:
        for member, decision, intent in members:
            known = set(
                db.execute(
                    sa.select(sources.c.conversation_id).where(sources.c.text_key == member.key)
                ).scalars()
            )
            for conversation_id in sorted(member.conversations - known):
                db.execute(sources.insert().values(text_key=member.key, conversation_id=conversation_id))
            exists = db.execute(
                sa.select(review_decisions.c.id).where(review_decisions.c.text_key == member.key)
            ).first()
            if exists is None:
                db.execute(
                    review_decisions.insert().values(
                        text_key=member.key,
                        text=member.text,
                        decision=decision,
                        intent=intent,
                        decided_at=now(),
                        decided_by=staff_name,
                    )
                )


def addable(engine: sa.engine.Engine, root: Path, members: list[Member]) -> list[str]:
    """The wordings `add_examples` would add (the others are refused: personal data, duplicates...)."""
    project, _ = load(root)
    known, heldout = review.known_examples(project)
    private = personal_data.Screen.of(load_settings().country, request_words(engine))
    texts = [" ".join(m.text.split()) for m in members]
    return [text for text in texts if review.refusal(text, known, heldout, private) is None]


def add_examples(
    engine: sa.engine.Engine, root: Path, members: list[Member], intent: str, staff_name: str
) -> Outcome:
    """Add the wordings as examples of `intent` in data/nlu (make merge's rules); record the decision."""
    project, problems = load(root)
    if problems:
        return Outcome(problems=[str(p) for p in problems])
    files = review.training_files(project)
    if intent not in files or intent not in intents(root):
        return Outcome(problems=["That is not one of the questions in the list: choose one, then press Add."])
    known, heldout = review.known_examples(project)
    titles = {choice.intent: f"'{choice.title}'" for choice in choices(root)}
    known = {text: titles.get(name, "another question") for text, name in known.items()}  # staff's words
    private = personal_data.Screen.of(load_settings().country, request_words(engine))
    outcome = Outcome()
    texts: list[str] = []
    decisions: list[tuple[Member, str, str | None]] = []
    for member in members:
        text = " ".join(member.text.split())
        why = review.refusal(text, known, heldout, private)
        if why:
            outcome.skipped.append((text, why))
            decisions.append((member, SKIPPED, intent))
            continue
        texts.append(text)
        known[normalise(text)] = titles.get(intent, "another question")
        decisions.append((member, NOT_IN_DOCUMENT if intent == OUT_OF_SCOPE else ADDED, intent))
    if texts:
        with locked(root):
            review.write_additions(root, files, {intent: texts})
            outcome.added[intent] = texts
            if history.problem(root) is None:  # recorded in the History, like every console change
                title = title_of(root, intent)
                message = f"{questions(len(texts))} added to '{title}' from Unanswered questions"
                try:
                    outcome.commit = history.commit(root, [files[intent]], message, staff_name)
                except history.HistoryError:
                    outcome.problems.append(
                        "The examples were added, but could not be recorded in the History (git refused): "
                        "tell a developer."
                    )
    _record(engine, decisions, staff_name)
    return outcome


def mark(engine: sa.engine.Engine, members: list[Member], decision: str, staff_name: str) -> None:
    """Record "new topic needed" or "ignore" for these wordings."""
    if decision not in (NEW_TOPIC, IGNORED):
        raise ValueError(decision)
    _record(engine, [(m, decision, None) for m in members], staff_name)


def new_topics(engine: sa.engine.Engine) -> list[dict[str, Any]]:
    """The questions marked "new topic needed", newest first: the editor's list."""
    query = (
        sa.select(review_decisions)
        .where(review_decisions.c.decision == NEW_TOPIC)
        .order_by(review_decisions.c.decided_at.desc())
    )
    with engine.connect() as db:
        return [{**r, "decided_at": as_utc(r["decided_at"])} for r in db.execute(query).mappings()]


def used_for_topic(engine: sa.engine.Engine, texts: list[str], intent: str) -> None:
    """Questions of the "new topic needed" list that became examples of a new topic.

    They leave the list and count as additions waiting for the next training.
    """
    keys = [text_key(text) for text in texts]
    if not keys:
        return
    with engine.begin() as db:
        db.execute(
            review_decisions.update()
            .where(review_decisions.c.text_key.in_(keys), review_decisions.c.decision == NEW_TOPIC)
            .values(decision=ADDED, intent=intent, decided_at=now())
        )


def pending(engine: sa.engine.Engine, model: Path) -> list[dict[str, Any]]:
    """Examples added since the model was trained: they wait in data/nlu for the next training."""
    query = sa.select(review_decisions).where(review_decisions.c.decision.in_((ADDED, NOT_IN_DOCUMENT)))
    trained = datetime.fromtimestamp(model.stat().st_mtime).astimezone() if model.exists() else None
    with engine.connect() as db:
        rows = [{**r, "decided_at": as_utc(r["decided_at"])} for r in db.execute(query).mappings()]
    return sorted(
        (r for r in rows if trained is None or r["decided_at"] > trained),
        key=lambda r: r["decided_at"],
        reverse=True,
    )


def by_intent(rows: list[dict[str, Any]]) -> dict[str, list[str]]:
    """Pending examples grouped by the intent they were added to."""
    grouped: dict[str, list[str]] = defaultdict(list)
    for row in rows:
        grouped[row["intent"] or ""].append(row["text"])
    return dict(grouped)


def erased_count(engine: sa.engine.Engine) -> int:
    """How many examples wait to be taken out of the data because their visitor was erased."""
    with engine.connect() as db:
        return db.execute(
            sa.select(sa.func.count())
            .select_from(review_decisions)
            .where(review_decisions.c.decision == conversations.ERASED_DECISION)
        ).scalar_one()


def remove_erased_examples(engine: sa.engine.Engine, root: Path, staff_name: str) -> int:
    """Take out of data/nlu the examples added from erased conversations; how many went.

    The examples are found by their key (the hash of the wording; the text itself was
    deleted with the conversation). The change is one commit whose message holds no text;
    its diff shows only the removed lines. Examples were screened for personal data before
    they were added, so neither the commit that added them nor this one holds any.
    """
    with engine.connect() as db:
        rows = db.execute(
            sa.select(review_decisions.c.text_key, review_decisions.c.intent).where(
                review_decisions.c.decision == conversations.ERASED_DECISION
            )
        ).all()
    if not rows:
        return 0
    wanted = {row.text_key: row.intent for row in rows}
    removed = 0
    with locked(root):
        project, _ = load(root)
        doomed: dict[str, set[str]] = defaultdict(set)  # file -> normalised texts to remove
        for example in project.examples:
            key = text_key(example.text)
            if key in wanted and wanted[key] in (example.intent, None):
                doomed[example.place.path].add(normalise(example.text))
        for path, texts in doomed.items():
            file = root / path
            lines = file.read_text(encoding="utf-8").splitlines(keepends=True)
            kept = [
                line
                for line in lines
                if not (line.strip().startswith("- ") and normalise(line.strip()[2:]) in texts)
            ]
            removed += len(lines) - len(kept)
            file.write_text("".join(kept), encoding="utf-8")
        if doomed and history.problem(root) is None:
            try:
                history.commit(
                    root,
                    sorted(doomed),
                    f"{removed} example(s) taken out of the training data: {history.ERASURE_TITLE_END}",
                    staff_name,
                )
            except history.HistoryError:  # the examples are out of the data; git's record can follow
                logger.warning("Examples of an erased conversation were removed, but git refused the commit.")
    with engine.begin() as db:
        db.execute(review_decisions.delete().where(review_decisions.c.text_key.in_(sorted(wanted))))
    return removed
