"""Conversation tests: Rasa's own test stories (tests/stories), NLU and dialogue together.

`--e2e` makes Rasa classify each story's user text (without it, `rasa test core` only
checks the actions that follow the labelled intent). Rasa reads only files named test_*.
One `rasa test` run (Rasa's command line with the servers' model load, devtools/rasa_cli.py:
about 15 s) checks both
that every story passes and that a deliberately wrong story among them fails, by its name:
Rasa tests each story on its own, so the wrong one cannot change the others' results.
"""

from __future__ import annotations

import re
import shutil

import pytest

from common.paths import TEST_STORIES_DIR
from tests.helpers import run_stories

WRONG_STORY = "price labelled as benefits"
WRONG_LABEL = "faq/benefits"


def failed_stories(report: str) -> dict[str, str]:
    """The failed stories in Rasa's failed_test_stories.yml: each story's name and its text.

    Rasa writes each name followed by its file in brackets: "- story: a name (/tmp/.../test_x.yml)".
    """
    stories: dict[str, str] = {}
    name = None
    for line in report.splitlines():
        if line.lstrip().startswith("- story:"):
            name = re.sub(r" \([^()]*\.yml\)$", "", line.split("- story:", 1)[1].strip())
            stories[name] = ""
        if name is not None:
            stories[name] += line + "\n"
    return stories


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> tuple[int, str]:
    """One run of every story in tests/stories plus one whose intent label is wrong."""
    stories = tmp_path_factory.mktemp("stories")
    shutil.copytree(TEST_STORIES_DIR, stories, dirs_exist_ok=True)  # every story, in any subfolder
    (stories / "test_wrong.yml").write_text(
        f'version: "3.1"\nstories:\n  - story: {WRONG_STORY}\n    steps:\n'
        f"      - user: |\n          what would the treatment cost me\n        intent: {WRONG_LABEL}\n"
        "      - action: action_answer_faq\n"
    )
    return run_stories(stories, tmp_path_factory.mktemp("out"))


def test_every_conversation_story_passes(run: tuple[int, str]) -> None:
    code, report = run
    assert code == 0, report
    others = {name: text for name, text in failed_stories(report).items() if name != WRONG_STORY}
    assert others == {}, "Failed stories (with '# predicted: ...'):\n" + "".join(others.values())


def test_a_story_with_a_wrong_expectation_fails(run: tuple[int, str]) -> None:
    """Guards the guard: the runner must really classify the text of each story."""
    code, report = run
    assert code == 0
    failed = failed_stories(report)
    assert WRONG_STORY in failed, report
    assert "predicted: out_of_scope" in failed[WRONG_STORY]
