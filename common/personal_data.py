"""Personal data in a visitor's words: found before anything becomes training data or history.

The inbox (staff/service/inbox.py), `clinic-review merge` (staff/service/review.py) and the stories
made from conversations (staff/service/stories.py) screen a visitor's message with `Screen`:
emails, phone numbers (libphonenumber, for the clinic's country), dates (a date of birth is
one), self-introductions ("my name is Anna", "I'm Anna") and the words of any stored request
(the names, contacts and free text that visitors gave the booking and leave-a-message forms).
`Screen.reason` says in plain words why a message cannot be added; `Screen.scrub` replaces
what it finds with example values (for stories, which keep the visitor's turns).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field

import phonenumbers

EMAIL = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")
# Seven digits or more, with the usual separators, are a phone number whatever the country.
PHONE_LIKE = re.compile(r"\+?\(?\d[\d ()./-]{4,}\d")
MIN_PHONE_DIGITS = 7
_MONTH = (
    r"(?:jan(?:uary)?|feb(?:ruary)?|mar(?:ch)?|apr(?:il)?|may|june?|july?|aug(?:ust)?|"
    r"sep(?:t(?:ember)?)?|oct(?:ober)?|nov(?:ember)?|dec(?:ember)?)"
)
DATE = re.compile(
    rf"""\b(?:
        \d{{1,2}}[/.-]\d{{1,2}}[/.-]\d{{2,4}}                       # 03/04/1990, 3.4.90
      | \d{{4}}-\d{{1,2}}-\d{{1,2}}                                 # 1990-04-03
      | \d{{1,2}}(?:st|nd|rd|th)?\s+(?:of\s+)?{_MONTH}\b(?:,?\s+\d{{2,4}})?   # 3rd of April 1990
      | {_MONTH}\s+\d{{1,2}}(?:st|nd|rd|th)?\b(?:,?\s+\d{{2,4}})?   # April 3rd, 1990
      | {_MONTH}\s+(?:19|20)\d{{2}}                                 # April 1990
      | (?:born|birthday|date\s+of\s+birth|d\.?o\.?b\.?)\b          # "I was born in ..."
    )""",
    re.IGNORECASE | re.VERBOSE,
)
# "my name is Anna", "I'm called Anna", "call me Anna": whatever follows is a name.
NAMED = re.compile(
    r"\b(?:my\s+name\s+is|my\s+name's|name\s*:|i\s+am\s+called|i'm\s+called|im\s+called|call\s+me)"
    r"\s+([^\W\d_]+(?:\s+(?-i:[A-Z])[^\W\d_]*)?)",
    re.IGNORECASE,
)
# "I'm Anna", "I am Anna", "this is Anna": a name only when it is written with a capital.
INTRODUCED = re.compile(
    r"\b(?:[Ii]'m|[Ii]’m|[Ii] am|[Tt]his is|[Ii]t's|[Hh]i,? [Ii]'m)\s+([A-Z][a-z]+(?:\s+[A-Z][a-z]+)?)\b"
)
# Capitalised words after "I'm" that are not names.
NOT_NAMES = frozenset(
    """
    a an the not so very really just also still sure glad happy sorry worried scared afraid
    interested looking wondering thinking hoping trying going getting asking calling writing
    pregnant breastfeeding allergic diabetic concerned confused unsure nervous anxious
    curious okay ok fine good well here there new back free available able unable over under
    english british from in at on with to if when after before later tomorrow today tonight
    please asap now and or about back anytime any""".split()
)
MIN_PHRASE_CHARS = 8  # a stored free text shorter than this ("acne") is too common to screen for
MIN_NAME_CHARS = 3
# Example values a story keeps in place of what was found (the same kinds a booking answer gets).
EXAMPLE_EMAIL, EXAMPLE_PHONE, EXAMPLE_DATE, EXAMPLE_NAME = (
    "sam.taylor@example.com",
    "07700 900123",
    "next Tuesday",
    "Sam",
)

REFUSED = "This question contains {what}; it cannot be added to the assistant's examples"
WHAT = {
    "email": "what looks like an email address",
    "phone": "what looks like a phone number",
    "date": "what looks like a date (such as a date of birth)",
    "name": "what looks like someone's name",
    "request": (
        "details a visitor gave in a consultation request or a message for the team "
        "(such as their name, contact details or a description of their scar)"
    ),
}


def words(text: str) -> str:
    """Lower-case words separated by single spaces, without punctuation (for comparing texts)."""
    return " ".join(re.sub(r"[^\w@.+]+", " ", text.lower().replace("'", "").replace("’", "")).split())


def digits(text: str) -> str:
    """The digits of a text, in order."""
    return "".join(c for c in text if c.isdigit())


@dataclass(frozen=True)
class Screen:
    """What counts as personal data here: the clinic's country and the stored requests' words."""

    country: str = "GB"
    names: frozenset[str] = frozenset()  # lower-case names and name parts of stored requests
    phrases: frozenset[str] = frozenset()  # stored contacts and free texts, as `words` gives them
    numbers: frozenset[str] = field(default=frozenset())  # stored phone numbers' national digits

    @classmethod
    def of(cls, country: str, requests: Iterable[dict[str, object]]) -> Screen:
        """A screen for these stored requests (rows with name, contact, scar, question, availability)."""
        names: set[str] = set()
        phrases: set[str] = set()
        numbers: set[str] = set()
        for row in requests:
            name = words(str(row.get("name") or ""))
            if len(name) >= MIN_NAME_CHARS:
                names.add(name)
                names.update(part for part in name.split() if len(part) >= MIN_NAME_CHARS)
            contact = str(row.get("contact") or "")
            if "@" in contact:
                phrases.add(contact.lower())
            elif contact:
                numbers.add(_national_digits(contact, country))
            for column in ("scar", "question", "availability"):
                text = words(str(row.get(column) or ""))
                if len(text) >= MIN_PHRASE_CHARS:
                    phrases.add(text)
        return cls(country, frozenset(names), frozenset(phrases), frozenset(n for n in numbers if n))

    def kinds(self, text: str) -> list[str]:
        """The kinds of personal data found in `text` (email, date, phone, name, request), in that order."""
        found = []
        if EMAIL.search(text):
            found.append("email")
        if DATE.search(text):
            found.append("date")
        if self._phones(DATE.sub(" ", text)):
            found.append("phone")
        if self._introduced(text):
            found.append("name")
        if self._stored(text):
            found.append("request")
        return found

    def reason(self, text: str) -> str | None:
        """Why `text` cannot become a training example, in the editor's words (None: it can)."""
        found = self.kinds(text)
        return REFUSED.format(what=WHAT[found[0]]) if found else None

    def scrub(self, text: str) -> str:
        """`text` with what `kinds` finds replaced by example values (a stored free text: removed)."""
        text = DATE.sub(EXAMPLE_DATE, EMAIL.sub(EXAMPLE_EMAIL, text))
        for start, end in sorted(self._phones(text), reverse=True):
            text = text[:start] + EXAMPLE_PHONE + text[end:]
        for match in sorted(self._introduced(text), key=lambda m: m.start(), reverse=True):
            text = text[: match.start(1)] + EXAMPLE_NAME + text[match.end(1) :]
        if self._stored(text):
            kept = words(text)
            for name in sorted(self.names, key=len, reverse=True):
                kept = re.sub(rf"\b{re.escape(name)}\b", EXAMPLE_NAME.lower(), kept)
            for phrase in sorted(self.phrases, key=len, reverse=True):
                kept = kept.replace(phrase, "my scar")
            text = kept
        return text

    def _phones(self, text: str) -> list[tuple[int, int]]:
        spans = [
            (m.start, m.end)
            for m in phonenumbers.PhoneNumberMatcher(text, self.country, leniency=phonenumbers.Leniency.VALID)
        ]
        spans += [
            m.span()
            for m in PHONE_LIKE.finditer(text)
            if len(digits(m[0])) >= MIN_PHONE_DIGITS and not any(s <= m.start() < e for s, e in spans)
        ]
        return spans

    def _introduced(self, text: str) -> list[re.Match[str]]:
        found = [m for m in NAMED.finditer(text) if m[1].split()[0].lower() not in NOT_NAMES]
        found += [m for m in INTRODUCED.finditer(text) if m[1].lower() not in NOT_NAMES]
        return found

    def _stored(self, text: str) -> bool:
        said = words(text)
        padded = f" {said} "
        if any(f" {name} " in padded for name in self.names):
            return True
        if any(
            phrase in said or (len(said) >= MIN_PHRASE_CHARS and said in phrase) for phrase in self.phrases
        ):
            return True
        said_digits = digits(text)
        return any(number in said_digits for number in self.numbers if len(number) >= MIN_PHONE_DIGITS)


def _national_digits(contact: str, country: str) -> str:
    """A stored phone number's national digits (as a visitor would type them, without the 0)."""
    try:
        return str(phonenumbers.parse(contact, country).national_number)
    except phonenumbers.NumberParseException:
        return digits(contact)
