"""Stories and conversation tests in the console: plain words, writing, Rasa's conflict check, history.

The writing tests work on one copy of the project in a temporary git repository (tests/helpers.py
project_copy), never on the real files; a save to data/stories runs Rasa's own data validation
(`rasa data validate`, about 15 s), so they share that copy and save as few times as they can.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from staff.service import content, validate
from staff.service import stories as service
from tests.helpers import project_copy

PROJECT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return project_copy(tmp_path_factory.mktemp("stories") / "project")


@pytest.fixture(scope="module")
def words() -> service.Words:
    return service.Words.of(PROJECT)


def by_name(root: Path, name: str) -> service.Story:
    [story] = [s for s in service.read_all(root) if s.name == name]
    return story


def log(root: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=root, check=True, capture_output=True, text=True).stdout


# ---- plain words -------------------------------------------------------------------------
def test_a_booking_story_reads_as_the_conversation_it_teaches(words: service.Words) -> None:
    story = by_name(PROJECT, "booking - happy path")
    plain = words.story(story)
    assert plain.startswith(
        "Visitor: asks to book a consultation -> Assistant: offers a consultation, then asks for the name"
        " -> Visitor: answers the question -> Assistant: asks for a phone number or email"
    )
    assert plain.endswith("Visitor: says yes -> Assistant: sends the consultation request")
    assert "booking_form" not in plain and "slot" not in plain


def test_a_test_reads_with_the_visitors_words_and_the_answer_by_its_title(words: service.Words) -> None:
    assert words.story(by_name(PROJECT, "what_is (1)")) == (
        'Visitor: "what actually is non-surgical scar revision?" -> '
        'Assistant: gives the answer "What is Scar Relaxation?"'
    )
    unknown = words.story(by_name(PROJECT, "price is not in the document"))
    assert unknown.startswith('Visitor: "what would the treatment cost me" -> Assistant: says "I\'m sorry')


def test_answers_fill_in_clinic_details_in_words(words: service.Words) -> None:
    clinic = content.clinic_values(PROJECT)
    assert words.step({"action": "utter_contact"}).startswith(
        f'says "You can reach the {clinic["name"]} team on {clinic["phone"]}'
    )


def test_stories_are_grouped_by_topic_and_coverage_names_the_tests(words: service.Words) -> None:
    found = service.read_all(PROJECT)
    assert service.topic_of(by_name(PROJECT, "what_is (1)"), words.titles) == "What is Scar Relaxation?"
    assert service.topic_of(by_name(PROJECT, "booking - happy path"), words.titles) == "Booking"
    rows = {row.label: row.tests for row in service.coverage(PROJECT, found, words)}
    assert {"what_is (1)", "what_is (2)"} <= set(rows['the answer "What is Scar Relaxation?"'])
    assert rows.get("offers a consultation")


def test_the_choices_are_described_by_the_answers_own_words(words: service.Words) -> None:
    labels = {o.key: o.label for o in service.options(PROJECT, words)}
    assert labels["faq:what_is"].startswith(
        'the answer "What is Scar Relaxation?": "Non-surgical Scar Revision'
    )
    assert labels["unclear"].startswith("says \"Sorry, I didn't understand that.")  # ask to rephrase
    assert (
        labels["book_consultation"] == "offers a consultation (when the visitor asks to book a consultation)"
    )
    assert service.options(PROJECT, words)[0].intent == "faq/what_is"


def test_personal_data_is_replaced_by_example_values() -> None:
    assert service._placeholder("Emma Clarke", "booking_name") == "Sam Taylor"
    assert service._placeholder("the keloid on my chest", "booking_scar") == "a scar on my arm"
    assert service._placeholder("mail me at emma@clarke.example or 07911 654321", None) == (
        "mail me at sam.taylor@example.com or 07700 900123"
    )
    assert service._placeholder("/affirm", "booking_consent") == "/affirm"


# ---- writing -----------------------------------------------------------------------------
GREETING = service.Turn("greet", "hi there", [{"action": "utter_greet"}])


def faq_turn(text: str, key: str, action: str = service.FAQ_ACTION) -> service.Turn:
    return service.Turn(f"faq/{key}", text, [{"action": action}])


def test_a_conflicting_story_is_refused_in_plain_words_and_nothing_is_written(root: Path) -> None:
    before = (root / service.SAVED_STORIES).read_text(encoding="utf-8")
    commits = log(root, "rev-list", "--count", "HEAD")
    turns = [
        GREETING,
        faq_turn("what is it", "what_is"),
        faq_turn("how much is it?", "what_is", "utter_ask_rephrase"),
    ]
    with pytest.raises(service.Refused) as refused:
        service.add_story(
            root, "greeting, then rephrase", turns, False, service.stories_version(root), "eddie"
        )
    [problem] = refused.value.problems
    assert problem.startswith(
        "This story contradicts 'greeting, two questions, thanks and goodbye' (a training story): "
        'after the visitor says "how much is it?", that story says the assistant answers from the FAQ, '
        "this one says it says \"Sorry, I didn't understand that."
    )
    assert (root / service.SAVED_STORIES).read_text(encoding="utf-8") == before
    assert log(root, "rev-list", "--count", "HEAD") == commits


def test_a_message_the_assistant_set_aside_is_left_out_unless_a_reply_is_chosen() -> None:
    known = {o.key: o for o in service.options(PROJECT)}
    aside = service.Turn(
        "inform", "my email is sam.taylor@example.com", [{"action": "action_default_fallback"}]
    )
    aside.set_aside = True
    kept = service.apply_choices([GREETING, aside], ["keep", "keep"], known, True)
    assert [t.intent for t in kept] == ["greet"]
    corrected = service.apply_choices([GREETING, aside], ["keep", "thanks"], known, True)
    assert [(t.intent, t.steps) for t in corrected][1] == ("thanks", [{"action": "utter_thanks"}])


def test_a_test_needs_the_visitors_words(root: Path) -> None:
    with pytest.raises(service.Refused, match="needs the visitor's words"):
        service.add_story(
            root,
            "no words",
            [service.Turn("greet", "", [{"action": "utter_greet"}])],
            True,
            service.stories_version(root),
            "eddie",
        )


def test_stories_and_tests_are_written_edited_and_deleted_keeping_the_files_layout(root: Path) -> None:
    """One story and one test through their whole life, each change a commit with its author."""
    turns = [GREETING, faq_turn("what is it", "what_is"), faq_turn("and who is it for", "who_for")]
    path, _ = service.add_story(
        root, "hello, two questions", turns, False, service.stories_version(root), "eddie"
    )
    assert path == service.SAVED_STORIES
    text = (root / path).read_text(encoding="utf-8")
    assert text.startswith('version: "3.1"\n# Stories saved in the staff console')  # the comment is kept
    assert "      - intent: faq\n      - action: action_answer_faq\n" in text  # intents only, base name
    assert 'visitor_words:\n        - "hi there"\n        - "what is it"' in text
    story = by_name(root, "hello, two questions")
    assert [t.text for t in story.turns] == ["hi there", "what is it", "and who is it for"]

    test_path, _ = service.add_story(root, "hello test", turns, True, service.stories_version(root), "eddie")
    written = (root / test_path).read_text(encoding="utf-8")
    assert "      - user: |\n          and who is it for\n        intent: faq/who_for\n" in written

    # A developer's file: replace one step's reply, insert one, remove one; only those lines change.
    story = by_name(root, "greeting, two questions, thanks and goodbye")
    known = {o.key: o for o in service.options(root)}
    changed = service.apply_choices(story.turns, ["keep", "keep", "keep", "remove", "keep"], known, False)
    changed.insert(1, service.Turn("ask_hours", "", known["ask_hours"].step_maps()))
    service.change_story(root, story, story.name, changed, service.stories_version(root), "eddie")
    diff = [
        line
        for line in log(root, "show", "-U0", "--format=", "HEAD", "--", "data/stories/faq.yml").splitlines()
        if line[:1] in "+-" and not line.startswith(("+++", "---"))
    ]
    assert diff == [
        "+      - intent: ask_hours",
        "+      - action: utter_hours",
        "-      - intent: thanks",
        "-      - action: utter_thanks",
    ]
    assert [t.intent for t in by_name(root, story.name).turns] == [
        "greet",
        "ask_hours",
        "faq",
        "faq",
        "goodbye",
    ]

    service.delete_story(root, by_name(root, "hello test"), service.stories_version(root), "eddie")
    assert all(s.name != "hello test" for s in service.read_all(root))

    history = log(root, "log", "--format=%an|%s", "-4").splitlines()
    assert history == [
        'eddie|Conversation test "hello test" deleted',
        'eddie|Story "greeting, two questions, thanks and goodbye" changed',
        'eddie|Conversation test "hello test" added from a conversation',
        'eddie|Story "hello, two questions" added from a conversation',
    ]
    # Undo works on it (History's button): the deleted test comes back.
    content.undo(root, log(root, "rev-parse", "HEAD").strip(), "anna")
    assert by_name(root, "hello test").test

    # The result still passes make validate's checks (Rasa's own ran on each training story's save;
    # tests/e2e/test_console_stories.py runs them once more on its result).
    project, problems = validate.load(root)
    assert problems == [] and validate.run_checks(project) == []


def test_a_save_from_an_old_page_is_refused(root: Path) -> None:
    old = service.stories_version(root)
    (root / service.SAVED_TESTS).write_text(
        (root / service.SAVED_TESTS).read_text(encoding="utf-8") + "\n", encoding="utf-8"
    )
    with pytest.raises(service.Refused, match="Someone else saved"):
        service.add_story(root, "late", [GREETING], True, old, "eddie")
    log(root, "checkout", "--", service.SAVED_TESTS)
