"""The benchmark's scoring counts what a visitor effectively gets (devtools/bench/run.py)."""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Any

import pytest
import yaml
from rasa.shared.nlu.training_data.message import Message

from common.paths import PROJECT_ROOT
from components.deflection import DeflectionAwareFallbackClassifier
from components.faq_confidence import FaqConfidenceGuard
from devtools.bench import conversations
from devtools.bench.nlu_eval import (
    RawPrediction,
    Thresholds,
    choose,
    confusion,
    head_config,
    load_variants,
    pattern_overrides,
    replay,
    split_pipeline,
    stratified_folds,
    sweep,
    tail_thresholds,
    threshold_grid,
    winner,
)
from devtools.bench.run import (
    Target,
    accuracy,
    answer_recall,
    deflection_rate,
    descendants,
    effective_label,
    label_scores,
    macro_f1,
    markdown,
    percentile,
    rates,
    score_first_turn_set,
    sets_markdown,
    verdict,
    wrong_answer_rate,
)


def parse(intent: str, answer: str | None = None) -> dict[str, Any]:
    """A parse result as Rasa returns it, with the ResponseSelector's pick for faq."""
    result: dict[str, Any] = {"intent": {"name": intent, "confidence": 0.9}}
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
    machine = {
        "cores": 2,
        "cpu": "cpu",
        "ram_gib": 8.0,
        "load_average_at_start": 0.1,
        "python": "3.10",
        "rasa": "3.6",
    }
    report = {
        "date": "today",
        "machine": machine,
        "model": "m",
        "heldout": "h",
        "heldout_examples": 3,
        "latency_messages": 200,
        "errors": [],
        "metrics": {"heldout_accuracy": 0.95, "latency_p95_ms": 75.0, "train_s": None},
    }
    table = markdown(report)
    assert "| Held-out accuracy | 0.950 | >= 0.95 | PASS |" in table
    assert "| REST latency p95 | 75.0 ms | <= 60 | FAIL |" in table
    assert "| Train from scratch (no cache) | n/a | <= 90 | skipped |" in table


# ------------------------------------------------------------------ pipelines, folds, thresholds

CONFIG_PIPELINE = yaml.safe_load((PROJECT_ROOT / "config.yml").read_text())["pipeline"]


def raw(
    gold: str,
    intents: Sequence[tuple[str, float]],
    answers: Sequence[tuple[str, float]] = (),
    override: str | None = None,
) -> RawPrediction:
    """A classifier prediction before the fallback tail."""
    return RawPrediction("text", gold, tuple(intents), tuple(answers), override)


def test_folds_are_disjoint_complete_and_stratified() -> None:
    labels = ["a"] * 10 + ["b"] * 5 + ["c"] * 3
    folds = stratified_folds(labels, 5, seed=1)
    flat = [i for fold in folds for i in fold]
    assert sorted(flat) == list(range(len(labels)))  # every example once: disjoint and complete
    for fold in folds:
        assert [labels[i] for i in fold].count("a") == 2  # each fold gets its share of every label
        assert [labels[i] for i in fold].count("b") == 1
    assert sorted(len(fold) for fold in folds) == [3, 3, 4, 4, 4]
    assert stratified_folds(labels, 5, seed=2) != folds  # shuffled, not in file order


def test_split_pipeline_and_head_config_swap_the_featurizers() -> None:
    featurizers, classifiers, tail = split_pipeline(CONFIG_PIPELINE)
    assert [s["name"] for s in classifiers] == ["components.linear_classifier.LinearIntentClassifier"]
    assert featurizers[0]["name"] == "SpacyNLP" and tail[0]["name"].endswith("FallbackClassifier")
    config = {"language": "en", "pipeline": CONFIG_PIPELINE, "policies": [{"name": "RulePolicy"}]}
    head = head_config(config, [{"name": "WhitespaceTokenizer"}])
    assert [s["name"] for s in head["pipeline"]] == ["WhitespaceTokenizer", classifiers[0]["name"]]
    assert "policies" not in head and head["language"] == "en"
    diet = head_config(config, [{"name": "WhitespaceTokenizer"}], [{"name": "DIETClassifier"}])
    assert [s["name"] for s in diet["pipeline"]] == ["WhitespaceTokenizer", "DIETClassifier"]


def test_split_pipeline_keeps_diet_and_the_response_selector_together() -> None:
    pipeline = [
        {"name": "WhitespaceTokenizer"},
        {"name": "DIETClassifier"},
        {"name": "ResponseSelector"},
        {"name": "FallbackClassifier"},
        {"name": "components.faq_confidence.FaqConfidenceGuard"},
    ]
    featurizers, classifiers, tail = split_pipeline(pipeline)
    assert [len(featurizers), len(classifiers), len(tail)] == [1, 2, 2]


def test_variants_share_config_yml_and_end_with_the_current_pipeline() -> None:
    config = {"pipeline": CONFIG_PIPELINE}
    variants = {v.name: v for v in load_variants(config)}
    assert list(variants)[-1] == "current" and len(variants) >= 4
    own, classifiers, tail = split_pipeline(CONFIG_PIPELINE)
    assert variants["current"].featurizers == own and variants["current"].classifiers == classifiers
    assert variants["current"].thresholds == tail_thresholds(tail)
    spacy = [s["name"] for s in variants["spacy"].featurizers]
    assert "SpacyTokenizer" in spacy and not any("sentence_embeddings" in name for name in spacy)
    assert variants["default"].featurizers[0]["name"] == "WhitespaceTokenizer"
    # The three DIET pipelines: default, spaCy, spaCy + MiniLM, with their own thresholds.
    for name in ("default", "spacy", "spacy_minilm_diet"):
        assert [s["name"] for s in variants[name].classifiers] == ["DIETClassifier", "ResponseSelector"]
        assert variants[name].thresholds == Thresholds(0.6, 0.1, 0.5, 0.1, deflection=0.5)
    assert any("sentence_embeddings" in s["name"] for s in variants["spacy_minilm_diet"].featurizers)
    # Going `without` a featurizer by its alias drops just that one.
    no_minilm = variants["linear_no_minilm"]
    assert [s.get("alias") for s in no_minilm.featurizers if s.get("alias")] == ["words", "chars"]
    assert [{k: v for k, v in s.items() if k != "nearest_examples"} for s in no_minilm.classifiers] == [
        {k: v for k, v in s.items() if k != "nearest_examples"} for s in classifiers
    ]
    assert all(s["nearest_examples"] is None for s in no_minilm.classifiers)  # `settings` override


def test_tail_thresholds_are_read_from_config() -> None:
    tail = split_pipeline(CONFIG_PIPELINE)[2]
    fallback = next(s for s in tail if s["name"].endswith("FallbackClassifier"))
    assert tail_thresholds(tail).fallback == fallback["threshold"]
    assert tail_thresholds(tail).deflection == fallback["deflection_threshold"]
    rasa_own = [{"name": "FallbackClassifier", "threshold": 0.7}, {"name": "x.FaqConfidenceGuard"}]
    assert tail_thresholds(rasa_own) == Thresholds(0.7, 0.1, 0.5, 0.1, deflection=1.0)  # never deflects


LOOSE = Thresholds(0.3, 0.0, 0.3, 0.0)


def test_replay_follows_the_tail_in_order() -> None:
    faq = [("faq", 0.95), ("greet", 0.01)]
    assert replay(raw("greet", [("greet", 0.9), ("faq", 0.05)]), LOOSE) == "greet"
    assert (
        replay(raw("greet", [("greet", 0.5), ("faq", 0.45)]), Thresholds(0.3, 0.1, 0.3, 0.0))
        == "nlu_fallback"
    )
    assert replay(raw("faq/a", faq, [("faq/a", 0.8), ("faq/b", 0.1)]), LOOSE) == "faq/a"
    assert (
        replay(raw("faq/a", faq, [("faq/a", 0.4), ("faq/b", 0.3)]), Thresholds(0.3, 0.0, 0.5, 0.0))
        == "nlu_fallback"
    )
    assert (
        replay(raw("urgent_symptoms", faq, [("faq/a", 0.9)], override="urgent_symptoms"), LOOSE)
        == "urgent_symptoms"
    )
    # A likely refusal to answer needs only the deflection threshold; anything else the full one.
    strict = Thresholds(0.8, 0.0, 0.5, 0.0, deflection=0.5)
    assert replay(raw("out_of_scope", [("out_of_scope", 0.55), ("faq", 0.4)]), strict) == "out_of_scope"
    assert replay(raw("out_of_scope", [("out_of_scope", 0.45), ("faq", 0.4)]), strict) == "nlu_fallback"
    assert replay(raw("greet", [("greet", 0.55), ("faq", 0.4)]), strict) == "nlu_fallback"


def real_tail_label(prediction: RawPrediction, thresholds: Thresholds) -> str:
    """The label config.yml's real tail components give, with these thresholds."""
    ranking = [{"name": n, "confidence": c} for n, c in prediction.intents]
    selector = {
        "response": {"intent_response_key": prediction.answers[0][0]},
        "ranking": [{"intent_response_key": k, "confidence": c} for k, c in prediction.answers],
    }
    message = Message(
        data={
            "text": prediction.text,
            "intent": dict(ranking[0]),
            "intent_ranking": ranking,
            "response_selector": {"faq": selector},
        }
    )
    DeflectionAwareFallbackClassifier(
        {
            **DeflectionAwareFallbackClassifier.get_default_config(),
            "threshold": thresholds.fallback,
            "ambiguity_threshold": thresholds.fallback_ambiguity,
            "deflection_threshold": thresholds.deflection,
        }
    ).process([message])
    FaqConfidenceGuard(
        {
            "retrieval_intent": "faq",
            "threshold": thresholds.guard,
            "ambiguity_threshold": thresholds.guard_ambiguity,
        }
    ).process([message])
    return effective_label(message.as_dict())


def test_replay_matches_the_real_components() -> None:
    rng = random.Random(7)
    for _ in range(300):
        top, second, answer, runner = (round(rng.random(), 2) for _ in range(4))
        intents = [
            (rng.choice(["faq", "greet", "out_of_scope", "medical_advice"]), max(top, second)),
            ("thanks", min(top, second)),
        ]
        answers = [("faq/a", max(answer, runner)), ("faq/b", min(answer, runner))]
        thresholds = Thresholds(
            *(rng.choice([0.0, 0.05, 0.1, 0.3, 0.5, 0.7]) for _ in range(4)),
            deflection=rng.choice([0.3, 0.5, 1.0]),
        )
        prediction = raw("x", intents, answers)
        assert replay(prediction, thresholds) == real_tail_label(prediction, thresholds), (
            prediction,
            thresholds,
        )


def test_pattern_overrides_run_config_yml_patterns() -> None:
    forced = pattern_overrides(split_pipeline(CONFIG_PIPELINE)[2])
    assert forced("my scar is oozing pus") == "urgent_symptoms"
    assert forced("🙂") == "unclear"
    assert forced("how long do results take") is None


# Confident wrong answers at 0.6; a guard threshold of 0.7 removes them, and 0.9 would cost accuracy.
SWEEP_PREDICTIONS = [
    raw("faq/a", [("faq", 0.99), ("greet", 0.0)], [("faq/a", 0.95), ("faq/b", 0.02)]),
    raw("faq/a", [("faq", 0.99), ("greet", 0.0)], [("faq/a", 0.8), ("faq/b", 0.1)]),
    raw("faq/b", [("faq", 0.99), ("greet", 0.0)], [("faq/b", 0.75), ("faq/a", 0.2)]),
    raw("out_of_scope", [("faq", 0.99), ("greet", 0.0)], [("faq/a", 0.6), ("faq/b", 0.3)]),
    raw("faq/a", [("faq", 0.99), ("greet", 0.0)], [("faq/b", 0.65), ("faq/a", 0.3)]),
    raw("greet", [("greet", 0.9), ("faq", 0.05)]),
]


def test_sweep_picks_the_most_accurate_guard_threshold_within_the_wrong_answer_budget() -> None:
    grid = [Thresholds(0.5, 0.0, guard, 0.0) for guard in (0.5, 0.7, 0.9)]
    results = sweep(SWEEP_PREDICTIONS, grid, rates)
    by_guard = {r["thresholds"].guard: r for r in results}
    assert by_guard[0.5]["wrong_answer_rate"] == pytest.approx(2 / 6)
    assert by_guard[0.7]["wrong_answer_rate"] == 0 and by_guard[0.7]["accuracy"] == pytest.approx(4 / 6)
    assert by_guard[0.7]["answer_recall"] == by_guard[0.5]["answer_recall"] == pytest.approx(3 / 4)
    assert by_guard[0.9]["accuracy"] == pytest.approx(2 / 6)
    assert choose(results, current=grid[0])["thresholds"].guard == 0.7


def result(guard: float, accuracy: float, recall: float, wrong: float) -> dict[str, Any]:
    """One sweep result (the other thresholds fixed)."""
    return {
        "thresholds": Thresholds(0.5, 0.0, guard, 0.0),
        "accuracy": accuracy,
        "answer_recall": recall,
        "wrong_answer_rate": wrong,
    }


def test_choose_is_most_accurate_within_the_budget_then_recall_then_current() -> None:
    over_budget, careful, accurate, accurate_more_answers = (
        result(0.5, 0.97, 0.95, 0.03),
        result(0.9, 0.90, 0.8, 0.0),
        result(0.7, 0.95, 0.85, 0.02),
        result(0.6, 0.95, 0.9, 0.015),
    )
    results = [over_budget, careful, accurate, accurate_more_answers]
    assert choose(results, current=careful["thresholds"]) is accurate_more_answers
    assert choose(results, current=careful["thresholds"], budget=0.01) is careful
    # Nothing within the budget: the fewest wrong answers.
    assert (
        choose([over_budget, result(0.8, 0.5, 0.5, 0.025)], current=careful["thresholds"])["accuracy"] == 0.5
    )
    tie = [result(0.5, 0.9, 0.9, 0.0), result(0.7, 0.9, 0.9, 0.0)]
    assert choose(tie, current=tie[1]["thresholds"]) is tie[1]
    assert choose(tie, current=tie[0]["thresholds"]) is tie[0]


def test_answer_recall_counts_faq_questions_only() -> None:
    assert answer_recall(["faq/a", "faq/b", "greet"], ["faq/a", "nlu_fallback", "thanks"]) == pytest.approx(
        1 / 2
    )
    assert answer_recall(["greet"], ["greet"]) is None


def test_grid_includes_the_current_thresholds() -> None:
    odd = Thresholds(0.61, 0.1, 0.5, 0.1)
    assert odd in threshold_grid(odd) and len(threshold_grid(odd)) == len(threshold_grid(LOOSE)) + 1


def test_winner_has_fewest_wrong_answers_then_best_accuracy() -> None:
    rows = [
        {"name": "x", "wrong_answer_rate": 0.02, "accuracy": 0.95},
        {"name": "y", "wrong_answer_rate": 0.01, "accuracy": 0.90},
        {"name": "z", "wrong_answer_rate": 0.01, "accuracy": 0.92},
    ]
    assert winner(rows)["name"] == "z"


def test_confusion_counts_gold_rows_and_predicted_columns() -> None:
    labels, counts = confusion(["a", "a", "b", "b", "b"], ["a", "b", "b", "nlu_fallback", "b"])
    assert labels == ["a", "b", "nlu_fallback"]
    assert counts == [[1, 1, 0], [0, 2, 1], [0, 0, 0]]
    assert sum(map(sum, counts)) == 5


def test_a_follow_up_without_an_earlier_answer_counts_as_what_it_would_get() -> None:
    followup = {"text": "will it help with that", "intent": {"name": "faq_followup", "confidence": 0.9}}
    assert effective_label(followup) == "faq/benefits"
    assert effective_label({**followup, "text": "does that hurt"}) == "out_of_scope"
    assert effective_label({**followup, "text": "hmm"}) == "nlu_fallback"


def test_a_first_turn_set_counts_right_wrong_and_safe_misses() -> None:
    """Each message is right, wrong (another answer) or a safe miss (did you mean, a deflection)."""
    data = {
        "first_turn": {
            "names": [("faq/what_is", "is dermaroller this"), ("faq/what_is", "collagen induction?")],
            "short": [("out_of_scope", "price?"), ("out_of_scope", "hurt?"), ("faq/benefits", "my red scar")],
        }
    }
    got = {
        "is dermaroller this": "faq/what_is",
        "collagen induction?": "faq/how_it_works",  # wrong
        "price?": "nlu_fallback",  # did you mean: safe
        "hurt?": "out_of_scope",
        "my red scar": "medical_advice",  # deflected: safe
    }
    scored = score_first_turn_set(data, lambda texts: [got[t] for t in texts])
    summary = scored["summary"]
    assert (summary["cases"], summary["right"], summary["wrong"]) == (5, 2, 1)
    assert (summary["safe_misses"], summary["did_you_mean"]) == (2, 1)
    assert summary["accuracy"] == 0.4
    assert scored["by_kind"]["short"]["right"] == 1
    table = "\n".join(sets_markdown({"tests/heldout/first_turns_x.yml": summary}))
    assert "| tests/heldout/first_turns_x.yml | 5 | 2 (0.400) | 1 | 2 (1) |" in table


def test_the_report_shows_every_held_out_set_and_each_dated_set_by_kind() -> None:
    sets = conversations.first_turn_sets()
    assert "first_turns_2026-12-05.yml" in sets
    by_kind = conversations.score_first_turn(
        sets["first_turns_2026-12-05.yml"], lambda texts: ["nlu_fallback"] * len(texts)
    )
    lines = conversations.set_markdown("first_turns_2026-12-05.yml", by_kind)
    total = conversations.totals(by_kind)
    assert total["right"] == total["wrong"] == 0 and total["safe_misses"] == total["cases"] >= 150
    assert lines[-2].startswith(f"| **all** | {total['cases']} | 0 (0.000) | 0 | {total['cases']} (")
