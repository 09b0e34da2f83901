"""Rasa's own data checks, as `make validate` runs them inside clinic-validate: in plain words."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from common.paths import PROJECT_ROOT, program

PARTS = ["clinic.yml", "config.yml", "domain", "data", "content", "actions", "tests/heldout", "tests/stories"]


def validate(root: Path) -> subprocess.CompletedProcess:
    """Run clinic-validate (with Rasa's checks) on a project folder."""
    return subprocess.run(
        [str(program("clinic-validate")), "--root", str(root)],
        capture_output=True,
        text=True,
        cwd=root,
        timeout=600,
    )


def test_a_clean_project_prints_only_its_summary() -> None:
    """No warnings staff should learn to ignore (Rasa prints dozens about responses actions send)."""
    result = validate(PROJECT_ROOT)
    assert result.returncode == 0, result.stdout
    assert result.stdout.splitlines() == [result.stdout.strip()]
    assert result.stdout.startswith("All ") and result.stdout.strip().endswith("and Rasa's own checks")


def test_stories_that_disagree_are_named_with_their_file_and_line(tmp_path: Path) -> None:
    for part in PARTS:
        source = PROJECT_ROOT / part
        copy = shutil.copytree if source.is_dir() else shutil.copy2
        (tmp_path / part).parent.mkdir(parents=True, exist_ok=True)
        copy(source, tmp_path / part)
    stories = tmp_path / "data" / "stories" / "faq.yml"
    stories.write_text(
        stories.read_text(encoding="utf-8")
        + "  - story: greeting answered with the menu\n    steps:\n"
        + "      - intent: greet\n      - action: utter_help\n",
        encoding="utf-8",
    )
    result = validate(tmp_path)
    assert result.returncode == 1
    [line] = result.stdout.splitlines()
    assert line.startswith("data/stories/faq.yml:")
    assert 'disagree about what the assistant does after the visitor\'s message "greet"' in line
    assert '"greeting answered with the menu" does utter_help' in line


def test_a_training_refused_by_rasa_tells_staff_in_their_words(monkeypatch) -> None:
    """The Check and publish page shows these: no response names, no file names (issue 25 review)."""
    from staff.service import candidate
    from staff.service import validate as checks

    output = (
        "Story structure conflict after intent 'greet':\n"
        "  utter_help predicted in 'greeting answered with the menu'\n"
        "  utter_greet predicted in 'thanks'\n"
    )
    monkeypatch.setattr(checks, "rasa_output", lambda root: (1, output))
    [problem] = candidate.RasaCheck(PROJECT_ROOT).problems()
    assert "disagree about what the assistant does after" in problem
    assert "utter_" not in problem and ".yml" not in problem, problem
    assert problem.startswith("Example questions: "), problem  # the rule "thanks" is in data/rules
