"""Pipeline comparison, cross-validation and fallback-threshold tuning for `make bench`.

Models are trained on the pipeline up to the ResponseSelector only ("head"), so their
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
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Optional, Sequence

import yaml
from rasa.shared.constants import DEFAULT_NLU_FALLBACK_INTENT_NAME
from rasa.shared.nlu.constants import INTENT, INTENT_NAME_KEY, PREDICTED_CONFIDENCE_KEY, TEXT
from rasa.shared.nlu.training_data.message import Message

from components.pattern_override import PatternIntentOverride
from tools.stack import BIN, PROJECT_ROOT

DOMAIN = PROJECT_ROOT / "domain.yml"
NLU_DATA = PROJECT_ROOT / "data" / "nlu"
PIPELINES = PROJECT_ROOT / "bench" / "pipelines"
RETRIEVAL_INTENT = "faq"
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


@dataclass(frozen=True)
class RawPrediction:
    """What the trained classifiers said about one message, before the fallback tail."""

    text: str
    gold: str
    intents: tuple[tuple[str, float], ...]  # DIET's top two (intent, confidence)
    answers: tuple[tuple[str, float], ...]  # the ResponseSelector's top two (faq/<key>, confidence)
    override: Optional[str]  # the intent a PatternIntentOverride forces, if any


@dataclass(frozen=True)
class Variant:
    """A pipeline to compare: config.yml with this featurizer list."""

    name: str
    description: str
    featurizers: list[dict[str, Any]]


# ------------------------------------------------------------------ configs

def split_pipeline(pipeline: Sequence[dict[str, Any]]) -> tuple[list, list, list]:
    """(featurizers, classifiers, tail): steps before DIET, DIET to the ResponseSelector, the rest."""
    names = [step["name"] for step in pipeline]
    first, last = names.index("DIETClassifier"), names.index("ResponseSelector")
    return list(pipeline[:first]), list(pipeline[first:last + 1]), list(pipeline[last + 1:])


def head_config(config: dict[str, Any], featurizers: list[dict[str, Any]]) -> dict[str, Any]:
    """The trained part of `config` (no tail, no policies) with these featurizers."""
    classifiers = split_pipeline(config["pipeline"])[1]
    head = {key: value for key, value in config.items() if key not in ("pipeline", "policies")}
    head["pipeline"] = copy.deepcopy(featurizers + classifiers)
    return head


def load_variants(config: dict[str, Any], folder: Path = PIPELINES) -> list[Variant]:
    """The comparison: each bench/pipelines/*.yml, then config.yml's own pipeline (current).

    A file gives either its own `featurizers` list or the config.yml featurizers it goes `without`.
    """
    own = split_pipeline(config["pipeline"])[0]
    variants = []
    for path in sorted(folder.glob("*.yml")):
        spec = yaml.safe_load(path.read_text(encoding="utf-8"))
        dropped = set(spec.get("without", []))
        featurizers = spec.get("featurizers") or [step for step in own if step["name"] not in dropped]
        variants.append(Variant(path.stem, spec["description"], featurizers))
    return variants + [Variant("current", "config.yml: spaCy lemmas + lexical + word counts + MiniLM", own)]


def tail_thresholds(tail: Sequence[dict[str, Any]]) -> Thresholds:
    """The thresholds the tail's FallbackClassifier and FaqConfidenceGuard are configured with."""
    from rasa.nlu.classifiers.fallback_classifier import FallbackClassifier

    from components.faq_confidence import FaqConfidenceGuard

    def settings(cls: type, suffix: str) -> dict[str, Any]:
        step = next(s for s in tail if s["name"].endswith(suffix))
        return {**cls.get_default_config(), **step}

    fallback = settings(FallbackClassifier, "FallbackClassifier")
    guard = settings(FaqConfidenceGuard, "FaqConfidenceGuard")
    return Thresholds(fallback["threshold"], fallback["ambiguity_threshold"],
                      guard["threshold"], guard["ambiguity_threshold"])


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
    if _intent_falls_back(raw.intents, thresholds.fallback, thresholds.fallback_ambiguity):
        return DEFAULT_NLU_FALLBACK_INTENT_NAME
    intent = raw.intents[0][0]
    if intent != RETRIEVAL_INTENT:
        return intent
    if _answer_falls_back(raw.answers, thresholds.guard, thresholds.guard_ambiguity):
        return DEFAULT_NLU_FALLBACK_INTENT_NAME
    return raw.answers[0][0]


def threshold_grid(current: Thresholds) -> list[Thresholds]:
    """Every combination the sweep tries, and the current thresholds (its reference)."""
    grid = [Thresholds(*values) for values in
            itertools.product(CONFIDENCE_GRID, AMBIGUITY_GRID, CONFIDENCE_GRID, AMBIGUITY_GRID)]
    return grid if current in grid else [*grid, current]


def sweep(raws: Sequence[RawPrediction], grid: Iterable[Thresholds],
          score: Callable[[Sequence[str], Sequence[str]], dict[str, Optional[float]]]) -> list[dict[str, Any]]:
    """`score(gold, predicted)` of the replayed predictions, for each thresholds of the grid."""
    gold = [raw.gold for raw in raws]
    return [{"thresholds": t, **score(gold, [replay(raw, t) for raw in raws])} for t in grid]


def choose(results: Sequence[dict[str, Any]], current: Thresholds) -> dict[str, Any]:
    """Fewest wrong answers among the results with accuracy and FAQ answer recall at least `current`'s;
    then accuracy, then the thresholds closest to `current` (so ties do not churn config.yml)."""
    reference = next(r for r in results if r["thresholds"] == current)

    def distance(t: Thresholds) -> float:
        return sum(abs(a - b) for a, b in zip(asdict(t).values(), asdict(current).values()))

    eligible = [r for r in results
                if all(r[key] >= reference[key] - 1e-9 for key in ("accuracy", "answer_recall"))]
    return min(eligible, key=lambda r: (r["wrong_answer_rate"], -r["accuracy"], distance(r["thresholds"])))


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

def pattern_overrides(tail: Sequence[dict[str, Any]]) -> Callable[[str], Optional[str]]:
    """The intent the tail's PatternIntentOverride steps force on a text (the last match wins)."""
    components = [PatternIntentOverride({**PatternIntentOverride.get_default_config(), **step})
                  for step in tail if step["name"].endswith("PatternIntentOverride")]

    def forced(text: str) -> Optional[str]:
        message = Message(data={TEXT: text, INTENT: {INTENT_NAME_KEY: None, PREDICTED_CONFIDENCE_KEY: 0.0}})
        for component in components:
            component.process([message])
        return message.get(INTENT)[INTENT_NAME_KEY]

    return forced


def raw_prediction(text: str, gold: str, parse: dict[str, Any], override: Optional[str]) -> RawPrediction:
    """The classifiers' top two intents and FAQ answers from a head model's parse."""
    selector = (parse.get("response_selector") or {}).get(RETRIEVAL_INTENT) or {}
    return RawPrediction(
        text=text, gold=gold, override=override,
        intents=tuple((r["name"], r["confidence"]) for r in (parse.get("intent_ranking") or [])[:2]),
        answers=tuple((r["intent_response_key"], r["confidence"]) for r in selector.get("ranking", [])[:2]),
    )


def rasa_train(arguments: Sequence[str], out: Path) -> tuple[Path, float]:
    """`rasa train <arguments>` into `out` with an empty cache (nothing restored): the model and wall seconds."""
    log_path = out / "train.log"
    env = dict(os.environ, RASA_CACHE_DIRECTORY=str(out / "cache"), RASA_TELEMETRY_ENABLED="false",
               TF_CPP_MIN_LOG_LEVEL="3", PYTHONPATH=str(PROJECT_ROOT))
    command = [str(BIN / "rasa"), "train", *arguments, "--fixed-model-name", "model", "--out", str(out / "models")]
    with log_path.open("w") as log:
        started = time.monotonic()
        result = subprocess.run(command, cwd=PROJECT_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
                                timeout=TRAIN_TIMEOUT_S, check=False)
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
    return rasa_train(["nlu", "--config", str(config_path), "--nlu", str(nlu), "--domain", str(DOMAIN)], out)


def predict(model: Path, examples: Sequence[tuple[str, str]],
            parse_texts: Callable[[Path, Sequence[str]], list[dict[str, Any]]],
            override: Callable[[str], Optional[str]]) -> list[RawPrediction]:
    """Raw predictions of a head model for (text, gold) examples."""
    parses = parse_texts(model, [text for text, _ in examples])
    return [raw_prediction(text, gold, parse, override(text)) for (text, gold), parse in zip(examples, parses)]


def cross_validate(config: dict[str, Any], k: int,
                   parse_texts: Callable[[Path, Sequence[str]], list[dict[str, Any]]],
                   override: Callable[[str], Optional[str]],
                   progress: Callable[[str], None]) -> list[RawPrediction]:
    """Raw predictions for every training example from the model of the fold that left it out."""
    from rasa.shared.nlu.training_data.loading import load_data

    data = load_data(str(NLU_DATA))
    examples = data.intent_examples
    folds = stratified_folds([e.get_full_intent() for e in examples], k)
    predictions: list[Optional[RawPrediction]] = [None] * len(examples)
    for number, fold in enumerate(folds, start=1):
        progress(f"cross-validation fold {number}/{k}: training on {len(examples) - len(fold)} examples...")
        left_out = {id(examples[i]) for i in fold}
        with tempfile.TemporaryDirectory(prefix="bench-cv-") as tmp:
            train_path = Path(tmp) / "nlu.yml"
            train_path.write_text(data.filter_training_examples(lambda e: id(e) not in left_out).nlu_as_yaml(),
                                  encoding="utf-8")
            model, _ = train_nlu(config, train_path, Path(tmp))
            fold_examples = [(examples[i].get("text"), examples[i].get_full_intent()) for i in fold]
            for i, raw in zip(fold, predict(model, fold_examples, parse_texts, override)):
                predictions[i] = raw
    return [raw for raw in predictions if raw is not None]
