"""The assistant's internal names in the words staff see: one definition for every console page.

A topic is shown by the title staff see on Answers (the button title, e.g. "How long do results
take?"), never as `faq/results_time` or `utter_faq/results_time`; the assistant's other intents,
responses and actions by a short plain description ("Yes / agreeing", "Giving booking details").
Pages use the Jinja filter `topic` (registered in staff/console/app.py): `{{ name|topic }}`;
Python code calls `topic_title(root, name)`.
"""

from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path

import yaml

from common import paths, yamlio
from common.names import FAQ_RESPONSE_PREFIX, RETRIEVAL_INTENT

FAQ_DOMAIN = paths.relative(paths.DOMAIN_DIR / "faq.yml")
CLINIC = paths.relative(paths.CLINIC_YML)
WORDING = paths.relative(paths.APPROVED_WORDING)

# What each of the assistant's own (non-FAQ) intents means, in staff's words.
INTENTS: dict[str, str] = {
    "greet": "Hello / greeting",
    "goodbye": "Goodbye",
    "thanks": "Thanks",
    "bot_challenge": "Asks whether it is a person or a program",
    "help": "Asks what the assistant can do",
    "affirm": "Yes / agreeing",
    "deny": "No / disagreeing",
    "unclear": "Unclear message",
    "ask_contact": "Asks for the clinic's phone or email",
    "ask_for_person": "Asks to talk to a person from the clinic",
    "ask_hours": "Asks for the opening hours",
    "ask_address": "Asks where the clinic is",
    "out_of_scope": "Not in the document (the assistant says it doesn't have that information)",
    "medical_advice": "Asks for personal medical advice",
    "urgent_symptoms": "Urgent symptoms (sent to medical help)",
    "erase_data": "Asks to have their data erased",
    "book_consultation": "Wants to book a consultation",
    "inform": "Gives booking details (name, contact, date, time)",
    "cancel": "Cancels what they started",
    "change_booking_field": "Wants to change a booking detail",
    "live_chat_request": "Asks to talk to a person",
    "leave_message": "Wants to leave a message for the clinic",
    "faq_followup": "Follow-up question about the last answer",
    "feedback_helpful": "Thumbs-up",
    "feedback_unhelpful": "Thumbs-down",
    "ask_privacy": "Asks how their data is used",
    "ask_my_data": "Asks what the assistant knows about them",
    "nlu_fallback": "Not understood",
}
# Steps of the assistant that are not a message of its own, in staff's words.
ACTIONS: dict[str, str] = {
    "action_two_stage_fallback": "Did you mean…? (not sure what was asked)",
    "action_default_fallback": "Sorry, I didn't understand",
    "action_default_ask_affirmation": "Did you mean…? (not sure what was asked)",
    "action_answer_faq": "Answer from the clinic's document",
    "action_answer_followup": "Answer to a follow-up question",
    "action_session_start": "Conversation started",
    "action_listen": "Waits for the visitor",
    "action_restart": "Conversation restarted",
    "booking_form": "Asks for the booking details",
    "validate_booking_form": "Checks a booking detail",
}


def humanised(name: str) -> str:
    """A name without its prefix and underscores, capitalised ("utter_booking_intro" -> "Booking intro")."""
    for prefix in ("utter_", "action_", "validate_"):
        name = name.removeprefix(prefix)
    words = re.sub(r"[_/]+", " ", name).strip()
    return words[:1].upper() + words[1:] if words else name


@lru_cache(maxsize=8)
def _titles(domain_path: Path, modified: float) -> dict[str, str]:
    responses = yamlio.load(domain_path.read_text(encoding="utf-8")) or {}
    titles = {}
    for name, variations in (responses.get("responses") or {}).items():
        if not str(name).startswith(FAQ_RESPONSE_PREFIX) or not variations:
            continue
        metadata = (variations[0] or {}).get("metadata") or {}
        key = str(name).removeprefix(FAQ_RESPONSE_PREFIX)
        titles[key] = str(metadata.get("topic") or humanised(key))
    return titles


def topic_titles(root: Path) -> dict[str, str]:
    """Each FAQ topic's key (results_time) -> its title on Answers ("How long do results take?")."""
    path = root / FAQ_DOMAIN
    try:
        return dict(_titles(path, path.stat().st_mtime))
    except (OSError, yaml.YAMLError):
        return {}


def faq_key(name: str) -> str | None:
    """The FAQ topic key in `faq/x`, `utter_faq/x` (None for any other name)."""
    for prefix in (FAQ_RESPONSE_PREFIX, f"{RETRIEVAL_INTENT}/"):
        if name.startswith(prefix):
            return name.removeprefix(prefix)
    return None


def topic_title(root: Path, name: str) -> str:
    """What staff call `name`: an FAQ intent or answer, another intent, response or action.

    An FAQ topic is its title on Answers; a name nobody has described is shown humanised
    ("utter_booking_intro" -> "Booking intro"), never as it is written in the files.
    """
    name = str(name or "").strip()
    key = faq_key(name)
    if key is not None:
        return topic_titles(root).get(key) or humanised(key)
    if name in topic_titles(root):  # a story or test named after its topic: who_for (1)
        return topic_titles(root)[name]
    if name in INTENTS:
        return INTENTS[name]
    if name in ACTIONS:
        return ACTIONS[name]
    return humanised(name)


def part(name: str) -> str:
    """Which part of the assistant a file is, in staff's words."""
    if name == CLINIC:
        return "Clinic details"
    if name == WORDING:
        return "Approved wording"
    if name.startswith("content/"):
        return "The clinic's document"
    if name == "data" or name.startswith("data/"):
        return "Example questions"
    if name.startswith("domain/"):
        return "Answers"
    if name.startswith("tests/stories"):
        return "Stories and tests"
    return "The assistant's settings"


# Internal names in a text: utter_x, faq/x, snake_case names, a few one-word intents, file names.
NAME = re.compile(
    r"\b(?:utter_)?(?:faq/)?[a-z][a-z0-9]*(?:_[a-z0-9]+)+\b|\b(?:utter_)?faq/[a-z0-9_]+\b|\butter_\w+"
    r"|\b(?:affirm|deny|inform|greet)\b"
)
FILE = re.compile(r"[\w./-]+\.(?:ya?ml|txt|py)\b")
# An internal name already in quotes ("greet"): its title takes the quotes' place.
QUOTED_NAME = re.compile(rf'"((?:{NAME.pattern}))"')


def in_words(root: Path, text: str) -> str:
    """`text` with each internal name in it (faq/x, utter_x, out_of_scope, a file...) in staff's words."""
    text = FILE.sub(lambda m: part(m.group(0).removeprefix("./")), text)
    text = QUOTED_NAME.sub(lambda m: f"“{topic_title(root, m.group(1))}”", text)
    return NAME.sub(lambda m: f"“{topic_title(root, m.group(0))}”", text)


def problem(root: Path, path: str, message: str) -> str:
    """A check's problem as staff read it: the part of the assistant, then what is wrong in their words."""
    return f"{part(path)}: {in_words(root, message)}"
