"""A visitor's contact details (an e-mail address or a phone number) and the answers that cannot be accepted.

Shared by the booking form (actions/booking/validators.py), which checks what a visitor types,
and the console (staff/service/bookings.py), which checks a contact staff type to erase its
requests, so both read "07911 123456" and "+44 7911 123456" alike.
"""

from __future__ import annotations

import re

import phonenumbers

from common.clinic import ClinicSettings

_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s.]+$")


class InvalidAnswer(ValueError):
    """An answer the form cannot accept; `reason` names the response that explains why."""

    def __init__(self, reason: str, **details: str) -> None:
        super().__init__(reason)
        self.reason = reason
        self.details = details


def normalise_spaces(text: str) -> str:
    """Text with each run of whitespace made one space."""
    return " ".join(str(text).split())


def parse_contact(text: str, settings: ClinicSettings) -> str:
    """An email (domain lowercased) or a phone number (E.164) for the clinic's country.

    A number libphonenumber calls possible but not valid (the right length, an unusual prefix,
    e.g. "07911 654321") is accepted: the summary reads it back for the visitor to check
    (`phone_needs_checking`), rather than refusing a number the visitor knows is theirs.
    """
    contact = normalise_spaces(text)
    if "@" in contact:
        local, _, domain = contact.replace(" ", "").rpartition("@")
        email = f"{local}@{domain.lower()}"
        if len(email) > 254 or not _EMAIL.match(email):
            raise InvalidAnswer("email")
        return email
    try:
        number = phonenumbers.parse(contact, settings.country)
    except phonenumbers.NumberParseException as error:
        raise InvalidAnswer("phone") from error
    possible = phonenumbers.is_possible_number_with_reason(number)
    if possible != phonenumbers.ValidationResult.IS_POSSIBLE:  # too short, too long, local-only
        raise InvalidAnswer("phone")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def phone_needs_checking(contact: str, settings: ClinicSettings) -> bool:
    """Whether a stored phone number is possible but not a valid one (the visitor should check it)."""
    if contact_type(contact) != "phone":
        return False
    try:
        return not phonenumbers.is_valid_number(phonenumbers.parse(contact, settings.country))
    except phonenumbers.NumberParseException:
        return True


def readable_phone(contact: str, settings: ClinicSettings) -> str:
    """A stored number as the visitor would write it: national format at home, else international."""
    try:
        number = phonenumbers.parse(contact, settings.country)
    except phonenumbers.NumberParseException:
        return contact
    home = number.country_code == phonenumbers.country_code_for_region(settings.country)
    style = phonenumbers.PhoneNumberFormat.NATIONAL if home else phonenumbers.PhoneNumberFormat.INTERNATIONAL
    formatted = phonenumbers.format_number(number, style)
    if not phonenumbers.is_valid_number(number):  # no known layout: the digits as they are
        national = str(number.national_number)
        formatted = f"0{national}" if home else f"+{number.country_code} {national}"
    return formatted


def contact_type(contact: str) -> str:
    """Whether the contact is an "email" or a "phone" number."""
    return "email" if "@" in contact else "phone"
