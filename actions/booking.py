"""Handing interested visitors over to booking a consultation."""

from __future__ import annotations

from typing import Any, Dict, List, Text

from rasa_sdk import Action, Tracker
from rasa_sdk.events import EventType
from rasa_sdk.executor import CollectingDispatcher

from actions.settings import load_settings


class ActionOfferBooking(Action):
    """Tells the visitor how to book: by phone, or online when the clinic has a link."""

    def name(self) -> Text:
        return "action_offer_booking"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: Dict[Text, Any]
    ) -> List[EventType]:
        link = load_settings().booking_link
        if link:
            dispatcher.utter_message(response="utter_book_online", booking_link=link)
        else:
            dispatcher.utter_message(response="utter_book_by_phone")
        return []
