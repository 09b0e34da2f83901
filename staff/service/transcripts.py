"""Conversations as staff read them: who said what, when, and which answer each message got.

Rasa's events are read only through common/conversations.py. Emails and phone numbers are
always masked; for roles that may not see personal data (editors), the visitor's answers to
the booking form's questions and the assistant's summary of them are hidden too.

Staff name a conversation by its public handle (common/conversation_ids.py), never by its id,
which is the visitor's key to the chat: what this module hands to pages carries the handle
only, and `resolve` finds the id behind a handle here, on the server. `secret` is the key of
the handles (Settings.live_chat_key()).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from common import conversation_ids, conversations
from common.names import FALLBACK_INTENT, RETRIEVAL_INTENT
from staff import review

# After one of these the visitor's next message is a booking detail (name, contact, scar...).
ASKS_FOR_DETAILS = ("utter_ask_booking_", "utter_invalid_", "utter_format_booking_", "utter_change_booking_")
# Bot messages that repeat the visitor's booking details.
REPEATS_DETAILS = frozenset({"utter_booking_summary"})
HIDDEN_ANSWER = "[answer to a booking question - hidden]"
HIDDEN_SUMMARY = "[summary of the booking details - hidden]"
MAX_CONVERSATIONS = 200
# What a reply means, in staff's words (the rest is shown by its response name).
REPLY_LABELS = {
    "action_default_ask_affirmation": 'asked "did you mean...?"',
    "utter_did_you_mean": 'asked "did you mean...?"',
    "utter_ask_rephrase": "asked to rephrase",
    "utter_default": "did not understand",
    "action_default_fallback": "did not understand",
    "utter_out_of_scope": '"I don\'t have that information"',
    "utter_medical_advice": '"I don\'t have that information" (medical advice)',
    "utter_booking_not_in_my_info": '"I don\'t have that information"',
    review.URGENT_REPLY: "urgent: sent to medical help",
    "action_offer_booking": "offered a consultation",
    review.BOOKING_SAVED: "booking saved",
}


@dataclass
class Line:
    """One message in a transcript."""

    speaker: str  # "visitor" or "assistant"
    at: datetime
    text: str
    understood: str = ""  # visitor: the intent (and FAQ answer) the model picked, with confidence
    answer: str = ""  # visitor: what the assistant did about it
    hidden: bool = False
    staff_name: str = ""  # a message a staff member wrote in a live chat: who


@dataclass
class Transcript:
    """A conversation's lines, oldest first, named by its handle."""

    handle: str
    lines: list[Line] = field(default_factory=list)

    @property
    def started(self) -> datetime | None:
        """When the first message was sent."""
        return self.lines[0].at if self.lines else None


def understood(parse: dict[str, Any]) -> str:
    """The intent the model picked, as faq/<topic> for an FAQ question, with its confidence."""
    intent = parse.get("intent") or {}
    name = intent.get("name") or ""
    confidence = intent.get("confidence")
    if name == RETRIEVAL_INTENT:
        selected = (parse.get("response_selector") or {}).get(RETRIEVAL_INTENT) or {}
        name = (selected.get("response") or {}).get("intent_response_key") or name
    if name == FALLBACK_INTENT:
        name = f"not sure (best guess: {review.guessed_intent(parse) or 'none'})"
    return f"{name} ({confidence:.2f})" if isinstance(confidence, int | float) and name else name


def answer_label(replies: list[str]) -> str:
    """What the assistant did, e.g. `utter_faq/what_is` or '"I don't have that information"'."""
    labels: list[str] = []
    for name in replies:
        label = REPLY_LABELS.get(name, name)
        if label not in labels:
            labels.append(label)
    return ", ".join(labels) or "no reply"


def resolve(url: str, handle: str, secret: str) -> str | None:
    """The id of the conversation staff name by `handle` (None: no such conversation)."""
    if not conversation_ids.is_handle(handle.strip().upper()):
        return None
    found = conversation_ids.find(handle, conversations.senders(url), secret)
    return found[0] if len(found) == 1 else None


def read(url: str, sender: str, zone: ZoneInfo, personal_data: bool, secret: str) -> Transcript:
    """One conversation; `personal_data` False hides booking details (emails and phones are always masked)."""
    transcript = Transcript(conversation_ids.handle(sender, secret))
    current: Line | None = None
    replies: list[str] = []
    hide_next = False
    seen_messages: set[str] = set()
    for row in conversations.read_sender(url, sender):
        data = json.loads(row.data or "{}")
        at = datetime.fromtimestamp(row.timestamp, zone)
        if row.type_name == "user":
            message_id = str(data.get("message_id") or row.id)
            if current is not None:
                current.answer = answer_label(replies)
            replies = []
            if message_id in seen_messages:  # the two-stage fallback replays the same message
                current = None
                continue
            seen_messages.add(message_id)
            text = data.get("text") or ""
            hidden = hide_next and not personal_data and not text.startswith("/")
            current = Line(
                "visitor",
                at,
                HIDDEN_ANSWER if hidden else review.mask(text),
                understood=understood(data.get("parse_data") or {}),
                hidden=hidden,
            )
            transcript.lines.append(current)
        elif row.type_name == "action":
            if (
                row.action_name
                and row.action_name not in review.SILENT
                and row.action_name.startswith("action_")
            ):
                replies.append(row.action_name)
        elif row.type_name == "bot":
            name = (data.get("metadata") or {}).get("utter_action") or ""
            if name:
                replies.append(name)
            hide_next = name.startswith(ASKS_FOR_DETAILS)
            hidden = name in REPEATS_DETAILS and not personal_data
            text = data.get("text") or ""
            if not text and (data.get("data") or {}).get("buttons"):
                text = "[buttons]"
            line = Line("assistant", at, HIDDEN_SUMMARY if hidden else review.mask(text), hidden=hidden)
            line.staff_name = str((data.get("metadata") or {}).get("sender_name") or "")
            transcript.lines.append(line)
    if current is not None:
        current.answer = answer_label(replies)
    return transcript


@dataclass(frozen=True)
class Summary:
    """One conversation in a list, named by its handle."""

    handle: str
    first: datetime
    last: datetime
    messages: int


def between(url: str, start: float, end: float, zone: ZoneInfo, secret: str) -> list[Summary]:
    """The conversations with visitor messages in [start, end), newest first."""
    return [
        Summary(
            conversation_ids.handle(sender, secret),
            datetime.fromtimestamp(first, zone),
            datetime.fromtimestamp(last, zone),
            count,
        )
        for sender, first, last, count in conversations.senders_between(url, start, end)[:MAX_CONVERSATIONS]
    ]


def summary(url: str, sender: str, zone: ZoneInfo, secret: str) -> Summary:
    """One conversation as a list entry."""
    handle = conversation_ids.handle(sender, secret)
    found = conversations.senders_between(url, 0.0, float("inf"), sender=sender)
    if not found:
        now = datetime.now(zone)
        return Summary(handle, now, now, 0)
    _, first, last, count = found[0]
    return Summary(handle, datetime.fromtimestamp(first, zone), datetime.fromtimestamp(last, zone), count)


def by_reference(url: str, reference: str) -> list[str]:
    """The conversations in which a booking with this reference was confirmed."""
    reference = reference.strip().upper()
    return conversations.senders_with_text(url, reference) if reference else []


def handles_by_reference(url: str, reference: str, secret: str) -> list[str]:
    """The handles of the conversations in which a booking with this reference was confirmed."""
    return [conversation_ids.handle(sender, secret) for sender in by_reference(url, reference)]
