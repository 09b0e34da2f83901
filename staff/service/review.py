"""Learn from real conversations: what visitors asked that the assistant could not answer.

The command (`make review`, `make merge`, clinic-review) is staff/commands/review.py.
Its `report` reads the conversations (DATABASE_URL, default var/clinic.db) of a date range (the
last 7 days unless told) and writes, in reports/: review-<until>.csv (the messages that
ended in a fallback, an "I don't know" or a rejected "did you mean", grouped by wording),
review-<until>.md (the period's numbers) and review-<until>.png (a chart per day). Staff
fill in the correct_intent column; `merge` adds those examples to the training data in
data/nlu. Emails and phone numbers are masked in everything the review writes or prints.
"""

from __future__ import annotations

import csv
import json
import re
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from itertools import groupby, pairwise
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from common import database, personal_data, settings
from common.clinic import load_settings
from common.names import FALLBACK_INTENT, RETRIEVAL_INTENT, URGENT_REPLY
from common.records import conversations
from staff.service.validate import Project, normalise

DAYS = 7
# What the bot replied (actions, and the responses its bot events name) that means...
FALLBACK_REPLIES = frozenset(
    {
        "action_default_ask_affirmation",
        "action_default_fallback",
        "utter_default",
        "utter_ask_rephrase",
        "utter_did_you_mean",
        "utter_still_not_understood",
    }
)
UNKNOWN_REPLIES = frozenset({"utter_out_of_scope", "utter_medical_advice", "utter_booking_not_in_my_info"})
DID_YOU_MEAN = frozenset({"action_default_ask_affirmation", "utter_did_you_mean"})
HANDOFF_REPLIES = frozenset(
    {
        "utter_out_of_scope",
        "utter_medical_advice",
        "utter_default",
        "utter_still_not_understood",
        "utter_contact",
        "utter_booking_call_instead",
    }
)
SILENT = frozenset({"action_listen", "action_session_start"})
BOOKING_STARTED = "action_offer_booking"
BOOKING_SAVED = "utter_booking_saved"
REJECTING_INTENT = "out_of_scope"  # the "Something else" button under "did you mean"
# Visitor feedback after an answer (issue 17): a thumbs-down, then "what was missing?".
FEEDBACK_UNHELPFUL = "feedback_unhelpful"
FEEDBACK_HELPFUL = "feedback_helpful"
ASK_FEEDBACK_MISSING = "utter_ask_feedback_missing"
# Why a message is in the review file.
REJECTED, FALLBACK, UNKNOWN = "rejected suggestion", "fallback", "unknown"
THUMBS_DOWN = "thumbs-down"
# What each kind of message is called in the chart.
OUTCOMES = {
    "answered": "answered",
    FALLBACK: "not understood (fallback)",
    UNKNOWN: '"I don\'t have that information" (unknown)',
}
# A reply can arrive just after the range ends; so can the click that rejects a suggestion.
GRACE_SECONDS = 600

EMAIL = personal_data.EMAIL
PHONE = personal_data.PHONE_LIKE
MIN_PHONE_DIGITS = personal_data.MIN_PHONE_DIGITS
# Rasa's event when a form starts (its name) or ends (no name): answers to a form are not questions.
ACTIVE_LOOP = "active_loop"
# Rasa's events when a live chat with staff starts and ends: what the visitor writes to a person
# (often their own details) is not a question for the assistant either.
PAUSED, RESUMED = "pause", "resume"  # ConversationPaused / ConversationResumed's type_name
# Rasa's two-stage fallback runs as a loop too ("did you mean...?"), but asks nothing personal:
# a reply to it is still a message whose fate the review counts.
NOT_A_FORM = frozenset({"action_two_stage_fallback"})
SESSION_START = "action_session_start"
MASKS = ("[email]", "[phone]")

# Grouping: messages are alike when most of their meaningful words are the same.
SIMILARITY = 0.6
SUBJECT_NAMES = ("non surgical scar revision", "scar relaxation", "scar revision")
FILLER = frozenset(
    """
    a an the it its this that is are was be do does did can could will would should i me my
    you your we our of for to in on at by with about and or so please just any there what
    whats how much many
""".split()
)

COLUMNS = ["count", "example", "other_examples", "guessed_intent", "reason", "correct_intent"]
MAX_OTHER_EXAMPLES = 3
SEPARATOR = " | "
# A spreadsheet runs a cell that starts with one of these as a formula.
FORMULA_STARTS = ("=", "+", "-", "@")


def mask(text: str) -> str:
    """The text with emails and phone numbers replaced by [email] and [phone]."""
    text = EMAIL.sub(MASKS[0], text)
    return PHONE.sub(lambda m: MASKS[1] if sum(c.isdigit() for c in m[0]) >= MIN_PHONE_DIGITS else m[0], text)


def clean(text: str) -> str:
    """One line, masked, without the separator used between examples in the review file."""
    return mask(" ".join(text.split())).replace("|", "/")


def words(text: str) -> list[str]:
    """Lower-case words without punctuation ("What's it cost?" -> whats it cost)."""
    return re.sub(r"[^\w\s]", " ", text.lower().replace("'", "").replace("’", "")).split()


def key_words(form: str) -> frozenset[str]:
    """The words that carry a message's meaning: no filler, the treatment's name as "it"."""
    for name in SUBJECT_NAMES:
        form = re.sub(rf"\b{name}\b", "it", form)
    return frozenset(form.split()) - FILLER


def similar(first: str, second: str) -> bool:
    """Whether two normalised messages ask the same thing (Jaccard of their key words)."""
    a, b = key_words(first), key_words(second)
    if not a and not b:
        a, b = frozenset(first.split()), frozenset(second.split())
    return len(a & b) >= SIMILARITY * len(a | b)


@dataclass
class Turn:
    """One visitor message (masked) and what the assistant did about it."""

    sender: str
    time: float
    text: str
    intent: str
    guess: str
    replies: set[str] = field(default_factory=set)
    next_intent: str = ""  # the intent of the visitor's next message
    explanation: str = ""  # after a thumbs-down: what the visitor said was missing (masked)
    is_explanation: bool = False  # this message is such an explanation
    in_form: bool = False  # sent while a form asked its questions, or to staff in a live chat

    @property
    def reason(self) -> str | None:
        """Why staff should see this message (None: it was answered, or it answered a form).

        An answer to a form is the visitor's own details (a name, their scar): it is never
        shown as a question to learn from, whatever the model made of it.
        """
        if self.in_form:
            return None
        if self.next_intent == FEEDBACK_UNHELPFUL:
            return THUMBS_DOWN
        if self.replies & DID_YOU_MEAN and self.next_intent == REJECTING_INTENT:
            return REJECTED
        if self.intent == FALLBACK_INTENT or self.replies & FALLBACK_REPLIES:
            return FALLBACK
        return UNKNOWN if self.replies & UNKNOWN_REPLIES else None

    @property
    def outcome(self) -> str:
        """answered, fallback or unknown (or "no reply"); a thumbs-down answer still counts as answered.

        An answer to a form counts as answered: the form took it.
        """
        if self.in_form:
            return "answered"
        if self.reason and self.reason != THUMBS_DOWN:
            return UNKNOWN if self.reason == UNKNOWN else FALLBACK
        return "answered" if self.replies else "no reply"


def guessed_intent(parse: dict[str, Any]) -> str:
    """The model's best intent other than the fallback, as faq/<key> for an FAQ question."""
    ranking = parse.get("intent_ranking") or [parse.get("intent") or {}]
    names = [str(r.get("name")) for r in ranking if r.get("name") not in (None, FALLBACK_INTENT)]
    name = names[0] if names else ""
    if name != RETRIEVAL_INTENT:
        return name
    selected = (parse.get("response_selector") or {}).get(RETRIEVAL_INTENT) or {}
    return (selected.get("response") or {}).get("intent_response_key") or name


def sender_turns(rows: Iterable[sa.engine.Row]) -> list[Turn]:
    """One conversation's visitor messages, each with the names of the bot's replies.

    The two-stage fallback replays a clarified message (same message_id): that is the
    same message, so its replies join the first one.
    """
    turns: list[Turn] = []
    seen: set[str] = set()
    form: str | None = None  # the form asking its questions, if any
    paused = False  # a live chat: the visitor writes to staff, the assistant predicts nothing
    for row in rows:
        data = json.loads(row.data or "{}")
        if row.type_name in (PAUSED, RESUMED):
            paused = row.type_name == PAUSED
            continue
        if row.type_name == ACTIVE_LOOP:
            name = data.get("name") or None
            if name not in NOT_A_FORM:  # "did you mean" inside a form leaves the form asking
                form = name
            continue
        if row.type_name == "action" and row.action_name == SESSION_START:
            form, paused = None, False
        if row.type_name == "user":
            message_id = str(data.get("message_id") or row.id)
            if message_id not in seen:
                seen.add(message_id)
                parse = data.get("parse_data") or {}
                turns.append(
                    Turn(
                        row.sender_id,
                        row.timestamp,
                        clean(data.get("text") or ""),
                        (parse.get("intent") or {}).get("name") or row.intent_name or "",
                        guessed_intent(parse),
                        in_form=form is not None or paused,
                    )
                )
        elif turns:
            name = (
                row.action_name
                if row.type_name == "action"
                else ((data.get("metadata") or {}).get("utter_action"))
            )
            if name and name not in SILENT:
                turns[-1].replies.add(name)
    for turn, after in pairwise(turns):
        turn.next_intent = after.intent
    # A thumbs-down answered with "what was missing?": the next message explains; it is the
    # visitor's comment on the answer, not a question of its own.
    for index, turn in enumerate(turns[:-2]):
        feedback, explanation = turns[index + 1], turns[index + 2]
        if turn.next_intent == FEEDBACK_UNHELPFUL and ASK_FEEDBACK_MISSING in feedback.replies:
            turn.explanation = explanation.text
            explanation.is_explanation = True
    return turns


def read_turns(url: str, start: float, end: float) -> list[Turn]:
    """The visitor messages sent from `start` to before `end` (epoch seconds), oldest first."""
    rows = conversations.read_dialogue(
        url, start, end + GRACE_SECONDS, (*conversations.DIALOGUE, ACTIVE_LOOP, PAUSED, RESUMED)
    )
    turns = [
        turn
        for _, rows_of_sender in groupby(rows, key=lambda r: r.sender_id)
        for turn in sender_turns(rows_of_sender)
    ]
    return sorted((t for t in turns if t.time < end), key=lambda t: t.time)


@dataclass
class ReviewRow:
    """One group of alike messages for staff to annotate."""

    count: int
    example: str
    other_examples: list[str]
    guessed_intent: str
    reason: str
    correct_intent: str = ""


def most_common(values: Iterable[str]) -> str:
    """The most frequent value (the first seen on a tie)."""
    return Counter(values).most_common(1)[0][0]


def review_rows(turns: Sequence[Turn]) -> list[ReviewRow]:
    """The messages to review, grouped by wording, most frequent first.

    Button clicks (payloads such as /out_of_scope) and messages without words are left
    out: there is nothing in them to learn from.
    """
    by_form: dict[str, list[Turn]] = defaultdict(list)
    for turn in turns:
        form = " ".join(words(turn.text))
        if turn.reason and form and not turn.text.startswith("/") and not turn.is_explanation:
            by_form[form].append(turn)
    groups: list[list[str]] = []
    for form in sorted(by_form, key=lambda f: (-len(by_form[f]), f)):
        home = next((group for group in groups if similar(group[0], form)), None)
        if home is None:
            groups.append([form])
        else:
            home.append(form)
    rows = []
    for group in groups:
        members = [turn for form in group for turn in by_form[form]]
        rows.append(
            ReviewRow(
                count=len(members),
                example=by_form[group[0]][0].text,
                other_examples=[by_form[form][0].text for form in group[1 : MAX_OTHER_EXAMPLES + 1]],
                guessed_intent=most_common(t.guess for t in members),
                reason=most_common(t.reason or "" for t in members),
            )
        )
    return sorted(rows, key=lambda r: (-r.count, r.example.lower()))


def spreadsheet_safe(text: str) -> str:
    """A cell a spreadsheet shows as text: one starting with = + - @ gets a leading '."""
    return f"'{text}" if text.startswith(FORMULA_STARTS) else text


def from_cell(text: str) -> str:
    """A cell's text as the visitor wrote it (undoes spreadsheet_safe)."""
    text = text.strip()
    return text[1:] if text.startswith("'") and text[1:].startswith(FORMULA_STARTS) else text


def write_csv(rows: Sequence[ReviewRow], path: Path) -> None:
    """The review file; UTF-8 with a BOM, so Excel shows accents correctly."""
    with path.open("w", newline="", encoding="utf-8-sig") as out:
        writer = csv.writer(out)
        writer.writerow(COLUMNS)
        for row in rows:
            writer.writerow(
                [
                    row.count,
                    spreadsheet_safe(row.example),
                    spreadsheet_safe(SEPARATOR.join(row.other_examples)),
                    row.guessed_intent,
                    row.reason,
                    row.correct_intent,
                ]
            )


@dataclass
class Numbers:
    """The period's numbers."""

    conversations: int
    messages: int
    outcomes: Counter[str]
    handed_to_staff: int
    bookings_started: int
    bookings_completed: int
    did_you_mean: int = 0
    urgent: int = 0
    thumbs_down: int = 0

    @classmethod
    def of(cls, turns: Sequence[Turn]) -> Numbers:
        """The numbers of these visitor messages."""
        return cls(
            conversations=len({t.sender for t in turns}),
            messages=len(turns),
            outcomes=Counter(t.outcome for t in turns),
            handed_to_staff=sum(bool(t.replies & HANDOFF_REPLIES) for t in turns),
            bookings_started=sum(BOOKING_STARTED in t.replies for t in turns),
            bookings_completed=sum(BOOKING_SAVED in t.replies for t in turns),
            did_you_mean=sum(bool(t.replies & DID_YOU_MEAN) for t in turns),
            urgent=sum(URGENT_REPLY in t.replies for t in turns),
            thumbs_down=sum(t.reason == THUMBS_DOWN for t in turns),
        )

    def share(self, count: int) -> str:
        """`count` as a share of all messages, e.g. 50% (3 of 6)."""
        return f"{count / self.messages:.0%} ({count} of {self.messages})" if self.messages else "-"

    def lines(self) -> list[tuple[str, str]]:
        """(label, value) for each number, as staff read them."""
        return [
            ("Conversations", str(self.conversations)),
            ("Visitor messages", str(self.messages)),
            ("Answered", self.share(self.outcomes["answered"])),
            ("Not understood (fallback)", self.share(self.outcomes[FALLBACK])),
            ('"I don\'t have that information"', self.share(self.outcomes[UNKNOWN])),
            ("Handed to staff (the team's details given)", self.share(self.handed_to_staff)),
            ("Bookings started", str(self.bookings_started)),
            ("Bookings completed", str(self.bookings_completed)),
        ]


def write_chart(turns: Sequence[Turn], days: list[date], zone: ZoneInfo, path: Path) -> None:
    """A bar chart of answered / fallback / unknown messages per day."""
    per_day = Counter((datetime.fromtimestamp(t.time, zone).date(), t.outcome) for t in turns)
    figure = Figure(figsize=(min(16.0, max(6.0, 0.9 * len(days))), 4.0))
    FigureCanvasAgg(figure)
    axes = figure.subplots()
    width = 0.8 / len(OUTCOMES)
    colours = ("#4c9a2a", "#e0a100", "#c0392b")
    for offset, ((outcome, label), colour) in enumerate(zip(OUTCOMES.items(), colours)):
        axes.bar(
            [i + (offset - 1) * width for i in range(len(days))],
            [per_day[(day, outcome)] for day in days],
            width,
            label=label,
            color=colour,
        )
    axes.set_xticks(
        range(len(days)), [f"{day:%a %d %b}" for day in days], fontsize=8, rotation=45, ha="right"
    )
    axes.yaxis.set_major_locator(MaxNLocator(integer=True))
    axes.set_ylabel("visitor messages")
    axes.set_title("What visitors' messages got, per day")
    axes.legend()
    figure.tight_layout()
    figure.savefig(path, format="png")


def write_markdown(
    numbers: Numbers,
    rows: Sequence[ReviewRow],
    since: date,
    until: date,
    csv_path: Path,
    chart: Path,
    path: Path,
) -> None:
    """The period's numbers, the chart and what to do with the review file."""
    table = "\n".join(f"| {label} | {value} |" for label, value in numbers.lines())
    path.write_text(
        f"# Conversations from {since} to {until}\n\n| | |\n|---|---|\n{table}\n\n"
        f"![answered, fallback and unknown per day]({chart.name})\n\n"
        f"{len(rows)} group(s) of messages to review in `{csv_path.name}`: fill in "
        f"correct_intent, then `make merge FILE=reports/{csv_path.name}` "
        "(see docs/staff/terminal.md).\n",
        encoding="utf-8",
    )


def row_examples(row: dict[str, str]) -> list[str]:
    """The example and the other examples of a review row, each on one line."""
    texts = [from_cell(row.get("example") or "")]
    texts += from_cell(row.get("other_examples") or "").split("|")
    return [" ".join(text.split()) for text in texts if text.strip()]


def unusable(text: str) -> str | None:
    """Why an example cannot go into the training data (None if it can)."""
    if any(placeholder in text for placeholder in MASKS):
        return (
            f"it contains {' or '.join(MASKS)} where a visitor's personal details were - "
            "write the question without them in the example cell if you want to keep it"
        )
    if "[" in text or "]" in text:
        return "it contains [ or ], which the training data reads as markup - remove them"
    return None


def indentation(line: str) -> int:
    """How many spaces a line starts with."""
    return len(line) - len(line.lstrip())


def insert_examples(text: str, intent: str, examples: Sequence[str]) -> str:
    """An NLU file's text with examples added at the end of intent's `examples: |` block."""
    lines = text.splitlines(keepends=True)
    header = re.compile(rf"-\s*intent:\s*[\"']?{re.escape(intent)}[\"']?")
    start = next(i for i, line in enumerate(lines) if header.fullmatch(line.strip()))
    key = next(i for i in range(start + 1, len(lines)) if lines[i].strip().startswith("examples:"))
    last = key
    for i in range(key + 1, len(lines)):
        if lines[i].strip():
            if indentation(lines[i]) <= indentation(lines[key]):
                break
            last = i
    indent = " " * (indentation(lines[last]) if last > key else indentation(lines[key]) + 2)
    lines[last] = lines[last].rstrip("\n") + "\n"
    lines[last + 1 : last + 1] = [f"{indent}- {example}\n" for example in examples]
    return "".join(lines)


def training_files(project: Project) -> dict[str, str]:
    """Each intent of the training data and the file (relative to the root) its examples are in."""
    files: dict[str, str] = {}
    for example in project.examples:
        files.setdefault(example.intent, example.place.path)
    return files


def known_examples(project: Project) -> tuple[dict[str, str], set[str]]:
    """The training examples (normalised text -> intent) and the held-out test questions."""
    known = {normalise(e.text): e.intent for e in project.examples}
    return known, {normalise(e.text) for e in project.heldout}


def screen(url: str | None = None) -> personal_data.Screen:
    """What counts as personal data now: the clinic's country and every stored request's words."""
    url = url or settings.current().database_url
    requests: list[dict[str, Any]] = []
    if database.exists(url):
        from common.records.bookings import request_words

        engine = database.create_engine(url)
        try:
            requests = request_words(engine)
        finally:
            engine.dispose()
    return personal_data.Screen.of(load_settings().country, requests)


def refusal(
    text: str, known: dict[str, str], heldout: set[str], private: personal_data.Screen | None = None
) -> str | None:
    """Why a visitor's message cannot become a training example (None: it can).

    The rules of `make merge` and of the console's inbox: never personal data (an email, a
    phone number, a date, a name, the words of a stored request: `private`), never masked
    text or markup, never a duplicate, never a held-out test question (training must not
    see the test).
    """
    why = (private or personal_data.Screen()).reason(text)
    if why is None:
        why = unusable(text)
    if why is None and normalise(text) in known:
        why = f"it is already an example of {known[normalise(text)]}"
    if why is None and normalise(text) in heldout:
        why = "it is one of the questions the assistant is tested with, which training must not see"
    return why


def write_additions(root: Path, files: dict[str, str], additions: dict[str, list[str]]) -> None:
    """Add the examples to their intents' NLU files under `root`, keeping the files' layout."""
    for file in sorted({files[intent] for intent in additions}):
        nlu = root / file
        text = nlu.read_text(encoding="utf-8")
        for intent in (i for i in additions if files[i] == file):
            text = insert_examples(text, intent, additions[intent])
        nlu.write_text(text, encoding="utf-8")
