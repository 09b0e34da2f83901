"""Conversation tests: Rasa's own test stories (tests/stories), NLU and dialogue together.

`--e2e` makes Rasa classify each story's user text (without it, `rasa test core` only
checks the actions that follow the labelled intent). Rasa reads only files named test_*.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from common.paths import TEST_STORIES_DIR
from tests.helpers import run_stories


def failed_story_count(report: str) -> int:
    return report.count("- story:")


def test_every_conversation_story_passes(tmp_path: Path) -> None:
    code, report = run_stories(TEST_STORIES_DIR, tmp_path)
    assert code == 0, report
    assert failed_story_count(report) == 0, f"Failed stories (with '# predicted: ...'):\n{report}"


@pytest.mark.parametrize("wrong_label", ["faq/benefits"])
def test_a_story_with_a_wrong_expectation_fails(tmp_path: Path, wrong_label: str) -> None:
    """Guards the guard: the runner must really classify the text of each story."""
    stories = tmp_path / "stories"
    stories.mkdir()
    (stories / "test_wrong.yml").write_text(
        'version: "3.1"\nstories:\n  - story: price labelled as benefits\n    steps:\n'
        f"      - user: |\n          what would the treatment cost me\n        intent: {wrong_label}\n"
        "      - action: action_answer_faq\n"
    )
    code, report = run_stories(stories, tmp_path / "out")
    assert code == 0
    assert failed_story_count(report) == 1
    assert "predicted: out_of_scope" in report
