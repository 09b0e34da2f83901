"""Training stories (data/stories) and conversation tests (tests/stories), read and written by staff.

A story is read as turns: what the visitor said (or meant: the intent) and what the assistant
did after it. Staff see each turn in plain words ("Visitor: can I book? -> Assistant: asks for
the name"), make new stories and tests from real conversations (each assistant turn kept, or
replaced by one of the assistant's known replies, described by the reply's own words), and edit
or delete stories turn by turn.

Every change goes the way the other console changes go (staff/service/content.py): the
page's version must be the current one; the files are written with ruamel.yaml's round trip
(only the changed lines differ); `make validate`'s checks run on a copy first; a change to
data/stories also runs Rasa's own data validation (`rasa data validate`: its story-conflict
check) on that copy; then it is one commit with the staff member as author, shown in History.

Training stories hold intents only: Rasa would otherwise train the visitor's words as NLU
examples (and the retrieval intent's base name `faq` carries no answer). The visitor's words
of a story saved from a conversation are kept, for staff, in the story's `metadata`. A test
story holds the words and the full intent (`faq/<topic>`), as `rasa test` needs.
"""

from __future__ import annotations

import difflib
import json
import re
import shutil
import tempfile
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import yaml
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.scalarstring import LiteralScalarString

from common import paths, personal_data, yamlio
from common.names import FALLBACK_INTENT, RETRIEVAL_INTENT
from common.records import conversations
from staff.service import content, review, transcripts, validate
from staff.service.yamlfile import LayoutError, YamlFile, one_line, open_yaml, quoted

STORIES = paths.relative(paths.DATA_DIR / "stories")
TESTS = paths.relative(paths.TEST_STORIES_DIR)
RULES = paths.relative(paths.DATA_DIR / "rules")
# Where stories and tests made from conversations are added.
SAVED_STORIES = f"{STORIES}/from_conversations.yml"
SAVED_TESTS = f"{TESTS}/test_from_conversations.yml"
FAQ_ACTION = "action_answer_faq"
REQUESTED_SLOT = "requested_slot"
REWIND = "rewind"  # Rasa's event when a fallback sets the visitor's message aside
VISITOR_WORDS = "visitor_words"  # a training story's metadata: the visitor's words, turn by turn
VISITOR_MEANT = "visitor_meant"  # and the full intents (faq/<topic>: the answer staff chose), turn by turn
METADATA_KEYS = (VISITOR_WORDS, VISITOR_MEANT)
MAX_NAME_CHARS = 120
MAX_TEXT_CHARS = 300
KEEP, REMOVE = "keep", "remove"
# A visitor's answer to a booking question is never kept: it becomes an example value of its kind.
PLACEHOLDERS = {
    "booking_name": "Sam Taylor",
    "booking_contact": "sam.taylor@example.com",
    "booking_date": "next Tuesday",
    "booking_time": "morning",
    "booking_scar": "a scar on my arm",
    "booking_question": "could someone call me back about the price",
}
# Any other question a form asks: its answer is the visitor's own, never kept either.
FORM_ANSWER = "yes"
# The inbox's masks ([email], [phone]) as example values, so a test's words still read as a message.
MASK_VALUES = dict(zip(review.MASKS, ("sam.taylor@example.com", "07700 900123"), strict=True))
# What the assistant's steps mean, in staff's words (responses are described by their own text).
ACTION_WORDS = {
    FAQ_ACTION: "answers from the FAQ",
    "action_answer_followup": "answers a follow-up about the last answer",
    "action_two_stage_fallback": 'is not sure and asks "did you mean...?"',
    "action_default_fallback": "says it did not understand",
    "action_not_understood": (
        'says "Sorry, I didn\'t understand that." and asks to rephrase (the second time in a row, '
        "offers the clinic's phone, e-mail and live chat)"
    ),
    "action_offer_booking": "offers a consultation",
    "action_booking_summary": "shows the booking details to confirm",
    "action_submit_booking": "sends the consultation request",
    "action_change_booking_field": "lets the visitor change one answer",
    "action_cancel_booking": "cancels the consultation request",
    "action_feedback_received": "thanks the visitor for the feedback",
    "action_ask_booking_date": "asks which days suit",
    "action_explain_erasure": "explains how to erase the conversation",
    "action_erase_conversation": "erases the conversation",
    "action_what_you_know": "says what the conversation holds",
    "feedback_form": "asks what was missing",
}
SLOT_WORDS = {
    "booking_name": "asks for the name",
    "booking_contact": "asks for a phone number or email",
    "booking_date": "asks which days suit",
    "booking_time": "asks what time of day suits",
    "booking_scar": "asks which scar",
    "booking_consent": "asks for consent to store the details",
}
INTENT_WORDS = transcripts.INTENT_WORDS  # what a visitor meant, in staff's words
# Clinic details inside answers, e.g. {clinic_phone}: staff read the value from clinic.yml.
DETAIL = re.compile(r"\{clinic_([a-z_]+)\}")
CONFLICT = validate.STORY_CONFLICT
CONFLICT_LINE = validate.CONFLICT_LINE
Refused = content.Refused


# ---- reading -----------------------------------------------------------------------------
@dataclass
class Turn:
    """What the visitor said or meant, and the assistant's steps after it."""

    intent: str  # as written: faq, faq/what_is, greet; "" for steps before any visitor message
    text: str = ""  # the visitor's words ("" when the story has none)
    steps: list[dict[str, Any]] = field(default_factory=list)  # action / active_loop / slot_was_set
    # The assistant set the message aside (its fallback reverts it): Rasa cannot replay that in a
    # story, so kept as it went, the turn is left out; a reply chosen for it puts it in.
    set_aside: bool = False
    shown: str = ""  # a pressed button: its label, as the visitor saw it (text keeps the payload)


@dataclass
class Story:
    """One story or conversation test, as turns."""

    path: str  # data/stories/faq.yml
    index: int  # its place in the file's list
    name: str
    test: bool
    turns: list[Turn]
    editable: bool = True  # False: written with checkpoints or `or:` (a developer's job)

    @property
    def ref(self) -> str:
        """How the pages name it: file and place."""
        return f"{self.path}:{self.index}"


def _steps(value: Any) -> list[dict[str, Any]]:
    return [dict(step) for step in validate.sequence(value) if isinstance(step, dict)]


def turns_of(
    steps: list[dict[str, Any]], words: list[str] | None = None, meant: list[str] | None = None
) -> tuple[list[Turn], bool]:
    """A story's steps as turns (and whether the console can edit them).

    `words` and `meant`: a training story's metadata, the visitor's words and full intents in order.
    """
    turns: list[Turn] = []
    editable = True
    words, meant = list(words or []), list(meant or [])
    for step in steps:
        if "intent" in step or "user" in step:
            text = str(step.get("user") or "").strip() or (words.pop(0) if words else "")
            intent = str(step.get("intent") or "")
            full = meant.pop(0) if meant else intent
            turns.append(Turn(full if full.partition("/")[0] == intent else intent, text))
        elif {"action", "active_loop", "slot_was_set"} & set(step):
            if not turns:
                turns.append(Turn(""))
            turns[-1].steps.append(step)
        else:  # checkpoint, or:, a bot message...
            editable = False
            if not turns:
                turns.append(Turn(""))
            turns[-1].steps.append(step)
    return turns, editable


def story_files(root: Path) -> list[str]:
    """The training story files and the conversation test files, as written from the root."""
    return validate.yaml_files(root, STORIES) + validate.yaml_files(root, TESTS)


def read_all(root: Path) -> list[Story]:
    """Every story of data/stories and every conversation test of tests/stories."""
    found = []
    for path in story_files(root):
        data = yamlio.load((root / path).read_text(encoding="utf-8")) or {}
        for index, item in enumerate(validate.sequence(validate.mapping(data).get("stories"))):
            item = validate.mapping(item)
            metadata = validate.mapping(item.get("metadata"))
            turns, editable = turns_of(
                _steps(item.get("steps")),
                [str(w) for w in validate.sequence(metadata.get(VISITOR_WORDS))],
                [str(w) for w in validate.sequence(metadata.get(VISITOR_MEANT))],
            )
            found.append(
                Story(path, index, str(item.get("story") or ""), path.startswith(TESTS), turns, editable)
            )
    return found


def find(root: Path, path: str, index: int) -> Story | None:
    """One story by file and place (None if there is none)."""
    return next((s for s in read_all(root) if s.path == path and s.index == index), None)


# ---- plain words -------------------------------------------------------------------------
def _titles(root: Path) -> dict[str, str]:
    return {t.key: t.title for t in content.topics(root)}


def _responses(root: Path) -> dict[str, str]:
    """Each response's first text, on one line."""
    found: dict[str, str] = {}
    details = content.clinic_values(root)  # {clinic_phone} reads as the clinic's phone number
    for name in content.domain_files(root):
        data = yamlio.load((root / name).read_text(encoding="utf-8")) or {}
        for response, variations in validate.mapping(data.get("responses")).items():
            first = validate.mapping((variations or [{}])[0])
            text = one_line(str(first.get("text") or ""))
            found[str(response)] = DETAIL.sub(lambda m: str(details.get(m[1]) or f"[clinic {m[1]}]"), text)
    return found


def shorten(text: str, limit: int = 70) -> str:
    """A text cut at a word to about `limit` characters, with ... if it was cut."""
    if len(text) <= limit:
        return text
    return text[:limit].rsplit(" ", 1)[0] + "..."


@dataclass
class Words:
    """What staff read for intents and steps: FAQ titles and response texts of this project."""

    titles: dict[str, str]
    responses: dict[str, str]

    @classmethod
    def of(cls, root: Path) -> Words:
        """The words of the project under `root`."""
        return cls(_titles(root), _responses(root))

    def intent(self, intent: str) -> str:
        """What the visitor meant, e.g. 'asks "What is Scar Relaxation?"'."""
        return transcripts.intent_words(intent, self.titles)

    def step(self, step: dict[str, Any], intent: str = "") -> str | None:
        """What one assistant step does (None: nothing staff need to read)."""
        if "action" in step:
            name = str(step["action"])
            key = intent.partition("/")[2]
            if name == FAQ_ACTION and key:
                return f'gives the answer "{self.titles.get(key, key)}"'
            if self.responses.get(name):
                return f'says "{shorten(self.responses[name])}"'
            if name.endswith("_form") and name not in ACTION_WORDS:
                return None  # what the form does shows in its requested slot
            return ACTION_WORDS.get(name, transcripts.REPLY_LABELS.get(name, "replies"))
        if "slot_was_set" in step:
            for item in validate.sequence(step["slot_was_set"]):
                slot = validate.mapping(item).get(REQUESTED_SLOT)
                if slot:
                    return SLOT_WORDS.get(str(slot), f"asks for {str(slot).replace('_', ' ')}")
            return None
        if "active_loop" in step:
            return None  # a form starting or ending: its questions (or the next reply) say what happens
        return "(a step the console does not describe: ask a developer)"

    def turn(self, turn: Turn) -> tuple[str, str]:
        """(the visitor's part, the assistant's part) of a turn, in plain words."""
        visitor = ""
        if turn.text.startswith("/"):  # a button: its label, else what it meant
            visitor = f'presses "{turn.shown}"' if turn.shown else self.intent(turn.intent)
        elif turn.intent or turn.text:
            visitor = f'"{turn.text}"' if turn.text else self.intent(turn.intent)
        said = [w for w in (self.step(s, turn.intent) for s in turn.steps) if w]
        return visitor, ", then ".join(dict.fromkeys(said)) or "waits"

    def story(self, story: Story) -> str:
        """The whole story on one line: 'Visitor: "can I book?" -> Assistant: asks for the name ...'."""
        parts = []
        for turn in story.turns:
            visitor, assistant = self.turn(turn)
            if visitor:
                parts.append(f"Visitor: {visitor}")
            parts.append(f"Assistant: {assistant}")
        return " -> ".join(parts)


def topic_of(story: Story, titles: dict[str, str]) -> str:
    """The group a story is listed in: its first FAQ topic's title, else its file's subject."""
    for turn in story.turns:
        base, _, key = turn.intent.partition("/")
        if base == RETRIEVAL_INTENT and key:
            return titles.get(key, key)
    stem = Path(story.path).stem.removeprefix("test_")
    return stem.replace("_", " ").capitalize()


def answers_of(story: Story) -> set[str]:
    """What a story makes the assistant do: 'faq/<key>' for an FAQ answer, else each action's name."""
    found = set()
    for turn in story.turns:
        for step in turn.steps:
            name = str(step.get("action") or "")
            if name == FAQ_ACTION and "/" in turn.intent:
                found.add(turn.intent)
            elif name and not name.endswith("_form"):
                found.add(name)
    return found


@dataclass
class Coverage:
    """Which conversation tests check each of the assistant's answers."""

    label: str
    tests: list[str]


def coverage(root: Path, stories: list[Story], words: Words) -> list[Coverage]:
    """Every FAQ answer and every other reply of the rules and stories, with the tests that check it."""
    tests = [s for s in stories if s.test]
    wanted: dict[str, str] = {
        f"{RETRIEVAL_INTENT}/{key}": f'the answer "{title}"' for key, title in words.titles.items()
    }
    for option in options(root, words):
        if not option.key.startswith("faq:"):
            for name in option.actions:
                wanted.setdefault(name, words.step({"action": name}) or name)
    for story in stories:
        for name in answers_of(story):
            if not name.startswith(f"{RETRIEVAL_INTENT}/"):
                wanted.setdefault(name, words.step({"action": name}) or name)
    return [
        Coverage(label, [t.name for t in tests if key in answers_of(t)])
        for key, label in sorted(wanted.items(), key=lambda kv: kv[1].lower())
    ]


# ---- what the assistant could have done --------------------------------------------------
@dataclass(frozen=True)
class Option:
    """One thing the assistant can do after a visitor's message: the intent it answers, its steps."""

    key: str  # faq:<topic> or the intent's name
    label: str
    intent: str  # the full intent (faq/<topic> for an FAQ answer)
    steps: tuple[
        tuple[str, Any], ...
    ]  # (kind, value): ("action", "utter_x"), ("active_loop", "booking_form")

    @property
    def actions(self) -> list[str]:
        """The actions it runs."""
        return [str(value) for kind, value in self.steps if kind == "action"]

    def step_maps(self) -> list[dict[str, Any]]:
        """Its steps as a story writes them."""
        return [{kind: value} for kind, value in self.steps]


def options(root: Path, words: Words | None = None) -> list[Option]:
    """Each FAQ answer (by its title), then what each of the rules does after a visitor's message."""
    words = words or Words.of(root)
    found = [
        Option(
            f"faq:{t.key}",
            f'the answer "{t.title}": "{shorten(one_line(t.answer), 90)}"',
            t.intent,
            (("action", FAQ_ACTION),),
        )
        for t in content.topics(root)
    ]
    seen = {RETRIEVAL_INTENT}
    for path in validate.yaml_files(root, RULES):
        data = yamlio.load((root / path).read_text(encoding="utf-8")) or {}
        for rule in validate.sequence(validate.mapping(data).get("rules")):
            rule = validate.mapping(rule)
            steps = _steps(rule.get("steps"))
            if rule.get("condition") or not steps or "intent" not in steps[0]:
                continue
            intent = str(steps[0]["intent"])
            rest = steps[1:]
            if intent in seen or not rest or any(not ({"action", "active_loop"} & set(s)) for s in rest):
                continue
            seen.add(intent)
            kinds = tuple((k, v) for s in rest for k, v in s.items() if k in ("action", "active_loop"))
            said = [w for w in (words.step({k: v}, intent) for k, v in kinds) if w]
            found.append(
                Option(
                    intent, f"{', then '.join(said)} (when the visitor {words.intent(intent)})", intent, kinds
                )
            )
    return found


# ---- a real conversation as turns ----------------------------------------------------------
def _placeholder(text: str, asked: str | None, private: personal_data.Screen | None = None) -> str:
    """The visitor's words without personal data: a form's answer becomes an example value of its kind.

    Other words keep what they ask, with emails, phones, dates, names and the words of stored
    requests replaced by example values (common/personal_data.py).
    """
    if text.startswith("/"):
        return text  # a button's payload
    if asked is not None:
        return PLACEHOLDERS.get(asked, FORM_ANSWER)
    masked = (private or personal_data.Screen()).scrub(review.mask(one_line(text)))
    for mask, value in MASK_VALUES.items():
        masked = masked.replace(mask, value)
    return masked[:MAX_TEXT_CHARS]


def conversation_turns(url: str, sender: str) -> list[Turn]:
    """A real conversation as turns (personal data replaced): the visitor's words, intents, the steps.

    Rasa's fallback sets a message aside (a rewind event). The two-stage fallback then puts a
    clarified message back (the same message again): that message stands, with what the
    assistant did from then on, and the steps the rewind undid are gone.
    """
    turns: list[Turn] = []
    by_id: dict[str, Turn] = {}
    asked: str | None = None  # the booking form's question when the visitor spoke
    offered: dict[str, str] = {}  # the buttons last shown: payload -> label
    private = review.screen(url)
    kinds = ("user", "action", "bot", "slot", "active_loop", REWIND)
    for row in conversations.read_sender(url, sender, kinds):
        data = _json(row.data)
        if row.type_name == "user":
            message_id = str(data.get("message_id") or row.id)
            if message_id in by_id:  # the two-stage fallback replays the message
                again = by_id[message_id]
                if again.set_aside and again is turns[-1]:  # put back: its reply comes next
                    again.set_aside, again.steps = False, []
                continue
            parse = data.get("parse_data") or {}
            intent = transcripts.understood(parse).rsplit(" (", 1)[0]
            if intent.startswith("not sure"):
                intent = FALLBACK_INTENT
            text = str(data.get("text") or "")
            turn = Turn(intent or FALLBACK_INTENT, _placeholder(text, asked, private))
            if text.startswith("/"):
                turn.shown = offered.get(text, "")
            by_id[message_id] = turn
            turns.append(turn)
            offered = {}
        elif row.type_name == "bot":
            buttons = [b for b in (data.get("data") or {}).get("buttons") or [] if isinstance(b, dict)]
            offered = {str(b.get("payload")): str(b.get("title") or "") for b in buttons}
        elif not turns:
            continue
        elif row.type_name == "action":
            if row.action_name and row.action_name not in review.SILENT:
                turns[-1].steps.append({"action": row.action_name})
        elif row.type_name == REWIND:
            turns[-1].set_aside = True
        elif row.type_name == "active_loop":
            turns[-1].steps.append({"active_loop": data.get("name")})
            if not data.get("name"):
                asked = None
        elif row.type_name == "slot" and data.get("name") == REQUESTED_SLOT:
            asked = data.get("value")
            turns[-1].steps.append({"slot_was_set": [{REQUESTED_SLOT: asked}]})
    return turns


def _json(raw: str | None) -> dict[str, Any]:
    value = json.loads(raw or "{}")
    return value if isinstance(value, dict) else {}


# ---- writing -----------------------------------------------------------------------------
def apply_choices(turns: list[Turn], choices: list[str], known: dict[str, Option], test: bool) -> list[Turn]:
    """The turns with each one kept, removed or replaced by an option (choices[i] is turn i's)."""
    result = []
    for turn, choice in zip(turns, choices + [KEEP] * (len(turns) - len(choices)), strict=False):
        if choice == REMOVE:
            continue
        if choice in ("", KEEP):
            if not turn.set_aside:
                result.append(Turn(turn.intent, turn.text, list(turn.steps)))
            continue
        option = known.get(choice)
        if option is None:
            raise Refused("One of the choices is not something the assistant can do: choose from the list.")
        result.append(Turn(option.intent, turn.text, option.step_maps()))
    return result


def _step_map(step: dict[str, Any]) -> CommentedMap:
    made = CommentedMap()
    for key, value in step.items():
        if key == "slot_was_set":
            items = CommentedSeq()
            for item in validate.sequence(value):
                entry = CommentedMap()
                entry.update(validate.mapping(item))
                items.append(entry)
            made[key] = items
        else:
            made[key] = value
    return made


def story_item(name: str, turns: list[Turn], test: bool) -> CommentedMap:
    """A story as the file writes it (a test: words and full intents; training: intents only)."""
    item = CommentedMap()
    item["story"] = name
    steps = CommentedSeq()
    words, meant = [], []
    for turn in turns:
        if turn.intent:
            user = CommentedMap()
            if test:
                if not turn.text:
                    raise Refused(
                        "A conversation test needs the visitor's words for every message: "
                        f'"{turn.intent}" has none. Save it as a training story instead.'
                    )
                user["user"] = LiteralScalarString(one_line(turn.text) + "\n")
                user["intent"] = turn.intent
            else:
                user["intent"] = turn.intent.partition("/")[0]  # training stories name the base intent
                words.append(turn.text)
                meant.append(turn.intent)
            steps.append(user)
        steps.extend(_step_map(step) for step in turn.steps)
    metadata = CommentedMap()
    if not test and any(words):
        metadata[VISITOR_WORDS] = CommentedSeq(quoted(w) for w in words)
    if not test and any("/" in m for m in meant):
        metadata[VISITOR_MEANT] = CommentedSeq(meant)
    if metadata:
        item["metadata"] = metadata
    item["steps"] = steps
    return item


def _open(root: Path, path: str) -> YamlFile:
    try:
        return open_yaml(root / path, path)
    except LayoutError as error:
        raise Refused(str(error)) from None


def _stories_of(file: YamlFile) -> CommentedSeq:
    data = file.data
    seq = data.get("stories")
    if not isinstance(seq, CommentedSeq) or not seq:
        seq = CommentedSeq()  # an empty `stories: []` becomes a block list
        data["stories"] = seq
    return seq


def _clean_name(name: str, stories: list[Story], path: str, index: int | None = None) -> str:
    name = one_line(name)[:MAX_NAME_CHARS]
    if not name:
        raise Refused("Give the story a name: a few words saying what it shows.")
    if any(s.name == name and not (s.path == path and s.index == index) for s in stories):
        raise Refused(f'There is already a story called "{name}": choose another name.')
    return name


def answers_of_turn(turn: Turn) -> list[str]:
    """The actions of one turn."""
    return [str(step["action"]) for step in turn.steps if "action" in step]


def _conflicts(output: str, name: str, turns: list[Turn], words: Words, root: Path) -> list[str]:
    """Rasa's story-conflict findings that involve this story, in plain words."""
    stories = {s.name: s for s in read_all(root)}
    found = []
    for after, lines in CONFLICT.findall(output):
        predicted = CONFLICT_LINE.findall(lines)
        mine = [action for action, story in predicted if story == name]
        theirs = [(action, story) for action, story in predicted if story != name]
        if not mine or not theirs:
            continue
        action, other = theirs[0]
        place = "a conversation test" if other in stories and stories[other].test else "a training story"
        after_words = re.sub(r"^intent '(.+)'$", lambda m: f"the visitor {words.intent(m[1])}", after)
        after_words = re.sub(
            r"^action '(.+)'$", lambda m: f"the assistant {words.step({'action': m[1]}) or m[1]}", after_words
        )
        said = next(
            (
                t.text
                for t in turns
                if t.text
                and f"intent '{t.intent.partition('/')[0]}'" == after
                and mine[0] in answers_of_turn(t)
            ),
            "",
        )
        if said:
            after_words = f'the visitor says "{said}"'
        found.append(
            f"This story contradicts '{other}' ({place}): after {after_words}, that story says the "
            "assistant "
            f"{words.step({'action': action}) or action}, this one says it "
            f"{words.step({'action': mine[0]}) or mine[0]}. Make them do the same, or make the conversation "
            "before that point differ."
        )
    return found


def rasa_check(root: Path, texts: dict[str, str], name: str, turns: list[Turn]) -> list[str]:
    """Rasa's own data validation (story conflicts included) of the project with `texts` written.

    Problems that the project has already, without the change, are not the change's.
    """
    with tempfile.TemporaryDirectory(prefix="clinic-stories-") as folder:
        copy = Path(folder)
        for part in ("domain", "data", paths.relative(paths.CONFIG)):
            source = root / part
            if source.is_dir():
                shutil.copytree(source, copy / part, ignore=shutil.ignore_patterns("__pycache__"))
            elif source.exists():
                shutil.copyfile(source, copy / part)
        for path, text in texts.items():
            (copy / path).parent.mkdir(parents=True, exist_ok=True)
            (copy / path).write_text(text, encoding="utf-8")
        ran = validate.rasa_output(copy)
        if ran[0] == 0:
            return []
        words = Words.of(root)
        conflicts = _conflicts(ran[1], name, turns, words, copy)
        project, _ = validate.load(copy)
        after = [str(p) for p in validate.rasa_problems(project, copy, ran) if "disagree" not in p.message]
    before_project, _ = validate.load(root)
    before = {str(p) for p in validate.rasa_problems(before_project, root)} if after else set()
    return conflicts + [p for p in after if p not in before]


def _save(
    root: Path,
    files: dict[str, YamlFile],
    version: str,
    message: str,
    staff_name: str,
    story: tuple[str, list[Turn]] | None,
) -> str:
    """Check, write and commit; the commit id.

    `story` (its name and turns) is the story added or changed: a training story is checked
    with Rasa's own validation too (a deletion cannot make stories contradict each other).
    """
    new = {path: f.text() for path, f in files.items()}  # each a round-trip dump: once
    texts = {path: text for path, text in new.items() if text != files[path].original}
    if story is not None and any(path.startswith(f"{STORIES}/") for path in texts):
        problems = rasa_check(root, texts, *story)
        if problems:
            raise Refused("The story was not saved, because it would confuse the assistant:", problems)
    watched = tuple(story_files(root))
    return content.save(root, files, version, watched, message, staff_name)


def stories_version(root: Path) -> str:
    """A token of the story and test files' contents: a save from an older token is refused."""
    return content.version(root, tuple(story_files(root)))


def add_story(
    root: Path, name: str, turns: list[Turn], test: bool, version: str, staff_name: str
) -> tuple[str, str]:
    """Add a story (or a test) made from a conversation; (the file it went to, the commit id)."""
    path = SAVED_TESTS if test else SAVED_STORIES
    if not any(t.intent for t in turns):
        raise Refused("Nothing is left of the conversation: keep at least one of the visitor's messages.")
    with content.locked(root):
        content.refuse_if_stale(root, tuple(story_files(root)), version)
        name = _clean_name(name, read_all(root), path)
        file = _open(root, path)
        _stories_of(file).append(story_item(name, turns, test))
        kind = "Conversation test" if test else "Story"
        sha = _save(
            root,
            {path: file},
            version,
            f'{kind} "{name}" added from a conversation',
            staff_name,
            (name, turns),
        )
        return path, sha


def _item_of(file: YamlFile, story: Story) -> CommentedMap:
    seq = file.data.get("stories")
    if (
        not isinstance(seq, CommentedSeq)
        or story.index >= len(seq)
        or seq[story.index].get("story") != story.name
    ):
        raise Refused("This story has changed since you opened it: open it again.")
    return seq[story.index]


def change_story(
    root: Path, story: Story, name: str, turns: list[Turn], version: str, staff_name: str
) -> str:
    """Replace a story's turns (and name); the commit id."""
    if not story.editable:
        raise Refused(
            "This story uses checkpoints or alternatives, which the console does not edit: ask a developer."
        )
    if not any(t.intent for t in turns):
        raise Refused("A story needs at least one visitor message: to remove the whole story, delete it.")
    with content.locked(root):
        content.refuse_if_stale(root, tuple(story_files(root)), version)
        name = _clean_name(name, read_all(root), story.path, story.index)
        file = _open(root, story.path)
        item = _item_of(file, story)
        new = story_item(name, turns, story.test)
        if item.get("story") != name:
            item["story"] = name
        for key in METADATA_KEYS:
            old = validate.mapping(item.get("metadata")).get(key)
            wanted = validate.mapping(new.get("metadata")).get(key)
            if wanted is not None and (old is None or list(old) != list(wanted)):
                item.setdefault("metadata", CommentedMap())[key] = wanted
            elif wanted is None and old is not None:
                del item["metadata"][key]
        if "metadata" in item and not item["metadata"]:
            del item["metadata"]
        old_steps = item["steps"]
        new_steps = new["steps"]
        if [_plain(s) for s in old_steps] != [_plain(s) for s in new_steps]:
            _replace_steps(old_steps, new_steps)
        kind = "Conversation test" if story.test else "Story"
        return _save(root, {story.path: file}, version, f'{kind} "{name}" changed', staff_name, (name, turns))


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return str(value) if value is not None else None


def _replace_steps(old: CommentedSeq, new: CommentedSeq) -> None:
    """Make `old` equal to `new`, keeping each unchanged step object (and so its exact lines)."""
    keys = [yaml.safe_dump(_plain(s)) for s in old]
    new_keys = [yaml.safe_dump(_plain(s)) for s in new]
    result = []
    for tag, i1, i2, j1, j2 in difflib.SequenceMatcher(None, keys, new_keys, autojunk=False).get_opcodes():
        result.extend(old[i1:i2] if tag == "equal" else new[j1:j2])
    old.clear()
    old.extend(result)


def delete_story(root: Path, story: Story, version: str, staff_name: str) -> str:
    """Remove a story from its file; the commit id."""
    with content.locked(root):
        content.refuse_if_stale(root, tuple(story_files(root)), version)
        file = _open(root, story.path)
        _item_of(file, story)
        del file.data["stories"][story.index]
        kind = "Conversation test" if story.test else "Story"
        return _save(root, {story.path: file}, version, f'{kind} "{story.name}" deleted', staff_name, None)


def default_name(turns: list[Turn], when: datetime | None) -> str:
    """A story's name from its first visitor message and the conversation's day."""
    first = next((t.text for t in turns if t.text and not t.text.startswith("/")), "")
    day = f" ({when:%d %B %Y})" if when else ""
    return shorten(
        f'from a conversation{day}: "{first}"' if first else f"from a conversation{day}", MAX_NAME_CHARS
    )
