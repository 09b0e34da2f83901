"""`make bench`: held-out accuracy, safety rates, training and start-up time, latency, memory.

Writes reports/benchmark.md (tables for people), reports/benchmark.json (every number,
per-label scores and each held-out error) and reports/confusion-heldout.png, and prints the
tables. The main table measures models/scar-faq.tar.gz, the model `make run` serves; then
pipelines are compared on the same split, and cross-validation on the training data tunes
the fallback thresholds (devtools/bench/nlu_eval.py).
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import logging
import math
import os
import platform
import shutil
import sys
import tempfile
import time
import urllib.request
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from datetime import datetime
from importlib.metadata import version
from pathlib import Path
from typing import Any

import yaml
from sklearn.metrics import precision_recall_fscore_support

from common.names import CONVERSATION_HEADER
from common.paths import CONFIG, DOMAIN_DIR, HELDOUT, MODEL, PROJECT_ROOT, REPORTS_DIR
from components.deflection import DEFLECTION_INTENTS
from devtools.bench import conversations
from devtools.bench.nlu_eval import (
    NLU_DATA,
    RETRIEVAL_INTENT,
    WRONG_ANSWER_BUDGET,
    RawPrediction,
    Thresholds,
    Variant,
    choose,
    confusion,
    cross_validate,
    head_config,
    load_variants,
    pattern_overrides,
    predict,
    rasa_train,
    replay,
    split_pipeline,
    sweep,
    tail_thresholds,
    threshold_grid,
    train_nlu,
    winner,
)
from devtools.measure import percentile
from servers.launcher import Stack, StackConfig, free_port
from staff.service.evaluate import effective_label, load_heldout
from staff.service.train import RASA_TRAIN

REPORTS = REPORTS_DIR
CONFUSION_PNG = "confusion-heldout.png"
CV_FOLDS = 5
CV_PREDICTIONS = "cv-predictions.json"  # the classifiers' raw predictions, to re-run the sweep offline
# Predictions that decline to answer: the visitor is redirected, not told something.
DEFLECTIONS = frozenset({"out_of_scope", "medical_advice", "nlu_fallback", "urgent_symptoms", "unclear"})
# Gold labels of questions the assistant must not answer.
OFF_TOPIC = frozenset(DEFLECTION_INTENTS)
MESSAGES_PER_SENDER = 5
MIB = 1024 * 1024


@dataclass(frozen=True)
class Target:
    """A bound a metric must meet: at most `limit`, or at least `limit` if `minimum`."""

    limit: float
    minimum: bool = False

    def met(self, value: float) -> bool:
        """Whether `value` is within the bound."""
        return value >= self.limit if self.minimum else value <= self.limit

    def __str__(self) -> str:
        """The bound as the table shows it, e.g. `<= 60`."""
        return f"{'>=' if self.minimum else '<='} {self.limit:g}"


TARGETS = {
    "train_s": Target(90),
    "ready_s": Target(30),
    "latency_p95_ms": Target(60),
    "heldout_accuracy": Target(0.95, minimum=True),
    "wrong_answer_rate": Target(WRONG_ANSWER_BUDGET),
    "offtopic_deflection": Target(0.90, minimum=True),
}

# The table's rows: metric key, label, value format.
ROWS = [
    ("heldout_accuracy", "Held-out accuracy", "{:.3f}"),
    ("heldout_macro_f1", "Held-out macro-F1", "{:.3f}"),
    ("offtopic_deflection", "Off-topic / medical questions deflected", "{:.1%}"),
    ("wrong_answer_rate", "Wrong answers (share of all held-out)", "{:.1%}"),
    ("train_s", "Train from scratch (no cache)", "{:.1f} s"),
    ("ready_s", "Start until the server answers", "{:.1f} s"),
    ("first_reply_ms", "First reply after start", "{:.0f} ms"),
    ("latency_p50_ms", "REST latency p50", "{:.1f} ms"),
    ("latency_p95_ms", "REST latency p95", "{:.1f} ms"),
    ("latency_max_ms", "REST latency max", "{:.1f} ms"),
    ("server_rss_mib", "Server memory (Rasa + actions, RSS)", "{:.0f} MiB"),
    ("model_mib", "Model size", "{:.1f} MiB"),
]


# ------------------------------------------------------------------ scoring (pure)


def share(flags: Iterable[bool]) -> float | None:
    """The fraction of true flags; None when there are none to count."""
    counted = list(flags)
    return sum(counted) / len(counted) if counted else None


def accuracy(gold: Sequence[str], predicted: Sequence[str]) -> float | None:
    """Share of messages whose effective label is the gold one."""
    return share(g == p for g, p in zip(gold, predicted))


def deflection_rate(gold: Sequence[str], predicted: Sequence[str]) -> float | None:
    """Share of off-topic and medical-advice messages that got no answer (were deflected)."""
    return share(p in DEFLECTIONS for g, p in zip(gold, predicted) if g in OFF_TOPIC)


def wrong_answer_rate(gold: Sequence[str], predicted: Sequence[str]) -> float | None:
    """Share of all messages answered (not deflected) with something other than the gold label."""
    return share(p not in DEFLECTIONS and p != g for g, p in zip(gold, predicted))


def answer_recall(gold: Sequence[str], predicted: Sequence[str]) -> float | None:
    """Share of FAQ questions that got their own answer: what fallback thresholds can take away."""
    return share(p == g for g, p in zip(gold, predicted) if g.startswith(f"{RETRIEVAL_INTENT}/"))


def rates(gold: Sequence[str], predicted: Sequence[str]) -> dict[str, float | None]:
    """Accuracy, FAQ answer recall, off-topic deflection and wrong-answer rate: what the sweep weighs."""
    return {
        "accuracy": accuracy(gold, predicted),
        "answer_recall": answer_recall(gold, predicted),
        "offtopic_deflection": deflection_rate(gold, predicted),
        "wrong_answer_rate": wrong_answer_rate(gold, predicted),
    }


def quality(gold: Sequence[str], predicted: Sequence[str]) -> dict[str, float | None]:
    """The rates plus macro-F1: one row of the comparison and cross-validation tables."""
    return {**rates(gold, predicted), "macro_f1": macro_f1(label_scores(gold, predicted))}


def label_scores(gold: Sequence[str], predicted: Sequence[str]) -> dict[str, dict[str, float]]:
    """Precision, recall, F1 and support of every gold label."""
    labels = sorted(set(gold))
    precision, recall, f1, support = precision_recall_fscore_support(
        gold, predicted, labels=labels, zero_division=0
    )
    return {
        label: {"precision": float(p), "recall": float(r), "f1": float(f), "support": int(s)}
        for label, p, r, f, s in zip(labels, precision, recall, f1, support)
    }


def macro_f1(scores: dict[str, dict[str, float]]) -> float | None:
    """Unweighted mean F1 over the gold labels, so rare labels count as much as FAQs."""
    return sum(s["f1"] for s in scores.values()) / len(scores) if scores else None


def descendants(roots: Iterable[int], parents: dict[int, int]) -> set[int]:
    """`roots` and every process below them, given each process's parent pid."""
    found = set(roots)
    frontier = list(found)
    while frontier:
        pid = frontier.pop()
        children = [child for child, parent in parents.items() if parent == pid and child not in found]
        found.update(children)
        frontier.extend(children)
    return found


def format_value(value: float | None, fmt: str) -> str:
    """A metric as the table shows it; n/a when it was not measured."""
    return "n/a" if value is None else fmt.format(value)


def verdict(key: str, value: float | None) -> tuple[str, str]:
    """The metric's target and PASS/FAIL (blank when it has no target)."""
    target = TARGETS.get(key)
    if target is None:
        return "", ""
    if value is None:
        return str(target), "skipped"
    return str(target), "PASS" if target.met(value) else "FAIL"


def markdown(report: dict[str, Any]) -> str:
    """The human-readable report: context lines, then one table row per metric."""
    machine, metrics = report["machine"], report["metrics"]
    lines = [
        "# Benchmark",
        "",
        f"- Date: {report['date']}",
        f"- Machine: {machine['cores']} cores ({machine['cpu']}), {machine['ram_gib']:.1f} GiB RAM;"
        f" load average {machine['load_average_at_start']:.1f} at start; Python {machine['python']},"
        f" Rasa {machine['rasa']}",
        f"- Model: {report['model']}; held-out set: {report['heldout']}"
        f" ({report['heldout_examples']} messages,"
        f" {report['latency_messages']} sequential REST messages after the first reply for latency,"
        f" a new sender every {MESSAGES_PER_SENDER})",
        "",
        "| Metric | Value | Target | Result |",
        "|---|---|---|---|",
    ]
    for key, label, fmt in ROWS:
        target, result = verdict(key, metrics.get(key))
        lines.append(f"| {label} | {format_value(metrics.get(key), fmt)} | {target} | {result} |")
    lines += [
        "",
        "Deflected: predicted one of " + ", ".join(sorted(DEFLECTIONS)) + ", i.e. not answered.",
        "A wrong answer is any other prediction (an FAQ answer, contact details, a greeting...)"
        " that differs from the gold label.",
        f"{len(report['errors'])} held-out errors and per-label precision/recall: reports/benchmark.json.",
        f"Held-out confusion matrix (gold rows, predicted columns): [{CONFUSION_PNG}]({CONFUSION_PNG}).",
        "",
    ]
    if report.get("sets"):
        lines += sets_markdown(report["sets"])
    if report.get("conversations"):
        held = report["conversations"]
        lines += conversations.markdown(held["first_turn"], held["follow_ups"])
    for name, scored in (report.get("first_turn_sets") or {}).items():
        lines += conversations.set_markdown(name, scored["by_kind"])
    if report.get("comparison"):
        lines += comparison_markdown(report["comparison"])
    if report.get("cross_validation"):
        lines += cv_markdown(report["cross_validation"])
    return "\n".join(lines)


def quality_cells(row: dict[str, Any]) -> str:
    """Accuracy, macro-F1, wrong answers and off-topic deflection as table cells."""
    return " | ".join(
        [
            format_value(row["accuracy"], "{:.3f}"),
            format_value(row["macro_f1"], "{:.3f}"),
            format_value(row["wrong_answer_rate"], "{:.1%}"),
            format_value(row["offtopic_deflection"], "{:.1%}"),
        ]
    )


def comparison_markdown(comparison: dict[str, Any]) -> list[str]:
    """The pipelines compared on the held-out set, and the winner."""
    lines = [
        "## Pipelines compared",
        "",
        "Each trained (`rasa train nlu`, empty cache) on data/nlu and scored on the held-out set, with"
        " the fallback thresholds cross-validation chose for its classifiers"
        " (devtools/bench/classifiers/*.yml, else config.yml's); the winner has the fewest wrong answers,"
        " then the best accuracy.",
        "",
        "| Pipeline | Accuracy | Macro-F1 | Wrong answers | Off-topic deflected | NLU train time |",
        "|---|---|---|---|---|---|",
    ]
    for row in comparison["rows"]:
        name = f"**{row['name']}**" if row["name"] == comparison["winner"] else row["name"]
        lines.append(f"| {name}: {row['description']} | {quality_cells(row)} | {row['train_s']:.0f} s |")
    return [*lines, "", f"Winner: **{comparison['winner']}**.", ""]


def thresholds_text(thresholds: dict[str, float]) -> str:
    """The four thresholds as config.yml names them."""
    return (
        f"FallbackClassifier threshold {thresholds['fallback']:g}, ambiguity_threshold"
        f" {thresholds['fallback_ambiguity']:g}; FaqConfidenceGuard threshold {thresholds['guard']:g},"
        f" ambiguity_threshold {thresholds['guard_ambiguity']:g}"
    )


def cv_markdown(cv: dict[str, Any]) -> list[str]:
    """Cross-validation of the current pipeline and the threshold sweep's pick."""
    same = cv["chosen_thresholds"] == cv["config_thresholds"]
    return [
        "## Cross-validation and fallback thresholds",
        "",
        f"{cv['folds']}-fold stratified cross-validation of config.yml's pipeline on the training data"
        f" ({cv['examples']} examples, each predicted by the model that did not see it),"
        f" {cv['seconds']:.0f} s. The sweep replays the fallback tail on these predictions for"
        f" {cv['grid_size']} threshold combinations and keeps the most accurate one among those with at"
        f" most {WRONG_ANSWER_BUDGET:.0%} wrong answers (then the best FAQ answer recall, then the"
        " closest to config.yml's)."
        f" Raw predictions: reports/{CV_PREDICTIONS}.",
        "",
        "| Thresholds | Accuracy | Macro-F1 | Wrong answers | Off-topic deflected | FAQ answer recall |",
        "|---|---|---|---|---|---|",
        f"| config.yml: {thresholds_text(cv['config_thresholds'])} | {quality_cells(cv['at_config'])}"
        f" | {format_value(cv['at_config']['answer_recall'], '{:.3f}')} |",
        f"| sweep's pick: {thresholds_text(cv['chosen_thresholds'])} | {quality_cells(cv['at_chosen'])}"
        f" | {format_value(cv['at_chosen']['answer_recall'], '{:.3f}')} |",
        "",
        "config.yml already has the sweep's thresholds."
        if same
        else "config.yml differs from the sweep's pick: set the thresholds above and retrain.",
        "",
    ]


# ------------------------------------------------------------------ held-out set


def load_agent(model: Path) -> Any:
    """The trained model in this process, without Rasa's per-message debug log."""
    from rasa.core.agent import Agent
    from rasa.utils.common import configure_logging_and_warnings
    from rasa.utils.log_utils import configure_structlog

    from servers import model_load

    configure_logging_and_warnings(logging.WARNING)
    configure_structlog(logging.WARNING)
    model_load.install()  # the dialogue model built for prediction in seconds (as the Rasa server does)
    return Agent.load(str(model))


async def parse_all(agent: Any, texts: Sequence[str]) -> list[dict[str, Any]]:
    """Rasa's NLU parse of each text, in order."""
    return [await agent.parse_message(text) for text in texts]


def error_entry(text: str, gold: str, parse: dict[str, Any]) -> dict[str, Any]:
    """One held-out error: what was asked, expected and predicted, and how confidently."""
    entry = {
        "text": text,
        "gold": gold,
        "predicted": effective_label(parse),
        "confidence": round(parse["intent"]["confidence"], 4),
    }
    if parse["intent"]["name"] == RETRIEVAL_INTENT:
        answer = parse["response_selector"][RETRIEVAL_INTENT]["response"]["confidence"]
        entry["answer_confidence"] = round(answer, 4)
    return entry


def parse_texts(model: Path, texts: Sequence[str]) -> list[dict[str, Any]]:
    """Rasa's parse of each text by `model`, loaded in this process."""
    return asyncio.run(parse_all(load_agent(model), texts))


def score_heldout(model: Path, examples: Sequence[tuple[str, str]]) -> dict[str, Any]:
    """Accuracy, macro-F1, deflection and wrong-answer rates, per-label scores, errors, predictions."""
    parses = parse_texts(model, [text for text, _ in examples])
    gold = [label for _, label in examples]
    predicted = [effective_label(parse) for parse in parses]
    scores = label_scores(gold, predicted)
    return {
        "metrics": {
            "heldout_accuracy": accuracy(gold, predicted),
            "heldout_macro_f1": macro_f1(scores),
            "offtopic_deflection": deflection_rate(gold, predicted),
            "wrong_answer_rate": wrong_answer_rate(gold, predicted),
        },
        "per_label": scores,
        "errors": [
            error_entry(text, g, parse) for (text, g), p, parse in zip(examples, predicted, parses) if p != g
        ],
        "predicted": predicted,
    }


def score_first_turn_set(data: dict[str, Any], labels_for: Any) -> dict[str, Any]:
    """A first-turn set scored by kind, with its totals (right, wrong, safe misses) and macro-F1."""
    cases = [case for kind_cases in data["first_turn"].values() for case in kind_cases]
    predicted = dict(zip([text for _, text in cases], labels_for([text for _, text in cases])))
    by_kind = conversations.score_first_turn(data, lambda texts: [predicted[text] for text in texts])
    gold = [g for g, _ in cases]
    labels = [predicted[text] for _, text in cases]
    return {
        "by_kind": by_kind,
        "summary": {
            **conversations.totals(by_kind),
            "accuracy": accuracy(gold, labels),
            "macro_f1": macro_f1(label_scores(gold, labels)),
        },
    }


def heldout_summary(examples: Sequence[tuple[str, str]], heldout: dict[str, Any]) -> dict[str, Any]:
    """tests/heldout/nlu.yml in the terms of the first-turn sets: right, wrong, safe misses."""
    gold = [label for _, label in examples]
    predicted = heldout["predicted"]
    right = sum(g == p for g, p in zip(gold, predicted))
    wrong = sum(p not in DEFLECTIONS and p != g for g, p in zip(gold, predicted))
    return {
        "cases": len(gold),
        "right": right,
        "did_you_mean": sum(p == conversations.FALLBACK for p in predicted),
        "wrong": wrong,
        "safe_misses": len(gold) - right - wrong,
        "accuracy": heldout["metrics"]["heldout_accuracy"],
        "macro_f1": heldout["metrics"]["heldout_macro_f1"],
    }


def sets_markdown(sets: dict[str, dict[str, Any]]) -> list[str]:
    """Every held-out set side by side: messages, right, wrong answers, safe misses, macro-F1."""
    lines = [
        "## Held-out sets",
        "",
        "Every held-out set on the served model (first messages, scored on the model's parse). Right:"
        ' the answer meant; wrong: another answer; safe miss: "did you mean", "I don\'t have that'
        ' information", or the medical-advice or urgent deflection instead of the answer meant.',
        "",
        "| Set | Messages | Right | Wrong answers | Safe misses (did you mean) | Macro-F1 |",
        "|---|---|---|---|---|---|",
    ]
    for name, row in sets.items():
        lines.append(
            f"| {name} | {row['cases']} | {row['right']} ({format_value(row['accuracy'], '{:.3f}')})"
            f" | {row['wrong']} | {row['safe_misses']} ({row['did_you_mean']})"
            f" | {format_value(row['macro_f1'], '{:.3f}')} |"
        )
    return [*lines, ""]


def plot_confusion(gold: Sequence[str], predicted: Sequence[str], path: Path, title: str) -> None:
    """A confusion-matrix PNG: gold labels as rows, predicted as columns, counts in the cells."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels, counts = confusion(gold, predicted)
    figure, axes = plt.subplots(figsize=(12, 11))
    axes.imshow([[math.log1p(c) for c in row] for row in counts], cmap="Blues")  # log: the diagonal dominates
    axes.set_xticks(range(len(labels)), labels, rotation=90, fontsize=8)
    axes.set_yticks(range(len(labels)), labels, fontsize=8)
    axes.set_xlabel("predicted")
    axes.set_ylabel("gold")
    axes.set_title(title)
    for row, line in enumerate(counts):
        for column, count in enumerate(line):
            if count:
                axes.text(
                    column,
                    row,
                    str(count),
                    ha="center",
                    va="center",
                    fontsize=7,
                    color="white" if row == column else "black",
                )
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)


# ------------------------------------------------------------------ pipelines and thresholds


def compare_pipelines(
    config: dict[str, Any], variants: Sequence[Variant], examples: Sequence[tuple[str, str]]
) -> dict[str, Any]:
    """Train each pipeline on data/nlu and score it on the held-out set with its own thresholds."""
    override = pattern_overrides(split_pipeline(config["pipeline"])[2])
    gold = [label for _, label in examples]
    rows = []
    for variant in variants:
        progress(f"pipeline {variant.name}: training on data/nlu...")
        with tempfile.TemporaryDirectory(prefix="bench-pipeline-") as tmp:
            model, seconds = train_nlu(
                head_config(config, variant.featurizers, variant.classifiers), NLU_DATA, Path(tmp)
            )
            raws = predict(model, examples, parse_texts, override)
        predicted = [replay(raw, variant.thresholds) for raw in raws]
        rows.append(
            {
                "name": variant.name,
                "description": variant.description,
                **quality(gold, predicted),
                "train_s": seconds,
            }
        )
    return {"rows": rows, "winner": winner(rows)["name"]}


def tune_thresholds(config: dict[str, Any], folds: int, current: Thresholds) -> dict[str, Any]:
    """Cross-validate config.yml's pipeline, then sweep the fallback thresholds on its predictions."""
    featurizers, _, tail = split_pipeline(config["pipeline"])
    started = time.monotonic()
    raws: list[RawPrediction] = cross_validate(
        head_config(config, featurizers), folds, parse_texts, pattern_overrides(tail), progress
    )
    seconds = time.monotonic() - started
    progress("sweeping the fallback thresholds...")
    grid = threshold_grid(current)
    chosen = choose(sweep(raws, grid, rates), current)["thresholds"]
    gold = [raw.gold for raw in raws]
    (REPORTS / CV_PREDICTIONS).write_text(json.dumps([asdict(raw) for raw in raws]) + "\n", encoding="utf-8")
    return {
        "folds": folds,
        "examples": len(raws),
        "seconds": seconds,
        "grid_size": len(grid),
        "config_thresholds": asdict(current),
        "chosen_thresholds": asdict(chosen),
        "at_config": quality(gold, [replay(raw, current) for raw in raws]),
        "at_chosen": quality(gold, [replay(raw, chosen) for raw in raws]),
        "errors": [
            {"text": raw.text, "gold": raw.gold, "predicted": label}
            for raw in raws
            if (label := replay(raw, chosen)) != raw.gold
        ],
    }


# ------------------------------------------------------------------ servers


def post_ms(url: str, sender: str, text: str, issued: dict[str, str] | None = None) -> float:
    """Send one message to the REST channel as `sender`; the milliseconds until the full reply.

    The server issues conversation ids: `issued` maps each sender to the id its first reply
    carried (X-Conversation-Id), so its next messages continue that conversation.
    """
    issued = {} if issued is None else issued
    body = {"message": text, **({"sender": issued[sender]} if sender in issued else {})}
    request = urllib.request.Request(
        url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}
    )
    started = time.perf_counter()
    with urllib.request.urlopen(request, timeout=60) as response:
        response.read()
        issued.setdefault(sender, response.headers.get(CONVERSATION_HEADER, sender))
    return (time.perf_counter() - started) * 1000


def parent_pids() -> dict[int, int]:
    """Pid -> parent pid of every running process (from /proc; psutil is not installed)."""
    parents = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rpartition(")")[2].split()
        except OSError:  # the process ended meanwhile
            continue
        parents[int(stat.parent.name)] = int(fields[1])
    return parents


def rss_mib(pid: int) -> float:
    """Resident memory of one process (VmRSS), 0 if it has none or has ended."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return 0.0
    kib = next((int(line.split()[1]) for line in status.splitlines() if line.startswith("VmRSS:")), 0)
    return kib * 1024 / MIB


def log_tail(path: Path, lines: int = 40) -> str:
    """The end of a server or training log, to explain a failure."""
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


def measure_serving(
    model: Path, texts: Sequence[str], messages: int, held_out: dict[str, Any] | None = None
) -> tuple[dict[str, float], dict[str, Any] | None]:
    """Start-up time, first reply, sequential REST latency and memory of the served model.

    Then, after the timings and the memory, the held-out follow-up pairs (`held_out`) are sent.
    """
    with tempfile.TemporaryDirectory(prefix="bench-serve-") as tmp:
        config = StackConfig(
            rasa_port=free_port(),
            action_port=free_port(),
            model=model,
            database_url=f"sqlite:///{tmp}/bench.db",
            extra_env=conversations.UNTHROTTLED,
        )
        log_path = Path(tmp) / "servers.log"
        with log_path.open("w") as log:
            stack = Stack(config, log)
            try:  # not `with Stack(...)`: a failing start() would leave the servers running
                started = time.monotonic()
                stack.start()
                ready_s = time.monotonic() - started
                url = f"{config.rasa_url}/webhooks/rest/webhook"
                first_reply_ms = post_ms(url, "bench-first", texts[0])
                issued: dict[str, str] = {}
                latencies = [
                    post_ms(url, f"bench-{i // MESSAGES_PER_SENDER}", texts[i % len(texts)], issued)
                    for i in range(messages)
                ]
                pids = descendants([p.pid for p in stack.processes], parent_pids())
                rss = sum(rss_mib(pid) for pid in pids)
                follow_ups = conversations.score_follow_ups(held_out, config.rasa_url) if held_out else None
            except Exception as error:
                log.flush()
                message = f"benchmarking the servers failed; their log ends:\n{log_tail(log_path)}"
                raise RuntimeError(message) from error
            finally:
                stack.stop()
    timings = {
        "ready_s": ready_s,
        "first_reply_ms": first_reply_ms,
        "latency_p50_ms": percentile(latencies, 50),
        "latency_p95_ms": percentile(latencies, 95),
        "latency_max_ms": max(latencies),
        "server_rss_mib": rss,
    }
    return timings, follow_ups


# ------------------------------------------------------------------ training


def time_training() -> float:
    """Wall seconds of `rasa train` (NLU and dialogue) from scratch, with an empty cache."""
    with tempfile.TemporaryDirectory(prefix="bench-train-") as tmp:
        arguments = ["--augmentation", "0", "--domain", str(DOMAIN_DIR)]
        return rasa_train(arguments, Path(tmp), program=RASA_TRAIN)[1]  # as make train trains


# ------------------------------------------------------------------ report


def machine() -> dict[str, Any]:
    """Where the numbers were measured: cores (as `nproc` counts them), CPU, RAM, versions."""
    meminfo = Path("/proc/meminfo").read_text().splitlines()
    ram_kib = next(int(line.split()[1]) for line in meminfo if line.startswith("MemTotal:"))
    cpuinfo = Path("/proc/cpuinfo").read_text().splitlines()
    cpu = next(
        (line.partition(":")[2].strip() for line in cpuinfo if line.startswith("model name")),
        platform.machine(),
    )
    return {
        "cores": len(os.sched_getaffinity(0)),
        "cpu": cpu,
        "ram_gib": ram_kib / MIB,
        "python": platform.python_version(),
        "rasa": version("rasa"),
    }


def progress(message: str) -> None:
    """A progress line on stderr, so stdout carries only the table."""
    print(f"bench: {message}", file=sys.stderr, flush=True)


def run(model: Path, messages: int, skip_train: bool, compare: bool, folds: int) -> dict[str, Any]:
    """Every measurement, one after another so that none competes with another for the CPU."""
    load = os.getloadavg()[0]
    if load >= 1:
        progress(f"the load average is {load:.1f}: other work on this machine will slow the timings")
    examples = load_heldout(HELDOUT)
    with tempfile.TemporaryDirectory(prefix="bench-model-") as tmp:
        snapshot = Path(tmp) / model.name  # a `make train` meanwhile must not swap the model mid-run
        shutil.copyfile(model, snapshot)
        progress(f"scoring {len(examples)} held-out messages...")
        heldout = score_heldout(snapshot, examples)
        held_out_conversations = conversations.load()
        progress("scoring the held-out first turns...")
        first_texts = [text for cases in held_out_conversations["first_turn"].values() for _, text in cases]
        predicted_first = dict(
            zip(first_texts, [effective_label(parse) for parse in parse_texts(snapshot, first_texts)])
        )
        first_turn = conversations.score_first_turn(
            held_out_conversations, lambda texts: [predicted_first[text] for text in texts]
        )
        further = {}
        for name, data in conversations.first_turn_sets().items():
            progress(f"scoring the held-out first turns of {name}...")
            further[name] = score_first_turn_set(
                data, lambda texts: [effective_label(parse) for parse in parse_texts(snapshot, texts)]
            )
        progress(f"starting the servers and sending {messages} messages, then the follow-up pairs...")
        serving, follow_ups = measure_serving(
            snapshot, [text for text, _ in examples], messages, held_out_conversations
        )
        model_sha256 = hashlib.sha256(snapshot.read_bytes()).hexdigest()
        model_mib = snapshot.stat().st_size / MIB
    progress("skipping the training run" if skip_train else "training from scratch (no cache)...")
    train_s = None if skip_train else time_training()
    metrics = {**heldout["metrics"], "train_s": train_s, **serving, "model_mib": model_mib}
    REPORTS.mkdir(exist_ok=True)
    plot_confusion(
        [label for _, label in examples],
        heldout["predicted"],
        REPORTS / CONFUSION_PNG,
        f"Held-out set ({len(examples)} messages), {model.name}",
    )
    config = yaml.safe_load(CONFIG.read_text(encoding="utf-8"))
    thresholds = tail_thresholds(split_pipeline(config["pipeline"])[2])
    comparison = compare_pipelines(config, load_variants(config), examples) if compare else None
    cross_validation = tune_thresholds(config, folds, thresholds) if folds else None
    return {
        "date": datetime.now().astimezone().isoformat(timespec="seconds"),
        "machine": {**machine(), "load_average_at_start": load},
        "model": os.path.relpath(model, PROJECT_ROOT),
        "model_sha256": model_sha256,
        "heldout": os.path.relpath(HELDOUT, PROJECT_ROOT),
        "heldout_examples": len(examples),
        "latency_messages": messages,
        "metrics": metrics,
        "targets": {
            key: {"target": str(target), "result": verdict(key, metrics[key])[1]}
            for key, target in TARGETS.items()
        },
        "per_label": heldout["per_label"],
        "errors": heldout["errors"],
        "conversations": {"first_turn": first_turn, "follow_ups": follow_ups},
        "first_turn_sets": further,
        "sets": {
            os.path.relpath(HELDOUT, PROJECT_ROOT): heldout_summary(examples, heldout),
            "tests/heldout/conversations.yml (first turns)": score_first_turn_set(
                held_out_conversations, lambda texts: [predicted_first[text] for text in texts]
            )["summary"],
            **{f"tests/heldout/{name}": row["summary"] for name, row in further.items()},
        },
        "comparison": comparison,
        "cross_validation": cross_validation,
    }


def main() -> None:
    """`make bench`: measure, write reports/benchmark.{md,json}, print the table."""
    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("--model", type=Path, default=MODEL, help="trained model (default: %(default)s)")
    parser.add_argument(
        "--messages", type=int, default=200, help="REST messages timed (default: %(default)s)"
    )
    parser.add_argument("--skip-train", action="store_true", help="do not time a training run")
    parser.add_argument("--skip-compare", action="store_true", help="do not compare pipelines")
    parser.add_argument(
        "--folds",
        type=int,
        default=CV_FOLDS,
        help="cross-validation folds, 0 to skip it and the threshold sweep (default: %(default)s)",
    )
    args = parser.parse_args()
    if args.messages < 1:
        parser.error("--messages must be at least 1")
    if args.folds == 1 or args.folds < 0:
        parser.error("--folds must be 0 or at least 2")
    model = args.model.resolve()
    if not model.exists():
        sys.exit(f"No model at {model}: run `make train` first.")
    with warnings.catch_warnings(record=True):  # libraries' notices would bury the progress lines
        report = run(model, args.messages, args.skip_train, not args.skip_compare, args.folds)
    table = markdown(report)
    (REPORTS / "benchmark.json").write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    (REPORTS / "benchmark.md").write_text(table, encoding="utf-8")
    print(table)


if __name__ == "__main__":
    main()
