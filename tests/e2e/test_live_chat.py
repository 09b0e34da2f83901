"""Live chat with staff, in two real browsers: a visitor in the chat widget, staff on the Live page.

The console family's stack (servers/launcher.py: action server, Rasa server, demo page, console;
tests/e2e/console_site.py), shared rather than started again (about a minute on a busy machine);
every server reads the project copy's clinic.yml that each test writes (opening hours, how long a
visitor waits), as a clinic manager would: nothing in the code is patched. Tests find their own
conversations by their visitors' words and their requests by reference. The
whole loop (offer, accept, take, messages both ways, reloads, urgent symptoms while held, hand
back, the assistant answers again), two staff members taking one conversation, and the
after-hours and nobody-took-it paths ending in a callback request stored for the console.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa
import yaml
from playwright.sync_api import Browser, BrowserContext, Page, expect

from common.paths import CLINIC_YML
from servers.launcher import Stack
from tests import screenshots
from tests.e2e.console_site import (
    APPS,
    LAST_STEPS,
    PASSWORD,
    app_code,
    as_copied,
    keep_session,
    resume_session,
)
from tests.e2e.console_site import Site as ConsoleSite
from tests.helpers import BROWSER_TIMEOUT_MS as TIMEOUT_MS
from tests.helpers import WIDGET_BOT as BOT
from tests.helpers import (
    WIDGET_LAUNCHER,
    WIDGET_MESSAGE_BOX,
    WIDGET_REPLY,
    WIDGET_SUBTITLE,
    WIDGET_TYPING,
    axe_violations,
    handle_of,
    read_metrics,
    squash,
)
from tests.two_factor import secret_from_page

pytestmark = pytest.mark.e2e

DAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
ALWAYS_OPEN = {day: "00:00-23:59" for day in DAYS}
NO_LIVE_CHAT = {day: {"hours": "00:00-23:59", "live_chat": False} for day in DAYS}
LAPTOP = {"width": 1280, "height": 800}


@dataclass
class Site:
    """The running stack: its demo page, console, database, log and the clinic.yml every server reads."""

    stack: Stack
    page: str
    console: str
    database_url: str
    clinic_yml: Path
    log: Path

    def clinic(self, opening_hours: dict[str, str], wait_minutes: float = 3) -> None:
        """Write the clinic's opening hours and live chat wait (read by every server at its next request)."""
        values = yaml.safe_load(CLINIC_YML.read_text(encoding="utf-8"))
        values.update(opening_hours=opening_hours, live_chat_wait_minutes=wait_minutes, closed_dates=[])
        self.clinic_yml.write_text(yaml.safe_dump(values), encoding="utf-8")

    def query(self, sql: str, **params: object) -> list[tuple]:
        """Run one SQL query on the stack's database; return its rows."""
        with sa.create_engine(self.database_url).connect() as db:
            return [tuple(row) for row in db.execute(sa.text(sql), params)]


@pytest.fixture(scope="module")
def site(console_stack: ConsoleSite) -> Site:
    """The console family's stack (tests/e2e/conftest.py), its project copy as copied.

    Its clinic.yml, in a copy of the project (a git repository) that the console's Clinic details
    page edits, is what every server reads; the staff accounts are console_site.py's USERS.
    """
    as_copied(console_stack.root)
    stack = console_stack.stack
    log = Path(stack.log.name) if stack.log is not None else console_stack.root / "servers.log"
    return Site(
        stack,
        console_stack.page,
        console_stack.console,
        console_stack.database_url,
        console_stack.root / "clinic.yml",
        log,
    )


class Visitor:
    """A visitor's browser on the demo page, chatting in the widget."""

    def __init__(self, context: BrowserContext, site: Site) -> None:
        self.page: Page = context.new_page()
        self.page.set_default_timeout(TIMEOUT_MS)
        self.errors: list[str] = []
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))
        self.page.goto(site.page)
        self.page.locator(WIDGET_LAUNCHER).click()
        self.page.locator(BOT).first.wait_for()

    def messages(self) -> list[str]:
        """The texts of the bot's (and staff's) messages shown in the widget."""
        return [squash(t) for t in self.page.locator(BOT).all_inner_texts()]

    def wait_for(self, text: str) -> str:
        """Wait until a message containing `text` is shown; return it."""
        self.page.locator(BOT).filter(has_text=text).last.wait_for()
        return next(m for m in reversed(self.messages()) if text in m)

    def say(self, text: str, replies: int = 1) -> list[str]:
        """Type a message; return the `replies` messages that follow it."""
        before = self.page.locator(BOT).count()
        box = self.page.locator(WIDGET_MESSAGE_BOX)
        box.fill(text)
        box.press("Enter")
        if replies:
            self.page.wait_for_function(
                "([s, n]) => document.querySelectorAll(s).length >= n", arg=[BOT, before + replies]
            )
        return self.messages()[before:]

    def press(self, title: str, replies: int = 1) -> list[str]:
        """Press a quick-reply button; return the `replies` messages that follow it."""
        before = self.page.locator(BOT).count()
        self.page.locator(WIDGET_REPLY).filter(has_text=re.compile(f"^{re.escape(title)}$")).last.click()
        self.page.wait_for_function(
            "([s, n]) => document.querySelectorAll(s).length >= n", arg=[BOT, before + replies]
        )
        return self.messages()[before:]


class StaffMember:
    """A staff member's browser on the console, signed in."""

    def __init__(self, context: BrowserContext, site: Site, name: str) -> None:
        self.site = site
        self.page: Page = context.new_page()
        self.page.set_default_timeout(TIMEOUT_MS)
        self.errors: list[str] = []
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))
        if resume_session(context, self.page, site.console, name):  # signed in with a code before
            return
        self.page.goto(site.console + "/login")
        self.page.get_by_label("Your name").fill(name)
        self.page.get_by_label("Password").fill(PASSWORD)
        self.page.get_by_role("button", name="Sign in").click()
        self.page.wait_for_load_state()
        code_step = self.page.url.endswith(("/login/set-up", "/login/code"))
        if self.page.url.endswith("/login/set-up"):  # an admin's first sign-in: the app is set up
            key = (site.console, name)  # the app, shared with the console family's modules
            APPS[key] = secret_from_page(self.page.locator("#secret").inner_text())
            LAST_STEPS.pop(key, None)
            self.page.get_by_label("Code from the app").fill(app_code(*key))
            self.page.get_by_role("button", name="Turn on").click()
            self.page.get_by_role("link", name="I have saved them: continue").click()
        elif self.page.url.endswith("/login/code"):
            self.page.get_by_label("Code (or a recovery code)").fill(app_code(site.console, name))
            self.page.get_by_role("button", name="Sign in").click()
        self.page.wait_for_load_state()
        if code_step:
            keep_session(context, self.page, site.console, name)

    def live(self, available: bool = True) -> Page:
        """Open the Live page (and set yourself available)."""
        self.page.goto(self.site.console + "/live/")
        button = self.page.get_by_role("button", name="Set me available")
        if available and button.count():
            button.click()
            self.page.wait_for_load_state()
        return self.page

    def open_waiting(self) -> None:
        """Follow the first waiting visitor in the queue (it appears by polling)."""
        link = self.page.locator("#queue li", has_text="waiting").first.locator("a")
        link.wait_for()
        link.click()
        self.page.wait_for_load_state()

    def transcript(self) -> str:
        """The open conversation's transcript on the Live page, as one line."""
        return squash(self.page.locator("#transcript").inner_text())


@pytest.fixture
def people(browser: Browser, site: Site) -> Iterator[callable]:
    contexts: list[BrowserContext] = []
    made: list[Visitor | StaffMember] = []

    def make(kind: type, *args: str, **options: object) -> Visitor | StaffMember:
        context = browser.new_context(**{"viewport": LAPTOP, **options})
        contexts.append(context)
        person = kind(context, site, *args)
        made.append(person)
        return person

    yield make
    for context in contexts:
        context.close()
    for person in made:
        assert not person.errors, person.errors


def conversation_of(site: Site, text: str) -> str:
    [(sender,)] = site.query(
        "SELECT DISTINCT sender_id FROM events WHERE type_name = 'user' AND data LIKE :t", t=f'%"{text}"%'
    )
    return sender


def leave_a_message(visitor: Visitor, name: str, email: str, question: str) -> str:
    """Press "Leave a message" and answer the form; the saved message's text."""
    visitor.press("Leave a message", replies=2)
    visitor.say(name)
    visitor.say(email)
    assert "store these details and contact you to answer your message" in visitor.say(question)[0]
    [summary] = visitor.press("Yes, I agree")
    assert f"Name: {name}" in summary and f"Question: {question}" in summary
    [saved] = visitor.press("Yes, send it")
    return saved


def test_a_visitor_chats_with_a_person_and_gets_the_assistant_back(people, site: Site) -> None:
    site.clinic(ALWAYS_OPEN)
    rita = people(StaffMember, "rita")
    page = rita.live()
    expect(page.locator("#presence-status")).to_contain_text("You are available")

    visitor = people(Visitor)
    [offer] = visitor.say("can I talk to someone?")  # the offer at once, nothing before it
    assert "Someone from the Example Skin Clinic team can chat with you now" in offer
    [waiting] = visitor.press("Yes, chat with someone")
    assert "I'm finding someone from the Example Skin Clinic team for you" in waiting
    expect(visitor.page.locator(WIDGET_SUBTITLE)).to_have_text("Waiting for someone from the clinic…")

    # Staff: the badge and the queue show the visitor, with the transcript so far; take it.
    expect(page.locator("[data-live-badge]")).to_contain_text("1")
    expect(page).to_have_title(re.compile(r"^\(1 waiting\)"))
    _, queued, _ = read_metrics(site.console)  # the clinic's monitoring sees the visitor wait
    assert queued[("clinic_live_chat_waiting", ())] == 1
    assert queued[("clinic_live_chat_oldest_wait_seconds", ())] > 0
    taken = ("clinic_live_chat_wait_seconds_count", ())
    rita.open_waiting()
    assert "can I talk to someone?" in rita.transcript()
    page.get_by_role("button", name="Take this conversation").click()
    expect(page.locator("#chat-status")).to_have_text("You are chatting with this visitor.")
    _, answered, _ = read_metrics(site.console)
    assert answered[("clinic_live_chat_waiting", ())] == 0
    assert answered[taken] - queued.get(taken, 0.0) == 1
    assert "Rita from Example Skin Clinic has joined the chat." in visitor.wait_for("has joined")
    expect(visitor.page.locator(WIDGET_SUBTITLE)).to_have_text("Chatting with Rita from the clinic")

    # Messages both ways; the assistant stays silent.
    page.get_by_label("Your reply").fill("Hello, I'm Rita. How can I help?")
    page.get_by_role("button", name="Send").click()
    visitor.wait_for("How can I help?")
    expect(visitor.page.locator(".cc-who").last).to_contain_text("Rita")
    visitor.page.locator(WIDGET_MESSAGE_BOX).press_sequentially("Is it pai", delay=30)
    expect(page.locator("#visitor-activity")).to_have_text("The visitor is typing…")
    before = len(visitor.messages())
    visitor.page.locator(WIDGET_MESSAGE_BOX).fill("Is it painful for darker skin?")
    visitor.page.locator(WIDGET_MESSAGE_BOX).press("Enter")
    expect(page.locator("#transcript")).to_contain_text("Is it painful for darker skin?")
    screenshots.take(page, "live.png", full_page=True)
    expect(visitor.page.locator(WIDGET_TYPING)).to_be_hidden()
    assert len(visitor.messages()) == before, "the assistant answered a conversation a person holds"
    page.get_by_label("Your reply").press_sequentially("Let me ch", delay=30)  # staff typing
    expect(visitor.page.locator(WIDGET_TYPING)).to_be_visible()
    expect(visitor.page.locator(WIDGET_TYPING)).to_have_text("Rita is typing…")
    page.get_by_label("Your reply").fill("")

    # Both sides reload: nothing is lost, and the chat carries on.
    visitor.page.reload()
    expect(visitor.page.locator(WIDGET_SUBTITLE)).to_have_text("Chatting with Rita from the clinic")
    assert any("How can I help?" in m for m in visitor.messages())
    page.reload()
    assert "Is it painful for darker skin?" in rita.transcript() and "Rita" in rita.transcript()
    page.get_by_label("Your reply").fill("Not usually; the team numbs the skin first.")
    page.get_by_label("Your reply").press("Enter")
    visitor.wait_for("numbs the skin")

    # The visitor leaves the page: staff see it; what staff write meanwhile is there on return.
    visitor.page.goto("about:blank")
    expect(page.locator("#visitor-activity")).to_have_text("The visitor has left the page.")
    page.get_by_label("Your reply").fill("Are you still there?")
    page.get_by_label("Your reply").press("Enter")
    expect(page.locator("#transcript")).to_contain_text("Are you still there?")
    visitor.page.goto(site.page)
    visitor.wait_for("Are you still there?")
    expect(page.locator("#visitor-activity")).to_have_text("")
    assert sum("How can I help?" in m for m in visitor.messages()) == 1, "a message shown twice"

    # Urgent symptoms while a person holds the chat: the emergency answer at once.
    [urgent] = visitor.say("my scar has been bleeding heavily for an hour")
    assert "This could need urgent medical attention" in urgent and "999" in urgent
    expect(page.locator("#transcript")).to_contain_text("This could need urgent medical attention")
    checker = people(StaffMember, "rita", bypass_csp=True)  # axe is injected as a script tag
    checker.page.goto(page.url)
    expect(checker.page.locator("#transcript")).to_contain_text("This could need urgent medical attention")
    assert axe_violations(checker.page) == []

    # Hand back: the assistant says it is back and answers again.
    page.get_by_role("button", name="Hand back to the assistant").click()
    assert "Rita has left the chat, and I'm back" in visitor.wait_for("I'm back")
    expect(visitor.page.locator(WIDGET_SUBTITLE)).to_have_text("Questions about Scar Relaxation")
    answers = visitor.say("what is PIH?")
    assert "hyperpigmentation" in answers[0].lower(), answers

    # The tracker store keeps the staff messages with the staff member's name.
    sender = conversation_of(site, "Is it painful for darker skin?")
    staff_lines = [
        (json.loads(data)["text"], json.loads(data)["metadata"].get("sender_name"))
        for (data,) in site.query(
            "SELECT data FROM events WHERE sender_id = :s AND type_name = 'bot' ORDER BY id", s=sender
        )
        if json.loads(data).get("metadata", {}).get("sender_name")
    ]
    assert staff_lines == [
        ("Hello, I'm Rita. How can I help?", "Rita"),
        ("Not usually; the team numbs the skin first.", "Rita"),
        ("Are you still there?", "Rita"),
    ]
    assert site.query("SELECT status, staff_name FROM live_chats WHERE conversation_id = :s", s=sender) == [
        ("returned", "Rita")
    ]
    # ... and the console's Conversations page says who wrote them.
    page.goto(site.console + "/conversations/view?" + urlencode({"id": handle_of(sender)}))
    expect(page.locator("li.assistant", has_text="Are you still there?")).to_contain_text(
        "Rita (staff, live chat)"
    )
    # Nothing the visitor or staff wrote reaches the servers' log.
    log = site.log.read_text(encoding="utf-8")
    for private in ("painful for darker skin", "bleeding heavily", "numbs the skin", "How can I help"):
        assert private not in log


def test_two_staff_take_the_same_conversation_and_one_wins(people, site: Site) -> None:
    site.clinic(ALWAYS_OPEN)
    anna, rita = people(StaffMember, "anna"), people(StaffMember, "rita")
    anna.live()
    rita.live()
    visitor = people(Visitor)
    visitor.say("I want to speak to a human")
    visitor.press("Yes, chat with someone")
    anna.open_waiting()
    rita.open_waiting()
    anna.page.get_by_role("button", name="Take this conversation").click()
    rita.page.get_by_role("button", name="Take this conversation").click()
    expect(anna.page.locator("#chat-status")).to_have_text("You are chatting with this visitor.")
    expect(rita.page.locator(".flash.error")).to_contain_text("Someone else took this conversation")
    expect(rita.page.locator("#chat-status")).to_have_text("Anna is chatting with this visitor.")
    assert rita.page.get_by_label("Your reply").count() == 0
    assert "Anna from Example Skin Clinic has joined the chat." in visitor.wait_for("has joined")
    assert sum("has joined" in m for m in visitor.messages()) == 1
    anna.page.get_by_role("button", name="Close the chat").click()
    assert "Anna has closed the chat" in visitor.wait_for("closed the chat")


def test_after_hours_a_visitor_leaves_a_message_that_reception_sees(people, site: Site) -> None:
    site.clinic(NO_LIVE_CHAT)  # open every day, but without live chat: it is never offered
    rita = people(StaffMember, "rita")
    rita.live()  # even with someone available
    expect(rita.page.locator("#live-reach")).to_have_text(
        "Visitors are offered \u201cleave a message\u201d instead, because no day has live-chat hours "
        "(set them in Clinic details)."
    )
    visitor = people(Visitor)
    [answer] = visitor.say("can I talk to someone?")
    assert "Nobody from the Example Skin Clinic team can chat live right now (no live chat)" in answer
    assert re.search(r"the team will reply (today|tomorrow)", answer), answer
    question = "Can I have it while breastfeeding?"
    saved = leave_a_message(visitor, "Sam O'Neill", "sam.oneill@example.com", question)
    assert "Thank you - your message is with the Example Skin Clinic team" in saved
    reference = re.search(r"SR-[A-Z0-9]{8}", saved).group(0)
    assert site.query(
        "SELECT kind, name, contact, question, status FROM booking_requests WHERE reference = :r", r=reference
    ) == [("callback", "Sam O'Neill", "sam.oneill@example.com", "Can I have it while breastfeeding?", "new")]
    page = rita.page
    page.goto(site.console + "/bookings/")
    row = page.locator("tr", has_text=reference)
    expect(row).to_contain_text("Message for the team")
    row.get_by_role("link", name=reference).click()
    expect(page.locator("dl.details")).to_contain_text("Can I have it while breastfeeding?")
    assert "breastfeeding" not in site.log.read_text(encoding="utf-8")


def test_nobody_takes_it_in_time_so_the_visitor_leaves_a_message(people, site: Site) -> None:
    site.clinic(ALWAYS_OPEN, wait_minutes=0.1)  # six seconds
    rita = people(StaffMember, "rita")
    rita.live()  # available, but busy: never takes it
    visitor = people(Visitor)
    visitor.say("put me through to the team")
    [waiting] = visitor.press("Yes, chat with someone")
    assert "If nobody is free within a moment" in waiting
    missed = visitor.wait_for("nobody from the team is free right now")
    assert "Would you like to leave a message?" in missed
    _, figures, _ = read_metrics(site.stack.config.rasa_url)  # for the alert "nobody answering live chat"
    assert figures[("clinic_live_chat_missed_total", ())] >= 1
    expect(visitor.page.locator(WIDGET_SUBTITLE)).to_have_text("Questions about Scar Relaxation")
    saved = leave_a_message(visitor, "Jo Lee", "jo.lee@example.com", "Do you treat keloid scars?")
    reference = re.search(r"SR-[A-Z0-9]{8}", saved).group(0)
    assert site.query("SELECT kind, question FROM booking_requests WHERE reference = :r", r=reference) == [
        ("callback", "Do you treat keloid scars?")
    ]
    assert site.query("SELECT count(*) FROM live_chats WHERE status = 'missed'") == [(1,)]


def test_the_live_page_is_for_reception_and_admins_and_refuses_forged_posts(people, site: Site) -> None:
    eddie = people(StaffMember, "eddie")
    response = eddie.page.goto(site.console + "/live/")
    assert response.status == 403
    rita = people(StaffMember, "rita")
    rita.live()
    forged = rita.page.request.post(site.console + "/live/presence", form={"available": "1"})
    assert forged.status == 400  # no CSRF token
    # The Rasa server's staff routes refuse anyone without the live chat secret.
    refused = rita.page.request.post(
        site.stack.config.rasa_url + "/webhooks/socketio/live/say",
        data=json.dumps({"chat_id": 1, "staff_id": 1, "staff_name": "Mallory", "text": "hi"}),
        headers={"Content-Type": "application/json"},
    )
    assert refused.status == 401


# ---- the clinic's hours: one setting, and the Live page tells the truth -------------------
PHONE = {"width": 390, "height": 844}
NO_SIDEWAYS_SCROLL = "() => document.documentElement.scrollWidth <= window.innerWidth"


def noon_somewhere(site: Site) -> datetime:
    """Give the clinic a time zone where it is now about noon; the clinic's time now.

    So a test can set hours that "now" is inside or outside of, whatever the real clock says,
    the way a clinic abroad would set its time zone (clinic.yml's timezone).
    """
    hours_to_noon = 12 - datetime.now(timezone.utc).hour  # -11 .. 12: every one is a real zone
    zone = f"Etc/GMT{'-' if hours_to_noon > 0 else '+'}{abs(hours_to_noon)}"  # Etc/ signs are reversed
    text = CLINIC_YML.read_text(encoding="utf-8")
    site.clinic_yml.write_text(re.sub(r"(?m)^timezone: .*$", f'timezone: "{zone}"', text), encoding="utf-8")
    return datetime.now(ZoneInfo(zone))


def set_day(page: Page, day: str, opens: str, closes: str, live_chat: bool = True) -> None:
    """On Clinic details: one day's opening and closing time, and whether live chat is offered then."""
    group = page.get_by_role("group", name=day, exact=True)
    group.get_by_label("Opens").fill(opens)
    group.get_by_label("Closes").fill(closes)
    box = group.get_by_label("Live chat")
    box.check() if live_chat else box.uncheck()


def save_clinic(page: Page) -> None:
    """Press Save on Clinic details and wait for the page to say it was saved."""
    page.get_by_role("button", name="Save").click()
    expect(page.locator(".flash.success")).to_contain_text("Saved")


def one_reply(visitor: Visitor, text: str, expected: str) -> str:
    """Type `text`; the reply, which must be a single message containing `expected` (no detour first)."""
    before = len(visitor.messages())
    visitor.say(text)
    visitor.wait_for(expected)
    replies = visitor.messages()[before:]
    assert len(replies) == 1, replies
    return replies[0]


def test_the_hours_are_set_once_and_the_assistant_and_the_live_page_agree(people, site: Site) -> None:
    now = noon_somewhere(site)
    today, tomorrow = now.strftime("%A"), (now + timedelta(days=1)).strftime("%A")
    anna = people(StaffMember, "anna", bypass_csp=True)  # axe is injected as a script tag
    clinic = anna.page
    clinic.goto(site.console + "/clinic/")
    set_day(clinic, today, "11:00", "14:00")
    save_clinic(clinic)
    assert axe_violations(clinic) == []
    rita = people(StaffMember, "rita")
    live = rita.live()
    reach = live.locator("#live-reach")
    expect(reach).to_have_text("Visitors can ask for a person now.")

    # What the assistant says the hours are and whether it offers a person come from that one setting.
    visitor = people(Visitor)
    assert f"{today} 11am to 2pm" in visitor.say("what are your opening hours?")[0]
    offer = one_reply(visitor, "can I talk to a human", "can chat with you now")
    assert "Someone from the Example Skin Clinic team can chat with you now" in offer

    # The admin closes earlier today: the assistant and the Live page both say so at once.
    set_day(clinic, today, "08:00", "10:00")
    set_day(clinic, tomorrow, "08:30", "17:00")
    save_clinic(clinic)
    expect(reach).to_have_text(
        "Visitors are offered \u201cleave a message\u201d instead, because it is outside live-chat hours "
        f"(next opening: {tomorrow} 8:30)."
    )
    later = people(Visitor)
    assert f"{today} 8am to 10am" in later.say("what are your opening hours?")[0]
    message = one_reply(
        later, "can I talk to a human", "Nobody from the Example Skin Clinic team can chat live"
    )
    assert "tomorrow from 8:30am" in message
    later.page.locator(WIDGET_REPLY).filter(has_text="Leave a message").wait_for()

    # Open, but no live chat today (a receptionist's day off the Live page): still one setting.
    set_day(clinic, today, "11:00", "14:00", live_chat=False)
    save_clinic(clinic)
    expect(reach).to_contain_text(f"outside live-chat hours (next opening: {tomorrow} 8:30)")
    third = people(Visitor)
    assert f"{today} 11am to 2pm" in third.say("what are your opening hours?")[0]
    one_reply(third, "can I talk to a human", "can chat live right now")

    # Within live-chat hours again, but the receptionist steps away.
    set_day(clinic, today, "11:00", "14:00", live_chat=True)
    save_clinic(clinic)
    expect(reach).to_have_text("Visitors can ask for a person now.")
    live.get_by_role("button", name="Set me away").click()
    expect(reach).to_have_text(
        "Visitors are offered \u201cleave a message\u201d instead, because nobody is available."
    )
    fourth = people(Visitor)
    one_reply(fourth, "can I talk to a human", "can chat live right now")
    anna.live()  # the admin steps in: someone is available again
    expect(clinic.locator("#live-reach")).to_have_text("Visitors can ask for a person now.")
    assert axe_violations(clinic) == []


def test_the_clinic_hours_form_refuses_mistakes_in_plain_words(people, site: Site) -> None:
    site.clinic(ALWAYS_OPEN)
    before = site.clinic_yml.read_text(encoding="utf-8")
    anna = people(StaffMember, "anna", bypass_csp=True)
    page = anna.page
    page.goto(site.console + "/clinic/")
    set_day(page, "Monday", "17:00", "09:00")
    page.get_by_role("group", name="Tuesday", exact=True).get_by_label("Closes").fill("")
    page.get_by_label("Minutes a visitor waits for someone").fill("0")
    page.get_by_label("Visitors who may wait at once").fill("many")
    page.get_by_role("button", name="Save").click()
    errors = squash(page.locator(".refusal").inner_text())
    assert "Monday: the closing time must be after the opening time" in errors
    assert "Tuesday: give both the opening and the closing time, or neither" in errors
    assert "minutes a visitor waits" in errors.lower() and "visitors who may wait at once" in errors.lower()
    assert site.clinic_yml.read_text(encoding="utf-8") == before
    for internal in (".yml", "opening_hours", "live_chat_"):
        assert internal not in page.locator("main").inner_text()
    # What was typed is kept, to correct.
    expect(page.get_by_role("group", name="Monday", exact=True).get_by_label("Opens")).to_have_value("17:00")
    # The wait and how many may wait are edited here too.
    set_day(page, "Monday", "09:00", "17:00")
    set_day(page, "Tuesday", "09:00", "17:00")
    page.get_by_label("Minutes a visitor waits for someone").fill("4")
    page.get_by_label("Visitors who may wait at once").fill("3")
    save_clinic(page)
    values = yaml.safe_load(site.clinic_yml.read_text(encoding="utf-8"))
    assert values["live_chat_wait_minutes"] == 4 and values["live_chat_max_waiting"] == 3
    assert values["opening_hours"]["monday"] == "09:00-17:00"
    assert axe_violations(page) == []
    page.set_viewport_size(PHONE)
    assert page.evaluate(NO_SIDEWAYS_SCROLL)


def test_the_waiting_badge_is_hidden_when_nobody_waits(people, site: Site) -> None:
    rita = people(StaffMember, "rita")
    for path in ("/bookings/", "/live/", "/conversations/"):
        rita.page.goto(site.console + path)
        expect(rita.page.locator("[data-live-badge]")).to_be_hidden()
        assert "Live 0" not in squash(rita.page.locator("nav").inner_text())


def test_two_misunderstandings_in_a_row_offer_a_person_while_someone_is_available(people, site: Site) -> None:
    """Issue 24: two messages in a row the assistant cannot read: the team is offered, live if possible."""
    site.clinic(ALWAYS_OPEN)
    rita = people(StaffMember, "rita")
    expect(rita.live().locator("#presence-status")).to_contain_text("You are available")
    visitor = people(Visitor)
    assert visitor.say("sdfkjhsdf")[0].startswith("Sorry, I didn't understand that.")
    still, offer = visitor.say("qwrtzp vbnmx", replies=2)
    assert still.startswith("Sorry, I still didn't understand.") and "020 7946 0000" in still
    assert "Someone from the Example Skin Clinic team can chat with you now" in offer
    titles = visitor.page.locator(".cc-replies").last.locator(WIDGET_REPLY).all_inner_texts()
    assert titles == ["Yes, chat with someone", "No, thanks"]
    rita.page.get_by_role("button", name="Set me away").click()  # as the other tests expect
    rita.page.wait_for_load_state()
