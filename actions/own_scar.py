"""A visitor describing their own scar gets the document's answer and a plain note after it.

"My scar is dark brown, will this help?" is answered from the document (its topic's answer),
not deflected as medical advice; then the visitor is told that only a clinician can assess
their own scar, with buttons to book a consultation or contact the team. Topics whose answer
already says to ask at a consultation (who it is for, how soon results show) need no note.
"""

from __future__ import annotations

import re

NOTE = "utter_own_scar_note"
# Topics about what a scar looks like and what the treatment improves: whether a visitor's own
# scar is such a scar, and whether the treatment suits it, is for a clinician to say.
ASSESSED_TOPICS = frozenset({"benefits", "poor_healing", "pih_causes", "what_is_pih"})
OWN = re.compile(r"\b(?:my|mine|i have|i've got|ive got|i got|i had)\b", re.IGNORECASE)


def speaks_of_own_scar(text: str) -> bool:
    """Whether a typed message speaks of the visitor's own scar or skin ("my scar", "i have")."""
    return not text.startswith("/") and bool(OWN.search(text))


def needs_note(text: str, topic: str) -> bool:
    """Whether the answer to `text` on `topic` should be followed by the clinician note."""
    return topic in ASSESSED_TOPICS and speaks_of_own_scar(text)
