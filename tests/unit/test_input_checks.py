"""The chat channels' checks of what a visitor sends (channels/guarded.py), and the limits' windows."""

from __future__ import annotations

import asyncio

import pytest

from channels.guarded import InvalidInput, check_message, check_metadata, metadata_depth, visitor_key
from channels.rate_limits import DAY_SECONDS, LocalRateLimiter, live_chat_limits
from common.names import VISITOR_KEY
from common.settings import MAX_METADATA_BYTES, MAX_METADATA_DEPTH, Settings

CONFIG = Settings.from_env({"CONVERSATION_SECRET": "a-secret-long-enough-for-the-settings-0123"})


def nested(levels: int) -> dict:
    value: dict = {}
    for _ in range(levels - 1):
        value = {"a": value}
    return value


@pytest.mark.parametrize("text", ["\ud800", "a\udc00\ud800b", "\udfff"])
def test_surrogates_are_refused(text: str) -> None:
    with pytest.raises(InvalidInput, match="not valid text"):
        check_message(text, None, "203.0.113.1", CONFIG)


def test_valid_text_is_cleaned_and_gets_the_visitor_key() -> None:
    text, metadata = check_message(" thanks 😀\x00 ", {"language": "en"}, "203.0.113.1", CONFIG)
    assert text == "thanks 😀"
    assert metadata == {"language": "en", VISITOR_KEY: visitor_key("203.0.113.1", CONFIG)}


def test_a_visitor_key_sent_by_the_client_is_replaced() -> None:
    _, metadata = check_message("hi", {VISITOR_KEY: "someone-else"}, "203.0.113.1", CONFIG)
    assert metadata[VISITOR_KEY] == visitor_key("203.0.113.1", CONFIG) != "someone-else"


def test_the_visitor_key_names_no_address_and_differs_by_address() -> None:
    key = visitor_key("203.0.113.1", CONFIG)
    assert "203" not in key and key != visitor_key("203.0.113.2", CONFIG)


def test_depth_is_measured_without_recursion() -> None:
    assert metadata_depth(nested(100_000)) == MAX_METADATA_DEPTH + 1
    assert metadata_depth({"a": [1, {"b": 2}]}) == 3
    assert metadata_depth("text") == 0


def test_metadata_within_the_bounds_passes() -> None:
    assert check_metadata(nested(MAX_METADATA_DEPTH)) == nested(MAX_METADATA_DEPTH)
    assert check_metadata([1, 2]) is None  # not an object: ignored, as before


@pytest.mark.parametrize(
    "metadata",
    [nested(MAX_METADATA_DEPTH + 1), nested(970), {"a": "x" * MAX_METADATA_BYTES}, {"a": "\ud800"}],
    ids=["one level too deep", "970 levels", "too large", "surrogate"],
)
def test_metadata_beyond_the_bounds_is_refused(metadata: dict) -> None:
    with pytest.raises(InvalidInput):
        check_metadata(metadata)


def test_refused_metadata_is_never_serialised_deeply() -> None:
    deep = nested(5000)
    with pytest.raises(InvalidInput):
        check_message("hi", deep, "203.0.113.1", CONFIG)


def test_live_chat_limits_count_per_hour_and_per_day() -> None:
    now = [0.0]
    limiter = LocalRateLimiter(clock=lambda: now[0])
    config = Settings.from_env(
        {"LIVE_CHAT_REQUESTS_PER_ADDRESS_PER_HOUR": "2", "LIVE_CHAT_REQUESTS_PER_ADDRESS_PER_DAY": "3"}
    )
    limits = live_chat_limits(config, "k")

    def ask() -> bool:
        return asyncio.run(limiter.allow(limits))

    assert [ask(), ask(), ask()] == [True, True, False]  # 2 an hour
    now[0] = 3601.0
    assert [ask(), ask()] == [True, False]  # 3 a day
    now[0] = DAY_SECONDS + 1
    assert ask()
