"""The FAQ topics: which one a message asks about, and the closest ones to suggest.

A topic is a key of the retrieval intent `faq` (e.g. `benefits`); its answer is the
response `utter_faq/<key>` and its button title is that response's `metadata.topic`.
"""

from __future__ import annotations

import json
from typing import Any

from common.names import RETRIEVAL_INTENT, TOPIC_ENTITY

MAX_SUGGESTIONS = 3
MIN_SUGGESTION_SCORE = 0.05


def response_name(key: str) -> str:
    """The domain response that answers topic `key`."""
    return f"utter_{RETRIEVAL_INTENT}/{key}"


def response_text(domain: dict[str, Any], name: str) -> str:
    """The text of the first variation of domain response `name`."""
    return domain["responses"][name][0]["text"]


def topic_title(domain: dict[str, Any], key: str) -> str | None:
    """The button title of topic `key`, or None if the domain has no such topic."""
    variations = domain.get("responses", {}).get(response_name(key))
    if not variations:
        return None
    return (variations[0].get("metadata") or {}).get("topic") or key


def topic_payload(key: str) -> str:
    """The message a topic button sends: the faq intent with the topic as entity."""
    return f"/{RETRIEVAL_INTENT}{json.dumps({TOPIC_ENTITY: key})}"


def asked_topic(message: dict[str, Any], domain: dict[str, Any]) -> str | None:
    """The topic a message asks about: a button's entity, else the ResponseSelector's pick."""
    for entity in message.get("entities") or []:
        if entity.get("entity") == TOPIC_ENTITY:
            key = str(entity.get("value"))
            return key if topic_title(domain, key) else None
    selected = (message.get("response_selector") or {}).get(RETRIEVAL_INTENT) or {}
    full_key = (selected.get("response") or {}).get("intent_response_key") or ""
    key = full_key.partition("/")[2]
    return key if key and topic_title(domain, key) else None


def closest_topics(message: dict[str, Any], domain: dict[str, Any]) -> list[str]:
    """Up to MAX_SUGGESTIONS topic keys, scored P(faq) x P(answer | faq), best first."""
    faq_confidence = next(
        (
            i.get("confidence", 0.0)
            for i in message.get("intent_ranking") or []
            if i.get("name") == RETRIEVAL_INTENT
        ),
        0.0,
    )
    selected = (message.get("response_selector") or {}).get(RETRIEVAL_INTENT) or {}
    scored = [
        (faq_confidence * r.get("confidence", 0.0), r.get("intent_response_key", "").partition("/")[2])
        for r in selected.get("ranking") or []
    ]
    keys = [
        key
        for score, key in sorted(scored, reverse=True)
        if score >= MIN_SUGGESTION_SCORE and topic_title(domain, key)
    ]
    return keys[:MAX_SUGGESTIONS]
