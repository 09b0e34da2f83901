"""Stories from real conversations, in the console, in a real browser, on one running stack.

The stack, the staff accounts, the browser and the axe-core check are test_console.py's own
fixtures (imported, so this module starts one stack of its own and shares it between its
tests); the console writes to a temporary git copy of the project, never to the real files.
A visitor talks to the real Rasa server; an editor turns that conversation into a corrected
story and a test, sees them in plain words, edits a step, deletes one, and finds every change
in the History with its author.
"""

from __future__ import annotations

import re

import pytest
import yaml

from staff.service import validate
from tests.e2e.console_site import (  # noqa: F401 (fixtures)
    LAPTOP,
    PHONE,
    Site,
    site,
    staff,
)
from tests.helpers import ISSUED_IDS, axe_violations, handle_of, run_stories, squash

pytestmark = pytest.mark.e2e

SAVED_STORIES = "data/stories/from_conversations.yml"
SAVED_TESTS = "tests/stories/test_from_conversations.yml"
EMAIL = "jo.bloggs@example.org"
# A question the assistant gets wrong: the document says who the treatment is for, but the
# model is not sure and asks "did you mean...?" (the test checks it did not give that answer).
WRONG = "does it work on old scars from years ago"
RIGHT = "faq:who_for"
RIGHT_TITLE = "Who is it for?"


@pytest.fixture(scope="module")
def conversation(site: Site) -> str:
    """A real conversation through the REST channel; its handle, as staff see it (never its id)."""
    for text in ("hello", f"thanks, my email is {EMAIL}", WRONG):
        status, replies = site.chat.send("story-visitor", text)
        assert status == 200 and replies, (text, replies)
    return handle_of(ISSUED_IDS["story-visitor"])


SAVE_TIMEOUT_MS = 180_000  # a training story's save runs Rasa's own validation: 20-60 s on busy cores


def submit(page, name: str | re.Pattern) -> None:
    """Press a form's button and wait for the page that answers (the save's checks take a while)."""
    with page.expect_navigation(timeout=SAVE_TIMEOUT_MS):
        # The click does not wait for the navigation itself (30 s): expect_navigation does, longer.
        page.get_by_role("button", name=name, exact=isinstance(name, str)).click(no_wait_after=True)


def choose(page, turn: int, value: str) -> None:
    page.locator(f"select[name=turn-{turn}]").select_option(value)


def files_text(site: Site) -> str:
    return (site.root / SAVED_STORIES).read_text(encoding="utf-8") + (site.root / SAVED_TESTS).read_text(
        encoding="utf-8"
    )


def test_an_editor_corrects_a_conversation_into_a_story_and_a_test(
    staff, site: Site, conversation: str
) -> None:
    editor = staff(LAPTOP, bypass_csp=True)
    editor.sign_in("eddie")
    page = editor.open(f"/conversations/view?id={conversation}")
    page.get_by_role("link", name="Correct and save as a story or a test").click()
    assert editor.heading() == "Correct and save as a story or a test"
    assert axe_violations(page) == []
    rows = page.locator("table.turns tbody tr")
    assert rows.count() == 3
    assert squash(rows.nth(0).inner_text()).startswith('1 "hello" says "Hello!')
    assert f'"{WRONG}"' in rows.nth(2).inner_text()
    before = squash(rows.nth(2).locator("td").nth(2).inner_text())
    assert f'gives the answer "{RIGHT_TITLE}"' not in before  # it went wrong
    assert EMAIL not in page.content() and "sam.taylor@example.com" in rows.nth(1).inner_text()
    # The choices are the answers' own words.
    labels = page.locator("select[name=turn-2] option").all_inner_texts()
    assert any(
        label.startswith('Instead: the answer "Who is it for?": "Scar Relaxation is for') for label in labels
    )
    assert any(label.startswith("Instead: offers a consultation") for label in labels)

    # The assistant set the second message aside ("did not understand"); the editor says it should
    # have said "you're welcome", and answered the third with the answer "Who is it for?".
    assert "set this message aside" in rows.nth(1).inner_text()
    choose(page, 1, "thanks")
    choose(page, 2, RIGHT)
    page.get_by_label("Name").fill("old scars, corrected")
    submit(page, "Save as a story")
    assert "Saved as a story (the History has it)" in editor.flash()
    assert "next training" in editor.flash()
    stories = yaml.safe_load((site.root / SAVED_STORIES).read_text(encoding="utf-8"))["stories"]
    [story] = [s for s in stories if s["story"] == "old scars, corrected"]
    assert story["steps"] == [
        {"intent": "greet"},
        {"action": "utter_greet"},
        {"intent": "thanks"},
        {"action": "utter_thanks"},
        {"intent": "faq"},
        {"action": "action_answer_faq"},
    ]
    assert story["metadata"]["visitor_words"] == [
        "hello",
        "thanks, my email is sam.taylor@example.com",
        WRONG,
    ]

    page = editor.open(f"/stories/from-conversation?id={conversation}")
    choose(page, 1, "thanks")
    choose(page, 2, RIGHT)
    page.get_by_label("Name").fill("old scars test")
    submit(page, "Save as a test")
    assert "Saved as a conversation test (the History has it)" in editor.flash()
    tests = yaml.safe_load((site.root / SAVED_TESTS).read_text(encoding="utf-8"))["stories"]
    [test] = [s for s in tests if s["story"] == "old scars test"]
    assert {"user": WRONG + "\n", "intent": "faq/who_for"} in test["steps"]
    assert EMAIL not in files_text(site) and "sam.taylor@example.com" in files_text(site)

    # Both listed in plain words, grouped by topic, with the answers the test covers.
    page = editor.open("/stories/")
    assert axe_violations(page) == []
    group = page.locator("details.story-group").filter(has=page.locator("summary", has_text=RIGHT_TITLE))
    group.locator("summary").click()  # topics are folded: the editor opens hers
    listed = squash(group.inner_text())
    assert (
        'Visitor: "hello" -> Assistant: says "Hello!' in listed
        and f'Visitor: "{WRONG}" -> Assistant: gives the answer "{RIGHT_TITLE}"' in listed
    )
    assert "old scars, corrected" in listed and "old scars test" in listed
    covered = page.locator("table.coverage tr").filter(has_text=f'the answer "{RIGHT_TITLE}"')
    assert "old scars test" in covered.inner_text()

    # Edit the story: remove the turn with the (replaced) email address.
    group.get_by_role("link", name="old scars, corrected").click()
    assert axe_violations(page) == []
    choose(page, 1, "remove")
    submit(page, "Save")
    assert "Saved" in editor.flash()
    assert "sam.taylor@example.com" not in squash(page.locator("table.turns").inner_text())
    assert page.locator("table.turns tbody tr").count() == 2
    edited = yaml.safe_load((site.root / SAVED_STORIES).read_text(encoding="utf-8"))["stories"]
    [story] = [s for s in edited if s["story"] == "old scars, corrected"]
    assert story["steps"] == [
        {"intent": "greet"},
        {"action": "utter_greet"},
        {"intent": "faq"},
        {"action": "action_answer_faq"},
    ]
    assert story["metadata"]["visitor_words"] == ["hello", WRONG]

    # Delete the test: found by its name in the folded list.
    page = editor.open("/stories/")
    page.get_by_label("Find by topic or words").fill("old scars test")
    page.get_by_role("button", name="Find").click()
    page.get_by_role("link", name="old scars test").click()
    submit(page, "Delete this test")
    assert '"old scars test" was deleted' in editor.flash()
    assert "old scars test" not in (site.root / SAVED_TESTS).read_text(encoding="utf-8")

    # Every change is in the History with its author; undo brings the test back.
    page = editor.open("/history/")
    history = squash(page.locator("main").inner_text())
    for message in (
        'Conversation test "old scars test" deleted',
        'Story "old scars, corrected" changed',
        'Conversation test "old scars test" added from a conversation',
        'Story "old scars, corrected" added from a conversation',
    ):
        assert message in history
    assert "eddie" in history
    page.get_by_role("link", name=re.compile('Conversation test "old scars test" deleted')).first.click()
    submit(page, re.compile("Undo"))
    assert "undone" in editor.flash()
    assert "old scars test" in (site.root / SAVED_TESTS).read_text(encoding="utf-8")

    # The result passes make validate: the project's checks and Rasa's own.
    project, problems = validate.load(site.root)
    assert problems == [] and validate.run_checks(project) == []
    assert validate.rasa_problems(project, site.root) == []


def test_a_contradicting_story_is_refused_in_plain_words(staff, site: Site, conversation: str) -> None:
    editor = staff(LAPTOP)
    editor.sign_in("eddie")
    page = editor.open(f"/stories/from-conversation?id={conversation}")
    before = files_text(site)
    # An answer, "I don't have that information", then a yes: the training story "a question the
    # document does not answer, then booking" offers a consultation there; this one would not.
    choose(page, 0, "faq:what_is")
    choose(page, 1, "out_of_scope")
    choose(page, 2, "affirm")
    page.get_by_label("Name").fill("a yes, acknowledged")
    submit(page, "Save as a story")
    refusal = squash(page.locator(".refusal").inner_text())
    assert "The story was not saved, because it would confuse the assistant" in refusal
    assert (
        "This story contradicts 'a question the document does not answer, then booking' (a training "
        'story): after the visitor says "does it work on old scars from years ago", that '
        'story says the assistant offers a consultation, this one says it says "Great.'
    ) in refusal, refusal
    assert files_text(site) == before
    assert page.locator("select[name=turn-2]").input_value() == "affirm"  # the choice is kept


def test_the_story_pages_fit_a_phone_and_pass_axe(staff, conversation: str) -> None:
    phone = staff(PHONE, bypass_csp=True)
    phone.sign_in("eddie")
    for path in (
        "/stories/",
        f"/stories/from-conversation?id={conversation}",
        "/stories/edit?file=data/stories/faq.yml&n=0",
    ):
        page = phone.open(path)
        assert page.locator("h1").count() == 1
        assert axe_violations(page) == [], path
        assert not page.evaluate("document.documentElement.scrollWidth > window.innerWidth + 1"), path


def test_reception_cannot_change_stories(staff, site: Site, conversation: str) -> None:
    person = staff(LAPTOP)
    person.sign_in("rita")
    page = person.open(f"/conversations/view?id={conversation}")
    assert page.get_by_role("link", name="Correct and save as a story or a test").count() == 0
    for path in ("/stories/", f"/stories/from-conversation?id={conversation}"):
        assert person.page.request.get(site.console + path).status == 403
    # A form without its CSRF token is refused, even for an editor.
    editor = staff(LAPTOP)
    editor.sign_in("eddie")
    response = editor.page.request.post(
        site.console + "/stories/from-conversation",
        form={"id": conversation, "save_as": "story", "name": "x"},
    )
    assert response.status == 400


def test_a_conversation_saved_as_it_went_passes_rasas_own_test(
    staff, site: Site, conversation: str, tmp_path
) -> None:
    """Save as a test keeps working: Rasa's own story test passes the conversation as it went.

    Against the model that had the conversation, `rasa test core --e2e` passes it, and fails the
    corrected one until training teaches the correction.
    """
    editor = staff(LAPTOP)
    editor.sign_in("eddie")
    for name, choice in (("as it went", "keep"), ("old scars, as it should go", RIGHT)):
        page = editor.open(f"/stories/from-conversation?id={conversation}")
        choose(page, 2, choice)
        page.get_by_label("Name").fill(name)
        submit(page, "Save as a test")
        assert "Saved as a conversation test" in editor.flash()
    saved = yaml.safe_load((site.root / SAVED_TESTS).read_text(encoding="utf-8"))["stories"]
    folder = tmp_path / "stories"
    folder.mkdir()
    (folder / "test_saved.yml").write_text(
        yaml.safe_dump(
            {
                "version": "3.1",
                "stories": [s for s in saved if s["story"].startswith(("as it went", "old scars, as"))],
            }
        ),
        encoding="utf-8",
    )
    code, report = run_stories(folder, tmp_path / "out")
    assert code == 0
    assert "as it went" not in report, report
    assert "old scars, as it should go" in report and report.count("- story:") == 1


# ---- issue 21: conversations and stories read as a person would ------------------------------
REPHRASED = "what is microneedling exactly"
UNHELPFUL_LABEL = "No, something's missing"
GIBBERISH = "blorp zzzt qwfp"
BOOKER_NAME = "Jo Bloggs"
INTERNALS = re.compile(r"utter_|action_|faq/|\.yml|/greet|/affirm|\(the form ends\)|\b[0-9a-f]{7,}\b")


@pytest.fixture(scope="module")
def rephrased(site: Site) -> dict[str, str]:
    """Three real conversations, as visitors had them; their handles by who had them.

    A visitor opens the chat, is asked "did you mean...?", types the question again in other
    words (the fallback sets it aside, then puts it back), presses the thumbs-down button and
    says what was missing; another types something nobody understands; a third starts a booking
    from a button and gives her name.
    """
    said: dict[str, list[str]] = {}
    for sender, texts in {
        "rephrase-visitor": ["/greet", WRONG, REPHRASED, "/feedback_unhelpful", "how many sessions I need"],
        "lost-visitor": [GIBBERISH],
        "booking-visitor": ["/book_consultation", BOOKER_NAME],
    }.items():
        for text in texts:
            status, replies = site.chat.send(sender, text)
            assert status == 200 and replies, (text, replies)
            said.setdefault(sender, []).extend(str(r.get("text") or "") for r in replies)
    assert any("Did you mean" in t for t in said["rephrase-visitor"]), said
    return {sender: handle_of(ISSUED_IDS[sender]) for sender in said}


def test_a_transcript_shows_what_the_visitor_saw_at_full_height(staff, rephrased: dict[str, str]) -> None:
    editor = staff(LAPTOP, bypass_csp=True)
    editor.sign_in("eddie")
    page = editor.open(f"/conversations/view?id={rephrased['rephrase-visitor']}")
    main = squash(page.locator("main").inner_text())
    assert not INTERNALS.search(main), INTERNALS.search(main)
    visitor = page.locator(".transcript li.visitor")
    texts = [squash(t) for t in visitor.locator("p.text").all_inner_texts()]
    assert texts == ["[opened the chat]", WRONG, REPHRASED, UNHELPFUL_LABEL, "how many sessions I need"]
    outcomes = [squash(t) for t in visitor.locator("span.answer").all_inner_texts()]
    assert outcomes[1] == '"did you mean...?"' and outcomes[2] == "answered", outcomes
    # The rephrased question's reply is the answer the visitor read, right after it.
    after = (
        page.locator(".transcript li").filter(has_text=REPHRASED).locator("xpath=following-sibling::li[1]")
    )
    assert "assistant" in (after.get_attribute("class") or "") and len(after.inner_text()) > 60
    assert "Buttons shown:" in main and UNHELPFUL_LABEL in main
    assert 'Outcome: answered, "did you mean...?", thumbs-down.' in main
    # Full height: the page scrolls, not a box inside it.
    box = page.locator("ol.transcript").evaluate(
        "e => [getComputedStyle(e).maxHeight, getComputedStyle(e).overflowY, e.scrollHeight - e.clientHeight]"
    )
    assert box[0] == "none" and box[1] == "visible" and box[2] <= 1, box
    assert axe_violations(page) == []

    page = editor.open(f"/conversations/view?id={rephrased['lost-visitor']}")
    line = squash(page.locator(".transcript li.visitor").first.inner_text())
    assert GIBBERISH in line and "Outcome: not understood" in line and "did you mean" not in line, line
    assert "didn't understand" in squash(page.locator(".transcript li.assistant").first.inner_text())


def test_the_conversation_list_shows_outcomes_and_first_questions(
    staff, site: Site, rephrased: dict[str, str]
) -> None:
    for name in ("rita", "eddie"):
        person = staff(LAPTOP, bypass_csp=True)
        person.sign_in(name)
        page = person.open("/conversations/")
        entries = {
            squash(li.locator(".handle").inner_text()): squash(li.inner_text())
            for li in page.locator(".conversation-list li").all()
        }
        first = entries[rephrased["rephrase-visitor"]]
        assert f"“{WRONG}”" in first and "thumbs-down" in first and "did you mean" in first, first
        lost = entries[rephrased["lost-visitor"]]
        assert f"“{GIBBERISH}”" in lost and "Outcome: not understood" in lost, lost
        booker = entries[rephrased["booking-visitor"]]
        assert "(no question typed)" in booker and "booking" in booker, booker
        assert BOOKER_NAME not in page.content()  # a form's answer is never shown as first words
        assert not INTERNALS.search(squash(page.locator("main").inner_text()))
        assert axe_violations(page) == []
    # The receptionist looks for the conversations with a thumbs-down.
    page.get_by_label("Outcome", exact=True).select_option("thumbs-down")
    page.get_by_role("button", name="Show").click()
    page.wait_for_url(re.compile("outcome=thumbs-down"))
    handles = [squash(h) for h in page.locator(".conversation-list .handle").all_inner_texts()]
    assert handles and rephrased["rephrase-visitor"] in handles and rephrased["lost-visitor"] not in handles
    assert "with the outcome thumbs-down" in squash(page.locator("#found").inner_text())

    # On a phone: the list and a transcript fit the screen and pass axe.
    phone = staff(PHONE, bypass_csp=True)
    phone.sign_in("rita")
    for path in ("/conversations/", f"/conversations/view?id={rephrased['rephrase-visitor']}"):
        page = phone.open(path)
        assert axe_violations(page) == [], path
        assert not page.evaluate("document.documentElement.scrollWidth > window.innerWidth + 1"), path


def test_the_stories_page_is_folded_by_topic_and_searchable(staff) -> None:
    editor = staff(LAPTOP, bypass_csp=True)
    editor.sign_in("eddie")
    page = editor.open("/stories/")
    topics = page.locator("details.story-group")
    assert topics.count() > 3 and page.locator("details.story-group[open]").count() == 0
    assert page.evaluate("document.documentElement.scrollHeight") < 4000
    assert not INTERNALS.search(squash(page.locator("main").inner_text()))
    topics.first.locator("summary").click()
    assert topics.first.locator("ul.stories li").first.is_visible()
    assert axe_violations(page) == []

    everything = page.locator("ul.stories li").count()
    page.get_by_label("Find by topic or words").fill("consultation")
    page.get_by_role("button", name="Find").click()
    page.wait_for_url(re.compile(r"q=consultation"))
    found = page.locator("details.story-group")
    assert found.count() >= 1 and page.locator("details.story-group[open]").count() == found.count()
    items = page.locator("ul.stories li").all()
    assert 0 < len(items) < everything
    for item in items:
        topic = item.locator("xpath=ancestor::details[1]/summary").inner_text()
        assert "consultation" in (item.inner_text() + topic).lower()
    assert f"{len(items)} stories and tests with “consultation”" in squash(
        page.locator("#matched").inner_text()
    )


def test_saving_a_rephrased_conversation_keeps_every_turn(
    staff, site: Site, rephrased: dict[str, str]
) -> None:
    """The question the visitor typed again after "did you mean...?" was answered: it stays."""
    editor = staff(LAPTOP, bypass_csp=True)
    editor.sign_in("eddie")
    page = editor.open(f"/stories/from-conversation?id={rephrased['rephrase-visitor']}")
    table = squash(page.locator("table.turns").inner_text())
    page.get_by_label("Name").fill("microneedling, asked again")
    submit(page, "Save as a test")
    assert "Saved as a conversation test" in editor.flash()
    tests = yaml.safe_load((site.root / SAVED_TESTS).read_text(encoding="utf-8"))["stories"]
    [test] = [s for s in tests if s["story"] == "microneedling, asked again"]
    users = [step["user"].strip() for step in test["steps"] if "user" in step]
    assert REPHRASED in users, test["steps"]
    at = next(i for i, step in enumerate(test["steps"]) if step.get("user", "").strip() == REPHRASED)
    assert {"action": "action_answer_faq"} in test["steps"][at + 1 : at + 4], test["steps"]
    # The page it lands on lists it, turn by turn, the rephrased question with its answer.
    assert REPHRASED in squash(page.locator("table.turns").inner_text())
    # The turns read as the visitor had them: a button by its label, no internal names.
    assert not INTERNALS.search(table), INTERNALS.search(table)
    assert f'presses "{UNHELPFUL_LABEL}"' in table
