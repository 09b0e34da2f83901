"""Questions that refer back to the last answer: "will it help with that?", "and for men?".

The classifier recognises such a message as `faq_followup` (it names no topic of its own);
this module decides which answer it asks for, from what kind of question it is and what the
last answer was about. "It" after an answer about the treatment is the treatment; after one
about darkening (PIH) it is PIH; after one about scars, scars. Kinds are tried in order; a
question about pain, price, sessions or side effects is never answered from the document.
Without a previous answer, "it" is the treatment (what the assistant is about).
"""

from __future__ import annotations

import re

OUT_OF_SCOPE = "out_of_scope"
TREATMENT, SCARS, PIH = "treatment", "scars", "pih"
# What each topic's answer is about.
SUBJECT = {
    "what_is": TREATMENT,
    "how_it_works": TREATMENT,
    "results_time": TREATMENT,
    "who_for": TREATMENT,
    "benefits": TREATMENT,
    "what_is_scar": SCARS,
    "poor_healing": SCARS,
    "what_is_pih": PIH,
    "pih_causes": PIH,
}
# "Tell me more": the answer that naturally comes next.
NEXT = {
    "what_is": "how_it_works",
    "how_it_works": "results_time",
    "results_time": "benefits",
    "benefits": "who_for",
    "who_for": "benefits",
    "what_is_scar": "poor_healing",
    "poor_healing": "what_is_pih",
    "what_is_pih": "pih_causes",
    "pih_causes": "benefits",
}
_NOT_IN_DOCUMENT = re.compile(
    r"\b(hurt|hurts|pain|painful|sore|side ?effects?|risks?|safe|price|prices|cost|costs|how much|pay"
    r"|sessions?|how many|downtime|recovery|permanent|last)\b"
)
_SCAR_TYPES = re.compile(
    r"\b(mastectom\w*|c-? ?section|caesarean|cesarean|(?:surgery|surgical|operation|op) scars?|reconstruction"
    r"|knee|appendix|hernia|hysterectom\w*|gall ?bladder|thyroid|lumpectom\w*|tummy tuck|hip replacement"
    r"|burns?|acne|men|man|guys?|women|woman|ladies|for me|suit\w*|right for|candidate|anyone"
    r"|everyone|who)\b"
)
_DARKENING = re.compile(r"\b(dark\w*|pigment\w*|brown|discolou?r\w*|pih)\b")
# (kind, pattern): the first that matches decides.
_KINDS: list[tuple[str, re.Pattern[str]]] = [
    ("who", _SCAR_TYPES),
    (
        "time",
        re.compile(
            r"\b(how long|how soon|how quick\w*|how fast|when (?:will|would)|until i see|till i see|before it"
            r"|starts? (?:to )?work\w*)\b"
        ),
    ),
    ("why", re.compile(r"\b(why|causes?|what makes|how come|reasons?|happen\w*)\b")),
    (
        "help",
        re.compile(
            r"\b(help\w*|fix\w*|treat\w*|improv\w*|good for|do (?:anything|something) (?:about|for)"
            r"|anything you can do|can be done|get rid|lighten|fade|work on|work for|better|benefits?)\b"
        ),
    ),
    (
        "how",
        re.compile(
            r"\b(how does (?:it|that|this) work|how do(?:es)? (?:it|that|they) (?:work|do)|how is it done"
            r"|mechanism|work how)\b|^(?:and )?how\b"
        ),
    ),
    (
        "what",
        re.compile(
            r"\b(what(?:'s| is) (?:it|that|this)(?: called| exactly)?|what does (?:it|that) mean"
            r"|what do (?:you|they|people) call"
            r"|called|meaning|exactly|same as a scar|the same as)\b"
        ),
    ),
    ("more", re.compile(r"\b(more|else|go on|continue|elaborate|details?)\b")),
]


_REFERS_BACK = re.compile(
    r"\b(it|its|it's|that|that's|this|those|these|them|they|there|more|else|mine)\b"
    r"|^(and|so|but|what about|how about|then)\b"
)
SHORT_WORDS = 3


def refers_back(text: str) -> bool:
    """Whether a message leans on what was said before ("and for men?", "why does it happen?")."""
    words = " ".join(text.lower().replace("’", "'").split())
    return bool(_REFERS_BACK.search(words)) or len(words.split()) <= SHORT_WORDS


def kind_of(text: str) -> str | None:
    """Which kind of follow-up the text is ("who", "time", "why"...), or None."""
    words = " ".join(text.lower().replace("’", "'").split())
    if _NOT_IN_DOCUMENT.search(words):
        return OUT_OF_SCOPE
    return next((kind for kind, pattern in _KINDS if pattern.search(words)), None)


def resolve(text: str, last_topic: str | None) -> str | None:
    """The topic a follow-up asks about given the last answer's topic; OUT_OF_SCOPE; or None (unclear)."""
    kind = kind_of(text)
    if kind is None or kind == OUT_OF_SCOPE:
        return kind
    subject = SUBJECT.get(last_topic or "", TREATMENT)
    if _DARKENING.search(text.lower()):
        subject = PIH
    if kind == "who":
        return "who_for"
    if kind == "time":
        return "results_time" if subject == TREATMENT else OUT_OF_SCOPE
    if kind == "why":
        return {TREATMENT: "how_it_works", SCARS: "poor_healing", PIH: "pih_causes"}[subject]
    if kind == "how":
        return {TREATMENT: "how_it_works", SCARS: "what_is_scar", PIH: "pih_causes"}[subject]
    if kind == "what":
        if "scar" in text.lower() and subject == PIH:
            return "what_is_scar"
        return {TREATMENT: "what_is", SCARS: "what_is_scar", PIH: "what_is_pih"}[subject]
    if kind == "help":
        return "benefits"
    return NEXT.get(last_topic or "", "how_it_works")  # "more"
