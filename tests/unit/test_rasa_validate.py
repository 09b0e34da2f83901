"""Rasa's own data checks, as `make validate` runs them inside clinic-validate: in plain words."""

from __future__ import annotations

import os
import shutil
import subprocess
import threading
import time
import warnings
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from common.paths import PROJECT_ROOT, RASA_PROGRAM, program
from staff.service import validate as checks

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


def broken_copy(tmp_path: Path, more: str = "") -> Path:
    """A copy of the project with a story that contradicts another (and `more` stories)."""
    for part in PARTS:
        source = PROJECT_ROOT / part
        copy = shutil.copytree if source.is_dir() else shutil.copy2
        (tmp_path / part).parent.mkdir(parents=True, exist_ok=True)
        copy(source, tmp_path / part)
    stories = tmp_path / "data" / "stories" / "faq.yml"
    stories.write_text(
        stories.read_text(encoding="utf-8")
        + "  - story: greeting answered with the menu\n    steps:\n"
        + "      - intent: greet\n      - action: utter_help\n"
        + more,
        encoding="utf-8",
    )
    return tmp_path


def rasa_command(root: Path) -> tuple[int, str]:
    """`rasa data validate` as a command in `root` (how the checks ran before): exit code, output."""
    result = subprocess.run(
        [str(RASA_PROGRAM), "data", "validate", "--fail-on-warnings", "--domain", "domain", "--data", "data"],
        cwd=root,
        capture_output=True,
        text=True,
        env={**os.environ, "RASA_TELEMETRY_ENABLED": "false"},
        timeout=600,
    )
    return result.returncode, checks.ANSI.sub("", result.stdout + "\n" + result.stderr)


def test_rasa_checks_run_here_find_what_rasas_command_finds(tmp_path: Path) -> None:
    """A contradiction, an unknown intent and an unknown answer: the same findings, the same exit code."""
    unknown = (
        "  - story: unknown steps\n    steps:\n"
        "      - intent: no_such_intent\n      - action: utter_nothing\n"
    )
    root = broken_copy(tmp_path, unknown)
    project, _ = checks.load(root)
    here, command = checks.rasa_output(root), rasa_command(root)
    found = [str(p) for p in checks.rasa_problems(project, root, here)]
    assert here[0] == command[0] == 1
    assert found == [str(p) for p in checks.rasa_problems(project, root, command)]
    assert any("disagree" in p for p in found) and any("no_such_intent" in p for p in found)
    assert any("utter_nothing" in p for p in found) and str(root) not in "".join(found)


def found(root: Path, ran: tuple[int, str]) -> list[str]:
    """The problems staff are shown for a check's output."""
    project, _ = checks.load(root)
    return [str(p) for p in checks.rasa_problems(project, root, ran)]


def test_two_rasa_checks_at_once_keep_their_findings_apart(tmp_path: Path) -> None:
    """Two staff saving at once, and checks again and again: each the same problems as alone."""
    root = broken_copy(tmp_path)
    alone = [found(PROJECT_ROOT, checks.rasa_output(PROJECT_ROOT)), found(root, checks.rasa_output(root))]
    with ThreadPoolExecutor(2) as pool:
        together = list(pool.map(checks.rasa_output, [PROJECT_ROOT, root, PROJECT_ROOT, root]))
    assert alone[0] == [] and any("disagree" in p for p in alone[1])
    assert [found(r, ran) for r, ran in zip([PROJECT_ROOT, root] * 2, together)] == alone * 2
    assert [code for code, _ in together] == [0, 1, 0, 1]


def test_another_threads_warnings_and_printing_stay_its_own(tmp_path: Path, capfd) -> None:
    """The console's other requests go on while a story is checked: their warnings are no finding."""
    root = broken_copy(tmp_path)
    alone = found(root, checks.rasa_output(root))
    stop = threading.Event()

    def elsewhere() -> None:
        while not stop.is_set():
            warnings.warn("another request's warning", UserWarning, stacklevel=1)
            print("another request's line", flush=True)
            time.sleep(0.005)

    thread = threading.Thread(target=elsewhere)
    thread.start()
    try:
        during = checks.rasa_output(root)
    finally:
        stop.set()
        thread.join()
    assert found(root, during) == alone
    assert "another request" not in during[1]
    printed = capfd.readouterr()
    assert "another request's line" in printed.out  # its printing is its own, as before
    assert "Processed story blocks" not in printed.err  # the command's progress bar is not written


def test_stories_that_disagree_are_named_with_their_file_and_line(tmp_path: Path) -> None:
    result = validate(broken_copy(tmp_path))
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
