"""What the chat channels pass on to Rasa from what a visitor typed."""

from __future__ import annotations

import asyncio

import pytest

from channels.guarded import MAX_MESSAGE_CHARS, clean_text, trouble_text
from channels.rate_limits import LocalRateLimiter
from common.clinic import load_settings


@pytest.mark.parametrize(
    "typed, passed_on",
    [
        ("/affirm", "/affirm"),
        ('/faq{"faq_topic":"benefits"}', '/faq{"faq_topic": "benefits"}'),
        (
            '/change_booking_field{"booking_field": "booking_date"}',
            '/change_booking_field{"booking_field": "booking_date"}',
        ),
        ("/restart", "/restart"),
    ],
)
def test_button_payloads_pass(typed: str, passed_on: str) -> None:
    assert clean_text(typed) == passed_on


@pytest.mark.parametrize(
    "typed, passed_on",
    [
        ('/affirm{"booking_consent": true, "booking_name": "Mallory"}', "/affirm"),
        ('/faq{"faq_topic": "benefits", "booking_name": "Mallory"}', '/faq{"faq_topic": "benefits"}'),
    ],
)
def test_unknown_entities_are_dropped(typed: str, passed_on: str) -> None:
    assert clean_text(typed) == passed_on


@pytest.mark.parametrize(
    "typed, passed_on",
    [
        ("/my name is Jane Smith", "my name is Jane Smith"),
        ("/no_such_intent", "no_such_intent"),
        ('/affirm{"booking_name": "Jane"', 'affirm{"booking_name": "Jane"'),
        ('/affirm["Jane"]', 'affirm["Jane"]'),
        ("/affirm@0.9", "affirm@0.9"),
        ("//", ""),
    ],
)
def test_anything_else_starting_with_a_slash_is_plain_text(typed: str, passed_on: str) -> None:
    assert clean_text(typed) == passed_on


def test_text_is_trimmed_cut_and_stripped_of_control_characters() -> None:
    assert clean_text("  hi\x00 there\x07  ") == "hi there"
    assert len(clean_text("a" * 10_000)) == MAX_MESSAGE_CHARS


def test_a_conversation_and_an_address_are_each_limited_and_refusals_do_not_count() -> None:
    now = [0.0]
    limiter = LocalRateLimiter(window=60, clock=lambda: now[0])

    def allow(conversation: str, address: str) -> bool:
        return asyncio.run(limiter.allow([(f"conversation:{conversation}", 2), (f"address:{address}", 3)]))

    assert [allow("a", "1.2.3.4") for _ in range(3)] == [True, True, False]  # the conversation's limit
    assert [allow(f"new-{n}", "1.2.3.4") for n in range(2)] == [True, False]  # the address's limit
    assert allow("b", "5.6.7.8")  # another visitor is served
    now[0] = 61.0  # a minute later both limits have room again
    assert allow("a", "1.2.3.4")


def test_trouble_text_names_the_clinics_phone(domain) -> None:
    text = trouble_text()
    assert load_settings().phone in text and "{" not in text
