"""Which saved change made a new model answer a held-out question wrongly, and taking that one out.

On a copy of the project in its own git repository (tests.helpers.project_copy): an editor adds
an example question to the wrong topic, then makes later edits to the same file; the suspect
for a held-out question near it is that example, with who added it and when, and taking it out
removes only that example as a new commit (the later edits stay), where undoing the whole commit
from History is refused as a conflict.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from staff.service import blame, content, evaluate
from tests.helpers import project_copy

WRONG = "can you treat acne scars on my back"
LATER = "is it suitable for someone with old burn scars on the arm"


@pytest.fixture
def root(tmp_path: Path) -> Path:
    return project_copy(tmp_path / "project")


def add(root: Path, key: str, examples: list[str], who: str) -> str:
    current = content.topic(root, key)
    assert current is not None
    change = content.TopicChange(
        answer=current.answer,
        title=current.title,
        version=content.version(root, content.topic_files(root)),
        added=examples,
    )
    return content.change_topic(root, key, change, who)


def test_the_suspect_is_the_added_example_and_taking_it_out_keeps_later_edits(root: Path) -> None:
    baseline = blame.head(root)
    titles = {t.key: t.title for t in content.topics(root)}
    culprit = add(root, "who_for", [WRONG], "eddie")
    add(root, "who_for", [LATER], "anna")  # a later edit next to it, in the same file
    add(root, "what_is", ["so what is this scar treatment then"], "anna")

    question = "do you treat acne scarring on the back"
    found = blame.suspects(
        root, baseline, [(question, "faq/what_is_scar", "faq/who_for")], titles, evaluate.PLAIN_INTENTS
    )
    suspect = found[0]
    assert suspect is not None
    assert (suspect.kind, suspect.label, suspect.example) == (blame.ADDED, "faq/who_for", WRONG)
    assert suspect.place == f'"{titles["who_for"]}"' and suspect.author == "eddie"
    assert suspect.moment() is not None

    with pytest.raises(content.Refused):  # undoing the whole saved change conflicts with the later one
        content.undo(root, culprit, "anna")
    blame.take_out(root, suspect, "anna")
    who_for = content.topic(root, "who_for")
    assert who_for is not None and WRONG not in who_for.examples and LATER in who_for.examples
    assert "so what is this scar treatment then" in content.topic(root, "what_is").examples  # type: ignore[union-attr]
    log = subprocess.run(
        ["git", "log", "-1", "--format=%an|%s"], cwd=root, capture_output=True, text=True, check=True
    ).stdout.strip()
    assert log == f'anna|Topic "{titles["who_for"]}": example "{WRONG}" taken out'
    with pytest.raises(content.Refused, match="already taken out"):
        blame.take_out(root, suspect, "anna")


def test_no_suspect_when_no_example_changed(root: Path) -> None:
    found = blame.suspects(root, blame.head(root), [("what is it", "faq/what_is", "faq/who_for")], {}, {})
    assert found == [None]
