"""staff/service/validate.py: the real project passes, and each check catches what it is for.

Each test copies the project's data into tmp_path, breaks it in one way and runs the
tool there, so nothing is trained and the project's own files are never touched.
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from common.paths import PROJECT_ROOT
from staff.commands import validate as validate_command
from staff.service import validate as check_data

PARTS = ["clinic.yml", "domain", "data", "tests/heldout", "tests/stories", "content", "actions"]
FAQ_NLU = "data/nlu/faq.yml"
FAQ_DOMAIN = "domain/faq.yml"
CONVERSATION_DOMAIN = "domain/conversation.yml"
TEST_STORY = "tests/stories/test_faq.yml"
HELDOUT_QUESTION = "so what actually is this scar relaxation thing"  # tests/heldout/nlu.yml:5
GROUNDED = {"source": "Introduction", "quote": "Results can be seen in as little as a few weeks"}


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A copy of the project's data, answers, tests, document and actions to break."""
    for part in PARTS:
        source = PROJECT_ROOT / part
        if source.is_dir():
            shutil.copytree(source, tmp_path / part, ignore=shutil.ignore_patterns("__pycache__"))
        elif source.exists():
            shutil.copy2(source, tmp_path / part)
    return tmp_path


def run(root: Path, capsys: pytest.CaptureFixture[str]) -> tuple[int, list[str]]:
    """Run the tool on `root`; return its exit code and printed lines."""
    code = validate_command.main(["--root", str(root), "--without-rasa"])
    return code, capsys.readouterr().out.splitlines()


def reported(lines: list[str], path: str, *phrases: str) -> bool:
    """Whether one printed problem is in file `path` and contains every phrase."""
    return any(line.startswith(f"{path}:") and all(p in line for p in phrases) for line in lines)


def edit_domain(root: Path, change: Callable[[dict[str, Any]], None], file: str = FAQ_DOMAIN) -> None:
    """Apply `change` to one file of the copy's domain (by default the FAQ answers)."""
    path = root / file
    domain = yaml.safe_load(path.read_text(encoding="utf-8"))
    change(domain)
    path.write_text(yaml.safe_dump(domain, allow_unicode=True, sort_keys=False), encoding="utf-8")


def set_answer(root: Path, key: str, field: str, value: str | None) -> None:
    """Set (None: remove) the text or a metadata field of the copy's answer utter_faq/<key>."""

    def change(domain: dict[str, Any]) -> None:
        answer = domain["responses"][f"utter_faq/{key}"][0]
        fields = answer if field == "text" else answer["metadata"]
        fields.pop(field)
        if value is not None:
            fields[field] = value

    edit_domain(root, change)


def add_to_answer(root: Path, key: str, sentence: str) -> None:
    """Add a sentence at the end of the copy's answer utter_faq/<key>."""

    def change(domain: dict[str, Any]) -> None:
        answer = domain["responses"][f"utter_faq/{key}"][0]
        answer["text"] = f"{answer['text']} {sentence}"

    edit_domain(root, change)


def add_example(root: Path, intent: str, text: str) -> None:
    """Add an example question at the top of an FAQ question's examples in the copy."""
    file = root / FAQ_NLU
    header = f"- intent: {intent}\n  examples: |\n"
    file.write_text(
        file.read_text(encoding="utf-8").replace(header, f"{header}    - {text}\n"), encoding="utf-8"
    )


def append(root: Path, path: str, text: str) -> None:
    """Add text at the end of a file of the copy (creating it if needed)."""
    file = root / path
    file.parent.mkdir(parents=True, exist_ok=True)
    old = file.read_text(encoding="utf-8") if file.exists() else ""
    file.write_text(old + text, encoding="utf-8")


def examples_block(intent: str, examples: list[str]) -> str:
    """An NLU block for `intent` with these examples."""
    return f"\n- intent: {intent}\n  examples: |\n" + "".join(f"    - {e}\n" for e in examples)


def add_aftercare_answer(root: Path) -> None:
    """A new, grounded FAQ answer utter_faq/aftercare."""
    edit_domain(
        root,
        lambda d: d["responses"].update(
            {"utter_faq/aftercare": [{"text": "Aftercare.", "metadata": GROUNDED}]}
        ),
    )


def add_faq_without_enough_examples(root: Path) -> None:
    """A new FAQ question with only 3 examples (and its answer)."""
    append(
        root,
        FAQ_NLU,
        examples_block(
            "faq/aftercare", ["aftercare tips", "after the treatment", "looking after my skin afterwards"]
        ),
    )
    add_aftercare_answer(root)


def add_story(root: Path, steps: str) -> None:
    """A test story with these steps (YAML list items, indented by 6)."""
    append(root, TEST_STORY, f'version: "3.1"\nstories:\n  - story: a visitor asks\n    steps:\n{steps}')


BREAKS = [
    # 1. FAQ questions and answers belong together.
    pytest.param(
        lambda r: edit_domain(r, lambda d: d["responses"].pop("utter_faq/benefits")),
        FAQ_NLU,
        ["faq/benefits", "has no answer", "utter_faq/benefits"],
        id="question-without-answer",
    ),
    pytest.param(
        add_aftercare_answer,
        FAQ_DOMAIN,
        ["utter_faq/aftercare", "no example questions", "never"],
        id="answer-without-questions",
    ),
    # 2. Intents: enough examples, and declared.
    pytest.param(
        lambda r: edit_domain(r, lambda d: d["intents"].append("ask_parking"), CONVERSATION_DOMAIN),
        CONVERSATION_DOMAIN,
        ['"ask_parking" has 0 example questions', "MIN_EXAMPLES = 15", "add at least 15 more"],
        id="intent-without-examples",
    ),
    pytest.param(
        add_faq_without_enough_examples,
        FAQ_NLU,
        ['"faq/aftercare" has 3 example questions', "MIN_EXAMPLES = 15", "12 more"],
        id="faq-question-with-few-examples",
    ),
    pytest.param(
        lambda r: append(
            r,
            "data/nlu/parking.yml",
            'version: "3.1"\nnlu:' + examples_block("ask_parking", ["where can i park"]),
        ),
        "data/nlu/parking.yml",
        ['"ask_parking"', "not listed", "domain/"],
        id="intent-not-in-domain",
    ),
    # 3. Every answer is sent by something.
    pytest.param(
        lambda r: edit_domain(
            r,
            lambda d: d["responses"].update({"utter_parking": [{"text": "Park behind the clinic."}]}),
            CONVERSATION_DOMAIN,
        ),
        CONVERSATION_DOMAIN,
        ["utter_parking", "never sent"],
        id="unused-answer",
    ),
    pytest.param(
        lambda r: (r / "actions" / "fallback.py").unlink(),
        CONVERSATION_DOMAIN,
        ["utter_did_you_mean", "never sent"],
        id="answer-sent-only-by-a-deleted-action",
    ),
    # 4. Duplicates.
    pytest.param(
        lambda r: add_example(r, "faq/what_is", "What  is SCAR relaxation"),
        FAQ_NLU,
        ["written twice under faq/what_is (also at data/nlu/faq.yml:6)", "delete this copy"],
        id="duplicate-example",
    ),
    pytest.param(
        lambda r: add_example(r, "faq/how_it_works", "what is scar relaxation"),
        FAQ_NLU,
        ["both faq/what_is", "faq/how_it_works", "one question only"],
        id="example-under-two-intents",
    ),
    # 5. Held-out test questions stay out of training.
    pytest.param(
        lambda r: add_example(r, "faq/what_is", HELDOUT_QUESTION),
        FAQ_NLU,
        [HELDOUT_QUESTION, "test question", "tests/heldout/nlu.yml:5"],
        id="heldout-example-in-training",
    ),
    pytest.param(
        lambda r: add_example(r, "faq/benefits", "will your treatment help with that"),
        FAQ_NLU,
        ["will your treatment help with that", "test question", "tests/heldout/conversations.yml:78"],
        id="heldout-follow-up-in-training",
    ),
    pytest.param(
        lambda r: add_example(r, "faq/poor_healing", "dimpled scar"),
        FAQ_NLU,
        ["dimpled scar", "test question", "tests/heldout/conversations.yml:"],
        id="heldout-first-turn-in-training",
    ),
    pytest.param(
        lambda r: add_example(r, "faq/what_is", "dermaroller for scars - is that this?"),
        FAQ_NLU,
        ["dermaroller for scars - is that this?", "test question", "first_turns_2026-12-05.yml:"],
        id="dated-heldout-first-turn-in-training",
    ),
    # 6. Answers are grounded in the document and short.
    pytest.param(
        lambda r: set_answer(r, "what_is", "quote", None),
        FAQ_DOMAIN,
        ["quote of utter_faq/what_is is missing", "metadata.quote"],
        id="missing-quote",
    ),
    pytest.param(
        lambda r: set_answer(r, "what_is", "quote", "It is painless."),
        FAQ_DOMAIN,
        ["quote of utter_faq/what_is", "not in content/scar-relaxation.txt"],
        id="quote-not-in-document",
    ),
    pytest.param(
        lambda r: set_answer(r, "benefits", "source", None),
        FAQ_DOMAIN,
        ["source of utter_faq/benefits (none given)", "Benefits of Scar Relaxation:"],
        id="missing-source",
    ),
    pytest.param(
        lambda r: set_answer(r, "benefits", "source", "Aftercare"),
        FAQ_DOMAIN,
        ["source of utter_faq/benefits (Aftercare) is not a section", "Introduction"],
        id="unknown-source",
    ),
    pytest.param(
        lambda r: set_answer(r, "what_is", "text", "x" * 600),
        FAQ_DOMAIN,
        ["utter_faq/what_is is 600 characters", "MAX_ANSWER_CHARS = 480", "shorten"],
        id="answer-too-long",
    ),
    # 6b. Every sentence of an answer is supported by the document (common/grounding.py).
    pytest.param(
        lambda r: add_to_answer(
            r, "results_time", "Most patients need 3 to 6 sessions, and the treatment is painless."
        ),
        FAQ_DOMAIN,
        ["utter_faq/results_time goes beyond", '"3", "6", "sessions", "painless"', "say only what"],
        id="answer-with-invented-sessions-and-painless",
    ),
    pytest.param(
        lambda r: add_to_answer(r, "results_time", "Treatment costs 150 pounds per session."),
        FAQ_DOMAIN,
        ["utter_faq/results_time goes beyond", '"150", "costs", "pounds" and "session"'],
        id="answer-with-invented-price",
    ),
    # 7. Test stories only use what the domain has.
    pytest.param(
        lambda r: add_story(r, "      - intent: faq/prices\n"),
        TEST_STORY,
        ['intent "faq/prices"', "the domain does not have"],
        id="story-unknown-faq-question",
    ),
    pytest.param(
        lambda r: add_story(r, "      - intent: greet\n      - action: utter_hello\n"),
        TEST_STORY,
        ['action "utter_hello"'],
        id="story-unknown-action",
    ),
    pytest.param(
        lambda r: add_story(r, "      - intent: greet\n      - active_loop: booking\n"),
        TEST_STORY,
        ['active loop "booking"', "form"],
        id="story-unknown-active-loop",
    ),
    # 8. The clinic's details are complete.
    pytest.param(
        lambda r: (r / "clinic.yml").write_text(
            (r / "clinic.yml").read_text(encoding="utf-8").replace('phone: "020 7946 0000"', 'phone: ""'),
            encoding="utf-8",
        ),
        "clinic.yml",
        ["please fill in", "phone"],
        id="clinic-phone-missing",
    ),
    # Files that cannot be read.
    pytest.param(
        lambda r: shutil.rmtree(r / "content"),
        "content/scar-relaxation.txt",
        ["missing"],
        id="missing-document",
    ),
]


def test_real_project_passes(capsys: pytest.CaptureFixture[str]) -> None:
    """The project as it is has no problems."""
    code, lines = run(PROJECT_ROOT, capsys)
    assert code == 0, "\n".join(lines)
    assert len(lines) == 1


@pytest.mark.parametrize(("breaks", "path", "phrases"), BREAKS)
def test_each_check_reports_what_was_broken(
    project: Path,
    capsys: pytest.CaptureFixture[str],
    breaks: Callable[[Path], None],
    path: str,
    phrases: list[str],
) -> None:
    """A deliberate mistake is reported in the right file, with a helpful phrase, and fails."""
    breaks(project)
    code, lines = run(project, capsys)
    assert code == 1
    assert reported(lines, path, *phrases), "\n".join(lines)


def test_summary_when_everything_passes(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Without the held-out set (so no leaks), the copy passes with a one-line summary."""
    shutil.rmtree(project / "tests" / "heldout")
    code, lines = run(project, capsys)
    assert (code, len(lines)) == (0, 1), "\n".join(lines)
    assert re.fullmatch(
        rf"All {len(check_data.CHECKS)} checks passed: " r"\d+ intents, \d+ examples, \d+ answers", lines[0]
    )


def test_example_under_two_intents_names_both_lines(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The problem names both places, each with its real line number."""
    add_example(project, "faq/how_it_works", "what is scar relaxation")
    text = (project / FAQ_NLU).read_text(encoding="utf-8").splitlines()
    first, second = (n for n, line in enumerate(text, 1) if line.strip() == "- what is scar relaxation")
    _, lines = run(project, capsys)
    assert reported(lines, f"{FAQ_NLU}:{second}", f"({FAQ_NLU}:{first})"), "\n".join(lines)


def test_invalid_yaml_is_reported_at_its_line_and_stops_the_checks(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A syntax error is the only problem shown, at the line where YAML got lost."""
    append(
        project,
        "data/rules/broken.yml",
        'version: "3.1"\nrules:\n  - rule: greet\n    steps:\n'
        "      - intent: greet\n     - action: utter_greet\n",
    )
    code, lines = run(project, capsys)
    assert code == 1
    assert lines == [
        "data/rules/broken.yml:6: the file cannot be read: this line is not lined up with the lines "
        "around it: start it with the same number of spaces as the line it belongs with (the line "
        "above, or the other items of its list)"
    ]


@pytest.mark.parametrize(
    "broken_line, line, cause",
    [
        ('\t- text: "Hello!"', 3, "a tab at the start of the line: use spaces"),
        ('    - text: "Hello! How can I help?', 3, "a quote mark is not closed"),
        (
            "    - text: Note: we are closed on Sundays",
            3,
            "a colon (:) inside a text: put the whole text in double quotes",
        ),
    ],
    ids=["tab", "unclosed-quote", "colon-in-text"],
)
def test_yaml_mistakes_staff_make_are_explained(
    project: Path, capsys: pytest.CaptureFixture[str], broken_line: str, line: int, cause: str
) -> None:
    """Not PyYAML's words ("expected <block end>, but found '<scalar>'"): the line and what to do."""
    path = project / CONVERSATION_DOMAIN
    text = path.read_text(encoding="utf-8")
    path.write_text(
        f'version: "3.1"\nresponses:\n{broken_line}\n  utter_spare:\n    - text: "spare"\n'
        + text.split("\n", 1)[1],
        encoding="utf-8",
    )
    _, lines = run(project, capsys)
    assert lines[0].startswith(f"{CONVERSATION_DOMAIN}:{line}: the file cannot be read: {cause}"), lines


def test_valid_test_story_passes(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """FAQ questions and answers, Rasa's fallback loop and defaults are all known."""
    add_story(
        project,
        "      - user: what is it\n        intent: faq/what_is\n"
        "      - action: utter_faq/what_is\n      - intent: nlu_fallback\n"
        "      - action: action_two_stage_fallback\n"
        "      - active_loop: action_two_stage_fallback\n"
        "      - active_loop: null\n      - action: action_listen\n",
    )
    _, lines = run(project, capsys)
    assert not [line for line in lines if line.startswith("tests/stories/")]


def test_sections_come_from_the_document() -> None:
    """Headings are found in the text; the paragraph ending in ":" before a list is not one."""
    document = (PROJECT_ROOT / check_data.DOCUMENT).read_text(encoding="utf-8")
    assert check_data.document_sections(document) == [
        "Introduction",
        "What is a scar?",
        "What causes post inflammatory hyperpigmentation (PIH) of scars?",
        "Benefits of Scar Relaxation:",
    ]


def test_the_quick_yaml_parser_reads_every_project_file_as_pyyaml_does() -> None:
    """Every process parses with libyaml (common/yamlio.py); the values must be PyYAML's own."""
    import yaml

    from common import yamlio
    from common.paths import PROJECT_ROOT

    files = [
        path
        for folder in ("domain", "data", "tests/stories", "tests/heldout", "tests/grounding")
        for path in sorted((PROJECT_ROOT / folder).rglob("*.yml"))
    ] + [PROJECT_ROOT / name for name in ("clinic.yml", "config.yml", "content/approved-wording.yml")]
    assert len(files) > 20
    for path in files:
        text = path.read_text(encoding="utf-8")
        assert yamlio.load(text) == yaml.safe_load(text), path.name
    # The texts staff type that YAML treats specially read the same both ways too.
    special = ('a: "x: y"\n', "a: 'it''s'\n", "a: |\n  two\n  lines\n", "a: 1e3\n", "a: no\n", "a: 08:00\n")
    for text in special:
        assert yamlio.load(text) == yaml.safe_load(text), text
