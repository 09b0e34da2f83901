"""A person from the clinic, live: the offer, the request, and "leave a message" when nobody can.

The offer follows "can I talk to someone?", the "Contact the team" button and the last stage of
the fallback. Live chat is offered only during the clinic's live-chat hours (clinic.yml's
`opening_hours`, less days marked without live chat, in the clinic's time zone) while at least
one staff member is available on the console's Live page and the queue is not full
(common/records/live_chat.py `reach`, which the Live page shows staff); otherwise the visitor is offered
to leave a message,
and told when to expect a reply. A request pauses the conversation (Rasa's ConversationPaused:
the assistant stays silent, visitor messages are still stored) until staff hand it back; the
Rasa server's live chat routes (channels/live.py) do the rest.

A script must not fill the staff's queue with fake visitors: each client address may ask
LIVE_CHAT_REQUESTS_PER_ADDRESS_PER_HOUR / _PER_DAY times (common/settings.py; counted with the
chat's flood limiter, in Redis in the production profile, under the keyed hash of the address
the channels pass as VISITOR_KEY), and at most clinic.yml's `live_chat_max_waiting` visitors
wait at once. Beyond either, the visitor hears what a visitor nobody took in time hears: nobody
is free right now, leave a message or call.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from rasa_sdk import Action, Tracker
from rasa_sdk.events import ConversationPaused, EventType, SlotSet
from rasa_sdk.executor import CollectingDispatcher

from channels.rate_limits import live_chat_limits, rate_limiter
from common import conversation_ids, deadline
from common import settings as deployment
from common.clinic import ClinicSettings, load_settings
from common.names import LIVE_CHAT_MISSED, VISITOR_KEY
from common.records import live_chat, notifications
from common.records.live_chat import reply_expected

logger = logging.getLogger(__name__)

KIND_SLOT = "booking_kind"
CALLBACK = "callback"
SOCKET_CHANNEL = "socketio"  # Rasa's name of the widget's channel (channels/guarded.py)


def reach_now(
    clinic: ClinicSettings, moment: datetime, tracker: Tracker, queue: bool = True
) -> live_chat.Reach:
    """Whether someone can chat now: the web widget, and `live_chat.reach` (what the Live page shows).

    Only the widget (socket.io) can receive staff messages as they are sent; a REST client
    is offered to leave a message, as is everyone while the database cannot be read.
    """
    if tracker.get_latest_input_channel() != SOCKET_CHANNEL:
        return live_chat.Reach(False)
    try:
        return live_chat.reach(live_chat.engine(deployment.current().database_url), clinic, moment, queue)
    except Exception as error:  # the database is down: no live chat, but a message can still be left
        logger.error("Could not read staff availability: %s", type(error).__name__)
        return live_chat.Reach(False)


def live_chat_possible(clinic: ClinicSettings, moment: datetime, tracker: Tracker) -> bool:
    """Whether a person is offered now (see reach_now)."""
    return reach_now(clinic, moment, tracker).offered


def tell_staff_nobody_available(reach: live_chat.Reach, conversation_id: str) -> None:
    """Within live-chat hours with nobody on the Live page: queue the e-mail staff chose for it.

    One per conversation, and at most one per staff member every few minutes
    (notifications.LIVE_CHAT_QUIET). Queuing is one short insert; a failure is logged and
    the visitor's turn goes on.
    """
    if reach.why != live_chat.NOBODY_AVAILABLE:
        return
    try:
        config = deployment.current()
        handle = conversation_ids.handle(conversation_id, config.live_chat_key())
        with live_chat.engine(config.database_url).begin() as db:
            notifications.enqueue(
                db,
                notifications.LIVE_CHAT,
                handle,
                f"/conversations/view?id={handle}",
                quiet=notifications.LIVE_CHAT_QUIET,
            )
    except Exception as error:  # e-mail must never fail the visitor's turn
        logger.error(
            "Could not queue the e-mail about a visitor asking for a person: %s", type(error).__name__
        )


def unavailable(dispatcher: CollectingDispatcher, clinic: ClinicSettings, moment: datetime) -> None:
    """Nobody can chat: offer to leave a message, with the hours live chat is offered in brackets."""
    hours = clinic.hours
    if clinic.live_chat_hours != hours:
        hours = f"live chat {clinic.live_chat_hours}" if clinic.live_chat_hours else "no live chat"
    dispatcher.utter_message(
        response="utter_live_chat_unavailable", reply_when=reply_expected(clinic, moment), clinic_hours=hours
    )


def offer(dispatcher: CollectingDispatcher, tracker: Tracker, notify: bool = True) -> None:
    """Offer a live chat if someone can take it now, else offer to leave a message.

    `notify` False: staff are not e-mailed that a visitor asked for a person (the visitor did
    not ask: the assistant offers the team after two messages it could not read).
    """
    clinic = load_settings()
    moment = live_chat.now()
    reach = reach_now(clinic, moment, tracker)
    if reach.offered:
        dispatcher.utter_message(response="utter_live_chat_offer")
    else:
        if notify:
            tell_staff_nobody_available(reach, tracker.sender_id)
        unavailable(dispatcher, clinic, moment)


def busy(dispatcher: CollectingDispatcher, clinic: ClinicSettings, moment: datetime) -> list[EventType]:
    """Nobody is free right now: offer to leave a message (as to a visitor nobody took in time)."""
    dispatcher.utter_message(response=LIVE_CHAT_MISSED, reply_when=reply_expected(clinic, moment))
    return []


class ActionOfferLiveChat(Action):
    """After the clinic's contact details: chat with someone now, or leave a message."""

    def name(self) -> str:
        """The action's name, as the domain and the rules write it."""
        return "action_offer_live_chat"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict[str, Any]
    ) -> list[EventType]:
        """Offer whichever is possible now."""
        offer(dispatcher, tracker)
        return []


class ActionRequestLiveChat(Action):
    """The visitor said yes: queue the conversation for the team and let the assistant fall silent."""

    def name(self) -> str:
        """The action's name, as the domain and the rules write it."""
        return "action_request_live_chat"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict[str, Any]
    ) -> list[EventType]:
        """Queue and pause, or (nobody available any more) offer to leave a message."""
        clinic = load_settings()
        moment = live_chat.now()
        # The queue's cap is checked as the request joins it (live_chat.request), in one statement.
        reach = reach_now(clinic, moment, tracker, queue=False)
        if not reach.offered:
            tell_staff_nobody_available(reach, tracker.sender_id)
            unavailable(dispatcher, clinic, moment)
            return []
        deadline.check()  # too late to tell the visitor they are queued: count and queue nothing
        config = deployment.current()
        key = (tracker.latest_message.get("metadata") or {}).get(VISITOR_KEY)
        if not await rate_limiter(config).allow(
            live_chat_limits(config, str(key or f"conversation:{tracker.sender_id}"))
        ):
            logger.warning("Refused a live chat request: too many from one address.")
            return busy(dispatcher, clinic, moment)
        try:
            queued = live_chat.request(
                live_chat.engine(config.database_url), tracker.sender_id, clinic.live_chat_max_waiting
            )
        except Exception as error:
            logger.error("Could not queue a live chat: %s", type(error).__name__)
            unavailable(dispatcher, clinic, moment)
            return []
        if queued is None:
            logger.warning("Refused a live chat request: the queue is full.")
            return busy(dispatcher, clinic, moment)
        logger.info("A visitor asked for a live chat.")
        minutes = clinic.live_chat_wait_minutes
        wait = f"{minutes:g} minute{'s' if minutes != 1 else ''}" if minutes >= 1 else "a moment"
        dispatcher.utter_message(response="utter_live_chat_waiting", wait=wait)
        return [ConversationPaused()]


class ActionOfferCallback(Action):
    """Leave a message: the consultation form's name, contact and consent questions, and the question."""

    def name(self) -> str:
        """The action's name, as the domain and the rules write it."""
        return "action_offer_callback"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict[str, Any]
    ) -> list[EventType]:
        """Say what happens and make the form a callback request."""
        dispatcher.utter_message(response="utter_callback_intro")
        return [SlotSet(KIND_SLOT, CALLBACK)]


class ActionAskBookingConsent(Action):
    """The form's consent question: about the consultation, or about answering the message."""

    def name(self) -> str:
        """The action's name: Rasa asks the form's booking_consent question with it."""
        return "action_ask_booking_consent"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict[str, Any]
    ) -> list[EventType]:
        """Ask the consent question that fits what the form collects."""
        callback = tracker.get_slot(KIND_SLOT) == CALLBACK
        name = "utter_ask_callback_consent" if callback else "utter_ask_booking_consent"
        dispatcher.utter_message(response=name)
        return []
