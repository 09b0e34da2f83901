"""Conversation start: copy the clinic's details into slots for the answers to use."""

from __future__ import annotations

from typing import Any

from rasa_sdk import Action, Tracker
from rasa_sdk.events import ActionExecuted, EventType, SessionStarted, SlotSet
from rasa_sdk.executor import CollectingDispatcher

from common.clinic import load_settings


def clinic_slots() -> list[EventType]:
    """SlotSet events for every clinic detail that responses may mention."""
    settings = load_settings()
    return [
        SlotSet("clinic_name", settings.name),
        SlotSet("clinic_phone", settings.phone),
        SlotSet("clinic_email", settings.email),
        SlotSet("clinic_hours", settings.hours),
        SlotSet("clinic_address", settings.address),
        SlotSet("emergency_number", settings.emergency_number),
        SlotSet("retention_days", str(settings.retention_days)),
    ]


class ActionSessionStart(Action):
    """Starts a session with the clinic's details already in the slots."""

    def name(self) -> str:
        """The action's name, as the domain and the stories write it."""
        return "action_session_start"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict[str, Any]
    ) -> list[EventType]:
        """Start the session with the clinic's details in the slots."""
        return [SessionStarted(), *clinic_slots(), ActionExecuted("action_listen")]
