"""Privacy in the chat: "what do you know about me?" answered from this conversation itself.

The list is built from the conversation's tracker (what Rasa keeps), with personal details
masked: a visitor on a shared computer should not have their phone number shown in full.
The privacy notice itself is a response (`utter_privacy`); erasing a conversation is issue 13's
("delete my data").
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from rasa_sdk import Action, Tracker
from rasa_sdk.events import EventType
from rasa_sdk.executor import CollectingDispatcher

from actions.booking.availability import Availability
from actions.booking.form import REFERENCE_SLOT
from actions.booking.validators import contact_type
from actions.faq import FEEDBACK_HELPFUL, FEEDBACK_UNHELPFUL, LAST_TOPIC_SLOT
from actions.topics import topic_title


def mask_name(name: str) -> str:
    """A name masked, e.g. "J*** S****" for Jane Smith: enough to recognise, not to read out."""
    return " ".join(word[0] + "*" * (len(word) - 1) for word in name.split())


def mask_contact(contact: str) -> str:
    """An email as j***@example.com, a phone number as "ending in 456"."""
    if contact_type(contact) == "email":
        local, _, domain = contact.partition("@")
        return f"{local[:1]}***@{domain}"
    digits = [c for c in contact if c.isdigit()]
    return "a phone number ending in " + "".join(digits[-3:])


def conversation_facts(tracker: Tracker, domain: dict[str, Any]) -> list[str]:
    """What this conversation holds about the visitor, one line each, masked where personal."""
    events = tracker.events or []
    typed = [e for e in events if e.get("event") == "user"]
    facts = []
    if typed:
        started = datetime.fromtimestamp(typed[0].get("timestamp") or 0, tz=timezone.utc)
        facts.append(
            f"the {len(typed)} message(s) you have typed in this chat since {started:%d %B %Y, %H:%M} UTC,"
            " with my replies"
        )
    name, contact = tracker.get_slot("booking_name"), tracker.get_slot("booking_contact")
    if name:
        facts.append(f"the name you gave for a consultation request: {mask_name(str(name))}")
    if contact:
        facts.append(f"your contact details for it: {mask_contact(str(contact))}")
    availability = tracker.get_slot("booking_availability")
    if isinstance(availability, dict):
        try:
            facts.append(f"the days that suit you: {Availability.from_slot(availability).describe()}")
        except (KeyError, TypeError, ValueError):
            pass
    if tracker.get_slot("booking_scar"):
        facts.append("a short description of your scar (not shown here)")
    reference = tracker.get_slot(REFERENCE_SLOT)
    if reference:
        facts.append(
            f"the reference of the consultation request you sent, {reference}: the request itself"
            " (with your name and contact details) is with the clinic's team"
        )
    topic = tracker.get_slot(LAST_TOPIC_SLOT)
    if topic:
        facts.append(f"the last topic I answered: {topic_title(domain, str(topic)) or topic}")
    feedback = [
        e
        for e in typed
        if (e.get("parse_data") or {}).get("intent", {}).get("name") in (FEEDBACK_HELPFUL, FEEDBACK_UNHELPFUL)
    ]
    if feedback:
        facts.append(f"{len(feedback)} answer(s) you told me helped or did not")
    return facts


class ActionWhatYouKnow(Action):
    """Lists what this conversation holds about the visitor (masked), and how to erase it."""

    def name(self) -> str:
        """The action's name, as the domain and the rules write it."""
        return "action_what_you_know"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict[str, Any]
    ) -> list[EventType]:
        """Say what this conversation holds, then how long it is kept and how to erase it."""
        facts = conversation_facts(tracker, domain)
        listed = "\n".join(f"• {fact}" for fact in facts) or "• nothing yet"
        dispatcher.utter_message(response="utter_what_you_know", facts=listed)
        return []
