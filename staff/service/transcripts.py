"""Conversations as staff read them: who said what, when, and which answer each message got.

Rasa's events are read only through common/records/conversations.py. Emails and phone numbers are
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

from common import conversation_ids
from common.names import FALLBACK_INTENT, RETRIEVAL_INTENT
from common.records import conversations
from staff.service import review

# After one of these the visitor's next message is a booking detail (name, contact, scar...).
ASKS_FOR_DETAILS = ("utter_ask_booking_", "utter_invalid_", "utter_format_booking_", "utter_change_booking_")
# Bot messages that repeat the visitor's booking details (or their message for the team).
REPEATS_DETAILS = frozenset({"utter_booking_summary", "utter_callback_summary"})
HIDDEN_ANSWER = "[answer to a booking question - hidden]"
HIDDEN_SUMMARY = "[summary of the booking details - hidden]"
MAX_CONVERSATIONS = 200
MAX_FIRST_WORDS = 90
REWIND = "rewind"  # Rasa's event when the assistant sets the visitor's last message aside
PAUSED, RESUMED = review.PAUSED, review.RESUMED  # a live chat with staff starts and ends
EVENTS = ("user", "action", "bot", "active_loop", REWIND, PAUSED, RESUMED)
# What a reply means, in staff's words (stories.py describes the steps of a story with these).
REPLY_LABELS = {
    "action_default_ask_affirmation": 'asked "did you mean...?"',
    "utter_did_you_mean": 'asked "did you mean...?"',
    "utter_ask_rephrase": "asked to rephrase",
    "utter_default": "did not understand",
    "utter_still_not_understood": "did not understand again: offered the team",
    "action_default_fallback": "did not understand",
    "utter_out_of_scope": '"I don\'t have that information"',
    "utter_medical_advice": '"I don\'t have that information" (medical advice)',
    "utter_booking_not_in_my_info": '"I don\'t have that information"',
    review.URGENT_REPLY: "urgent: sent to medical help",
    "action_offer_booking": "offered a consultation",
    review.BOOKING_SAVED: "booking saved",
}
# What a visitor's message meant, in staff's words (FAQ questions are named by their titles).
INTENT_WORDS = {
    RETRIEVAL_INTENT: "asks an FAQ question",
    FALLBACK_INTENT: "says something the assistant is not sure about",
    "book_consultation": "asks to book a consultation",
    "inform": "answers the question",
    "affirm": "says yes",
    "deny": "says no",
    "greet": "says hello",
    "goodbye": "says goodbye",
    "thanks": "says thank you",
    "out_of_scope": "asks something the document does not cover",
    "medical_advice": "asks for personal medical advice",
    "urgent_symptoms": "describes urgent symptoms",
    "unclear": "types something unclear",
    "help": "asks what the assistant can do",
    "bot_challenge": "asks whether it is talking to a person",
    "ask_contact": "asks for the contact details",
    "ask_for_person": "asks for a person from the clinic",
    "ask_hours": "asks the opening hours",
    "ask_address": "asks the address",
    "ask_privacy": "asks about privacy",
    "ask_my_data": "asks what the conversation holds",
    "erase_data": "asks to erase the conversation",
    "faq_followup": "asks a follow-up about the last answer",
    "feedback_helpful": "says the answer helped",
    "feedback_unhelpful": "says the answer did not help",
    "change_booking_field": "asks to change a booking answer",
    "cancel": "asks to cancel",
    "live_chat_request": "asks to chat with a person",
    "leave_message": "asks to leave a message for the team",
}
OPENED = "/greet"  # what the chat widget sends when a visitor opens it (no button pressed)

# Each conversation's outcomes, as staff filter the list by them (key: words).
ANSWERED, DID_YOU_MEAN, NOT_UNDERSTOOD, NO_INFORMATION = (
    "answered",
    "did-you-mean",
    "not-understood",
    "no-information",
)
BOOKING, MESSAGE, THUMBS_DOWN, LIVE_CHAT = "booking", "message", "thumbs-down", "live-chat"
OUTCOMES = {
    ANSWERED: "answered",
    DID_YOU_MEAN: '"did you mean...?"',
    NOT_UNDERSTOOD: "not understood",
    NO_INFORMATION: '"I don\'t have that information"',
    BOOKING: "booking",
    MESSAGE: "message for the team",
    THUMBS_DOWN: "thumbs-down",
    LIVE_CHAT: "live chat",
}
# The replies (response names) that show the visitor each kind of outcome.
NOT_UNDERSTOOD_REPLIES = frozenset({"utter_ask_rephrase", "utter_default", "utter_still_not_understood"})
BOOKING_REPLIES = frozenset({"utter_booking_intro", "utter_booking_intro_with_link", review.BOOKING_SAVED})
BOOKING_ACTIONS = frozenset({review.BOOKING_STARTED})
MESSAGE_REPLIES = frozenset({"utter_callback_intro", "utter_callback_saved"})
LIVE_CHAT_ACTIONS = frozenset({"action_request_live_chat"})


@dataclass
class Line:
    """One message in a transcript, as the visitor saw it."""

    speaker: str  # "visitor" or "assistant"
    at: datetime
    text: str  # what was shown: the visitor's words, a pressed button's label, the assistant's reply
    understood: str = ""  # visitor: what the assistant took it to mean, in staff's words
    outcome: str = ""  # visitor: a key of OUTCOMES (what the assistant did about it)
    hidden: bool = False
    staff_name: str = ""  # a message a staff member wrote in a live chat: who
    pressed: bool = False  # visitor: a button pressed, not words typed
    in_form: bool = False  # visitor: an answer to a form's question, or a message to staff in a live chat
    buttons: list[str] = field(default_factory=list)  # assistant: the buttons offered, by their labels

    @property
    def outcome_words(self) -> str:
        """The outcome in staff's words."""
        return OUTCOMES.get(self.outcome, "no reply")


@dataclass
class Transcript:
    """A conversation's lines, oldest first, named by its handle."""

    handle: str
    lines: list[Line] = field(default_factory=list)
    outcomes: set[str] = field(default_factory=set)  # keys of OUTCOMES

    @property
    def started(self) -> datetime | None:
        """When the first message was sent."""
        return self.lines[0].at if self.lines else None

    @property
    def first_words(self) -> str:
        """The visitor's first typed question (never an answer to a form's question), shortened."""
        for line in self.lines:
            if line.speaker == "visitor" and not (line.pressed or line.in_form or line.hidden) and line.text:
                text = " ".join(line.text.split())
                cut = text[:MAX_FIRST_WORDS].rsplit(" ", 1)[0] + "..."
                return text if len(text) <= MAX_FIRST_WORDS else cut
        return ""


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


def intent_words(intent: str, titles: dict[str, str]) -> str:
    """What a visitor meant, e.g. 'asks "What is Scar Relaxation?"' (never an intent's name)."""
    base, _, key = intent.partition("/")
    if base == RETRIEVAL_INTENT and key:
        return f'asks "{titles.get(key) or key.replace("_", " ")}"'
    return INTENT_WORDS.get(intent, intent.replace("_", " "))


def meaning(parse: dict[str, Any], titles: dict[str, str]) -> str:
    """What the model took a message to mean, in staff's words, with how sure it was."""
    name = understood(parse).rsplit(" (", 1)[0] if parse else ""
    if not name:
        return ""
    if name.startswith("not sure"):
        guess = review.guessed_intent(parse)
        return f"not sure (closest: {intent_words(guess, titles)})" if guess else "not sure"
    confidence = (parse.get("intent") or {}).get("confidence")
    sure = f" ({confidence:.0%} sure)" if isinstance(confidence, int | float) else ""
    return intent_words(name, titles) + sure


def turn_outcome(said: list[str], actions: list[str]) -> str:
    """What the visitor was shown after one message, judged by the replies sent (not by the actions' names).

    "did you mean...?" only when its buttons were shown: the same action asks to rephrase
    ("Sorry, I didn't understand that") when no topic is close.
    """
    sent = set(said)
    if "utter_did_you_mean" in sent:
        return DID_YOU_MEAN
    if sent & NOT_UNDERSTOOD_REPLIES or "action_default_fallback" in actions:
        return NOT_UNDERSTOOD
    if sent & review.UNKNOWN_REPLIES:
        return NO_INFORMATION
    return ANSWERED if said or actions else ""


def resolve(url: str, handle: str, secret: str) -> str | None:
    """The id of the conversation staff name by `handle` (None: no such conversation)."""
    if not conversation_ids.is_handle(handle.strip().upper()):
        return None
    found = conversation_ids.find(handle, conversations.senders(url), secret)
    return found[0] if len(found) == 1 else None


def pressed_label(
    payload: str, offered: dict[str, str], parse: dict[str, Any], titles: dict[str, str]
) -> str:
    """What a visitor who sent a button's payload saw: the button's label, or in words what it meant."""
    if payload in offered:
        return offered[payload]
    if payload.strip() == OPENED:
        return "[opened the chat]"
    name = understood(parse).rsplit(" (", 1)[0] if parse else ""
    meant = intent_words(name, titles) if name and not name.startswith("not sure") else "a button"
    return f"[pressed a button: {meant}]"


@dataclass
class _Reading:
    """Where the walk through a conversation's events is."""

    current: Line | None = None
    said: list[str] = field(default_factory=list)  # the responses sent after the current message
    actions: list[str] = field(default_factory=list)  # and the actions run
    offered: dict[str, str] = field(default_factory=dict)  # the buttons last shown: payload -> label
    hide_next: bool = False  # the assistant asked for a booking detail
    form: str | None = None  # a form asking its questions
    paused: bool = False  # a live chat with staff
    set_aside: str = ""  # the message the assistant set aside, which the fallback may put back

    def close(self, transcript: Transcript) -> None:
        """The current message's outcome, once every reply to it is in."""
        if self.current is None:
            return
        if not self.current.outcome:
            self.current.outcome = LIVE_CHAT if self.paused else turn_outcome(self.said, self.actions)
        if self.current.outcome:
            transcript.outcomes.add(self.current.outcome)


def _tags(said: list[str], actions: list[str]) -> set[str]:
    """The conversation-wide outcomes one reply shows (a booking, a message, a live chat)."""
    found = set()
    if set(said) & BOOKING_REPLIES or set(actions) & BOOKING_ACTIONS:
        found.add(BOOKING)
    if set(said) & MESSAGE_REPLIES:
        found.add(MESSAGE)
    if set(actions) & LIVE_CHAT_ACTIONS:
        found.add(LIVE_CHAT)
    return found


def read(
    url: str,
    sender: str,
    zone: ZoneInfo,
    personal_data: bool,
    secret: str,
    titles: dict[str, str] | None = None,
) -> Transcript:
    """One conversation as the visitor saw it; `personal_data` False hides booking details.

    Emails and phone numbers are always masked. A pressed button shows as its label. When the
    two-stage fallback puts a clarified message back (the same message, again), it stays one
    line, and what the assistant did next is its reply. `titles`: the FAQ topics' titles.
    """
    titles = titles or {}
    transcript = Transcript(conversation_ids.handle(sender, secret))
    state = _Reading()
    lines: dict[str, Line] = {}  # the visitor's messages by message id
    for row in conversations.read_sender(url, sender, EVENTS):
        data = json.loads(row.data or "{}")
        at = datetime.fromtimestamp(row.timestamp, zone)
        if row.type_name == "user":
            message_id = str(data.get("message_id") or row.id)
            if message_id in lines:  # the two-stage fallback replays the same message
                if message_id == state.set_aside:  # put back: the replies from here are its own
                    state.current, state.said, state.actions = lines[message_id], [], []
                    state.current.outcome = ""
                state.set_aside = ""
                continue
            state.close(transcript)
            state.said, state.actions, state.set_aside = [], [], ""
            text = str(data.get("text") or "")
            parse = data.get("parse_data") or {}
            pressed = text.startswith("/")
            in_form = state.hide_next or state.form is not None or state.paused
            hidden = state.hide_next and not personal_data and not pressed
            shown = pressed_label(text, state.offered, parse, titles) if pressed else review.mask(text)
            state.current = Line(
                "visitor",
                at,
                HIDDEN_ANSWER if hidden else shown,
                understood="" if hidden else meaning(parse, titles),
                hidden=hidden,
                pressed=pressed,
                in_form=in_form,
            )
            if (parse.get("intent") or {}).get("name") == review.FEEDBACK_UNHELPFUL:
                transcript.outcomes.add(THUMBS_DOWN)
            lines[message_id] = state.current
            transcript.lines.append(state.current)
            state.offered = {}
        elif row.type_name == REWIND:
            state.set_aside = next((k for k, v in lines.items() if v is state.current), "")
        elif row.type_name in (PAUSED, RESUMED):
            state.paused = row.type_name == PAUSED
            if state.paused:
                transcript.outcomes.add(LIVE_CHAT)
        elif row.type_name == "active_loop":
            name = data.get("name") or None
            if name not in review.NOT_A_FORM:
                state.form = name
        elif row.type_name == "action":
            if row.action_name and row.action_name not in review.SILENT:
                state.actions.append(row.action_name)
                transcript.outcomes |= _tags([], [row.action_name])
        elif row.type_name == "bot":
            metadata = data.get("metadata") or {}
            name = str(metadata.get("utter_action") or "")
            if name:
                state.said.append(name)
                transcript.outcomes |= _tags([name], [])
            state.hide_next = name.startswith(ASKS_FOR_DETAILS)
            hidden = name in REPEATS_DETAILS and not personal_data
            buttons = [b for b in (data.get("data") or {}).get("buttons") or [] if isinstance(b, dict)]
            state.offered = {str(b.get("payload")): str(b.get("title") or "") for b in buttons}
            line = Line(
                "assistant",
                at,
                HIDDEN_SUMMARY if hidden else review.mask(str(data.get("text") or "")),
                hidden=hidden,
                buttons=[review.mask(str(b.get("title") or "")) for b in buttons],
            )
            line.staff_name = str(metadata.get("sender_name") or "")
            if line.staff_name:
                transcript.outcomes.add(LIVE_CHAT)
            transcript.lines.append(line)
    state.close(transcript)
    return transcript


@dataclass(frozen=True)
class Summary:
    """One conversation in a list, named by its handle: when, how it went, how it began."""

    handle: str
    first: datetime
    last: datetime
    messages: int
    outcomes: tuple[str, ...] = ()  # keys of OUTCOMES, in their order
    first_words: str = ""  # the visitor's first question ("" for roles that may not read it)

    @property
    def outcome_words(self) -> list[str]:
        """The outcomes in staff's words."""
        return [OUTCOMES[key] for key in self.outcomes]


def _summary(
    url: str, sender: str, first: float, last: float, count: int, zone: ZoneInfo, secret: str, words: bool
) -> Summary:
    transcript = read(url, sender, zone, False, secret)
    return Summary(
        transcript.handle,
        datetime.fromtimestamp(first, zone),
        datetime.fromtimestamp(last, zone),
        sum(1 for line in transcript.lines if line.speaker == "visitor"),
        tuple(key for key in OUTCOMES if key in transcript.outcomes),
        transcript.first_words if words else "",
    )


def between(
    url: str, start: float, end: float, zone: ZoneInfo, secret: str, words: bool = False
) -> list[Summary]:
    """The conversations with visitor messages in [start, end), newest first.

    `words`: with the visitor's first question (for roles that may read transcripts); never an
    answer to a form's question, and read as a role without personal data reads it.
    """
    return [
        _summary(url, sender, first, last, count, zone, secret, words)
        for sender, first, last, count in conversations.senders_between(url, start, end)[:MAX_CONVERSATIONS]
    ]


def summary(url: str, sender: str, zone: ZoneInfo, secret: str, words: bool = False) -> Summary:
    """One conversation as a list entry."""
    found = conversations.senders_between(url, 0.0, float("inf"), sender=sender)
    if not found:
        now = datetime.now(zone)
        return Summary(conversation_ids.handle(sender, secret), now, now, 0)
    _, first, last, count = found[0]
    return _summary(url, sender, first, last, count, zone, secret, words)


def by_reference(url: str, reference: str) -> list[str]:
    """The conversations in which a booking with this reference was confirmed."""
    reference = reference.strip().upper()
    return conversations.senders_with_text(url, reference) if reference else []


def handles_by_reference(url: str, reference: str, secret: str) -> list[str]:
    """The handles of the conversations in which a booking with this reference was confirmed."""
    return [conversation_ids.handle(sender, secret) for sender in by_reference(url, reference)]
