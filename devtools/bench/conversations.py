"""The held-out conversations (tests/heldout/conversations.yml): first turns by kind, follow-ups.

First turns are scored like the held-out set, on the model's parse (what the visitor gets:
an answer, the booking, "I don't have that information" or "did you mean"). Follow-ups need
the conversation, so they are sent to running servers over REST, each pair as a new visitor,
and the second reply is recognised by its text among the domain's responses.

    python -m devtools.bench.conversations [--model models/scar-faq.tar.gz]

prints both tables for any trained model (it starts its own servers); `make bench` includes them.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import urllib.request
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import yaml

from common.clinic import load_settings
from common.domain import load_domain
from common.names import CONVERSATION_HEADER
from common.paths import HELDOUT_CONVERSATIONS, HELDOUT_DIR, HELDOUT_FIRST_TURN_PATTERN, MODEL

# The bench is one client sending hundreds of messages a minute from one address: the flood
# limit per address (channels/rate_limits.py) would refuse it, and it measures the model, not that.
UNTHROTTLED = {"MAX_MESSAGES_PER_MINUTE_PER_ADDRESS": "1000000"}
FALLBACK = "nlu_fallback"
DEFLECTED = frozenset({"out_of_scope", "medical_advice", "urgent_symptoms", "unclear", FALLBACK})
# What each response tells the visitor, as a label of the held-out sets.
RESPONSE_LABELS = {
    "utter_out_of_scope": "out_of_scope",
    "utter_medical_advice": "medical_advice",
    "utter_urgent": "urgent_symptoms",
    "utter_did_you_mean": FALLBACK,
    "utter_ask_rephrase": FALLBACK,
    "utter_default": FALLBACK,
    "utter_booking_intro": "book_consultation",
    "utter_booking_intro_with_link": "book_consultation",
}


def by_kind(first_turn: dict[str, list[list[str]]]) -> dict[str, list[tuple[str, ...]]]:
    """A first_turn mapping as YAML has it, with each case as a (gold, text) tuple."""
    return {kind: [tuple(case) for case in cases] for kind, cases in first_turn.items()}


def load(path: Path = HELDOUT_CONVERSATIONS) -> dict[str, Any]:
    """The held-out conversations: {"first_turn": {kind: [(gold, text)]}, "follow_ups": [...]}."""
    data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    return {
        "first_turn": by_kind(data["first_turn"]),
        "follow_ups": list(data["follow_ups"]),
    }


def first_turn_sets(folder: Path = HELDOUT_DIR) -> dict[str, dict[str, Any]]:
    """The further held-out first-turn sets (tests/heldout/first_turns_<date>.yml), by file name.

    Each has the first_turn part of conversations.yml only: {"first_turn": {kind: [(gold, text)]}}.
    """
    sets = {}
    for path in sorted(folder.glob(HELDOUT_FIRST_TURN_PATTERN)):
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        sets[path.name] = {"first_turn": by_kind(data["first_turn"])}
    return sets


def totals(first_turn: dict[str, dict[str, Any]]) -> dict[str, int]:
    """A first-turn set's cases, right, "did you mean", wrong answers and safe misses, over all kinds.

    A safe miss is a message that did not get its answer but was not answered wrongly either:
    "did you mean", "I don't have that information", the medical-advice or urgent deflection.
    """
    summed = {k: sum(r[k] for r in first_turn.values()) for k in ("cases", "right", "did_you_mean", "wrong")}
    return {**summed, "safe_misses": summed["cases"] - summed["right"] - summed["wrong"]}


def set_markdown(name: str, first_turn: dict[str, dict[str, Any]]) -> list[str]:
    """One further first-turn set's table: by kind, then all, with the share right."""
    lines = [
        f"### Held-out first turns: {name}",
        "",
        "| Kind | Cases | Right | Wrong answers | Safe misses (of which did you mean) |",
        "|---|---|---|---|---|",
    ]
    for kind, row in first_turn.items():
        safe = row["cases"] - row["right"] - row["wrong"]
        lines.append(
            f"| {kind} | {row['cases']} | {row['right']} | {row['wrong']} | {safe} ({row['did_you_mean']}) |"
        )
    total = totals(first_turn)
    lines.append(
        f"| **all** | {total['cases']} | {total['right']} ({total['right'] / total['cases']:.3f})"
        f" | {total['wrong']} | {total['safe_misses']} ({total['did_you_mean']}) |"
    )
    return [*lines, ""]


def texts(data: dict[str, Any]) -> list[str]:
    """Every message text of the held-out conversations (for the leak check)."""
    first = [text for cases in data["first_turn"].values() for _, text in cases]
    return first + [t for pair in data["follow_ups"] for t in (pair["first"], pair["then"])]


def score_first_turn(
    data: dict[str, Any], labels_for: Callable[[Sequence[str]], list[str]]
) -> dict[str, dict[str, Any]]:
    """Per kind: cases, right, "did you mean", wrong answers (answered with another label)."""
    result = {}
    for kind, cases in data["first_turn"].items():
        predicted = labels_for([text for _, text in cases])
        result[kind] = {
            "cases": len(cases),
            "right": sum(p == g for (g, _), p in zip(cases, predicted)),
            "did_you_mean": sum(p == FALLBACK for p in predicted),
            "wrong": sum(p != g and p not in DEFLECTED for (g, _), p in zip(cases, predicted)),
            "errors": [
                {"text": t, "gold": g, "predicted": p} for (g, t), p in zip(cases, predicted) if p != g
            ],
        }
    return result


def rendered_responses() -> dict[str, str]:
    """Each response's first text with the clinic's details filled in -> its label."""
    settings = load_settings()
    values = {
        "clinic_name": settings.name,
        "clinic_phone": settings.phone,
        "clinic_email": settings.email,
        "clinic_hours": settings.hours,
        "clinic_address": settings.address,
        "emergency_number": settings.emergency_number,
        "booking_link": settings.booking_link,
        "retention_days": str(settings.retention_days),
    }
    found = {}
    for name, variations in load_domain()["responses"].items():
        text = " ".join(str(variations[0].get("text", "")).split())
        try:
            text = text.format(**values)
        except (KeyError, IndexError, ValueError):
            continue
        label = (
            f"faq/{name.partition('/')[2]}" if name.startswith("utter_faq/") else RESPONSE_LABELS.get(name)
        )
        if label:
            found[text] = label
    return found


def reply_label(messages: Sequence[dict[str, Any]], known: dict[str, str]) -> str:
    """The label of the first bot message that is a known response ("other" if none is)."""
    for message in messages:
        label = known.get(" ".join(str(message.get("text", "")).split()))
        if label:
            return label
    return "other"


def say(url: str, text: str, conversation: str | None = None) -> tuple[list[dict[str, Any]], str | None]:
    """One REST message (continuing `conversation`, else a new one); the bot's messages and the id."""
    body = json.dumps({"message": text, **({"sender": conversation} if conversation else {})}).encode()
    request = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=60) as response:
        return json.loads(response.read() or b"[]"), response.headers.get(CONVERSATION_HEADER, conversation)


def score_follow_ups(data: dict[str, Any], rasa_url: str) -> dict[str, Any]:
    """Send each pair as a new visitor; how often the follow-up got the answer meant.

    The server issues conversation ids, so the second message carries the id the first reply
    came with: without it, it would start a conversation of its own, with no last topic.
    """
    url = f"{rasa_url}/webhooks/rest/webhook"
    known = rendered_responses()
    errors, right, did_you_mean, wrong = [], 0, 0, 0
    for pair in data["follow_ups"]:
        _, conversation = say(url, pair["first"])
        got = reply_label(say(url, pair["then"], conversation)[0], known)
        right += got == pair["answer"]
        did_you_mean += got == FALLBACK
        wrong += got != pair["answer"] and got not in DEFLECTED
        if got != pair["answer"]:
            errors.append({**pair, "got": got})
    return {
        "pairs": len(data["follow_ups"]),
        "right": right,
        "did_you_mean": did_you_mean,
        "wrong": wrong,
        "errors": errors,
    }


def markdown(first_turn: dict[str, dict[str, Any]], follow_ups: dict[str, Any] | None) -> list[str]:
    """The two tables of the report."""
    lines = [
        "## Held-out conversations",
        "",
        "tests/heldout/conversations.yml: first messages by kind (what the visitor gets from the model's"
        " parse) and follow-up pairs (the second reply over REST, in the context of the first).",
        "",
        "| First turn: kind | Cases | Right | Did you mean | Wrong answers |",
        "|---|---|---|---|---|",
    ]
    for kind, row in first_turn.items():
        lines.append(f"| {kind} | {row['cases']} | {row['right']} | {row['did_you_mean']} | {row['wrong']} |")
    total = {k: sum(r[k] for r in first_turn.values()) for k in ("cases", "right", "did_you_mean", "wrong")}
    lines.append(
        f"| **all** | {total['cases']} | {total['right']} | {total['did_you_mean']} | {total['wrong']} |"
    )
    if follow_ups:
        lines += [
            "",
            "| Follow-up pairs | Right | Did you mean | Wrong answers |",
            "|---|---|---|---|",
            f"| {follow_ups['pairs']} | {follow_ups['right']} | {follow_ups['did_you_mean']}"
            f" | {follow_ups['wrong']} |",
        ]
    return [*lines, ""]


def main() -> None:
    """Score a model on the held-out conversations (starting its own servers for the follow-ups)."""
    from devtools.bench.run import effective_label, parse_texts
    from servers.launcher import Stack, StackConfig, free_port

    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("--model", type=Path, default=MODEL)
    parser.add_argument("--json", type=Path, help="also write every figure and error here")
    args = parser.parse_args()
    data = load()
    first = score_first_turn(data, lambda texts: [effective_label(p) for p in parse_texts(args.model, texts)])
    with tempfile.TemporaryDirectory(prefix="bench-conversations-") as tmp:
        config = StackConfig(
            rasa_port=free_port(),
            action_port=free_port(),
            model=args.model.resolve(),
            database_url=f"sqlite:///{tmp}/bench.db",
            extra_env=UNTHROTTLED,
        )
        with (Path(tmp) / "servers.log").open("w") as log, Stack(config, log):
            follow = score_follow_ups(data, config.rasa_url)
    if args.json:
        args.json.write_text(json.dumps({"first_turn": first, "follow_ups": follow}, indent=2) + "\n")
    print("\n".join(markdown(first, follow)))


if __name__ == "__main__":
    main()
