"""Erasure on request, in the chat: "forget me", "delete my data", "withdraw my consent".

First the visitor is told what will be erased (this conversation, and any consultation
request it made, which the clinic's booking system is then told to delete) and asked to
confirm. On "yes", the requests are erased here and the slot ERASE_SLOT tells the tracker
store to delete the conversation's events when it saves the turn (servers/tracker_store.py:
deleting them in the action would not last, Rasa writes the turn back afterwards). The
reply says what was done; it reaches the visitor only once the erasure has succeeded.

A visitor can only erase what this conversation made: a reference quoted from another
conversation gets the clinic's phone number instead (staff can erase it:
`clinic-bookings erase --reference`).
"""

from __future__ import annotations

import asyncio
import logging
import re
from typing import Any

from rasa_sdk import Action, Tracker
from rasa_sdk.events import ActiveLoop, EventType, SlotSet
from rasa_sdk.executor import CollectingDispatcher

from actions.booking.form import clear_booking
from common.clinic import load_settings
from common.names import ERASE_SLOT
from common.records.bookings import BookingStore, get_store
from common.records.delivery import deliver_withdrawal

logger = logging.getLogger(__name__)

REFERENCE = re.compile(r"\bSR-[A-Z2-7]{8}\b", re.IGNORECASE)
_background_tasks: set[asyncio.Task] = set()
# The message that tells the chat widget to clear the conversation it keeps on the device.
FORGET_SIGNAL = "forget_conversation"


def quoted_references(tracker: Tracker) -> set[str]:
    """The request references the visitor typed in their last message, e.g. SR-K3QF7XMA."""
    return {match.upper() for match in REFERENCE.findall(tracker.latest_message.get("text") or "")}


def listed(references: list[str]) -> str:
    """References as a visitor reads them: "SR-AAAA", "SR-AAAA and SR-BBBB"."""
    return (
        " and ".join([", ".join(references[:-1]), references[-1]]) if len(references) > 1 else references[0]
    )


class ActionExplainErasure(Action):
    """Says what erasing would remove and asks to confirm (the response's buttons)."""

    def name(self) -> str:
        """The action's name, as the domain and the rules write it."""
        return "action_explain_erasure"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict[str, Any]
    ) -> list[EventType]:
        """Explain, with this conversation's requests named, and ask."""
        own = [row["reference"] for row in get_store().find(conversation_ids=[tracker.sender_id])]
        others = sorted(quoted_references(tracker) - set(own))
        if others:
            dispatcher.utter_message(response="utter_erasure_other_reference", references=listed(others))
        if own:
            dispatcher.utter_message(response="utter_erasure_explain_requests", references=listed(own))
        else:
            dispatcher.utter_message(response="utter_erasure_explain")
        return []


def tell_booking_system(store: BookingStore, references: list[str]) -> None:
    """Send the withdrawal notices of these references in the background, if there is a webhook."""
    url = load_settings().booking_webhook_url
    if not url:
        return
    for row in store.pending_withdrawals(references):
        task = asyncio.get_running_loop().create_task(deliver_withdrawal(store, url, row))
        _background_tasks.add(task)
        task.add_done_callback(_background_tasks.discard)


class ActionEraseConversation(Action):
    """Erases the conversation's requests now and its events when the turn is saved."""

    def name(self) -> str:
        """The action's name, as the domain and the rules write it."""
        return "action_erase_conversation"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict[str, Any]
    ) -> list[EventType]:
        """Erase the requests, start telling the booking system, and mark the conversation."""
        store = get_store()
        own = [row["reference"] for row in store.find(conversation_ids=[tracker.sender_id])]
        erased = store.erase(own)
        told = [request.reference for request in erased if request.tell_booking_system]
        tell_booking_system(store, told)
        logger.info("Erasing a conversation on request (%d booking request(s)).", len(erased))
        # The widget (web/chat.js) clears what it shows and keeps on the device, then shows the
        # replies below: socket.io emits `data` as the bot message (REST: under "custom").
        dispatcher.utter_message(json_message={"data": {FORGET_SIGNAL: True}})
        if erased:
            references = listed([request.reference for request in erased])
            dispatcher.utter_message(response="utter_erasure_done_requests", references=references)
        else:
            dispatcher.utter_message(response="utter_erasure_done")
        if told and load_settings().booking_webhook_url:
            dispatcher.utter_message(response="utter_erasure_booking_system_told", references=listed(told))
        return [ActiveLoop(None), *clear_booking(), SlotSet(ERASE_SLOT, True)]
