"""Low confidence: a follow-up read in context, else the closest topics ("did you mean"), then the team.

Before offering topics, the first stage checks whether the unclear message leans on the last
answer ("why does it happen?" after "what is PIH?"). If it does and common/followup.py can
say what it asks, that answer is given (or "I don't have that information" for pain, price and
the like) and the fallback ends there. Without an earlier answer nothing changes, so a first
message is never guessed.

Two misunderstandings in a row ("Sorry, I didn't understand" or "Did you mean...?" answered with
another message the assistant cannot read) offer the way out instead of asking again: the
clinic's phone and e-mail, then a live chat if someone can take one now, else when the team
will reply to a message (actions/live_chat.py `offer`).
"""

from __future__ import annotations

from typing import Any

from rasa_sdk import Action, Tracker
from rasa_sdk.events import ActionExecuted, ActiveLoop, EventType, UserUtteranceReverted, UserUttered
from rasa_sdk.executor import CollectingDispatcher

from actions.faq import LAST_TOPIC_SLOT, answer
from actions.live_chat import offer
from actions.topics import closest_topics, response_text, topic_payload, topic_title
from common.followup import OUT_OF_SCOPE, refers_back, resolve

# Rasa's two-stage fallback treats this intent as "none of these" (then asks to rephrase).
NONE_OF_THESE_PAYLOAD = "/out_of_scope"
# The assistant's replies that mean it did not understand the visitor's message.
MISUNDERSTOOD = frozenset({"utter_ask_rephrase", "utter_did_you_mean"})


def misunderstood_last_turn(tracker: Tracker) -> bool:
    """Whether the assistant's reply to the visitor's previous message said it did not understand it.

    Reads the conversation as Rasa applies it (reverted turns left out): the responses sent
    between the previous message and the one being answered.
    """
    events = tracker.applied_events()
    users = [i for i, event in enumerate(events) if event.get("event") == "user"]
    if len(users) < 2:
        return False
    previous = events[users[-2] + 1 : users[-1]]
    return any(
        (event.get("metadata") or {}).get("utter_action") in MISUNDERSTOOD
        for event in previous
        if event.get("event") == "bot"
    )


def not_understood(dispatcher: CollectingDispatcher, tracker: Tracker) -> bool:
    """Ask to rephrase; the second time in a row, offer the clinic's team instead (True)."""
    if misunderstood_last_turn(tracker):
        dispatcher.utter_message(response="utter_still_not_understood")
        offer(dispatcher, tracker, notify=False)  # key-mashing is not a visitor asking for a person
        return True
    dispatcher.utter_message(response="utter_ask_rephrase")
    return False


def in_context(tracker: Tracker) -> str | None:
    """What an unclear message asks as a follow-up of the last answer (a topic, OUT_OF_SCOPE), or None."""
    last_topic = tracker.get_slot(LAST_TOPIC_SLOT)
    text = str((tracker.latest_message or {}).get("text") or "")
    if not last_topic or not text or text.startswith("/") or not refers_back(text):
        return None
    return resolve(text, last_topic)


def suggestion_buttons(message: dict[str, Any], domain: dict[str, Any]) -> list[dict[str, str]]:
    """Buttons for the closest topics; empty when no topic is close enough."""
    return [
        {"title": topic_title(domain, key) or key, "payload": topic_payload(key)}
        for key in closest_topics(message, domain)
    ]


class ActionDefaultAskAffirmation(Action):
    """First stage of Rasa's two-stage fallback: "Did you mean one of these?"."""

    def name(self) -> str:
        """The action's name, as the domain and the stories write it."""
        return "action_default_ask_affirmation"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict[str, Any]
    ) -> list[EventType]:
        """Read a follow-up in context; else offer the closest topics as buttons, or ask to rephrase."""
        topic = in_context(tracker)
        if topic == OUT_OF_SCOPE:
            dispatcher.utter_message(response="utter_out_of_scope")
            return [ActiveLoop(None)]
        if topic:  # answered: the fallback is over (its loop ends here)
            return [*(await answer(dispatcher, tracker, domain, topic)), ActiveLoop(None)]
        buttons = suggestion_buttons(tracker.latest_message, domain)
        if not buttons:  # nothing close: ask again, or (the second time) offer the team and end here
            return [ActiveLoop(None)] if not_understood(dispatcher, tracker) else []
        buttons.append(
            {"title": response_text(domain, "utter_something_else"), "payload": NONE_OF_THESE_PAYLOAD}
        )
        dispatcher.utter_message(response="utter_did_you_mean", buttons=buttons)
        return []


def typed_out_of_scope(message: dict[str, Any]) -> bool:
    """Whether the visitor typed a question the document does not answer (not the "Something else" button).

    Rasa's two-stage fallback reads the out_of_scope intent as "none of these"; a price or
    pain question typed instead of choosing a topic has that intent too, and must get "I don't
    have that information", not "Sorry, I didn't understand that".
    """
    text = str(message.get("text") or "")
    intent = str((message.get("intent") or {}).get("name") or "")
    return intent == OUT_OF_SCOPE and bool(text.strip()) and not text.startswith("/")


class ActionDefaultAskRephrase(Action):
    """Second stage of Rasa's two-stage fallback: ask to rephrase after "Something else"."""

    def name(self) -> str:
        """The action's name, as the domain and the stories write it."""
        return "action_default_ask_rephrase"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict[str, Any]
    ) -> list[EventType]:
        """Ask to rephrase; a typed out-of-scope question ends the fallback and is answered as one."""
        message = dict(tracker.latest_message or {})
        if not typed_out_of_scope(message):
            dispatcher.utter_message(response="utter_ask_rephrase")
            return []
        # As Rasa does when the visitor clarifies: end the loop and replay the message, so
        # the rules answer it ("I don't have that information") and a "yes" books.
        parse = {**message, "intent": {**message["intent"], "confidence": 1.0}}
        return [
            ActiveLoop(None),
            UserUtteranceReverted(),
            ActionExecuted("action_listen"),
            UserUttered(str(message.get("text")), parse, input_channel=tracker.get_latest_input_channel()),
        ]


class ActionDefaultFallback(Action):
    """Last stage: the assistant cannot help, so it offers the clinic's team."""

    def name(self) -> str:
        """The action's name, as the domain and the stories write it."""
        return "action_default_fallback"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict[str, Any]
    ) -> list[EventType]:
        """Offer the clinic's team (a person now, or a message) and forget the message."""
        dispatcher.utter_message(response="utter_default")
        offer(dispatcher, tracker)
        return [UserUtteranceReverted()]


class ActionNotUnderstood(Action):
    """A message with no words the assistant can read (intent `unclear`): ask again, or offer the team."""

    def name(self) -> str:
        """The action's name, as the domain and the rules write it."""
        return "action_not_understood"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict[str, Any]
    ) -> list[EventType]:
        """Ask to rephrase, or after a misunderstanding just before, offer the clinic's team."""
        not_understood(dispatcher, tracker)
        return []
