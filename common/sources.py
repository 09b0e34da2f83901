"""Where an answer comes from ("Where is this from?"): the document sentences behind each FAQ answer.

An answer taken from the document is sent with a custom payload naming the document and
quoting the sentences it rests on (SOURCE_KEY); the widget shows them behind a "Where is this
from?" button, a REST client reads them from the message's `custom`. The sentences are found by
the grounding check's own matching (common/grounding.py `Checker.support`), once per answer
wording and kept for the process: at start-up for every answer in domain/ (servers/actions.py
calls `warm` before serving: about 5 s, most of it loading MiniLM), and the first time a newly
published wording arrives with Rasa's domain (about 0.1 s, in a worker thread). So an answer
staff edit gets its own sentences, and an answer the check would refuse gets none (no button
rather than a wrong source). Any failure here costs the source, never the answer.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from functools import lru_cache
from typing import Any

from common.grounding import Checker, read_wording
from common.names import FAQ_RESPONSE_PREFIX
from common.paths import APPROVED_WORDING, DOCUMENT

logger = logging.getLogger(__name__)

# The custom payload's key, and the document's name as visitors see it.
SOURCE_KEY = "source"
DOCUMENT_TITLE = "Non-surgical Scar Revision (Scar Relaxation)"

_lock = threading.Lock()  # one MiniLM encoding at a time; the cache is filled under it
_support: dict[str, tuple[str, ...]] = {}


@lru_cache(maxsize=1)
def checker() -> Checker:
    """The grounding check of the document and approved wording this server was installed with."""
    return Checker.cached(DOCUMENT.read_text(encoding="utf-8"), read_wording(APPROVED_WORDING))


def support(answer: str) -> tuple[str, ...]:
    """The document's sentences behind an answer's wording (empty: none can be shown)."""
    with _lock:
        if answer not in _support:
            try:
                _support[answer] = checker().support(answer)
            except Exception as error:  # no source, but the answer still goes out
                logger.error("Could not find where an answer comes from: %s", type(error).__name__)
                _support[answer] = ()  # not tried again on every message (a restart tries again)
        return _support[answer]


def answer_texts(domain: dict[str, Any]) -> list[str]:
    """The wording of every FAQ answer (each variation) in a domain."""
    return [
        str(variation.get("text") or "")
        for name, variations in (domain.get("responses") or {}).items()
        if name.startswith(FAQ_RESPONSE_PREFIX)
        for variation in variations or []
    ]


def warm(domain: dict[str, Any]) -> None:
    """Find the sources of a domain's answers now (at start-up), not while a visitor waits."""
    for text in answer_texts(domain):
        support(text)


def payload(sentences: tuple[str, ...]) -> dict[str, Any]:
    """The custom payload of an answer with a source: the document's name and the sentences quoted."""
    return {SOURCE_KEY: {"document": DOCUMENT_TITLE, "sentences": list(sentences)}}


async def source_of(domain: dict[str, Any], response: str) -> dict[str, Any] | None:
    """The payload for domain response `response` (None: no source to show).

    A response with several variations gets one only when they all rest on the same sentences
    (Rasa picks the variation after this runs).
    """
    variations = (domain.get("responses") or {}).get(response) or []
    texts = {str(v.get("text") or "") for v in variations}
    if not texts:
        return None
    found = {await asyncio.to_thread(support, text) for text in texts}
    sentences = found.pop() if len(found) == 1 else ()
    return payload(sentences) if sentences else None
