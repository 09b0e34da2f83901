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


# ---- handles (what staff see) and resume proofs (what only the visitor's browser keeps) ----
SHARED = "the-console-and-chat-servers-shared-secret-0123"


def test_a_handle_names_one_conversation_and_is_not_an_id() -> None:
    issued = [conversation_ids.issue(KEY) for _ in range(2000)]
    handles = [conversation_ids.handle(i, SHARED) for i in issued]
    assert len(set(handles)) == len(issued)
    assert all(conversation_ids.is_handle(h) and len(h) == 12 for h in handles)
    assert conversation_ids.handle(issued[0], SHARED) == handles[0], "the same every time"
    assert conversation_ids.handle(issued[0], SHARED + "x") != handles[0], "keyed"
    assert not any(conversation_ids.is_issued(h, KEY) for h in handles), "the chat refuses a handle"
    assert not any(i in h or h[2:] in i for i, h in zip(issued, handles, strict=True))


def test_the_conversation_behind_a_handle_is_found_among_the_stored_ids() -> None:
    issued = [conversation_ids.issue(KEY) for _ in range(50)]
    wanted = conversation_ids.handle(issued[17], SHARED)
    assert conversation_ids.find(wanted, issued, SHARED) == [issued[17]]
    assert conversation_ids.find(f"  {wanted.lower()} ", issued, SHARED) == [issued[17]]
    for other in (issued[17], "", "C-" + "I" * 10, wanted + "0", wanted[:-1]):
        assert conversation_ids.find(other, issued, SHARED) == [], other


def test_a_resume_proof_belongs_to_one_issued_id_and_one_key() -> None:
    mine, theirs = conversation_ids.issue(KEY), conversation_ids.issue(KEY)
    proof = conversation_ids.resume_proof(mine, KEY)
    assert conversation_ids.may_resume(mine, proof, KEY)
    assert proof not in (mine, conversation_ids.handle(mine, SHARED))
    refused = [
        (mine, None),
        (mine, ""),
        (mine, 42),
        (mine, "\ud800"),  # a lone surrogate (socket.io JSON can carry one): refused, not a crash
        (mine, proof + "\u00e9"),
        (mine, conversation_ids.resume_proof(theirs, KEY)),
        (mine, conversation_ids.resume_proof(mine, b"another-key-0123456789-0123456789")),
        (theirs, proof),
        ("made-up-id", conversation_ids.resume_proof("made-up-id", KEY)),
        (conversation_ids.handle(mine, SHARED), proof),
    ]
    assert [conversation_ids.may_resume(i, p, KEY) for i, p in refused] == [False] * len(refused)
