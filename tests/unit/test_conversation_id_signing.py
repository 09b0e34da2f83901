"""Conversation ids the server issues: recognised by any server with the secret, by nobody else."""

from __future__ import annotations

import pytest

from common import conversation_ids

KEY = b"a-secret-shared-by-every-replica-0123456789"


def test_an_issued_id_is_recognised_with_the_same_key() -> None:
    issued = conversation_ids.issue(KEY)
    assert conversation_ids.is_issued(issued, KEY)
    assert len(issued) == conversation_ids.LENGTH and issued.count(".") == 1


def test_ids_are_random() -> None:
    assert len({conversation_ids.issue(KEY) for _ in range(1000)}) == 1000


def test_another_key_does_not_recognise_it() -> None:
    assert not conversation_ids.is_issued(conversation_ids.issue(KEY), b"another-key-0123456789-0123456789")


def test_a_changed_character_anywhere_is_refused() -> None:
    issued = conversation_ids.issue(KEY)
    for position in range(len(issued)):
        if issued[position] == ".":
            continue
        changed = issued[:position] + ("A" if issued[position] != "A" else "B") + issued[position + 1 :]
        assert not conversation_ids.is_issued(changed, KEY), position


@pytest.mark.parametrize(
    "value",
    [
        None,
        42,
        ["x"],
        {"id": "x"},
        "",
        "default",
        "visitor-123",
        "x" * 10_000,
        "a.b",
        "é" * 22 + "." + "é" * 22,
    ],
)
def test_anything_else_is_not_an_issued_id(value: object) -> None:
    assert not conversation_ids.is_issued(value, KEY)
