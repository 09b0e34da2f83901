"""The consultation request conversation: offer, form validation, summary, submit, cancel."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import date, datetime
from typing import Any

from rasa_sdk import Action, FormValidationAction, Tracker
from rasa_sdk.events import ActiveLoop, EventType, SlotSet
from rasa_sdk.executor import CollectingDispatcher

from actions.booking import validators
from actions.booking.availability import Availability, next_open_days, readable
from actions.booking.validators import InvalidAnswer
from actions.live_chat import CALLBACK, KIND_SLOT
from actions.topics import asked_topic, response_name
from common import deadline, metrics
from common import settings as deployment
from common.clinic import load_settings
from common.records.bookings import BookingRequest, ContactLimitReached, get_store
from common.records.delivery import deliver
from common.records.live_chat import reply_expected

logger = logging.getLogger(__name__)

FORM = "booking_form"
FIELDS = ["booking_name", "booking_contact", "booking_date", "booking_time", "booking_scar"]
# The structured availability (earliest day, range, weekdays...) beside the visitor's words.
AVAILABILITY_SLOT = "booking_availability"
# "Leave a message" (actions/live_chat.py) uses the same form and checks, with these questions.
CALLBACK_FIELDS = ["booking_name", "booking_contact", "booking_question"]
PERSONAL_SLOTS = [
    *FIELDS,
    "booking_question",
    AVAILABILITY_SLOT,
    "booking_consent",
    "booking_invalid",
    "requested_slot",
    KIND_SLOT,
]
FLEXIBLE_ANSWER = "I'm flexible"
REFERENCE_SLOT = "booking_reference"  # kept after the details are cleared: "what do you know about me?"
DAY_BUTTONS = 3
FIELD_ENTITY = "booking_field"
MAX_INVALID_BEFORE_HELP = 2
_background_tasks: set[asyncio.Task] = set()


def clear_booking() -> list[EventType]:
    """Forget every detail the visitor gave (personal data leaves the conversation)."""
    return [SlotSet(slot, None) for slot in PERSONAL_SLOTS]


def now_at_clinic() -> datetime:
    """The current date and time at the clinic."""
    return datetime.now(load_settings().zone)


def readable_date(iso_day: str) -> str:
    """An ISO date as visitors read it, e.g. Tuesday 15 December 2026."""
    return readable(date.fromisoformat(iso_day))


def stored_availability(tracker: Tracker) -> Availability | None:
    """The visitor's availability from its slot (None if there is none or it is malformed)."""
    value = tracker.get_slot(AVAILABILITY_SLOT)
    if not isinstance(value, dict):
        return None
    try:
        return Availability.from_slot(value)
    except (KeyError, TypeError, ValueError):
        return None


CONTACT_PROMISES = {"phone": "call you", "email": "email you"}


def contact_promise(contact: str | None) -> str:
    """How the team will reach the visitor: "email you" for an email address, else "call you"."""
    return CONTACT_PROMISES[validators.contact_type(contact or "")]


class ActionAskBookingDate(Action):
    """The day question, with the next open days and "I'm flexible" as buttons."""

    def name(self) -> str:
        """The action's name, as the domain and the form write it."""
        return "action_ask_booking_date"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict[str, Any]
    ) -> list[EventType]:
        """Ask which days suit, offering the clinic's next open days."""
        days = next_open_days(load_settings(), now_at_clinic().date(), DAY_BUTTONS)
        buttons = [{"title": readable(day, year=False), "payload": readable(day, year=False)} for day in days]
        buttons.append({"title": FLEXIBLE_ANSWER, "payload": FLEXIBLE_ANSWER})
        dispatcher.utter_message(
            response="utter_ask_booking_date",
            buttons=buttons,
            contact_promise=contact_promise(tracker.get_slot("booking_contact")),
        )
        return []


class ActionOfferBooking(Action):
    """Starts a booking: says what happens, and offers the online scheduler if there is one."""

    def name(self) -> str:
        """The action's name, as the domain and the stories write it."""
        return "action_offer_booking"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict[str, Any]
    ) -> list[EventType]:
        """Offer the online scheduler (if there is one) and start the form."""
        link = load_settings().booking_link
        if link:
            dispatcher.utter_message(response="utter_booking_intro_with_link", booking_link=link)
        else:
            dispatcher.utter_message(response="utter_booking_intro")
        return [SlotSet(KIND_SLOT, None)]


def is_callback(tracker: Tracker) -> bool:
    """Whether the form is collecting a message to the team rather than a consultation request."""
    return tracker.get_slot(KIND_SLOT) == CALLBACK


class ValidateBookingForm(FormValidationAction):
    """Checks each answer; says what was wrong, and after two misses explains the format."""

    def name(self) -> str:
        """The action's name, as the domain and the stories write it."""
        return "validate_booking_form"

    async def required_slots(
        self,
        domain_slots: list[str],
        dispatcher: CollectingDispatcher,
        tracker: Tracker,
        domain: dict[str, Any],
    ) -> list[str]:
        """A callback asks name, contact, the question and consent; a consultation the domain's list."""
        if is_callback(tracker):
            return [*CALLBACK_FIELDS, "booking_consent"]
        return [slot for slot in domain_slots if slot != "booking_question"]

    def validate_booking_question(
        self, value: Any, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict[str, Any]
    ) -> dict[str, Any]:
        """Accept the visitor's message to the team (see validators.parse_question)."""
        return self._check("booking_question", value, validators.parse_question, dispatcher, tracker)

    def _check(
        self,
        slot: str,
        value: Any,
        parse: Callable[[str], Any],
        dispatcher: CollectingDispatcher,
        tracker: Tracker,
    ) -> dict[str, Any]:
        """Run `parse` on the answer; on failure count the miss and tell the visitor."""
        misses = dict(tracker.get_slot("booking_invalid") or {})
        try:
            result = parse(str(value))
        except InvalidAnswer as problem:
            misses[slot] = misses.get(slot, 0) + 1
            dispatcher.utter_message(response=f"utter_invalid_{problem.reason}", **problem.details)
            if misses[slot] >= MAX_INVALID_BEFORE_HELP:
                dispatcher.utter_message(response=f"utter_format_{slot}")
                dispatcher.utter_message(response="utter_booking_call_instead")
            return {
                slot: None,
                "booking_invalid": misses,
                **({AVAILABILITY_SLOT: None} if slot == "booking_date" else {}),
            }
        misses.pop(slot, None)
        return {**(result if isinstance(result, dict) else {slot: result}), "booking_invalid": misses}

    def validate_booking_name(
        self, value: Any, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict[str, Any]
    ) -> dict[str, Any]:
        """Accept a name (see validators.parse_name)."""
        return self._check("booking_name", value, validators.parse_name, dispatcher, tracker)

    def validate_booking_contact(
        self, value: Any, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict[str, Any]
    ) -> dict[str, Any]:
        """Accept a phone number or an email address."""
        settings = load_settings()
        return self._check(
            "booking_contact",
            value,
            lambda text: validators.parse_contact(text, settings),
            dispatcher,
            tracker,
        )

    def extract_booking_date(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict[str, Any]
    ) -> dict[str, Any]:
        """Take a day answer the classifier read as a yes or a no ("not bothered", "no preference").

        The domain leaves yes and no out of the day question, so a stray "no" asks again; an
        answer that reads as days or flexibility is the visitor's answer all the same.
        """
        message = tracker.latest_message or {}
        if tracker.get_slot("requested_slot") != "booking_date" or (message.get("intent") or {}).get(
            "name"
        ) not in {"affirm", "deny"}:
            return {}
        text = str(message.get("text") or "")
        days = validators.reads_as_days(text, load_settings(), now_at_clinic())
        return {"booking_date": text} if days else {}

    def validate_booking_date(
        self, value: Any, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict[str, Any]
    ) -> dict[str, Any]:
        """Accept when the visitor is free: a day, a period, weekdays or "flexible" (and a time of day)."""
        settings = load_settings()

        def parse(text: str) -> dict[str, Any]:
            availability = validators.parse_date(text, settings, now_at_clinic())
            stored = stored_availability(tracker)
            if availability.exact and stored is not None and stored.earliest == availability.earliest:
                availability = stored  # the form re-checks its own ISO day: keep what the visitor said
            time_of_day = availability.time_of_day
            return {
                "booking_date": availability.earliest.isoformat(),
                AVAILABILITY_SLOT: availability.to_slot(),
                **({"booking_time": time_of_day} if time_of_day else {}),
            }

        return self._check("booking_date", value, parse, dispatcher, tracker)

    def validate_booking_time(
        self, value: Any, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict[str, Any]
    ) -> dict[str, Any]:
        """Accept a time of day the clinic offers, or days and a time ("weekdays after 2pm")."""
        settings = load_settings()

        def parse(text: str) -> dict[str, Any] | str:
            try:
                return validators.parse_time_of_day(text, settings)
            except InvalidAnswer:
                try:
                    later = validators.parse_date(text, settings, now_at_clinic())
                except InvalidAnswer:
                    later = None
                earlier = stored_availability(tracker)
                if later is None or later.time_of_day is None or earlier is None:
                    raise
                refined = earlier.refined_by(later)
                return {
                    "booking_time": later.time_of_day,
                    "booking_date": refined.earliest.isoformat(),
                    AVAILABILITY_SLOT: refined.to_slot(),
                }

        return self._check("booking_time", value, parse, dispatcher, tracker)

    def validate_booking_scar(
        self, value: Any, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict[str, Any]
    ) -> dict[str, Any]:
        """Accept any short description: only a real question (ending in "?") is answered instead.

        A description of a scar reads like an FAQ to the classifier, so the scar slot takes any text.
        """
        if str(value).rstrip().endswith("?"):
            topic = asked_topic(tracker.latest_message, domain)
            dispatcher.utter_message(
                response=response_name(topic) if topic else "utter_booking_not_in_my_info"
            )
            return {"booking_scar": None}
        return self._check("booking_scar", value, validators.parse_scar, dispatcher, tracker)


def summary_values(tracker: Tracker, domain: dict[str, Any]) -> dict[str, str]:
    """The visitor's answers as plain text, ready to be read back to them.

    A phone number that is possible but unusual is read back with a request to check it.
    """
    settings = load_settings()
    scar = tracker.get_slot("booking_scar") or "(nothing added)"
    contact = tracker.get_slot("booking_contact") or ""
    shown = (
        validators.readable_phone(contact, settings)
        if validators.contact_type(contact) == "phone"
        else contact
    )
    if validators.phone_needs_checking(contact, settings):
        note = domain["responses"]["utter_check_phone"][0]["text"]
        shown = f"{shown} {note}"
    availability = stored_availability(tracker)
    if is_callback(tracker):
        return {"name": tracker.get_slot("booking_name") or "", "contact": shown}
    # Plain text: the widget (web/chat.js) shows messages as text, never as HTML, so an
    # apostrophe or a "<" in a name is shown as typed and cannot become markup.
    return {
        "name": tracker.get_slot("booking_name") or "",
        "contact": shown,
        "day": availability.describe() if availability else readable_date(tracker.get_slot("booking_date")),
        "time_of_day": tracker.get_slot("booking_time") or "",
        "scar": scar,
    }


def change_buttons(domain: dict[str, Any], fields: list[str] = FIELDS) -> list[dict[str, str]]:
    """One "Change ..." button per field, titled from utter_change_<field> in the domain."""
    return [
        {
            "title": domain["responses"][f"utter_change_{slot}"][0]["text"],
            "payload": f'/change_booking_field{{"{FIELD_ENTITY}": "{slot}"}}',
        }
        for slot in fields
    ]


class ActionBookingSummary(Action):
    """After the form: no consent means nothing is kept; otherwise show what will be sent."""

    def name(self) -> str:
        """The action's name, as the domain and the stories write it."""
        return "action_booking_summary"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict[str, Any]
    ) -> list[EventType]:
        """Show the summary with its buttons, or forget everything without consent."""
        if tracker.get_slot("booking_consent") is not True:
            dispatcher.utter_message(response="utter_booking_no_consent")
            return clear_booking()
        callback = is_callback(tracker)
        buttons = [
            {"title": domain["responses"]["utter_button_send"][0]["text"], "payload": "/affirm"},
            *change_buttons(domain, CALLBACK_FIELDS if callback else FIELDS),
        ]
        values = summary_values(tracker, domain)
        if callback:
            values["question"] = tracker.get_slot("booking_question") or ""
        dispatcher.utter_message(
            response="utter_callback_summary" if callback else "utter_booking_summary",
            buttons=buttons,
            **values,
        )
        return []


def confirmed_request(tracker: Tracker) -> BookingRequest:
    """Re-validate every slot: a request is only stored if it passes the form's own checks."""
    settings = load_settings()
    if tracker.get_slot("booking_consent") is not True:
        raise InvalidAnswer("consent")
    contact = validators.parse_contact(tracker.get_slot("booking_contact") or "", settings)
    if is_callback(tracker):
        return BookingRequest(
            name=validators.parse_name(tracker.get_slot("booking_name") or ""),
            contact=contact,
            contact_type=validators.contact_type(contact),
            preferred_date=now_at_clinic().date(),
            time_of_day="",
            scar="",
            kind=CALLBACK,
            question=validators.parse_question(tracker.get_slot("booking_question") or ""),
        )
    day = validators.check_day(
        date.fromisoformat(str(tracker.get_slot("booking_date"))), settings, now_at_clinic()
    )
    availability = stored_availability(tracker)
    if availability is not None and availability.earliest != day:
        availability = None  # the slots disagree: keep only the day the form checked
    return BookingRequest(
        name=validators.parse_name(tracker.get_slot("booking_name") or ""),
        contact=contact,
        contact_type=validators.contact_type(contact),
        preferred_date=day,
        time_of_day=validators.parse_time_of_day(tracker.get_slot("booking_time") or "", settings),
        scar=validators.parse_scar(tracker.get_slot("booking_scar") or ""),
        latest_date=availability.latest if availability else None,
        weekdays=",".join(availability.weekdays) if availability else "",
        flexible=availability.flexible if availability else False,
        availability=availability.words if availability else "",
        understood=availability.describe() if availability else readable(day),
    )


def schedule_delivery(reference: str) -> None:
    """Send the request to the clinic's booking system in the background, if one is set."""
    url = load_settings().booking_webhook_url
    store = get_store()
    row = store.get(reference)
    if url and row and row["delivered_at"] is None:
        task = asyncio.get_running_loop().create_task(deliver(store, url, row))
        _background_tasks.add(task)
        task.add_done_callback(_background_tasks.discard)


class ActionSubmitBooking(Action):
    """Stores the confirmed request (once), gives a reference, and forgets the details."""

    def name(self) -> str:
        """The action's name, as the domain and the stories write it."""
        return "action_submit_booking"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict[str, Any]
    ) -> list[EventType]:
        """Store the request once, start its delivery and give the reference."""
        try:
            request = confirmed_request(tracker)
        except (InvalidAnswer, TypeError, ValueError):
            dispatcher.utter_message(response="utter_booking_incomplete")
            return clear_booking()
        limit = deployment.current().max_requests_per_contact_per_day
        try:
            # Committed only while the Rasa server still waits for the answer: a visitor told
            # "couldn't finish" (the action server paused, then resumed) has sent nothing.
            reference, created = get_store().save(
                request, tracker.sender_id, limit, before_commit=deadline.check
            )
        except deadline.DeadlinePassed:
            raise  # the turn fails as a whole (HTTP 503 to Rasa): "yes" after recovery sends it once
        except ContactLimitReached:
            logger.warning("A booking request was refused: its contact details reached the daily limit.")
            dispatcher.utter_message(response="utter_booking_contact_limit")
            return clear_booking()
        except Exception as error:  # the visitor must hear about it; details stay out of logs
            logger.error("Could not store a booking request: %s", type(error).__name__)
            metrics.ACTIONS_DEPENDENCY_FAILURES.labels(dependency=metrics.DATABASE).inc()
            dispatcher.utter_message(response="utter_booking_failed")
            return clear_booking()
        logger.info("Booking request %s %s", reference, "stored" if created else "already stored")
        if created:
            metrics.REQUESTS_STORED.labels(kind=request.kind).inc()
        if request.kind == CALLBACK:
            when = reply_expected(load_settings(), datetime.now(load_settings().zone))
            dispatcher.utter_message(response="utter_callback_saved", reference=reference, reply_when=when)
            return [*clear_booking(), SlotSet(REFERENCE_SLOT, reference)]
        schedule_delivery(reference)
        dispatcher.utter_message(
            response="utter_booking_saved",
            reference=reference,
            contact_promise=contact_promise(request.contact),
        )
        return [*clear_booking(), SlotSet(REFERENCE_SLOT, reference)]


class ActionChangeBookingField(Action):
    """Empties the one answer the visitor wants to change ("change my date"), so the form asks again."""

    def name(self) -> str:
        """The action's name, as the domain and the stories write it."""
        return "action_change_booking_field"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict[str, Any]
    ) -> list[EventType]:
        """Empty the field the visitor wants to change, or ask which one."""
        field: str | None = next(tracker.get_latest_entity_values(FIELD_ENTITY), None)
        fields = CALLBACK_FIELDS if is_callback(tracker) else FIELDS
        if field not in fields:  # the summary that follows has a button per field
            dispatcher.utter_message(response="utter_ask_which_field")
            return []
        return [SlotSet(field, None)]


class ActionCancelBooking(Action):
    """Confirmed cancel: stop the form and drop everything the visitor typed into it."""

    def name(self) -> str:
        """The action's name, as the domain and the stories write it."""
        return "action_cancel_booking"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict[str, Any]
    ) -> list[EventType]:
        """Stop the form and forget the visitor's answers."""
        dispatcher.utter_message(response="utter_booking_cancelled")
        return [ActiveLoop(None), *clear_booking()]
