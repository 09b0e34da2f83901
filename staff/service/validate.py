"""The checks of the assistant's questions, answers and tests before training.

Each problem reads `file:line: what is wrong - what to do`, in words clinic staff can act on.
The command (`make validate`, clinic-validate) is staff/commands/validate.py; the console runs
the same checks before it saves a change or trains.
"""

from __future__ import annotations

import logging
import os
import re
import threading
import warnings
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

import yaml

from common import grounding, paths, yamlio
from common.clinic import read_settings
from common.domain import merge as merge_domain
from common.names import (
    CHANNEL_RESPONSES,
    FAQ_RESPONSE_PREFIX,
    RASA_ACTIONS,
    RASA_INTENTS,
    RASA_RESPONSES,
    RETRIEVAL_INTENT,
    TWO_STAGE_FALLBACK,
)
from staff.service import yaml_errors

# The project's files, as staff see them from the project folder (any --root has the same layout).
DOMAIN = paths.relative(paths.DOMAIN_DIR)
DATA = paths.relative(paths.DATA_DIR)
DOCUMENT = paths.relative(paths.DOCUMENT)
HELDOUT = paths.relative(paths.HELDOUT)
HELDOUT_CONVERSATIONS = paths.relative(paths.HELDOUT_CONVERSATIONS)
HELDOUT_DIR = paths.relative(paths.HELDOUT_DIR)
TEST_STORIES = paths.relative(paths.TEST_STORIES_DIR)
CLINIC = paths.relative(paths.CLINIC_YML)
WORDING = paths.relative(paths.APPROVED_WORDING)
MIN_EXAMPLES = 15
MAX_ANSWER_CHARS = 480
FAQ_INTENT = RETRIEVAL_INTENT
FAQ_PREFIX = FAQ_RESPONSE_PREFIX
# The document's untitled first paragraph.
FIRST_SECTION = "Introduction"
BULLETS = ("•", "-", "*")


@dataclass(frozen=True)
class Place:
    """A line of a project file, shown as `path:line` so staff can open it there."""

    path: str
    line: int

    def __str__(self) -> str:
        return f"{self.path}:{self.line}"


@dataclass(frozen=True)
class Problem:
    """One thing to fix: where it is and, in plain words, what to do."""

    place: Place
    message: str

    def __str__(self) -> str:
        return f"{self.place}: {self.message}"


@dataclass(frozen=True)
class Example:
    """One example question of an intent (e.g. `faq/what_is`) in an NLU file."""

    text: str
    intent: str
    place: Place


@dataclass
class Project:
    """Everything the checks look at, read once from the files under the root."""

    texts: dict[str, str]
    domain: dict[str, Any]
    domain_paths: list[str]
    examples: list[Example]
    heldout: list[Example]
    training_steps: list[dict[str, Any]]
    test_stories: dict[str, list[dict[str, Any]]]
    document: str
    actions_source: str
    clinic_file: Path
    wording_file: Path


def normalise(text: str) -> str:
    """Lower-case text with runs of whitespace made one space, to compare examples and quotes."""
    return " ".join(text.lower().split())


def collapse(text: str) -> str:
    """Text with runs of whitespace made one space (YAML folds long quotes over lines)."""
    return " ".join(text.split())


def find_line(text: str | list[str], wanted: str, start: int = 1) -> int | None:
    """The first line from `start` that is `wanted` as a list item or key (None if none is).

    `text` may be given as its lines, split once by a caller that looks up many (a file's examples).
    """
    lines = text.splitlines() if isinstance(text, str) else text
    for number in range(start, len(lines) + 1):
        item = lines[number - 1].strip().removeprefix("- ").strip()
        if item == wanted or item.startswith(f"{wanted}:"):
            return number
    return None


def line_of(text: str | list[str], wanted: str, start: int = 1) -> int:
    """The first line from `start` that is `wanted` as a list item or key, else `start`."""
    return find_line(text, wanted, start) or start


def mapping(value: Any) -> dict[str, Any]:
    """`value` if YAML gave a mapping, else an empty one, so odd files cannot crash a check."""
    return value if isinstance(value, dict) else {}


def sequence(value: Any) -> list[Any]:
    """`value` if YAML gave a list, else an empty one, so odd files cannot crash a check."""
    return value if isinstance(value, list) else []


def relative(root: Path, path: Path) -> str:
    """The path as staff see it in the project, e.g. `data/nlu/faq.yml`."""
    return path.relative_to(root).as_posix()


def read_text(root: Path, path: str, problems: list[Problem]) -> str:
    """A project file's text; a missing or non-UTF-8 file is a problem (and reads as empty)."""
    try:
        return (root / path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        problems.append(
            Problem(
                Place(path, 1),
                "the file is missing or not plain text - restore " "it, or save it again as UTF-8 text",
            )
        )
        return ""


def read_yaml(root: Path, path: str, texts: dict[str, str], problems: list[Problem]) -> dict[str, Any]:
    """A YAML file's top-level mapping (its text kept in `texts`); a syntax error is a problem."""
    texts[path] = read_text(root, path, problems)
    try:
        return mapping(yamlio.load(texts[path]))
    except yaml.YAMLError as error:
        found = yaml_errors.explain(error, texts[path])
        problems.append(Problem(Place(path, found.line), f"the file cannot be read: {found.cause}"))
        return {}


def example_lines(block: Any) -> list[str]:
    """The example questions of an `examples: |` block, without their leading `- `."""
    lines = block.splitlines() if isinstance(block, str) else []
    return [line.strip()[2:].strip() for line in lines if line.strip().startswith("- ")]


def nlu_examples(path: str, text: str, data: dict[str, Any]) -> list[Example]:
    """Every example of every intent in one NLU file, each with its line number."""
    found: list[Example] = []
    cursor = 1
    lines = text.splitlines()
    for item in sequence(data.get("nlu")):
        intent = mapping(item).get("intent")
        if not isinstance(intent, str):
            continue
        cursor = line_of(lines, f"intent: {intent}", cursor)
        for example in example_lines(item.get("examples")):
            cursor = line_of(lines, example, cursor + 1)  # after the previous one: copies differ
            found.append(Example(example, intent, Place(path, cursor)))
    return found


def first_turn_examples(path: str, text: str, data: dict[str, Any]) -> list[Example]:
    """Every first turn of a held-out file (conversations.yml, first_turns_<date>.yml), with its line."""
    found = []
    lines = text.splitlines()
    for kind, cases in mapping(data.get("first_turn")).items():
        for case in sequence(cases):
            if isinstance(case, list) and len(case) == 2:
                line = next((n for n, row in enumerate(lines, 1) if str(case[1]) in row), 1)
                found.append(Example(str(case[1]), f"{case[0]} ({kind})", Place(path, line)))
    return found


def first_turn_sets(root: Path, texts: dict[str, str], problems: list[Problem]) -> list[Example]:
    """The first turns of every further held-out set (tests/heldout/first_turns_<date>.yml)."""
    found = []
    for path in sorted((root / HELDOUT_DIR).glob(paths.HELDOUT_FIRST_TURN_PATTERN)):
        name = relative(root, path)
        data = read_yaml(root, name, texts, problems)
        found += first_turn_examples(name, texts.get(name, ""), data)
    return found


def conversation_examples(root: Path, texts: dict[str, str], problems: list[Problem]) -> list[Example]:
    """Every message of the held-out conversations (first turns and follow-ups), with its line."""
    if not (root / HELDOUT_CONVERSATIONS).exists():
        return []
    data = read_yaml(root, HELDOUT_CONVERSATIONS, texts, problems)
    text = texts.get(HELDOUT_CONVERSATIONS, "")
    found = first_turn_examples(HELDOUT_CONVERSATIONS, text, data)
    lines = text.splitlines()
    for pair in map(mapping, sequence(data.get("follow_ups"))):  # the first question only sets the scene
        line = next((n for n, row in enumerate(lines, 1) if str(pair.get("then")) in row), 1)
        found.append(Example(str(pair.get("then")), "follow-up", Place(HELDOUT_CONVERSATIONS, line)))
    return found


def story_steps(data: dict[str, Any]) -> list[dict[str, Any]]:
    """The steps of every rule and story in a file, with `or:` alternatives flattened."""
    steps: list[dict[str, Any]] = []
    for key in ("rules", "stories"):
        for story in sequence(data.get(key)):
            for step in map(mapping, sequence(mapping(story).get("steps"))):
                steps += [mapping(alt) for alt in sequence(step.get("or"))] or [step]
    return steps


def source_text(folder: Path) -> str:
    """The Python source of the custom actions, to see which responses they send."""
    return "\n".join(path.read_text(encoding="utf-8") for path in sorted(folder.rglob("*.py")))


def yaml_files(root: Path, folder: str) -> list[str]:
    """The YAML files under a project folder (and its subfolders), by relative path."""
    return [relative(root, path) for path in sorted((root / folder).rglob("*.yml"))]


def load(root: Path) -> tuple[Project, list[Problem]]:
    """Read the project under `root`; problems are files that are missing or not valid YAML."""
    texts: dict[str, str] = {}
    problems: list[Problem] = []
    domain_paths = yaml_files(root, DOMAIN)
    if not domain_paths:
        problems.append(
            Problem(
                Place(DOMAIN, 1),
                "the folder with the assistant's answers is missing "
                "or empty - restore it from the project's history",
            )
        )
    domain = merge_domain([read_yaml(root, path, texts, problems) for path in domain_paths])
    data = {path: read_yaml(root, path, texts, problems) for path in yaml_files(root, DATA)}
    heldout = read_yaml(root, HELDOUT, texts, problems) if (root / HELDOUT).exists() else {}
    tests = {path: read_yaml(root, path, texts, problems) for path in yaml_files(root, TEST_STORIES)}
    document = read_text(root, DOCUMENT, problems)
    project = Project(
        texts=texts,
        domain=domain,
        domain_paths=domain_paths,
        examples=[e for path, doc in data.items() for e in nlu_examples(path, texts[path], doc)],
        heldout=nlu_examples(HELDOUT, texts.get(HELDOUT, ""), heldout)
        + conversation_examples(root, texts, problems)
        + first_turn_sets(root, texts, problems),
        training_steps=[step for doc in data.values() for step in story_steps(doc)],
        test_stories={path: story_steps(doc) for path, doc in tests.items()},
        document=document,
        actions_source=source_text(root / "actions"),
        clinic_file=root / CLINIC,
        wording_file=root / WORDING,
    )
    return project, problems


def intent_name(item: Any) -> str:
    """The name of a domain intent, listed as `- greet` or `- greet: {use_entities: ...}`."""
    return str(next(iter(item))) if isinstance(item, dict) and item else str(item)


def domain_intents(project: Project) -> list[str]:
    """The intents listed under `intents:` in domain/."""
    return [intent_name(item) for item in sequence(project.domain.get("intents"))]


def responses(project: Project) -> dict[str, Any]:
    """The responses (answers) in domain/, by name."""
    return mapping(project.domain.get("responses"))


def faq_answers(project: Project) -> dict[str, list[Any]]:
    """The FAQ answers (`utter_faq/<key>`) in domain/, with their variations."""
    return {
        name: sequence(value) for name, value in responses(project).items() if name.startswith(FAQ_PREFIX)
    }


def answered_questions(project: Project) -> set[str]:
    """The FAQ questions (`faq/<key>`) that have an answer in domain/."""
    return {f"{FAQ_INTENT}/{name.removeprefix(FAQ_PREFIX)}" for name in faq_answers(project)}


def domain_place(project: Project, wanted: str, start: int = 1) -> Place:
    """The file of domain/ and the line where `wanted` (an intent, response or key) is written."""
    for path in project.domain_paths:
        line = find_line(project.texts.get(path, ""), wanted, start)
        if line is not None:
            return Place(path, line)
    return Place(project.domain_paths[0] if project.domain_paths else DOMAIN, start)


def first_places(examples: Iterable[Example], key: Callable[[Example], str]) -> dict[str, Place]:
    """Where the first example of each group (e.g. of each intent) is written."""
    places: dict[str, Place] = {}
    for example in examples:
        places.setdefault(key(example), example.place)
    return places


def intent_places(project: Project) -> dict[str, Place]:
    """Where each intent's (or FAQ question's) first example is written."""
    return first_places(project.examples, lambda e: e.intent)


def check_faq_answers(project: Project) -> list[Problem]:
    """Every FAQ question has an answer, and every answer can be reached by some question."""
    asked = intent_places(project)
    answered = answered_questions(project)
    problems = [
        Problem(
            place,
            f'the question {intent} has no answer - add a response "utter_{intent}" '
            "(with its source and quote) to domain/faq.yml, or remove these examples",
        )
        for intent, place in asked.items()
        if intent.startswith(f"{FAQ_INTENT}/") and intent not in answered
    ]
    problems += [
        Problem(
            domain_place(project, f"utter_{intent}"),
            f"the answer utter_{intent} has no example questions, so the assistant can never "
            f'give it - add at least {MIN_EXAMPLES} examples under "- intent: {intent}" in '
            "data/nlu, or remove the answer",
        )
        for intent in sorted(answered - set(asked))
    ]
    return problems


def check_intents(project: Project) -> list[Problem]:
    """Every intent has enough examples to be learnt, and every intent with examples is declared."""
    counts = Counter(e.intent for e in project.examples)
    declared = domain_intents(project)
    places = intent_places(project)
    problems = []
    for intent in declared:
        keys = sorted(k for k in counts if k.startswith(f"{intent}/")) or [intent]
        problems += [
            Problem(
                places.get(key) or domain_place(project, key),
                f'the intent "{key}" has {counts[key]} example questions, fewer than '
                f"MIN_EXAMPLES = {MIN_EXAMPLES} - add at least {MIN_EXAMPLES - counts[key]} "
                "more in data/nlu so the assistant learns to recognise it",
            )
            for key in keys
            if counts[key] < MIN_EXAMPLES
        ]
    bases = first_places(project.examples, lambda e: e.intent.partition("/")[0])
    problems += [
        Problem(
            place,
            f'the intent "{base}" has example questions but is not listed under '
            f'"intents:" in any file of domain/ - add "- {base}" there, or remove the examples',
        )
        for base, place in bases.items()
        if base not in declared
    ]
    return problems


def check_responses_used(project: Project) -> list[Problem]:
    """Every non-FAQ answer is sent by a rule, a story, a custom action, a chat channel or Rasa itself."""
    used = {str(step.get("action")) for step in project.training_steps} | RASA_RESPONSES | CHANNEL_RESPONSES
    used |= {
        f"utter_ask_{slot}"
        for form in (project.domain.get("forms") or {}).values()
        for slot in sequence((form or {}).get("required_slots"))
    }
    source = project.actions_source
    # Names an action builds at run time, e.g. f"utter_invalid_{reason}", count by prefix.
    prefixes = tuple(re.findall(r'f["\'](utter_[A-Za-z0-9]+[A-Za-z0-9_]*_)\{', source))
    return [
        Problem(
            domain_place(project, name),
            f"the answer {name} is never sent: no rule, story or custom action uses it - "
            "use it in data/rules or data/stories, or remove it from the domain",
        )
        for name in responses(project)
        if not name.startswith(FAQ_PREFIX)
        and name not in used
        and not name.startswith(prefixes)
        and f'"{name}"' not in source
        and f"'{name}'" not in source
    ]


def duplicate_message(first: Example, copy: Example) -> str:
    """What to do about `copy`, an example already written at `first`."""
    if copy.intent == first.intent:
        return (
            f'"{copy.text}" is written twice under {copy.intent} (also at {first.place}) - '
            "delete this copy"
        )
    return (
        f'"{copy.text}" is an example of both {first.intent} ({first.place}) and '
        f"{copy.intent} - keep it under one question only"
    )


def check_duplicates(project: Project) -> list[Problem]:
    """No example question is written twice, and none belongs to two intents."""
    groups: dict[str, list[Example]] = defaultdict(list)
    for example in project.examples:
        groups[normalise(example.text)].append(example)
    return [
        Problem(copy.place, duplicate_message(first, copy))
        for first, *copies in groups.values()
        for copy in copies
    ]


def check_heldout(project: Project) -> list[Problem]:
    """No held-out test question is also a training example, so the test stays fair."""
    heldout = first_places(project.heldout, lambda e: normalise(e.text))
    return [
        Problem(
            example.place,
            f'"{example.text}" is also a test question '
            f"({heldout[normalise(example.text)]}) - remove it from the "
            "training data, or reword the test question, so the test only "
            "uses questions the assistant has never seen",
        )
        for example in project.examples
        if normalise(example.text) in heldout
    ]


def document_sections(document: str) -> list[str]:
    """The document's section names: "Introduction", then every heading line.

    A heading is a line of one sentence ending in "?" or ":" that is not a bullet; a
    paragraph ending in ":" (which introduces a list) has more sentences, so it is not one.
    Whitespace is collapsed: the document has non-breaking spaces inside a heading.
    """
    headings = [collapse(line) for line in document.splitlines()]
    return [FIRST_SECTION] + [
        line
        for line in headings
        if line.endswith(("?", ":")) and not line.startswith(BULLETS) and not re.search(r"[.!?]\s", line)
    ]


def grounding_problems(document: str, name: str, variation: dict[str, Any]) -> list[str]:
    """What is wrong with one FAQ answer's source, quote and length (empty if nothing)."""
    sections = document_sections(document)
    metadata = mapping(variation.get("metadata"))
    source = collapse(str(metadata.get("source") or ""))
    quote = collapse(str(metadata.get("quote") or ""))
    text = str(variation.get("text") or "")
    wrong = []
    if source not in sections:
        wrong.append(
            f"the source of {name} ({source or 'none given'}) is not a section of "
            f"{DOCUMENT} - set metadata.source to one of: {', '.join(sections)}"
        )
    if not quote or quote not in collapse(document):
        wrong.append(
            f"the quote of {name} is missing or not in {DOCUMENT} word for word - copy "
            "the sentence the answer is based on from the document into metadata.quote"
        )
    if len(text) > MAX_ANSWER_CHARS:
        wrong.append(
            f"the text of {name} is {len(text)} characters long, more than the "
            f"MAX_ANSWER_CHARS = {MAX_ANSWER_CHARS} that fit on a phone screen - "
            "shorten the text"
        )
    return wrong


def check_grounding(project: Project) -> list[Problem]:
    """Every FAQ answer names its section and quotes the document, and fits a phone screen."""
    return [
        Problem(domain_place(project, name), message)
        for name, variations in faq_answers(project).items()
        for variation in variations
        for message in grounding_problems(project.document, name, mapping(variation))
    ]


def check_answers_supported(project: Project) -> list[Problem]:
    """Every sentence of every FAQ answer is supported by the document (common/grounding.py)."""
    try:
        checker = grounding.Checker.cached(project.document, grounding.read_wording(project.wording_file))
    except grounding.WordingError as error:
        return [Problem(Place(WORDING, 1), str(error).removeprefix(f"{WORDING}: "))]
    return [
        Problem(
            domain_place(project, name),
            f"the answer {name} goes beyond {DOCUMENT}: {explanation} - say only what the document "
            f"says; a sentence that only points to the clinic can be approved in {WORDING}",
        )
        for name, variations in faq_answers(project).items()
        for variation in variations
        for explanation in checker.problems(str(mapping(variation).get("text") or ""))
    ]


def known_names(project: Project) -> dict[str, set[str]]:
    """What test stories may use: intents, actions (responses included) and active loops."""
    answers = set(responses(project))
    intents = set(domain_intents(project)) | RASA_INTENTS
    forms = set(mapping(project.domain.get("forms")))
    actions = {str(a) for a in sequence(project.domain.get("actions"))} | forms
    loops = forms | {TWO_STAGE_FALLBACK}
    return {
        "intent": intents | answered_questions(project),
        "action": actions | answers | RASA_ACTIONS | {f"utter_{FAQ_INTENT}"},
        "active_loop": loops,
    }


def unknown_references(steps: list[dict[str, Any]], known: dict[str, set[str]]) -> Iterator[tuple[str, str]]:
    """(kind, name) for each intent, action or active loop in `steps` that the domain lacks."""
    seen: set[tuple[str, str]] = set()
    for step in steps:
        for kind, names in known.items():
            name = step.get(kind)
            if name is not None and str(name) not in names and (kind, str(name)) not in seen:
                seen.add((kind, str(name)))
                yield kind, str(name)


def check_test_stories(project: Project) -> list[Problem]:
    """Test stories only use intents, answers, actions and loops that the domain has."""
    known = known_names(project)
    hints = {
        "intent": 'use an intent listed under "intents:" (or faq/<key> with an answer '
        "utter_faq/<key>) in domain/, or check the spelling",
        "action": 'use a response or an action listed under "actions:" in domain/, or ' "check the spelling",
        "active_loop": f"use a form from domain/ or {TWO_STAGE_FALLBACK}",
    }
    return [
        Problem(
            Place(path, line_of(project.texts[path], f"{kind}: {name}")),
            f'the test story uses the {kind.replace("_", " ")} "{name}", which the domain '
            f"does not have - {hints[kind]}",
        )
        for path, steps in project.test_stories.items()
        for kind, name in unknown_references(steps, known)
    ]


def check_clinic(project: Project) -> list[Problem]:
    """clinic.yml can be read, and every detail answers need is filled in."""
    try:
        read_settings(project.clinic_file)
    except FileNotFoundError:
        return [Problem(Place(CLINIC, 1), "the file is missing - restore it from the project's history")]
    except yaml.YAMLError as error:
        found = yaml_errors.explain(error, project.clinic_file.read_text(encoding="utf-8"))
        return [Problem(Place(CLINIC, found.line), f"the file cannot be read: {found.cause}")]
    except ValueError as error:
        message = str(error).removeprefix(f"{CLINIC}: ")
        return [Problem(Place(CLINIC, 1), f"{message} - correct it, keeping the format of the other lines")]
    return []


CHECKS: Sequence[Callable[[Project], list[Problem]]] = (
    check_faq_answers,
    check_intents,
    check_responses_used,
    check_duplicates,
    check_heldout,
    check_grounding,
    check_answers_supported,
    check_test_stories,
    check_clinic,
)


# Rasa's own notices that say nothing staff can act on: responses sent by custom actions and
# forms (check_responses_used checks every response is sent), and the retrieval intent that
# Rasa adds once more from the FAQ data.
RASA_NOISE = (
    re.compile(r"The utterance '[^']+' is not used in any story or rule\."),
    re.compile(r"The following duplicated intents have been found across multiple domain files: faq$"),
)
ANSI = re.compile(r"\x1b\[[0-9;]*m")
RASA_WARNING = re.compile(r"UserWarning: (.*?)(?:\n  More info at \S+)?\n(?=\S|\Z)", re.DOTALL)
STORY_CONFLICT = re.compile(r"Story structure conflict after (.+?):\n((?:  .+\n?)+)")
CONFLICT_LINE = re.compile(r"  (\S+) predicted in '(.+)'")


def story_place(project: Project, name: str) -> Place:
    """Where the story or rule called `name` is written (in data/ or tests/stories)."""
    for path, text in project.texts.items():
        line = find_line(text, f"story: {name}") or find_line(text, f"rule: {name}")
        if line is not None:
            return Place(path, line)
    return Place(DATA, 1)


def conflict_problem(project: Project, after: str, lines: str) -> Problem:
    """A story structure conflict, as staff read it."""
    predictions = CONFLICT_LINE.findall(lines)
    stories = [name for _, name in predictions]
    what = "; ".join(f'"{name}" does {action}' for action, name in predictions)
    after = re.sub(r"^intent '(.+)'$", 'the visitor\'s message "\\1"', after)
    after = re.sub(r"^action '(.+)'$", 'the assistant\'s "\\1"', after)
    return Problem(
        story_place(project, stories[0] if stories else ""),
        f"the stories and rules disagree about what the assistant does after {after}: {what} - "
        "make them do the same, or make the conversations before that point differ",
    )


# One Rasa check at a time in a process: it borrows the process's warnings machinery and Rasa's
# validator logger while it runs (for its own thread only).
RASA_CHECK_LOCK = threading.Lock()
_checking: set[int] = set()  # the thread running a check (its progress bar is not shown)
_rasa_imported = False


def _import_rasa_checks() -> None:
    """Import Rasa's checks (and TensorFlow) once; telemetry off; a check writes nothing itself.

    Rasa's story progress bar and its closing error (print_error_and_exit) are the command's own
    output: for the thread running a check, the bar is not drawn and the error becomes the
    output's last line; other threads get Rasa's own.
    """
    global _rasa_imported
    if _rasa_imported:
        return
    os.environ["RASA_TELEMETRY_ENABLED"] = "false"  # as the command was run: nothing is sent anywhere
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # TensorFlow's start-up notices
    import rasa.cli.utils
    import rasa.shared.core.generator as generator
    import rasa.validator

    progress_bar = generator.tqdm

    def quiet_for_checks(*args: Any, **kwargs: Any) -> Any:
        """Rasa's story progress bar (the command's own output), not written for a check run here."""
        if threading.get_ident() in _checking:
            kwargs["disable"] = True
        return progress_bar(*args, **kwargs)

    generator.tqdm = quiet_for_checks
    say_error_and_exit = rasa.shared.utils.cli.print_error_and_exit

    def end_check(message: str, exit_code: int = 1) -> NoReturn:
        """How Rasa's command ends on problems; for a check run here, its words go to the output."""
        if threading.get_ident() in _checking:
            raise SystemExit(message if exit_code else 0)
        say_error_and_exit(message, exit_code)

    rasa.shared.utils.cli.print_error_and_exit = end_check
    _rasa_imported = True


class _Findings(logging.Filter):
    """On Rasa's validator logger: the checking thread's warnings (its story conflicts) kept, not logged."""

    def __init__(self, thread: int) -> None:
        super().__init__()
        self.thread = thread
        self.lines: list[str] = []

    def filter(self, record: logging.LogRecord) -> bool:
        if record.thread != self.thread:
            return True
        if record.levelno >= logging.WARNING:
            self.lines.append(record.getMessage())
        return False


def _run_rasa_check(root: Path, lines: list[str]) -> int:
    """`rasa data validate --fail-on-warnings` on `root`, as its command runs it; the exit code.

    What the command would print of its end (an error, not its output) is added to `lines`.
    """
    import rasa.cli.utils
    from rasa.shared.importers.importer import TrainingDataImporter

    try:
        importer = TrainingDataImporter.load_from_config(
            config_path=str(root / paths.relative(paths.CONFIG)),
            domain_path=str(root / DOMAIN),
            training_data_paths=[str(root / DATA)],
        )
        rasa.cli.utils.validate_files(True, None, importer)  # fail on warnings, no max history
    except SystemExit as stop:  # Rasa's command ends so when the data has problems
        if stop.code is None or isinstance(stop.code, int):
            return stop.code or 0
        lines.append(str(stop.code))
        return 1
    except Exception as error:  # data Rasa cannot read at all: its command would end with the error
        lines.append(f"{type(error).__name__}: {error}")
        return 1
    return 0


def rasa_output(root: Path) -> tuple[int, str]:
    """Rasa's own data checks (`rasa data validate`) on the project under `root`: (exit code, output).

    Run in this process with Rasa's own function, not as a command: about 1.5 CPU-seconds once
    Rasa is loaded, instead of 5-6 (a command imports Rasa and TensorFlow every time; a story
    saved in the console waited for that). The output holds what the command prints that the
    readers here use: its warnings (each once, as the command shows them), the story conflicts
    it logs and how it ended, with the file names relative to `root` as the command run in
    `root` shows them. Only this thread's warnings and validator log lines are taken; other
    threads' go where they went, and no output stream is touched (tests/unit/test_rasa_validate.py
    checks the findings equal the command's, and stay apart from other threads').
    """
    import rasa.utils.common

    me = threading.get_ident()
    found, warned, ended = _Findings(me), [], []
    validator_log = logging.getLogger("rasa.validator")
    with RASA_CHECK_LOCK:
        _import_rasa_checks()
        with warnings.catch_warnings():  # the filters and showwarning are put back afterwards
            usual_show = warnings.showwarning

            def show(message: Any, category: type[Warning], *args: Any, **kwargs: Any) -> None:
                if threading.get_ident() == me:
                    warned.append(f"{category.__name__}: {message}")
                else:
                    usual_show(message, category, *args, **kwargs)

            warnings.showwarning = show
            warnings.simplefilter("always")  # once per check (below), not once per process
            for category, message in rasa.utils.common.EXPECTED_WARNINGS:  # those the command hides
                warnings.filterwarnings("ignore", message=f".*{message}", category=category)
            level = validator_log.level
            if not validator_log.isEnabledFor(logging.WARNING):
                validator_log.setLevel(logging.WARNING)
            validator_log.addFilter(found)
            _checking.add(me)
            try:
                code = _run_rasa_check(root, ended)
            finally:
                _checking.discard(me)
                validator_log.removeFilter(found)
                validator_log.setLevel(level)
    output = "\n".join([*dict.fromkeys(warned), *found.lines, *ended, ""])
    for folder in dict.fromkeys((str(root), str(root.resolve()))):
        output = output.replace(folder + os.sep, "")
    return code, ANSI.sub("", output)


def rasa_problems(project: Project, root: Path, ran: tuple[int, str] | None = None) -> list[Problem]:
    """Rasa's own data checks (`rasa data validate`), in plain words, without its noise."""
    returncode, output = ran or rasa_output(root)
    problems = [conflict_problem(project, *match.groups()) for match in STORY_CONFLICT.finditer(output)]
    for match in RASA_WARNING.finditer(output):
        message = " ".join(match.group(1).split())
        if not any(noise.search(message) for noise in RASA_NOISE):
            problems.append(Problem(Place(DATA, 1), f"Rasa's own check says: {message}"))
    if returncode != 0 and not problems:
        last = [line for line in output.splitlines() if line.strip()][-3:]
        problems.append(Problem(Place(DATA, 1), "Rasa's own check failed: " + " / ".join(last)))
    return problems


def run_checks(project: Project) -> list[Problem]:
    """The problems every check finds, check by check."""
    return [problem for check in CHECKS for problem in check(project)]


def summary(project: Project) -> str:
    """The one line printed when everything passes."""
    return (
        f"All {len(CHECKS)} checks passed: {len(domain_intents(project))} intents, "
        f"{len(project.examples)} examples, {len(responses(project))} answers"
    )
