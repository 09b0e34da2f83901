"""Pipeline comparison, cross-validation and fallback-threshold tuning for `make bench`.

Models are trained on the pipeline up to its last classifier only ("head"), so their
predictions are the classifiers' raw confidences; config.yml's fallback tail (the
FallbackClassifier, the FAQ confidence guard and the pattern overrides, none of which is
trained) is then replayed on them for any thresholds, without retraining.
"""

from __future__ import annotations

import copy
import itertools
import os
import random
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import yaml
from rasa.shared.constants import DEFAULT_NLU_FALLBACK_INTENT_NAME
from rasa.shared.nlu.constants import INTENT, INTENT_NAME_KEY, PREDICTED_CONFIDENCE_KEY, TEXT
from rasa.shared.nlu.training_data.message import Message

from common.names import RETRIEVAL_INTENT
from common.paths import DATA_DIR, DOMAIN_DIR, PROJECT_ROOT, RASA_PROGRAM
from components.deflection import DEFLECTION_INTENTS
from components.pattern_override import PatternIntentOverride

NLU_DATA = DATA_DIR / "nlu"
PIPELINES = Path(__file__).resolve().parent / "pipelines"
TAIL_START = "FallbackClassifier"  # the tail begins with the (first) step whose name ends so
# The sweep's budget: thresholds are chosen for accuracy among those keeping wrong answers within it.
WRONG_ANSWER_BUDGET = 0.02
TRAIN_TIMEOUT_S = 900
# The sweep's grid: every combination is replayed on the cross-validation predictions.
CONFIDENCE_GRID = tuple(round(0.3 + 0.05 * i, 2) for i in range(13))  # 0.30 ... 0.90
AMBIGUITY_GRID = (0.0, 0.05, 0.1, 0.15, 0.2)


@dataclass(frozen=True)
class Thresholds:
    """The four fallback thresholds of config.yml's tail."""

    fallback: float  # FallbackClassifier threshold
    fallback_ambiguity: float  # FallbackClassifier ambiguity_threshold
    guard: float  # FaqConfidenceGuard threshold
    guard_ambiguity: float  # FaqConfidenceGuard ambiguity_threshold
    deflection: float = 1.0  # DeflectionAwareFallbackClassifier deflection_threshold (1: never)


@dataclass(frozen=True)
class RawPrediction:
    """What the trained classifiers said about one message, before the fallback tail."""

    text: str
    gold: str
    intents: tuple[tuple[str, float], ...]  # the intent classifier's top two (intent, confidence)
    answers: tuple[tuple[str, float], ...]  # the selected FAQ answers' top two (faq/<key>, confidence)
    override: str | None  # the intent a PatternIntentOverride forces, if any


@dataclass(frozen=True)
class Variant:
    """A pipeline to compare: these featurizers and classifiers, scored with these thresholds."""

    name: str
    description: str
    featurizers: list[dict[str, Any]]
    classifiers: list[dict[str, Any]]
    thresholds: Thresholds


# ------------------------------------------------------------------ configs


def is_classifier(step: dict[str, Any]) -> bool:
    """Whether a pipeline step is a trained classifier (DIET, ResponseSelector, the linear one...)."""
    return step["name"].endswith(("Classifier", "Selector")) and not step["name"].endswith(TAIL_START)


def split_pipeline(pipeline: Sequence[dict[str, Any]]) -> tuple[list, list, list]:
    """(featurizers, classifiers, tail): steps before the first classifier, the classifiers, the rest."""
    first = next(i for i, step in enumerate(pipeline) if is_classifier(step))
    last = next(i for i, step in enumerate(pipeline) if step["name"].endswith(TAIL_START))
    return list(pipeline[:first]), list(pipeline[first:last]), list(pipeline[last:])


def head_config(
    config: dict[str, Any], featurizers: list[dict[str, Any]], classifiers: list[dict[str, Any]] | None = None
) -> dict[str, Any]:
    """The trained part of `config` (no tail, no policies) with these featurizers (and classifiers)."""
    own = split_pipeline(config["pipeline"])[1]
    head = {key: value for key, value in config.items() if key not in ("pipeline", "policies")}
    head["pipeline"] = copy.deepcopy(featurizers + (own if classifiers is None else classifiers))
    return head


def load_variants(config: dict[str, Any], folder: Path = PIPELINES) -> list[Variant]:
    """The comparison: each devtools/bench/pipelines/*.yml, then config.yml's own pipeline (current).

    A file gives either its own `featurizers` list or the config.yml featurizers it goes `without`,
    and optionally `classifiers`: the name of a devtools/bench/classifiers/*.yml with their steps and the
    fallback thresholds cross-validation chose for them (otherwise config.yml's are used), and
    `settings` that override the classifiers' own.
    """
    own_featurizers, own_classifiers, tail = split_pipeline(config["pipeline"])
    own_thresholds = tail_thresholds(tail)
    variants = []
    for path in sorted(folder.glob("*.yml")):
        spec = yaml.safe_load(path.read_text(encoding="utf-8"))
        dropped = set(spec.get("without", []))
        featurizers = spec.get("featurizers") or [
            step
            for step in own_featurizers
            if step["name"] not in dropped and step.get("alias") not in dropped
        ]
        classifiers, thresholds = own_classifiers, own_thresholds
        if spec.get("classifiers"):
            shared = yaml.safe_load(
                (folder.parent / "classifiers" / f"{spec['classifiers']}.yml").read_text(encoding="utf-8")
            )
            classifiers, thresholds = shared["steps"], Thresholds(**shared["thresholds"])
        classifiers = [{**step, **spec.get("settings", {})} for step in classifiers]
        variants.append(Variant(path.stem, spec["description"], featurizers, classifiers, thresholds))
    current = Variant(
        "current",
        "config.yml: spaCy lemmas, word and char n-gram counts, MiniLM; linear classifier",
        own_featurizers,
        own_classifiers,
        own_thresholds,
    )
    return [*variants, current]


def tail_thresholds(tail: Sequence[dict[str, Any]]) -> Thresholds:
    """The thresholds the tail's fallback classifier and FaqConfidenceGuard are configured with."""
    from rasa.nlu.classifiers.fallback_classifier import FallbackClassifier

    from components.deflection import DeflectionAwareFallbackClassifier
    from components.faq_confidence import FaqConfidenceGuard

    def settings(cls: type, suffix: str) -> dict[str, Any]:
        step = next(s for s in tail if s["name"].endswith(suffix))
        return {**cls.get_default_config(), **step}

    deflecting = any(s["name"].endswith(DeflectionAwareFallbackClassifier.__name__) for s in tail)
    fallback = settings(DeflectionAwareFallbackClassifier if deflecting else FallbackClassifier, TAIL_START)
    guard = settings(FaqConfidenceGuard, "FaqConfidenceGuard")
    return Thresholds(
        fallback["threshold"],
        fallback["ambiguity_threshold"],
        guard["threshold"],
        guard["ambiguity_threshold"],
        fallback.get("deflection_threshold", 1.0),
    )


# ------------------------------------------------------------------ folds and replay (pure)


def stratified_folds(labels: Sequence[str], k: int, seed: int = 42) -> list[list[int]]:
    """Indices of k disjoint test folds; each label's examples are shuffled and dealt round-robin."""
    rng, folds, dealt = random.Random(seed), [[] for _ in range(k)], 0
    for label in sorted(set(labels)):
        members = [i for i, gold in enumerate(labels) if gold == label]
        rng.shuffle(members)
        for i in members:  # carry on where the last label stopped, so the folds stay equal in size
            folds[dealt % k].append(i)
            dealt += 1
    return [sorted(fold) for fold in folds]


def _intent_falls_back(intents: Sequence[tuple[str, float]], threshold: float, ambiguity: float) -> bool:
    """Rasa's FallbackClassifier: top intent below `threshold`, or its lead below `ambiguity`."""
    top = intents[0][1]
    return top < threshold or (len(intents) >= 2 and top - intents[1][1] < ambiguity)


def _answer_falls_back(answers: Sequence[tuple[str, float]], threshold: float, ambiguity: float) -> bool:
    """components.faq_confidence.FaqConfidenceGuard: the same test on the selected FAQ answer."""
    if not answers:
        return True
    runner_up = answers[1][1] if len(answers) > 1 else 0.0
    return answers[0][1] < threshold or answers[0][1] - runner_up < ambiguity


def replay(raw: RawPrediction, thresholds: Thresholds) -> str:
    """The label the visitor gets from config.yml's tail with these thresholds (faq -> faq/<key>)."""
    if raw.override:
        return raw.override
    if raw.intents and raw.intents[0][0] in DEFLECTION_INTENTS and raw.intents[0][1] >= thresholds.deflection:
        return raw.intents[0][0]
    if _intent_falls_back(raw.intents, thresholds.fallback, thresholds.fallback_ambiguity):
        return DEFAULT_NLU_FALLBACK_INTENT_NAME
    intent = raw.intents[0][0]
    if intent != RETRIEVAL_INTENT:
        return intent
    if _answer_falls_back(raw.answers, thresholds.guard, thresholds.guard_ambiguity):
        return DEFAULT_NLU_FALLBACK_INTENT_NAME
    return raw.answers[0][0]


def threshold_grid(current: Thresholds) -> list[Thresholds]:
    """Every combination the sweep tries, and the current thresholds (its reference).

    The deflection threshold is a design choice (README), not swept: lowering it can only turn
    "did you mean" into "I can't answer that", which no accuracy-within-budget rule would refuse.
    """
    grid = [
        Thresholds(*values, deflection=current.deflection)
        for values in itertools.product(CONFIDENCE_GRID, AMBIGUITY_GRID, CONFIDENCE_GRID, AMBIGUITY_GRID)
    ]
    return grid if current in grid else [*grid, current]


def sweep(
    raws: Sequence[RawPrediction],
    grid: Iterable[Thresholds],
    score: Callable[[Sequence[str], Sequence[str]], dict[str, float | None]],
) -> list[dict[str, Any]]:
    """`score(gold, predicted)` of the replayed predictions, for each thresholds of the grid."""
    gold = [raw.gold for raw in raws]
    return [{"thresholds": t, **score(gold, [replay(raw, t) for raw in raws])} for t in grid]


def choose(
    results: Sequence[dict[str, Any]], current: Thresholds, budget: float = WRONG_ANSWER_BUDGET
) -> dict[str, Any]:
    """The best accuracy among the results with wrong answers within `budget`.

    If none is within it, the fewest wrong answers; then FAQ answer recall, then the thresholds
    closest to `current` (no churn on ties).
    """

    def distance(t: Thresholds) -> float:
        return sum(abs(a - b) for a, b in zip(asdict(t).values(), asdict(current).values()))

    eligible = [r for r in results if r["wrong_answer_rate"] <= budget + 1e-9]
    if not eligible:
        return min(results, key=lambda r: (r["wrong_answer_rate"], -r["accuracy"], distance(r["thresholds"])))
    return min(eligible, key=lambda r: (-r["accuracy"], -r["answer_recall"], distance(r["thresholds"])))


def winner(rows: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """The compared pipeline with the fewest wrong answers, then the highest accuracy."""
    return min(rows, key=lambda row: (row["wrong_answer_rate"], -row["accuracy"]))


def confusion(gold: Sequence[str], predicted: Sequence[str]) -> tuple[list[str], list[list[int]]]:
    """Labels (gold first, then labels only predicted) and counts[gold row][predicted column]."""
    labels = sorted(set(gold)) + sorted(set(predicted) - set(gold))
    index = {label: i for i, label in enumerate(labels)}
    counts = [[0] * len(labels) for _ in labels]
    for g, p in zip(gold, predicted):
        counts[index[g]][index[p]] += 1
    return labels, counts


# ------------------------------------------------------------------ training and predicting


def pattern_overrides(tail: Sequence[dict[str, Any]]) -> Callable[[str], str | None]:
    """The intent the tail's PatternIntentOverride steps force on a text (the last match wins)."""
    components = [
        PatternIntentOverride({**PatternIntentOverride.get_default_config(), **step})
        for step in tail
        if step["name"].endswith("PatternIntentOverride")
    ]

    def forced(text: str) -> str | None:
        message = Message(data={TEXT: text, INTENT: {INTENT_NAME_KEY: None, PREDICTED_CONFIDENCE_KEY: 0.0}})
        for component in components:
            component.process([message])
        return message.get(INTENT)[INTENT_NAME_KEY]

    return forced


def raw_prediction(text: str, gold: str, parse: dict[str, Any], override: str | None) -> RawPrediction:
    """The classifiers' top two intents and FAQ answers from a head model's parse."""
    selector = (parse.get("response_selector") or {}).get(RETRIEVAL_INTENT) or {}
    return RawPrediction(
        text=text,
        gold=gold,
        override=override,
        intents=tuple((r["name"], r["confidence"]) for r in (parse.get("intent_ranking") or [])[:2]),
        answers=tuple((r["intent_response_key"], r["confidence"]) for r in selector.get("ranking", [])[:2]),
    )


def rasa_train(
    arguments: Sequence[str], out: Path, program: Sequence[str] = (str(RASA_PROGRAM),)
) -> tuple[Path, float]:
    """`rasa train <arguments>` into `out` with an empty cache; return the model and wall seconds.

    `program`: Rasa's own (the pipelines compared may include its ResponseSelector, which learns
    from the answers' words), or the project's (staff/service/train.py RASA_TRAIN).
    """
    log_path = out / "train.log"
    env = dict(
        os.environ,
        RASA_CACHE_DIRECTORY=str(out / "cache"),
        RASA_TELEMETRY_ENABLED="false",
        TF_CPP_MIN_LOG_LEVEL="3",
    )
    command = [
        *program,
        "train",
        *arguments,
        "--fixed-model-name",
        "model",
        "--out",
        str(out / "models"),
    ]
    with log_path.open("w") as log:
        started = time.monotonic()
        result = subprocess.run(
            command,
            cwd=PROJECT_ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            timeout=TRAIN_TIMEOUT_S,
            check=False,
        )
        seconds = time.monotonic() - started
    model = out / "models" / "model.tar.gz"
    if result.returncode != 0 or not model.exists():
        tail = "\n".join(log_path.read_text(errors="replace").splitlines()[-40:])
        raise RuntimeError(f"`rasa train` failed (exit {result.returncode}); its log ends:\n{tail}")
    return model, seconds


def train_nlu(config: dict[str, Any], nlu: Path, out: Path) -> tuple[Path, float]:
    """Train an NLU model with `config` on `nlu` in `out`: the model and wall seconds."""
    config_path = out / "config.yml"
    config_path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    return rasa_train(
        ["nlu", "--config", str(config_path), "--nlu", str(nlu), "--domain", str(DOMAIN_DIR)], out
    )


def predict(
    model: Path,
    examples: Sequence[tuple[str, str]],
    parse_texts: Callable[[Path, Sequence[str]], list[dict[str, Any]]],
    override: Callable[[str], str | None],
) -> list[RawPrediction]:
    """Raw predictions of a head model for (text, gold) examples."""
    parses = parse_texts(model, [text for text, _ in examples])
    return [
        raw_prediction(text, gold, parse, override(text)) for (text, gold), parse in zip(examples, parses)
    ]


def cross_validate(
    config: dict[str, Any],
    k: int,
    parse_texts: Callable[[Path, Sequence[str]], list[dict[str, Any]]],
    override: Callable[[str], str | None],
    progress: Callable[[str], None],
) -> list[RawPrediction]:
    """Raw predictions for every training example from the model of the fold that left it out."""
    from rasa.shared.nlu.training_data.loading import load_data

    data = load_data(str(NLU_DATA))
    examples = data.intent_examples
    folds = stratified_folds([e.get_full_intent() for e in examples], k)
    predictions: list[RawPrediction | None] = [None] * len(examples)
    for number, fold in enumerate(folds, start=1):
        progress(f"cross-validation fold {number}/{k}: training on {len(examples) - len(fold)} examples...")
        left_out = frozenset(id(examples[i]) for i in fold)
        with tempfile.TemporaryDirectory(prefix="bench-cv-") as tmp:
            train_path = Path(tmp) / "nlu.yml"
            train_path.write_text(
                data.filter_training_examples(lambda e, out=left_out: id(e) not in out).nlu_as_yaml(),
                encoding="utf-8",
            )
            model, _ = train_nlu(config, train_path, Path(tmp))
            fold_examples = [(examples[i].get("text"), examples[i].get_full_intent()) for i in fold]
            for i, raw in zip(fold, predict(model, fold_examples, parse_texts, override)):
                predictions[i] = raw
    return [raw for raw in predictions if raw is not None]
