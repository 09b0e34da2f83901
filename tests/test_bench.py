"""The benchmark's scoring counts what a visitor effectively gets (tools/bench.py)."""

from __future__ import annotations

from typing import Any, Dict, Optional

import pytest

from tools.bench import (
    Target,
    accuracy,
    deflection_rate,
    descendants,
    effective_label,
    label_scores,
    macro_f1,
    markdown,
    percentile,
    verdict,
    wrong_answer_rate,
)


def parse(intent: str, answer: Optional[str] = None) -> Dict[str, Any]:
    """A parse result as Rasa returns it, with the ResponseSelector's pick for faq."""
    result: Dict[str, Any] = {"intent": {"name": intent, "confidence": 0.9}}
    if answer:
        result["response_selector"] = {"faq": {"response": {"intent_response_key": f"faq/{answer}"}}}
    return result


def test_faq_label_is_the_selected_answer() -> None:
    assert effective_label(parse("faq", "benefits")) == "faq/benefits"


def test_other_intents_are_their_own_label() -> None:
    assert effective_label(parse("nlu_fallback")) == "nlu_fallback"
    assert effective_label(parse("ask_hours")) == "ask_hours"


GOLD = ["faq/benefits", "out_of_scope", "medical_advice", "greet", "out_of_scope"]
PREDICTED = ["faq/what_is", "nlu_fallback", "faq/benefits", "greet", "out_of_scope"]


def test_accuracy() -> None:
    assert accuracy(GOLD, PREDICTED) == pytest.approx(2 / 5)


def test_deflection_counts_any_non_answer_to_offtopic_questions() -> None:
    assert deflection_rate(GOLD, PREDICTED) == pytest.approx(2 / 3)


def test_wrong_answers_are_answers_that_differ_from_gold() -> None:
    # faq/what_is for faq/benefits and faq/benefits for medical_advice; nlu_fallback is no answer.
    assert wrong_answer_rate(GOLD, PREDICTED) == pytest.approx(2 / 5)


def test_rates_without_examples_are_none() -> None:
    assert deflection_rate(["greet"], ["greet"]) is None
    assert accuracy([], []) is None


def test_label_scores_and_macro_f1_cover_gold_labels_only() -> None:
    scores = label_scores(["a", "a", "b"], ["a", "b", "x"])
    assert set(scores) == {"a", "b"}
    assert scores["a"] == {"precision": 1.0, "recall": 0.5, "f1": pytest.approx(2 / 3), "support": 2}
    assert scores["b"]["precision"] == 0.0
    assert macro_f1(scores) == pytest.approx(1 / 3)


def test_percentile_is_nearest_rank() -> None:
    values = list(range(1, 101))
    assert percentile(values, 50) == 50
    assert percentile(values, 95) == 95
    assert percentile([7.0], 95) == 7.0


def test_descendants_follow_the_process_tree() -> None:
    parents = {10: 1, 11: 10, 12: 11, 20: 1, 21: 20}
    assert descendants([10], parents) == {10, 11, 12}


def test_targets() -> None:
    assert Target(60).met(60) and not Target(60).met(60.1)
    assert Target(0.93, minimum=True).met(0.95)
    assert verdict("latency_p95_ms", 70.0) == ("<= 60", "FAIL")
    assert verdict("train_s", None) == ("<= 90", "skipped")
    assert verdict("model_mib", 50.0) == ("", "")


def test_markdown_table_marks_targets() -> None:
    machine = {"cores": 2, "cpu": "cpu", "ram_gib": 8.0, "load_average_at_start": 0.1,
               "python": "3.10", "rasa": "3.6"}
    report = {"date": "today", "machine": machine, "model": "m", "heldout": "h", "heldout_examples": 3,
              "latency_messages": 200, "errors": [],
              "metrics": {"heldout_accuracy": 0.95, "latency_p95_ms": 75.0, "train_s": None}}
    table = markdown(report)
    assert "| Held-out accuracy | 0.950 | >= 0.93 | PASS |" in table
    assert "| REST latency p95 | 75.0 ms | <= 60 | FAIL |" in table
    assert "| Train from scratch (no cache) | n/a | <= 90 | skipped |" in table
