"""The dated held-out first-turn sets (tests/heldout/first_turns_<date>.yml) stay held out.

They measure how often a visitor is understood the first time on questions the model has
never seen: none of their texts may be a training example, the trainer must not read them,
and every label must be an answer the assistant can give.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml
from rasa.shared.nlu.training_data.loading import load_data

from common.domain import load_domain
from common.paths import DATA_DIR, HELDOUT_DIR, HELDOUT_FIRST_TURN_PATTERN, PROJECT_ROOT
from devtools.bench.conversations import first_turn_sets
from staff.service.train import INPUT_GLOBS, train_command

SETS = sorted(HELDOUT_DIR.glob(HELDOUT_FIRST_TURN_PATTERN))
WRITTEN_2026_12_05 = HELDOUT_DIR / "first_turns_2026-12-05.yml"


def normalise(text: str) -> str:
    """Lower case with single spaces, as `make validate` compares examples."""
    return " ".join(text.lower().split())


def cases(path: Path) -> list[tuple[str, str]]:
    """(gold, text) of every first turn of one set."""
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    return [tuple(case) for kind in data["first_turn"].values() for case in kind]


def test_the_set_of_2026_12_05_is_there_dated_and_large_enough() -> None:
    assert WRITTEN_2026_12_05 in SETS
    assert "written 2026-12-05" in WRITTEN_2026_12_05.read_text(encoding="utf-8").splitlines()[0]
    texts = [text for _, text in cases(WRITTEN_2026_12_05)]
    assert len(texts) >= 150
    assert len({normalise(t) for t in texts}) == len(texts), "a question is written twice"


@pytest.fixture(scope="module")
def training() -> set[str]:
    """Every training example of data/nlu, normalised, read once by Rasa for all the sets."""
    return {normalise(m.get("text")) for m in load_data(str(DATA_DIR / "nlu")).training_examples}


@pytest.mark.parametrize("path", SETS, ids=lambda p: p.name)
def test_no_question_of_the_set_is_a_training_example(path: Path, training: set[str]) -> None:
    leaked = [text for _, text in cases(path) if normalise(text) in training]
    assert not leaked, f"held-out questions found in data/nlu: {leaked}"


def test_the_trainer_does_not_read_the_sets_and_the_bench_does() -> None:
    """Training reads config, domain, data/ and the pipeline's files (staff/service/train.py); not tests/."""
    read_by_training = {path.resolve() for pattern in INPUT_GLOBS for path in PROJECT_ROOT.glob(pattern)}
    assert SETS and not read_by_training & {path.resolve() for path in SETS}
    data = train_command(PROJECT_ROOT, PROJECT_ROOT / "models", "model")
    assert data[data.index("--data") + 1] == str(DATA_DIR)
    assert not HELDOUT_DIR.resolve().is_relative_to(DATA_DIR.resolve())
    assert sorted(first_turn_sets()) == [path.name for path in SETS]


@pytest.mark.parametrize("path", SETS, ids=lambda p: p.name)
def test_every_label_is_an_answer_the_assistant_gives(path: Path) -> None:
    domain = load_domain()
    intents = {i if isinstance(i, str) else next(iter(i)) for i in domain["intents"]}
    topics = {name.removeprefix("utter_") for name in domain["responses"] if name.startswith("utter_faq/")}
    unknown = {gold for gold, _ in cases(path) if gold not in intents and gold not in topics}
    assert not unknown
    assert all(re.search(r"\w", text) for _, text in cases(path))
