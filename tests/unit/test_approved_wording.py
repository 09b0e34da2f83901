"""Approved wording managed by staff (staff/service/wording.py): the rules, the file, the history.

What no approved sentence may say is the grounding check's own definition (banned_words);
changes work on a copy of the project in a temporary git repository (tests/helpers.py
project_copy), with the real grounding check (MiniLM) and `make validate`'s checks.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import yaml

from common import grounding
from common.clinic import load_settings
from staff import validate
from staff.service import content, history, wording
from tests.helpers import project_copy

REWORDING = "Ask at your consultation how quickly your own scar is likely to respond."
RESULTS_FRAMING = "How quickly your own scar responds is something to ask at a consultation."
WORDING_FILE = "content/approved-wording.yml"


@pytest.fixture
def root(tmp_path: Path) -> Path:
    return project_copy(tmp_path / "project")


def reworded_results_answer(root: Path) -> str:
    answer = content.topic(root, "results_time").answer
    assert RESULTS_FRAMING in " ".join(answer.split())
    return " ".join(answer.split()).replace(RESULTS_FRAMING, REWORDING)


def git(root: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=root, check=True, capture_output=True, text=True).stdout


# ---- the rules -------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("text", "said"),
    [
        ("It takes 3 weeks.", ["3", "weeks"]),
        ("A session costs £90.", ["90", "£", "session", "costs"]),
        ("It is painless and safe.", ["painless", "safe"]),
        ("Ten minutes, twice.", ["Ten", "minutes", "twice"]),
        ("Whether it suits your scar is best checked at a consultation.", ["best"]),
        (REWORDING, []),
    ],
)
def test_one_definition_names_figures_prices_times_and_promises(text: str, said: list[str]) -> None:
    assert grounding.banned_words(text) == said


def test_an_answer_may_say_a_figure_only_where_the_document_does() -> None:
    checker = grounding.Checker.for_project()
    sentence = "Results can be seen in as little as a few weeks, and it is painless."
    # The same definition, less what the document itself says ("weeks": "a few weeks").
    assert checker.grounding.figures(sentence) == ["painless"]
    assert set(grounding.banned_words(sentence)) == {"weeks", "painless"}


def test_a_framing_sentence_with_a_figure_or_promise_fails_the_files_check(tmp_path: Path) -> None:
    path = tmp_path / "approved-wording.yml"
    path.write_text(
        'framing_sentences:\n  - "Most people need 3 sessions, and it is painless."\nplain_words: [extra]\n',
        encoding="utf-8",
    )
    with pytest.raises(grounding.WordingError, match='says "3", "sessions" and "painless"'):
        grounding.read_wording(path)


def test_the_projects_approved_wording_passes_the_ban() -> None:
    approved = grounding.read_wording()
    assert approved.framing_sentences and all(
        not grounding.banned_words(s) for s in approved.framing_sentences
    )


@pytest.mark.parametrize(
    ("typed", "expected"),
    [
        ("", "Write the sentence first."),
        ("It takes 3 weeks and is painless.", 'It says "3", "weeks" and "painless". Figures, prices'),
        ("Ask us. Call the clinic.", "Approve one sentence at a time (this reads as 2 sentences)"),
        ("Ask " * 60 + "us.", "keep it under 200"),
        (RESULTS_FRAMING.upper(), "already approved"),
    ],
)
def test_a_sentence_that_cannot_be_approved_is_refused_with_the_reason(typed: str, expected: str) -> None:
    problems = wording.refusals(wording.clean(typed), [RESULTS_FRAMING])
    assert any(expected in p for p in problems), problems
    for problem in problems:
        assert ".yml" not in problem and "framing_sentences" not in problem


def test_a_careful_rewording_is_approvable_but_not_passed_without_approval(root: Path) -> None:
    check = content.check_answer(root, reworded_results_answer(root))
    assert not check.ok
    [failing] = [r for r in check.sentences if not r.ok]
    assert failing.sentence == REWORDING and failing.approvable
    assert '"consultation"' in failing.why and "are not in the document" in failing.why
    assert "an admin can approve it on the Approved wording page" in failing.why
    assert wording.refusals(REWORDING, [f.text for f in wording.framing_sentences(root)]) == []


def test_each_sentence_says_why_it_passed(root: Path) -> None:
    check = content.check_answer(root, content.topic(root, "results_time").answer)
    assert check.ok
    document = (root / "content" / "scar-relaxation.txt").read_text(encoding="utf-8")
    found, framing = check.sentences[1], check.sentences[2]
    assert found.why.startswith("found in the document: '") and found.why[24:-1] in " ".join(document.split())
    assert framing.why == "approved framing sentence, added by a developer on " + (
        f"{wording.framing_sentences(root)[0].added_on.astimezone(load_settings().zone):%-d %b %Y}"
    )


# ---- changing the list -----------------------------------------------------------------------
def test_an_admin_approves_the_rewording_and_the_answer_passes(root: Path) -> None:
    before = (root / WORDING_FILE).read_text(encoding="utf-8")
    sha = wording.add(root, f"  {REWORDING}\n", wording.version(root), "anna")
    after = (root / WORDING_FILE).read_text(encoding="utf-8")
    # One line added after the list's last sentence; the next section's comment stays where it was.
    added = [line for line in after.splitlines() if line not in before.splitlines()]
    assert added == [f'  - "{REWORDING}"'] and len(after.splitlines()) == len(before.splitlines()) + 1
    assert after.index(REWORDING) < after.index("# Everyday words")
    assert (
        git(root, "log", "-1", "--format=%an|%s", sha).strip()
        == f'anna|Approved wording: added "{REWORDING}"'
    )
    assert validate.main(["--root", str(root), "--without-rasa"]) == 0
    check = content.check_answer(root, reworded_results_answer(root))
    assert check.ok, check.problems
    [reason] = [r for r in check.sentences if r.sentence == REWORDING]
    today = f"{history.change(root, sha).when.astimezone(load_settings().zone):%-d %b %Y}"
    assert reason.why == f"approved framing sentence, added by anna on {today}"
    # Undone from the History like any staff change: the file is as it was.
    content.undo(root, sha, "anna")
    assert (root / WORDING_FILE).read_text(encoding="utf-8") == before


def test_retiring_a_sentence_an_answer_uses_is_refused_naming_the_answer(root: Path) -> None:
    before = (root / WORDING_FILE).read_bytes()
    with pytest.raises(content.Refused) as refused:
        wording.retire(root, RESULTS_FRAMING, wording.version(root), "anna")
    assert refused.value.summary.startswith(
        'The sentence was not retired: the answer "How long do results take?" uses it word for word'
    )
    assert "Reword it first (on Answers)" in refused.value.summary
    assert (root / WORDING_FILE).read_bytes() == before


def test_an_unused_sentence_is_retired_and_the_file_is_as_before(root: Path) -> None:
    before = (root / WORDING_FILE).read_text(encoding="utf-8")
    wording.add(root, REWORDING, wording.version(root), "anna")
    sha = wording.retire(root, REWORDING, wording.version(root), "anna")
    assert (root / WORDING_FILE).read_text(encoding="utf-8") == before
    assert "retired" in history.change(root, sha).message
    assert REWORDING not in yaml.safe_load(before)["framing_sentences"]


def test_a_change_from_a_page_opened_before_another_save_is_refused(root: Path) -> None:
    opened = wording.version(root)
    wording.add(root, REWORDING, opened, "anna")
    with pytest.raises(content.Refused, match="Someone else saved a change here"):
        wording.add(root, "Your own questions are welcome at a consultation.", opened, "anna")


def test_a_figure_is_refused_and_nothing_is_written(root: Path) -> None:
    before = (root / WORDING_FILE).read_bytes()
    with pytest.raises(content.Refused) as refused:
        wording.add(root, "Most scars soften within 6 weeks.", wording.version(root), "anna")
    assert refused.value.summary == "The sentence was not approved:"
    assert '"6" and "weeks"' in refused.value.problems[0]
    assert (root / WORDING_FILE).read_bytes() == before
