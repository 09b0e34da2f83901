"""Names the assistant's parts share: the FAQ retrieval intent and Rasa's own defaults.

Rasa's default intents and actions are taken from Rasa's constants, so a Rasa upgrade
cannot leave a hand-written copy behind.
"""

from __future__ import annotations

from rasa.shared.constants import DEFAULT_NLU_FALLBACK_INTENT_NAME
from rasa.shared.core.constants import (
    ACTION_TWO_STAGE_FALLBACK_NAME,
    DEFAULT_ACTION_NAMES,
    DEFAULT_INTENTS,
)

# The retrieval intent of the FAQ: questions are `faq/<key>`, answers `utter_faq/<key>`.
RETRIEVAL_INTENT = "faq"
FAQ_RESPONSE_PREFIX = f"utter_{RETRIEVAL_INTENT}/"
# The button payload's entity naming an FAQ topic, e.g. /faq{"faq_topic": "benefits"}.
TOPIC_ENTITY = "faq_topic"

FALLBACK_INTENT = DEFAULT_NLU_FALLBACK_INTENT_NAME
RASA_INTENTS = frozenset(DEFAULT_INTENTS)
RASA_ACTIONS = frozenset(DEFAULT_ACTION_NAMES)
TWO_STAGE_FALLBACK = ACTION_TWO_STAGE_FALLBACK_NAME
# Responses Rasa's two-stage fallback and default fallback send by themselves.
RASA_RESPONSES = frozenset({"utter_ask_rephrase", "utter_default"})
# The reply to urgent symptoms: staff's review counts it (staff/service/review.py), the Rasa server's
# figures count the turn as urgent (servers/monitoring.py).
URGENT_REPLY = "utter_urgent"
# Set by the erase action; the tracker store then deletes the conversation (servers/tracker_store.py).
ERASE_SLOT = "erase_conversation"
# Sent by the channels to a visitor whose turn failed (a fault, not their doing).
TROUBLE_RESPONSE = "utter_chat_trouble"
# Sent by the Rasa server's live chat routes (channels/live.py): a person joined, left or closed
# the chat, or nobody took it in time.
LIVE_CHAT_JOINED = "utter_live_chat_joined"
LIVE_CHAT_MISSED = "utter_live_chat_missed"
LIVE_CHAT_ENDED = {"returned": "utter_live_chat_returned", "closed": "utter_live_chat_closed"}
# Responses the chat channels send by themselves (channels/guarded.py, channels/live.py).
CHANNEL_RESPONSES = frozenset(
    {TROUBLE_RESPONSE, LIVE_CHAT_JOINED, LIVE_CHAT_MISSED, *LIVE_CHAT_ENDED.values()}
)
# The REST reply header carrying the conversation id the server issued (channels/guarded.py);
# a client sends that id back as `sender` to continue the conversation.
CONVERSATION_HEADER = "X-Conversation-Id"
# The message metadata key in which the chat channels (channels/guarded.py) pass the action
# server a keyed, daily-changing hash of the client's address (never the address itself), so
# live chat requests can be limited per address (actions/live_chat.py).
VISITOR_KEY = "visitor_key"
