"""Rewording an FAQ answer leaves the NLU training data as it was, so Rasa restores the NLU from its cache.

What is fingerprinted is what Rasa's training graph gets (its NLUTrainingDataProvider, from the
importer `rasa train` builds) in the process `train_command` runs (staff/service/rasa_train.py).
"""

from __future__ import annotations

import importlib
import shutil
import warnings
from pathlib import Path

import pytest
import yaml
from rasa.graph_components.providers.nlu_training_data_provider import NLUTrainingDataProvider
from rasa.shared.importers.importer import ResponsesSyncImporter, TrainingDataImporter
from rasa.shared.nlu.training_data.training_data import TrainingData

from common.paths import CONFIG, DATA_DIR, DOMAIN_DIR, PROJECT_ROOT
from staff.service.train import inputs_digest, train_command

FAQ_DOMAIN = "domain/faq.yml"


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """What `rasa train` reads, copied: config, domain, data."""
    shutil.copy(CONFIG, tmp_path / CONFIG.name)
    for folder in (DOMAIN_DIR, DATA_DIR):
        shutil.copytree(folder, tmp_path / folder.name)
    return tmp_path


@pytest.fixture
def training_process(monkeypatch: pytest.MonkeyPatch) -> None:
    """This process as train_command's: its module installed (and Rasa's importer restored after)."""
    monkeypatch.setattr(ResponsesSyncImporter, "get_nlu_data", ResponsesSyncImporter.get_nlu_data)
    command = train_command(PROJECT_ROOT, PROJECT_ROOT / "models", "model")
    assert "-m" in command, f"training runs Rasa's own program, not the project's: {command[:3]}"
    importlib.import_module(command[command.index("-m") + 1]).install()


def importer(root: Path) -> TrainingDataImporter:
    """The importer `rasa train` makes from train_command's arguments (rasa/model_training.py)."""
    command = train_command(root, root / "models", "model")
    return TrainingDataImporter.load_from_config(
        config_path=command[command.index("--config") + 1],
        domain_path=command[command.index("--domain") + 1],
        training_data_paths=[command[command.index("--data") + 1]],
    )


def nlu_data(root: Path) -> TrainingData:
    """The NLU training data Rasa's pipeline is trained on."""
    provider = NLUTrainingDataProvider(NLUTrainingDataProvider.get_default_config(), None, None)  # type: ignore[arg-type]
    return provider.provide(importer(root))


def reword_first_answer(root: Path) -> None:
    path = root / FAQ_DOMAIN
    domain = yaml.safe_load(path.read_text(encoding="utf-8"))
    name = next(n for n in domain["responses"] if n.startswith("utter_faq/"))
    domain["responses"][name][0]["text"] += " Reworded by staff."
    path.write_text(yaml.safe_dump(domain, sort_keys=False), encoding="utf-8")


def test_a_reworded_answer_leaves_the_nlu_data_unchanged_and_a_new_example_does_not(
    project: Path, training_process: None
) -> None:
    before = nlu_data(project).fingerprint()
    reword_first_answer(project)
    assert nlu_data(project).fingerprint() == before
    (project / "data" / "nlu" / "added.yml").write_text(
        'version: "3.1"\nnlu:\n- intent: greet\n  examples: |\n    - a brand new way to say hello\n',
        encoding="utf-8",
    )
    assert nlu_data(project).fingerprint() != before


def test_the_nlu_data_is_rasas_without_the_answers_and_the_checks_are_the_same(project: Path) -> None:
    """The same examples, labels and data checks as Rasa's own; only the answers' words are left out."""

    def loaded() -> tuple[TrainingData, list[str]]:
        from rasa.cli.utils import validate_files

        project_importer = importer(project)
        with warnings.catch_warnings(record=True) as found:
            warnings.simplefilter("always")
            validate_files(False, None, project_importer)  # what `rasa train` checks first
            project_importer.get_nlu_data().validate()  # and its pipeline's validator node
        # Rasa's warnings about the data (not Python's about modules imported the first time)
        return project_importer.get_nlu_data(), sorted(
            str(w.message) for w in found if issubclass(w.category, UserWarning)
        )

    rasas, rasas_warnings = loaded()
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(ResponsesSyncImporter, "get_nlu_data", ResponsesSyncImporter.get_nlu_data)
        importlib.import_module("staff.service.rasa_train").install()
        ours, our_warnings = loaded()

    def examples(data: TrainingData) -> list[tuple[str, str, str]]:
        return sorted(
            (m.get("text") or "", m.get_full_intent() or "", str(m.get("action_name")))
            for m in data.training_examples
        )

    assert examples(ours) == examples(rasas) and len(examples(ours)) > 1000
    assert {name for name in rasas.responses if name.startswith("utter_faq/")} and not ours.responses
    assert our_warnings == rasas_warnings != []


def test_a_change_to_how_rasa_is_run_to_train_makes_make_train_train_again(tmp_path: Path) -> None:
    """The model's stamp covers this training module: changed, `make train` no longer calls it up to date."""
    module = tmp_path / "staff" / "service" / "rasa_train.py"
    module.parent.mkdir(parents=True)
    shutil.copy(PROJECT_ROOT / "staff" / "service" / "rasa_train.py", module)
    before = inputs_digest(tmp_path)
    module.write_text(module.read_text(encoding="utf-8") + "\n# changed\n", encoding="utf-8")
    assert inputs_digest(tmp_path) != before
