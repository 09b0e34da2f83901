"""The staff console in a real browser (Playwright + Debian's Chromium), on one running stack.

The stack is the product's own (servers/launcher.py): action server, Rasa server, the demo
page with the chat widget and the console, each its own process, on free loopback ports,
with a fresh SQLite database. The console's inbox and editing pages write to a copy of the
project in a temporary git repository (every server reads its clinic.yml), never to the real
files. Staff accounts are made with the staff command (clinic-staff-user), as a clinic would.
Every page is checked with axe-core (web/node_modules, no CDN) as each role, at 1366x768 and on a
phone (390x844), where it must not scroll sideways (content two roles are shown alike, axe-core
reads once), and its words for internals, in one visit.
Some tests also take the documentation's pictures (tests/screenshots.py).
"""

from __future__ import annotations

import csv
import io
import re
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import pytest
import sqlalchemy as sa
import yaml
from openpyxl import load_workbook
from playwright.sync_api import Browser, Locator, Page, expect

from common.clinic import load_settings
from common.paths import PROJECT_ROOT
from staff.commands import validate as validate_command
from staff.service import releases
from tests import screenshots
from tests.e2e.console_site import (  # noqa: F401 (fixtures)
    LAPTOP,
    PASSWORD,
    PHONE,
    USERS,
    Site,
    Staff,
    add_user,
    app_code,
    has_app,
    site,
    staff,
)
from tests.helpers import (
    AXE,
    WIDGET_LAUNCHER,
    WIDGET_MESSAGE_BOX,
    WIDGET_REPLY,
    axe_violations,
    open_day,
    read_metrics,
    squash,
)
from tests.helpers import BROWSER_TIMEOUT_MS as TIMEOUT_MS
from tests.helpers import WIDGET_BOT as BOT
from tests.mail import MailServer

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("console-screenshots")


def day_numbers(page: Page) -> dict[str, int]:
    """The selected day's figures on the Today page, by their data-day key."""
    cells = page.locator("td[data-day]")
    return {
        cells.nth(i).get_attribute("data-day"): int(cells.nth(i).inner_text()) for i in range(cells.count())
    }


def book_in_widget(browser: Browser, site: Site, name: str, email: str, when: str = "") -> str:
    """A visitor books a consultation in the chat widget on the demo page; returns the reference.

    `when`: their answer to the day question, with a time in it (so no time question follows);
    by default an open day, then "afternoon".
    """
    context = browser.new_context(viewport=LAPTOP)
    page = context.new_page()
    page.set_default_timeout(TIMEOUT_MS)

    def say(text: str, replies: int = 1) -> list[str]:
        before = page.locator(BOT).count()
        box = page.locator(WIDGET_MESSAGE_BOX)
        box.fill(text)
        box.press("Enter")
        page.wait_for_function(
            "([s, n]) => document.querySelectorAll(s).length >= n", arg=[BOT, before + replies]
        )
        return [squash(t) for t in page.locator(BOT).all_inner_texts()[before:]]

    def press(title: str, replies: int = 1) -> list[str]:
        before = page.locator(BOT).count()
        page.locator(WIDGET_REPLY).filter(has_text=re.compile(f"^{re.escape(title)}$")).last.click()
        page.wait_for_function(
            "([s, n]) => document.querySelectorAll(s).length >= n", arg=[BOT, before + replies]
        )
        return [squash(t) for t in page.locator(BOT).all_inner_texts()[before:]]

    try:
        page.goto(site.page)
        page.locator(WIDGET_LAUNCHER).click()
        page.locator(BOT).first.wait_for()
        day = open_day()
        say("I would like to book a consultation", replies=2)
        say(name)
        say(email)
        if when:
            say(when)
        else:
            say(f"{day.day} {day:%B}")
            say("afternoon")
        say("skip")
        press("Yes, I agree")
        [saved] = press("Yes, send it")
        match = re.search(r"Your reference is (SR-[A-Z0-9]{8})", saved)
        assert match, saved
        return match.group(1)
    finally:
        context.close()


# ---------------------------------------------------------------------------- sign-in
def test_signed_out_every_page_sends_you_to_the_sign_in_page(staff, site: Site) -> None:
    person = staff()
    for path in ["/", "/bookings/", "/bookings/export.csv", "/inbox/", "/conversations/", "/admin/users"]:
        person.open(path)
        assert person.page.url.split("?")[0] == site.console + "/login", path
        assert person.heading() == "Sign in"


def test_a_wrong_password_is_refused_and_the_right_one_signs_in(staff, site: Site) -> None:
    person = staff()
    failures = ("clinic_sign_in_failures_total", (("reason", "password"),))
    status, before, _ = read_metrics(site.console)
    assert status == 200
    person.sign_in("rita", "not the password at all")
    assert person.heading() == "Sign in"
    assert "The name or password is not right" in person.page.get_by_role("alert").inner_text()
    # The clinic's monitoring sees the failure (issue 23), and nobody without the token sees anything.
    _, after, text = read_metrics(site.console)
    assert after[failures] - before.get(failures, 0.0) == 1
    assert after[("clinic_live_chat_waiting", ())] >= 0 and "rita" not in text
    refused, _, body = read_metrics(site.console, token=None)
    assert refused == 401 and "clinic_" not in body
    person.sign_in("rita")
    assert person.heading() == "Today"
    assert "rita (reception)" in person.page.locator(".who").inner_text()


def test_sign_in_is_throttled_after_repeated_failures(staff) -> None:
    person = staff()
    for _ in range(5):
        person.sign_in("tess", "wrong password, again")
        assert "not right" in person.page.get_by_role("alert").inner_text()
    person.sign_in("tess")  # the right password, too late
    assert person.heading() == "Sign in"
    assert "Too many failed sign-ins" in person.page.get_by_role("alert").inner_text()


def test_a_role_is_refused_the_pages_it_may_not_see(staff) -> None:
    editor = staff()
    editor.sign_in("eddie")
    links = editor.page.locator("nav a").all_inner_texts()
    assert "Unanswered questions" in links and "Bookings" not in links and "Staff" not in links
    for path in ["/bookings/", "/bookings/export.csv", "/admin/users", "/admin/audit"]:
        response = editor.page.goto(editor.site.console + path)
        assert response is not None and response.status == 403, path
        assert editor.heading() == "Your role cannot open this page"
    reception = staff()
    reception.sign_in("rita")
    response = reception.page.goto(reception.site.console + "/inbox/")
    assert response is not None and response.status == 403


def test_a_form_posted_without_its_csrf_token_is_refused(staff, site: Site) -> None:
    person = staff()
    person.sign_in("anna")
    reference_count = len(person.open("/bookings/").locator("tbody tr").all())
    response = person.context.request.post(
        site.console + "/bookings/purge", form={"days": "1", "confirm": "yes"}, max_redirects=0
    )
    assert response.status == 400
    assert "This form could not be accepted" in response.text() and "Nothing was changed" in response.text()
    response = person.context.request.post(
        site.console + "/admin/users",
        form={"action": "create", "name": "mallory", "role": "admin", "password": "x" * 20},
    )
    assert response.status == 400
    person.open("/admin/users")
    assert "mallory" not in person.page.locator("table").inner_text()
    assert len(person.open("/bookings/").locator("tbody tr").all()) == reference_count


# ---------------------------------------------------------------------------- bookings
def test_a_booking_from_the_widget_is_found_followed_up_and_exported(
    staff, browser: Browser, site: Site, artifacts: Path
) -> None:
    name, email = "Robin Brown", "robin.brown@example.com"
    reference = book_in_widget(browser, site, name, email)
    person = staff()
    person.sign_in("rita")
    page = person.open("/bookings/?status=new")
    row = page.locator("tbody tr", has_text=reference)
    assert name in row.inner_text() and email in row.inner_text() and "new" in row.inner_text()
    screenshots.take(page, "bookings.png")

    page.get_by_label("Reference, name or contact").fill("robin.brown")
    page.get_by_role("button", name="Show").click()
    expect(page.locator("tbody tr")).to_have_count(1)  # once the search's page has loaded
    page.get_by_role("link", name=reference).click()
    assert person.heading() == f"Request {reference}"

    page.get_by_label("contacted").check()
    page.get_by_label("Note (for the team").fill("Called back, left a voicemail")
    page.get_by_role("button", name="Save").click()
    assert f"{reference} is marked contacted." in person.flash()
    assert "contacted" in page.locator("dl.details").inner_text()
    assert "Called back, left a voicemail" in page.locator("#follow-up-log").inner_text()

    # The conversation behind the request, with what each message got.
    page.get_by_role("link", name="Read the conversation").click()
    transcript = page.locator(".transcript").inner_text()
    # The visitor's own answer and the reply they read, with the request's reference.
    assert name in transcript and f"Your reference is {reference}" in transcript
    assert "booking" in page.locator("p.small", has_text="Outcome:").inner_text().split("Outcome:")[1]

    # The CSV for Excel: a BOM, the clinic's local time, the status and the note.
    page = person.open("/bookings/?q=" + reference)
    with page.expect_download() as download:
        page.get_by_role("link", name="or as CSV").click()
    raw = Path(download.value.path()).read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf")
    rows = list(csv.DictReader(io.StringIO(raw.decode("utf-8-sig"))))
    assert len(rows) == 1
    [received] = [key for key in rows[0] if key.startswith("Received")]
    assert rows[0]["Reference"] == reference and rows[0]["Name"] == name and rows[0]["Contact"] == email
    assert rows[0]["Status"] == "contacted" and rows[0]["Note"] == "Called back, left a voicemail"
    with sa.create_engine(site.database_url).connect() as db:
        stored = db.execute(
            sa.text("SELECT created_at FROM booking_requests WHERE reference = :r"), {"r": reference}
        ).scalar_one()
    stored = stored if isinstance(stored, datetime) else datetime.fromisoformat(stored)
    local = stored.replace(tzinfo=timezone.utc).astimezone(load_settings().zone)
    assert rows[0][received] == local.strftime("%Y-%m-%d %H:%M")

    # An editor reading the same conversation does not see the visitor's details.
    editor = staff()
    editor.sign_in("eddie")
    editor.open(f"/conversations/?reference={reference}")
    hidden = editor.page.locator(".transcript").inner_text()
    assert name not in hidden and email not in hidden and "hidden" in hidden

    # The audit log names the reference and the change, never the person.
    admin = staff()
    admin.sign_in("anna")
    log = admin.open("/admin/audit").locator("table").inner_text()
    assert "changed booking status" in log and reference in log and "exported bookings" in log
    assert name not in log and email not in log and "voicemail" not in log


def set_email_address(admin: Staff, name: str, address: str) -> None:
    """On the admins' E-mail notifications page, set (or, with "", remove) a staff member's address."""
    page = admin.open("/admin/notifications/")
    page.get_by_label(f"E-mail address of {name}").fill(address)
    page.get_by_role("button", name=f"Save the address of {name}").click()
    assert f"{name}'s e-mail address is saved." in admin.flash()


def choose_emails(person: Staff, *kinds: str) -> None:
    """On their account page, a staff member ticks exactly these kinds of e-mail and saves."""
    page = person.open("/account/")
    for box in page.get_by_role("group", name="Send me an e-mail about").get_by_role("checkbox").all():
        label = box.evaluate("b => b.parentElement.textContent").strip()
        box.set_checked(label in kinds)
    page.get_by_role("button", name="Save my e-mail choices").click()
    assert "Your e-mail choices are saved." in person.flash()


def reload_until(person: Staff, path: str, selector: str, text: str) -> str:
    """Open `path` again until `selector` shows `text` (the sender works in the background)."""
    deadline = datetime.now(timezone.utc).timestamp() + TIMEOUT_MS / 1000
    shown = ""
    while datetime.now(timezone.utc).timestamp() < deadline:
        page = person.open(path)
        shown = page.locator(selector).inner_text() if page.locator(selector).count() else ""
        if text in shown:
            return shown
        page.wait_for_timeout(500)
    raise AssertionError(f"{path} never showed {text!r} in {selector}; it showed {shown!r}")


def test_a_booking_is_emailed_once_to_who_chose_it_after_the_mail_server_comes_back(
    staff, browser: Browser, site: Site
) -> None:
    add_user(site.database_url, "una", "reception")  # a receptionist who will unsubscribe
    admin, rita, una, eddie = staff(), staff(), staff(), staff()
    admin.sign_in("anna")
    rita.sign_in("rita")
    una.sign_in("una")
    eddie.sign_in("eddie")
    set_email_address(admin, "rita", "rita@clinic.example")
    set_email_address(admin, "una", "una@clinic.example")
    choose_emails(rita, "A new consultation request")
    choose_emails(una, "A new consultation request")
    choose_emails(una)  # and then unsubscribed
    # An editor may choose the summary only: requests and conversations are not theirs to open.
    offered = eddie.open("/account/").get_by_role("group", name="Send me an e-mail about").inner_text()
    assert "daily summary" in offered and "consultation request" not in offered
    account = rita.open("/account/").locator("section", has_text="E-mails").inner_text()
    assert "rita@clinic.example" in account

    # The mail server is down: the visitor's booking goes through as ever, the e-mail waits.
    reference = book_in_widget(browser, site, "Mia Mailer", "mia.mailer@example.com")
    card = reload_until(admin, "/", "#email-card", "E-mail notifications last failed")
    assert "refused the connection" in card and "1 waiting to be sent" in card
    state = reload_until(admin, "/admin/notifications/", "#outbox", reference)
    assert "not sent yet" in state and "rita" in state and "una" not in state

    with MailServer(site.smtp_port) as mail:
        reload_until(admin, "/admin/notifications/", '#outbox tr:has([data-status="sent"])', reference)
        received = mail.received  # marked sent once the server took it: nothing more comes
        assert [r.recipients for r in received] == [["rita@clinic.example"]]
        [message] = received
        assert reference in message.message["Subject"]
        assert f"{site.console}/bookings/{reference}" in message.body
        assert "Mia Mailer" not in message.body and "mia.mailer@example.com" not in message.body
        rita.open(f"/bookings/{reference}")  # the link opens the request for a signed-in receptionist
        assert rita.heading() == f"Request {reference}"
        card = reload_until(admin, "/", "#email-card", "Sent again since")
        assert mail.to("una@clinic.example") == [] and len(mail.received) == 1
    log = admin.open("/admin/audit").locator("table").inner_text()
    assert "set a staff e-mail address" in log and "chose e-mail notifications" in log
    for person in ("rita", "una"):  # the module's later bookings e-mail nobody
        set_email_address(admin, person, "")
    assert not admin.problems and not rita.problems and not una.problems and not eddie.problems


def test_reception_reads_everything_the_visitor_said_about_when_and_exports_it_to_excel(
    staff, browser: Browser, site: Site
) -> None:
    """Issue 21: the page and the CSV showed only "Monday 07 December 2026, morning"; phones as '+44..."""
    typed = "any weekday next week after 2pm, or Saturday morning"
    name, phone = "Wendy Whenever", "07700 900123"
    reference = book_in_widget(browser, site, name, phone, when=typed)
    person = staff()
    person.sign_in("rita")
    page = person.open("/bookings/")
    page.get_by_role("link", name=reference).click()
    details = squash(page.locator("dl.details").inner_text())
    assert f"When, in their words “{typed}”" in details, details
    understood = squash(page.locator("#days-understood").inner_text())
    assert understood.startswith("weekdays between Monday") and ", after 2pm; or Saturday " in understood
    assert understood.endswith(", morning")
    assert squash(page.locator("#times-understood").inner_text()) == "after 2pm or morning"
    span = squash(page.locator("#range").inner_text())
    assert re.fullmatch(r"Monday \d+ \w+ \d{4} to Saturday \d+ \w+ \d{4}", span), span
    assert squash(page.locator("#weekdays").inner_text()) == "Monday to Saturday"
    assert squash(page.locator("#flexible").inner_text()) == "no"

    # The spreadsheet: the same columns, the phone number as typed text (no apostrophe).
    page = person.open("/bookings/?q=" + reference)
    with page.expect_download() as download:
        page.get_by_role("link", name="Export these to Excel (XLSX)").click()
    assert download.value.suggested_filename.endswith(".xlsx")
    sheet = load_workbook(io.BytesIO(Path(download.value.path()).read_bytes())).active
    headings = [cell.value for cell in sheet[1]]
    [cells] = [dict(zip(headings, row, strict=True)) for row in sheet.iter_rows(min_row=2)]
    assert cells["Reference"].value == reference and cells["Name"].value == name
    assert (cells["Contact"].value, cells["Contact"].data_type) == ("+447700900123", "s")
    assert cells["When: the visitor's words"].value == typed
    assert cells["Days understood"].value == understood
    assert cells["Times understood"].value == "after 2pm or morning" and cells["Flexible"].value == "no"
    assert cells["Earliest day"].is_date and cells["Latest day"].is_date


def test_reception_keeps_a_contact_log_and_finds_a_request_in_another_status(
    staff, browser: Browser, site: Site
) -> None:
    """Issue 21: one note field was overwritten each time, and a search kept the status filter."""
    name, email = "Lola Logbook", "lola.logbook@example.com"
    reference = book_in_widget(browser, site, name, email)
    person = staff()
    person.sign_in("rita")
    page = person.open(f"/bookings/{reference}")
    page.get_by_label("contacted").check()
    page.get_by_label("Add a note").fill("Rang, no answer")
    page.get_by_role("button", name="Save").click()
    assert f"{reference} is marked contacted." in person.flash()
    page.get_by_label("Add a note").fill("Rang again: booked Tuesday 10am")
    page.get_by_role("button", name="Save").click()
    assert "Your note is added" in person.flash()
    log = page.locator("#follow-up-log li")
    assert log.count() == 2
    first, second = squash(log.nth(0).inner_text()), squash(log.nth(1).inner_text())
    assert "rita" in first and "marked contacted (was new)" in first and "Rang, no answer" in first
    assert "rita" in second and "Rang again: booked Tuesday 10am" in second
    screenshots.take(page, "booking-request.png")

    # Back on the list of new requests, a search for her still finds where she is.
    page = person.open("/bookings/?status=new")
    page.get_by_label("Reference, name or contact").fill("logbook")
    page.get_by_role("button", name="Show").click()
    assert page.locator("tbody tr", has_text=reference).count() == 0
    notice = squash(page.locator("#elsewhere").inner_text())
    assert "1 more request matches your search in other statuses (1 contacted)" in notice
    page.get_by_role("link", name="Show all statuses").click()
    expect(page.locator("tbody tr", has_text=reference)).to_have_count(1)  # once the list has loaded


def stored(site: Site, query: str, **values: str) -> int:
    """A count from the database the servers write."""
    engine = sa.create_engine(site.database_url)
    try:
        with engine.connect() as db:
            return db.execute(sa.text(query), values).scalar_one()
    finally:
        engine.dispose()


def test_an_admin_erases_one_person_after_a_confirmation_and_the_audit_log_names_no_one(
    staff, browser: Browser, site: Site
) -> None:
    name, email = "Erika Eraseme", "erika.eraseme@example.com"
    reference = book_in_widget(browser, site, name, email)
    site.chat.texts("erika-again", f"is my request for {email} through?")  # a second conversation
    site.chat.texts("someone-else", "what is scar relaxation?")
    mentioning = "SELECT COUNT(*) FROM events WHERE lower(data) LIKE :text"
    assert stored(site, mentioning, text="%erika.eraseme%") > 0
    others = stored(
        site, "SELECT COUNT(*) FROM events WHERE sender_id = :s", s=site.chat.conversation_id("someone-else")
    )

    # Reception staff follow requests up but cannot erase: no button, and the page is refused.
    reception = staff()
    reception.sign_in("rita")
    reception.open(f"/bookings/{reference}")
    assert reception.page.get_by_role("link", name="Erase this person…").count() == 0
    assert reception.page.goto(f"{site.console}/bookings/{reference}/erase").status == 403

    admin = staff()
    admin.sign_in("anna")
    page = admin.open(f"/bookings/{reference}")
    page.get_by_role("link", name="Erase this person…").click()
    count = squash(page.locator("#erase-count").inner_text())
    assert f"1 consultation request ({reference}) and 2 conversations" in count, count
    page.get_by_role("button", name="Erase").click()  # not confirmed: nothing happens
    assert "Tick the box" in admin.flash()
    assert stored(site, "SELECT COUNT(*) FROM booking_requests WHERE reference = :r", r=reference) == 1

    page.get_by_label("Yes, erase everything about this person").check()
    page.get_by_role("button", name="Erase").click()
    assert f"Erased 1 request(s) ({reference}), 2 conversation(s)" in admin.flash()
    assert stored(site, "SELECT COUNT(*) FROM booking_requests WHERE reference = :r", r=reference) == 0
    assert stored(site, mentioning, text="%erika.eraseme%") == 0
    assert stored(site, mentioning, text="%eraseme%") == 0  # the name went with its conversation
    assert (
        stored(
            site,
            "SELECT COUNT(*) FROM events WHERE sender_id = :s",
            s=site.chat.conversation_id("someone-else"),
        )
        == others
    )
    assert reference not in admin.open("/bookings/").locator("main").inner_text()

    log = admin.open("/admin/audit").locator("table").inner_text()
    assert "erased a person" in log and reference in log
    assert "Erika" not in log and "eraseme" not in log


def test_purge_says_how_many_rows_go_before_deleting(staff) -> None:
    person = staff()
    person.sign_in("anna")
    page = person.open("/bookings/purge")
    page.get_by_label("Older than (days)").fill("30")
    page.get_by_role("button", name="Count what would be deleted").click()
    assert re.search(
        r"0 consultation requests and 0 conversation events are older than 30 days",
        page.locator("#purge-count").inner_text(),
    )
    page.get_by_role("button", name=re.compile("^Delete 0 requests")).click()
    assert "Tick the box" in person.flash()


# ---------------------------------------------------------------------------- numbers
def test_the_today_page_reads_the_numbers_of_a_day_with_known_conversations(
    staff, site: Site, expected
) -> None:
    person = staff()
    person.sign_in("anna")
    before = day_numbers(person.open("/"))
    sender = "numbers-visitor"
    assert site.chat.texts(sender, "hello")[0] == expected("utter_greet")
    assert site.chat.texts(sender, "what is scar relaxation?")[0] == expected("utter_faq/what_is")
    assert site.chat.texts(sender, "how much does it cost")[0] == expected("utter_out_of_scope")
    assert (
        expected("utter_urgent").split(".")[0]
        in site.chat.texts("numbers-urgent", "my scar has been bleeding heavily for an hour")[0]
    )
    after = day_numbers(person.open("/"))
    change = {key: after[key] - before[key] for key in after}
    assert change["conversations"] == 2 and change["messages"] == 4
    assert change["answered"] == 3 and change["unknown"] == 1 and change["urgent"] == 1
    assert change["did_you_mean"] == 0 and change["not_understood"] == 0
    chart = person.page.locator("figure.chart > svg")
    assert chart.get_attribute("role") == "img"
    assert "Visitor messages per day" in (chart.locator("desc").text_content() or "")


# ---------------------------------------------------------------------------- inbox
def test_an_unanswered_question_is_annotated_and_waits_in_the_training_data(staff, site: Site) -> None:
    question = "would the capital of mongolia be warmer in june"
    replies = site.chat.texts("inbox-visitor", question)
    assert replies, "no reply"
    site.chat.texts("inbox-email", "email the leaflet about scars to jane.doe@example.com")
    editor = staff()
    editor.sign_in("eddie")
    page = editor.open("/inbox/")
    assert page.locator("#pending").inner_text().startswith("0 additions")
    group = page.locator("li.group", has_text=question)
    assert group.count() == 1, page.locator(".groups").inner_text()
    screenshots.take(page, "unanswered.png")
    group.get_by_role("button", name="Not in the document").click()
    assert "Added 1 question to 'Not something the clinic answers'" in editor.flash()
    assert page.locator("#pending").inner_text().startswith("1 addition waiting")
    assert page.locator("li.group", has_text=question).count() == 0
    nlu = (site.root / "data" / "nlu" / "out_of_scope.yml").read_text(encoding="utf-8")
    assert f"    - {question}\n" in nlu
    assert yaml.safe_load(nlu)  # still valid YAML
    assert (
        validate_command.main(["--root", str(site.root), "--without-rasa"]) == 0
    )  # and passes make validate's checks
    assert question not in (PROJECT_ROOT / "data" / "nlu" / "out_of_scope.yml").read_text(encoding="utf-8")
    assert git_log(site.root, "-1", "--format=%an|%s", "--", "data/nlu/out_of_scope.yml") == (
        "eddie|1 question added to 'Not something the clinic answers' from Unanswered questions"
    )  # in the History too

    # Masked text never becomes a training example (make merge's rule).
    masked = page.locator("li.group", has_text="[email]")
    if masked.count():
        masked.first.get_by_label("A way of asking").select_option(label="What is Scar Relaxation?")
        masked.first.get_by_role("button", name="Add").click()
        assert "Not added" in editor.flash() and "[email]" in editor.flash()
        assert "[email]" not in (site.root / "data" / "nlu" / "faq.yml").read_text(encoding="utf-8")


def only(page: Page, question: str) -> Locator:
    """The inbox's group holding `question`, with only that message ticked (a group may hold more)."""
    group = page.locator("li.group", has_text=question)
    for index in range(group.get_by_role("checkbox").count()):
        box = group.get_by_role("checkbox").nth(index)
        box.set_checked(question in (page.locator(f"label[for='{box.get_attribute('id')}']").inner_text()))
    return group


NOT_ANSWERED = "Not something the clinic answers (the assistant says it doesn't have that information)"
# Raw intent names as whole words ("inform", not "information"), a topic's key, any snake_case.
INTERNAL_NAME = re.compile(r"\b(?:affirm|inform|deny|cancel)\b|faq/|_")


def test_an_editor_adds_one_message_of_a_group_to_a_topic_chosen_by_its_title(staff, site: Site) -> None:
    """Issue 21: raw names in the list, a guess pre-selected next to "Add", a group not to be split."""
    questions = (
        "what would a course of scar relaxation cost me",
        "roughly what does scar relaxation cost per course",
    )
    for number, question in enumerate(questions):
        assert site.chat.texts(f"inbox-split-{number}", question), "no reply"
    editor = staff()
    editor.sign_in("eddie")
    page = editor.open("/inbox/")
    # The two price questions are grouped by meaning, with each other or with an earlier visitor's
    # price question: take a group of several messages holding one of them.
    groups = [page.locator("li.group", has_text=q) for q in questions]
    group, kept = next(
        (
            (g, q)
            for g, q in zip(groups, questions)
            if g.count() == 1 and g.get_by_role("checkbox").count() > 1
        ),
        (None, ""),
    )
    assert group is not None, page.locator(".groups").inner_text()
    labels = [
        squash(page.locator(f"label[for='{box.get_attribute('id')}']").inner_text()).split("”")[0].strip("“")
        for box in group.get_by_role("checkbox").all()
    ]
    others = [text for text in labels if text != kept]
    topics = group.get_by_label("A way of asking about")
    offered = [squash(t) for t in topics.locator("option").all_inner_texts()]
    assert "How long do results take?" in offered and "Who is it for?" in offered and NOT_ANSWERED in offered
    assert not [o for o in offered if INTERNAL_NAME.search(o)], offered
    assert topics.input_value() == "" and offered[0] == "Choose a topic…"  # nothing chosen for the editor
    group.get_by_role("button", name="Add").click()  # without a choice: refused, nothing added
    assert "Choose the topic these messages ask about from the list" in editor.flash()
    group = only(page, kept)
    group.get_by_label("A way of asking about").select_option(label=NOT_ANSWERED)
    group.get_by_role("button", name="Add").click()
    assert "Added 1 question to 'Not something the clinic answers'" in editor.flash()
    left = page.locator("li.group", has_text=others[0])
    assert left.count() == 1 and page.locator("li.group", has_text=kept).count() == 0
    nlu = (site.root / "data" / "nlu" / "out_of_scope.yml").read_text(encoding="utf-8")
    assert f"    - {kept}\n" in nlu and not [text for text in others if f"- {text}\n" in nlu]
    left.get_by_role("button", name="Ignore").click()  # the rest of the group is decided on its own
    assert "Ignored." in editor.flash() and page.locator("li.group", has_text=others[0]).count() == 0


def test_an_addition_nearer_another_topic_is_added_only_after_a_warning(staff, site: Site) -> None:
    """Issue 21: "can you treat acne scars on my back" added to who it suits blocked publishing."""
    question = "can you treat acne scars on my back"
    assert site.chat.texts("inbox-nearer", question), "no reply"
    editor = staff(PHONE, bypass_csp=True)  # on a phone; axe is injected as a script tag
    editor.sign_in("eddie")
    page = editor.open("/inbox/")
    # Grouped by meaning, it may share a group with another unanswered question (a price one).
    group = only(page, question)
    group.get_by_label("A way of asking about").select_option(label="Who is it for?")
    group.get_by_role("button", name="Add").click()
    assert page.get_by_role("heading", level=1).inner_text() == "Check before adding to 'Who is it for?'"
    assert axe_violations(page) == []
    assert not page.evaluate("document.documentElement.scrollWidth > window.innerWidth + 1")
    warning = squash(page.get_by_role("alert").inner_text())
    assert (
        f"“{question}” is closer to the questions the clinic does not answer than to 'Who is it for?'"
        in warning
    )
    assert "instead of saying it doesn't have that information" in warning
    faq = site.root / "data" / "nlu" / "faq.yml"
    assert question not in faq.read_text(encoding="utf-8")  # nothing added yet
    page.get_by_role("link", name="Cancel").click()
    # count() reads at once: it read the check's page before the inbox's had loaded (a busy machine)
    expect(page.locator("li.group", has_text=question)).to_have_count(1)
    assert question not in faq.read_text()
    group = only(page, question)
    group.get_by_label("A way of asking about").select_option(label="Who is it for?")
    group.get_by_role("button", name="Add").click()
    page.get_by_role("button", name="Add anyway").click()
    assert "Added 1 question to 'Who is it for?'" in editor.flash()
    assert f"    - {question}\n" in faq.read_text(encoding="utf-8")
    waiting = squash(page.locator(".pending-list").inner_text())
    assert f"Who is it for?: “{question}”" in waiting and "faq/" not in waiting


# ---------------------------------------------------------------------------- screenshots


def test_screenshots_for_the_guide(staff) -> None:
    """The pictures of Today, Check and publish and an answer's check (tests/screenshots.py)."""
    laptop = staff(LAPTOP)
    laptop.sign_in("anna")
    screenshots.take(laptop.open("/"), "today.png")
    screenshots.take(laptop.open("/models/"), "check-and-publish.png")
    answer = laptop.open("/answers/topic/results_time").get_by_label("Answer", exact=True)
    answer.fill(answer.input_value() + " It is painless and most patients need 3 sessions.")
    check_result(laptop.page, "Not supported")
    screenshots.take(laptop.page, "answer-check.png")
    phone = staff(PHONE)
    phone.sign_in("anna")
    wide = phone.open("/").evaluate("document.documentElement.scrollWidth > window.innerWidth + 1")
    screenshots.take(phone.page, "today-phone.png")
    assert not wide, "the Today page scrolls sideways on a phone"


# ---------------------------------------------------------------------------- editing
INVENTED = "Treatment costs 150 pounds per session."
MELANIN_EXAMPLES = [
    "what does melanin do",
    "where does melanin come from",
    "what makes melanin in the skin",
    "which cells make melanin",
    "tell me about melanin",
    "melanin meaning",
    "what is melanin for",
    "what gives skin its colour",
    "why does skin have colour",
    "what are melanocytes",
    "is melanin a pigment",
    "how is melanin made in skin cells",
    "explain melanin to me",
    "what is the pigment in skin called",
    "which substance colours the skin",
]


def git_log(root: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "log", *args], cwd=root, check=True, capture_output=True, text=True
    ).stdout.strip()


def check_result(page: Page, contains: str) -> str:
    """The live grounding check's message, once it says `contains` (it runs as staff type)."""
    page.locator("#check-result", has_text=contains).wait_for()
    return squash(page.locator("#check-result").inner_text())


def test_an_editor_rewords_an_answer_and_is_refused_an_invented_fact(staff, site: Site) -> None:
    editor = staff(bypass_csp=True)  # axe is injected as a script tag
    editor.sign_in("eddie")
    links = editor.page.locator("nav a").all_inner_texts()
    assert "Answers" in links and "Clinic details" in links and "History" in links
    page = editor.open("/answers/")
    page.get_by_role("link", name="What is Scar Relaxation?").click()
    assert editor.heading() == "What is Scar Relaxation?"
    assert (
        page.locator(".doc .sentence.supporting").count() >= 1
    )  # the document beside, supporting sentences marked
    assert axe_violations(page) == []
    path = site.root / "domain" / "faq.yml"
    before = path.read_bytes()
    answer = page.get_by_label("Answer", exact=True)
    original = answer.input_value()

    # An invented price: the check says so as the editor types, and the save is refused.
    answer.fill(f"{original} {INVENTED}")
    assert "150" in check_result(page, "Not supported")
    page.get_by_role("button", name="Save").click()
    alert = squash(page.get_by_role("alert").inner_text())
    assert "The answer was not saved" in alert and INVENTED in alert and '"150"' in alert
    assert answer.input_value() == f"{original} {INVENTED}"  # what was typed is kept
    assert path.read_bytes() == before
    # The page came back with the alert: its check as staff type (a deferred script) must be
    # running before the next keys, or they would go unchecked (a busy CI machine showed it).
    page.wait_for_load_state()

    # A rewording the document supports is saved, committed under the editor's name.
    reworded = original.replace("and it repairs itself naturally.", "and the skin repairs itself naturally.")
    assert reworded != original
    answer.fill(reworded)
    check_result(page, "Every sentence is supported")
    page.get_by_role("button", name="Save").click()
    assert "Saved" in editor.flash()
    assert "at the next training (on Check and publish)" in editor.flash()
    assert page.get_by_label("Answer", exact=True).input_value() == reworded
    assert "and the skin repairs itself naturally." in path.read_text(encoding="utf-8")
    assert git_log(site.root, "-1", "--format=%an <%ae>|%s", "--", "domain/faq.yml") == (
        'eddie <eddie@staff.invalid>|Topic "What is Scar Relaxation?": answer reworded'
    )


def test_an_editor_adds_a_topic_with_examples(staff, site: Site) -> None:
    editor = staff()
    editor.sign_in("eddie")
    page = editor.open("/answers/")
    page.get_by_role("link", name="Add a topic").click()
    assert editor.heading() == "Add a topic"
    page.wait_for_load_state()  # the check as staff type is a deferred script
    page.get_by_label("Title (the topic's button)").fill("What is melanin?")
    page.get_by_label("Answer", exact=True).fill(
        "Melanocytes are the skin cells that make melanin, the substance that gives color to the skin."
    )
    check_result(page, "Every sentence is supported")
    page.locator("label.pick", has_text="Melanocytes are the skin cells").get_by_role("checkbox").check()
    page.get_by_label("Ways visitors ask it (one per line)").fill("\n".join(MELANIN_EXAMPLES[:5]))
    page.get_by_role("button", name="Add the topic").click()
    assert "at least 15 different example questions (you gave 5)" in page.get_by_role("alert").inner_text()
    page.get_by_label("Ways visitors ask it (one per line)").fill("\n".join(MELANIN_EXAMPLES))
    page.get_by_role("button", name="Add the topic").click()
    assert "The topic was added" in editor.flash() and "at the next training" in editor.flash()
    assert "make " not in editor.flash()
    assert editor.heading() == "What is melanin?"
    assert page.locator("table tbody tr").count() == len(MELANIN_EXAMPLES)
    nlu = (site.root / "data" / "nlu" / "faq.yml").read_text(encoding="utf-8")
    assert "- intent: faq/what_is_melanin\n  examples: |\n    - what does melanin do\n" in nlu
    assert validate_command.main(["--root", str(site.root), "--without-rasa"]) == 0
    assert "What is melanin?" in editor.open("/answers/").locator("table").inner_text()


def test_a_save_based_on_an_old_version_is_refused(staff, site: Site) -> None:
    first, second = staff(), staff()
    first.sign_in("eddie")
    second.sign_in("anna")
    for person in (first, second):
        person.open("/answers/topic/who_for")
    first.page.get_by_label("Button title").fill("Who can have it?")
    first.page.get_by_role("button", name="Save").click()
    assert "Saved" in first.flash()
    second.page.get_by_label("Button title").fill("Who is it suitable for?")
    second.page.get_by_role("button", name="Save").click()
    assert "Someone else saved a change here after you opened this page" in (
        second.page.get_by_role("alert").inner_text()
    )
    assert '- title: "Who can have it?"' in (site.root / "domain" / "conversation.yml").read_text(
        encoding="utf-8"
    )


def test_the_clinic_phone_changes_without_training_and_is_undone_from_the_history(staff, site: Site) -> None:
    old, new = load_settings(site.root / "clinic.yml").phone, "020 7946 0999"
    assert old in site.chat.texts("phone-before", "what is the clinic phone number")[0]
    editor = staff(bypass_csp=True)
    editor.sign_in("eddie")
    page = editor.open("/clinic/")
    assert editor.heading() == "Clinic details"
    page.get_by_label("Phone number").fill(new)
    page.get_by_label("Closed dates (holidays), one per line as YYYY-MM-DD").fill("25/12/2026")
    page.get_by_role("button", name="Save").click()
    assert (
        "25/12/2026" in page.get_by_role("alert").inner_text()
        and "YYYY-MM-DD" in page.get_by_role("alert").inner_text()
    )
    assert load_settings(site.root / "clinic.yml").phone == old
    page.get_by_label("Closed dates (holidays), one per line as YYYY-MM-DD").fill("2026-12-25\n2027-01-01")
    page.get_by_role("button", name="Save").click()
    assert "no training and no restart needed" in editor.flash()
    # A new conversation gets the new number at once: no training, no restart.
    assert new in site.chat.texts("phone-after", "what is the clinic phone number")[0]

    page = editor.open("/history/")
    first = page.locator("tbody tr").first
    assert "eddie" in first.inner_text() and "Clinic details: phone, closed dates" in first.inner_text()
    first.get_by_role("link").click()
    phone = page.locator("li.change", has_text="Clinic details: phone changed")
    assert squash(phone.locator(".before").inner_text()) == f"Before {old}"
    assert squash(phone.locator(".after").inner_text()) == f"After {new}"
    assert axe_violations(page) == []
    page.get_by_role("button", name="Undo this change").click()
    assert "The change was undone" in editor.flash()
    assert "Undone: Clinic details: phone, closed dates" in page.locator("tbody tr").first.inner_text()
    assert load_settings(site.root / "clinic.yml").phone == old
    assert old in site.chat.texts("phone-undone", "what is the clinic phone number")[0]
    # Undoing it twice is refused in plain words.
    page.locator("tbody tr", has_text="Clinic details: phone, closed dates").last.get_by_role("link").click()
    page.get_by_role("button", name="Undo this change").click()
    assert "already been undone" in editor.flash()
    # Undoing the undo puts the change back, and its title says so (it never nests).
    page = editor.open("/history/")
    page.locator("tbody tr").first.get_by_role("link").click()
    page.get_by_role("button", name="Undo this change").click()
    assert "The change was undone" in editor.flash()
    assert "Put back: Clinic details: phone, closed dates" in page.locator("tbody tr").first.inner_text()
    assert load_settings(site.root / "clinic.yml").phone == new
    page.locator("tbody tr").first.get_by_role("link").click()
    page.get_by_role("button", name="Undo this change").click()
    assert "Undone: Clinic details: phone, closed dates" in page.locator("tbody tr").first.inner_text()
    assert load_settings(site.root / "clinic.yml").phone == old


def test_the_history_says_each_staff_change_in_words_and_no_developers_commit(staff, site: Site) -> None:
    path = site.root / "domain" / "faq.yml"
    path.write_text(path.read_text(encoding="utf-8") + "# a developer's note\n", encoding="utf-8")
    developer = ["-c", "user.name=Dee Veloper", "-c", "user.email=dee@example.com"]
    subprocess.run(
        ["git", *developer, "commit", "-qm", "Tidy the answers (developer)", "--", "domain/faq.yml"],
        cwd=site.root,
        check=True,
    )
    developers = git_log(site.root, "--format=%H", "--author=dee@example.com").split()
    editor = staff(bypass_csp=True)
    editor.sign_in("eddie")
    page = editor.open("/answers/topic/what_is")
    answer = page.get_by_label("Answer", exact=True)
    original = answer.input_value()
    reworded = original.replace("repairs itself naturally.", "repairs itself.")
    assert reworded != original
    answer.fill(reworded)
    check_result(page, "Every sentence is supported")
    page.get_by_role("button", name="Save").click()
    assert "Saved" in editor.flash()
    page = editor.open("/history/")
    listed = page.locator("tbody").inner_text()
    assert "Tidy the answers" not in listed and "Dee Veloper" not in listed and "developer" not in listed
    assert "Merge" not in listed
    first = page.locator("tbody tr").first
    assert "Answer “What is Scar Relaxation?” reworded" in first.inner_text()
    assert "Answers" in first.inner_text()  # the part it changed, not a file's name
    first.get_by_role("link").click()
    assert editor.heading() == "Answer “What is Scar Relaxation?” reworded"
    change = page.locator("li.change", has_text="Answer “What is Scar Relaxation?” reworded")
    assert squash(change.locator(".before").inner_text()) == "Before " + squash(original)
    assert squash(change.locator(".after").inner_text()) == "After " + squash(reworded)
    screenshots.take(page, "history.png")
    shown = page.locator("main").inner_text()
    assert not re.search(r"utter_|faq/|\.yml|- text:|>-|[0-9a-f]{7,}", shown), shown
    assert axe_violations(page) == []
    for sha in developers:  # a developer's commit has no page in the console
        assert page.goto(site.console + f"/history/{sha}").status == 404


# ---------------------------------------------------------------------------- a new release
SHIPPED_SCAR, STAFF_SCAR, RELEASE_SCAR = (
    "repair damage to the skin.",
    "repair the damage to the skin.",
    "repair any damage to the skin.",
)


def replace_in(path: Path, old: str, new: str) -> None:
    """Replace the first `old` in a file with `new`."""
    text = path.read_text(encoding="utf-8")
    assert old in text
    path.write_text(text.replace(old, new, 1), encoding="utf-8")


def test_a_new_releases_change_to_words_staff_had_changed_waits_until_staff_take_it(
    staff, site: Site, tmp_path: Path
) -> None:
    """An upgrade (staff/service/releases.py) that changed an answer staff had reworded: on a phone."""
    root = site.root
    installed = git_log(root, "--format=%H", "--max-parents=0")
    subprocess.run(["git", "branch", "-f", "release", installed], cwd=root, check=True)
    faq = root / "domain" / "faq.yml"
    replace_in(faq, SHIPPED_SCAR, STAFF_SCAR)
    author = "--author=eddie <eddie@staff.invalid>"  # the editor's rewording, as the console commits it
    message = 'Topic "What is a scar?": answer reworded'
    console = ["-c", "user.name=Staff console", "-c", "user.email=console@staff.invalid"]
    subprocess.run(["git", *console, "commit", "-qm", message, author, "--", faq], cwd=root, check=True)
    # The next release: the files as installed, the same words changed its own way.
    release = tmp_path / "release"
    release.mkdir()
    archive = subprocess.run(["git", "archive", installed], cwd=root, check=True, capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", str(release)], input=archive, check=True)
    replace_in(release / "domain" / "faq.yml", SHIPPED_SCAR, RELEASE_SCAR)
    assert releases.prepare(root, release).outcome == "proposed"
    assert STAFF_SCAR in faq.read_text(encoding="utf-8")  # never a silent overwrite

    editor = staff(PHONE, bypass_csp=True)
    editor.sign_in("eddie")
    page = editor.open("/")
    card = page.locator(".card", has_text="from a new release")
    assert "1 change from a new release to words staff had changed" in squash(card.inner_text())
    assert axe_violations(page) == []
    card.get_by_role("link", name="Take or leave it in the History").click()
    assert editor.heading() == "History"
    waiting = page.get_by_role("region", name="A new release would change words you had changed")
    assert "Answer “What is a scar?” reworded" in waiting.inner_text()
    assert STAFF_SCAR in squash(waiting.locator(".before").inner_text())
    assert RELEASE_SCAR in squash(waiting.locator(".after").inner_text())
    # The release changed nothing else: the History lists no change of it (only the offer above).
    assert "New release" not in page.locator("tbody").inner_text()
    shown = page.locator("main").inner_text()
    assert not re.search(r"utter_|faq/|\.yml|release@|[0-9a-f]{7,}", shown), shown
    assert not page.evaluate("document.documentElement.scrollWidth > window.innerWidth + 1")
    assert axe_violations(page) == []
    waiting.get_by_role("button", name="Take the release's version").click()
    assert "The new release's version was taken" in editor.flash()
    assert page.get_by_role("region", name="A new release would change words you had changed").count() == 0
    first = page.locator("tbody tr").first.inner_text()
    assert "Taken from the new release: Answer “What is a scar?” reworded" in first and "eddie" in first
    assert RELEASE_SCAR in faq.read_text(encoding="utf-8")
    # The same release at the next start: nothing new, nothing offered again.
    assert releases.prepare(root, release).outcome == "unchanged"
    assert releases.proposals(root) == []


# ---------------------------------------------------------------------------- approved wording
REWORDING = "Ask at your consultation how quickly your own scar is likely to respond."
RESULTS_FRAMING = "How quickly your own scar responds is something to ask at a consultation."
WORDING_INTERNALS = re.compile(r"utter_|faq/|action_|make |\.yml|framing_sentences|\b[0-9a-f]{7,40}\b")


def framing_item(page: Page, sentence: str):
    """The Approved wording page's entry of one sentence."""
    return page.locator(".framing li", has_text=sentence)


def test_an_admin_approves_a_careful_rewording_and_the_editor_then_saves_it(staff, site: Site) -> None:
    wording_file = site.root / "content" / "approved-wording.yml"
    editor = staff()
    editor.sign_in("eddie")
    page = editor.open("/answers/topic/results_time")
    answer = page.get_by_label("Answer", exact=True)
    reworded = " ".join(answer.input_value().split()).replace(RESULTS_FRAMING, REWORDING)
    assert REWORDING in reworded
    # Before: each sentence says why it passes; the framing one says it is approved, and by whom.
    passed = check_result(page, "approved framing sentence")
    assert "Passes:" in passed and "found in the document: '" in passed
    assert f'"{RESULTS_FRAMING}": approved framing sentence, added by a developer on ' in passed
    # The careful rewording fails, naming the words the document lacks and who can approve it.
    answer.fill(reworded)
    failed = check_result(page, "Fails:")
    assert (
        f'Fails: "{REWORDING}": "Ask", "consultation", "quickly" and "likely" are not in the document'
        in failed
    )
    assert "an admin can approve it on the Approved wording page" in failed
    page.get_by_role("button", name="Save").click()
    assert "The answer was not saved" in page.get_by_role("alert").inner_text()
    # The editor follows the link: the list is there to read, but only an admin changes it.
    page.locator("#check-result").get_by_role("link", name="Open Approved wording").click()
    assert editor.heading() == "Approved wording"
    assert "Only an admin can add or retire these sentences" in page.locator("main").inner_text()
    assert page.get_by_role("button", name="Approve this sentence").count() == 0
    assert page.get_by_role("button", name=re.compile("^Retire")).count() == 0
    assert "Used by: How long do results take?" in framing_item(page, RESULTS_FRAMING).inner_text()
    assert not WORDING_INTERNALS.search(page.locator("body").inner_text())
    token = (
        editor.open("/answers/topic/results_time").locator('meta[name="csrf-token"]').get_attribute("content")
    )
    refused = editor.context.request.post(
        site.console + "/wording/add", form={"sentence": REWORDING, "csrf_token": token}
    )
    assert refused.status == 403 and REWORDING not in wording_file.read_text(encoding="utf-8")

    # The admin opens the page from the navigation, is refused a figure and a promise, approves the rewording.
    admin = staff()
    admin.sign_in("anna")
    admin.page.get_by_role("navigation", name="Console").get_by_role("link", name="Approved wording").click()
    page = admin.page
    before = wording_file.read_bytes()
    page.get_by_label("A new framing sentence").fill("Most people need 3 sessions, and it is painless.")
    page.get_by_role("button", name="Approve this sentence").click()
    alert = squash(page.get_by_role("alert").inner_text())
    assert "The sentence was not approved" in alert and 'It says "3", "sessions" and "painless"' in alert
    assert "only the clinic's document may state them" in alert and "Take those words out" in alert
    assert page.get_by_label("A new framing sentence").input_value().startswith("Most people need 3")
    assert wording_file.read_bytes() == before
    page.get_by_label("A new framing sentence").fill(REWORDING)
    page.get_by_role("button", name="Approve this sentence").click()
    assert "The sentence is approved" in admin.flash() and "can be undone" in admin.flash()
    entry = squash(framing_item(page, REWORDING).inner_text())
    assert "Added by anna on " in entry and "Not used by any answer" in entry
    assert validate_command.main(["--root", str(site.root), "--without-rasa"]) == 0
    assert git_log(site.root, "-1", "--format=%an|%s", "--", "content") == (
        f'anna|Approved wording: added "{REWORDING}"'
    )
    assert "approved a framing sentence" in admin.open("/admin/audit").locator("table").inner_text()

    # The editor's rewording now passes, says why, and is saved.
    page = editor.open("/answers/topic/results_time")
    page.get_by_label("Answer", exact=True).fill(reworded)
    passed = check_result(page, f'Passes: "{REWORDING}": approved framing sentence, added by anna on ')
    assert "Every sentence is supported" in passed and "Fails" not in passed
    page.get_by_role("button", name="Save").click()
    assert "Saved" in editor.flash()
    assert REWORDING in squash((site.root / "domain" / "faq.yml").read_text(encoding="utf-8"))


def test_retiring_a_sentence_an_answer_uses_names_the_answer_and_an_unused_one_is_retired_and_undone(
    staff, site: Site
) -> None:
    wording_file = site.root / "content" / "approved-wording.yml"
    used, spare = (
        "Things that can push this into overdrive:",
        "Your own questions are welcome at a consultation.",
    )
    admin = staff(bypass_csp=True)  # axe is injected as a script tag
    admin.sign_in("anna")
    page = admin.open("/wording/")
    assert axe_violations(page) == []
    before = wording_file.read_bytes()
    assert "Used by: Why do scars darken?" in framing_item(page, used).inner_text()
    framing_item(page, used).get_by_role("button", name=f"Retire: {used}").click()
    alert = squash(page.get_by_role("alert").inner_text())
    assert 'The sentence was not retired: the answer "Why do scars darken?" uses it word for word' in alert
    assert "Reword it first (on Answers)" in alert and wording_file.read_bytes() == before
    assert framing_item(page, used).count() == 1

    page.get_by_label("A new framing sentence").fill(spare)
    page.get_by_role("button", name="Approve this sentence").click()
    assert "The sentence is approved" in admin.flash()
    framing_item(page, spare).get_by_role("button", name=f"Retire: {spare}").click()
    assert "The sentence is retired" in admin.flash()
    assert framing_item(page, spare).count() == 0 and spare not in wording_file.read_text(encoding="utf-8")
    # Undone from the History like any staff change: the sentence is back on the list.
    page = admin.open("/history/")
    page.locator("tbody tr", has_text="Approved wording: retired").first.get_by_role("link").click()
    page.get_by_role("button", name="Undo this change").click()
    assert "The change was undone" in admin.flash()
    assert framing_item(admin.open("/wording/"), spare).count() == 1
    assert validate_command.main(["--root", str(site.root), "--without-rasa"]) == 0
    # On a phone the page fits the screen.
    phone = staff(PHONE)
    phone.sign_in("anna")
    wide = phone.open("/wording/").evaluate("document.documentElement.scrollWidth > window.innerWidth + 1")
    assert not wide, "the Approved wording page scrolls sideways on a phone"


def test_reception_cannot_reach_the_editing_pages(staff, site: Site) -> None:
    reception = staff()
    reception.sign_in("rita")
    links = reception.page.locator("nav a").all_inner_texts()
    assert "Answers" not in links and "History" not in links and "Clinic details" not in links
    for path in ["/answers/", "/answers/topic/what_is", "/answers/new", "/clinic/", "/history/", "/wording/"]:
        response = reception.page.goto(site.console + path)
        assert response is not None and response.status == 403, path
        assert reception.heading() == "Your role cannot open this page"


# ------------------------------------------------------------ every page, every role: one visit each
# Two tests read every page each role can reach: its layout and axe-core at two sizes, and its
# words (no internals). One crawl per role (`crawled`) visits each page once for both: the pages
# took 1 to 2 s each on a busy machine, and two crawls read the same pages twice (170 s in all).
ROLE_ACCOUNTS = {"reception": "rita", "editor": "eddie", "admin": "anna"}
DESKTOP = {"width": 1366, "height": 768}
NAVIGATION_MAX_PX = 120  # on a phone, what comes before the page's content (the issue saw ~270 px)
NOT_A_PAGE = re.compile(r"\.(csv|xlsx|gz|json|svg|png)$")
# What a page's layout measures as a person would notice it: the page scrolling sideways, where
# the page's own content starts, and any table wider than the box it sits in (a column off-screen).
LAYOUT = """() => {
  const main = document.querySelector('main');
  const tables = [...document.querySelectorAll('main table')].filter(
    t => t.getBoundingClientRect().width > Math.min(t.parentElement.clientWidth, window.innerWidth) + 1);
  return {
    page: document.documentElement.scrollWidth, screen: window.innerWidth,
    top: Math.round(main.getBoundingClientRect().top + window.scrollY),
    tables: tables.map(t => Math.round(t.getBoundingClientRect().width)),
    headings: document.querySelectorAll('h1').length,
  };
}"""

# What a staff page must never show: the project's internal names, files, commands, commit ids,
# YAML and Python's error reports. (A booking reference, SR-XXXXXXXX, is upper case: not a hash.)
MAKE_TARGETS = sorted(
    set(re.findall(r"^([a-z][a-z-]*):", (PROJECT_ROOT / "Makefile").read_text(encoding="utf-8"), re.M))
)
INTERNALS = {
    "a response name": re.compile(r"utter_\w*"),
    "an FAQ intent": re.compile(r"\bfaq/\w*"),
    "an action name": re.compile(r"\baction_\w*"),
    "a make command": re.compile(r"\bmake (?:" + "|".join(map(re.escape, MAKE_TARGETS)) + r")\b"),
    "a YAML file": re.compile(r"[\w/-]*\.ya?ml\b"),
    "a commit id": re.compile(r"\b(?=[0-9a-f]*[a-f])(?=[0-9a-f]*[0-9])[0-9a-f]{7,40}\b"),
    "a typed intent": re.compile(r"(?<![\w/.:~-])/[a-z][a-z_]+\b"),
    "an intent name": re.compile(
        r"\b(?:out_of_scope|change_booking_field|faq_followup|nlu_fallback|affirm|deny|inform|greet)\b"
        r"|\b[a-z]+(?:_[a-z]+)+\b"  # any snake_case name: how_it_works, results_time...
    ),
    "YAML": re.compile(r"^\s*- (?:text|intent|examples|title|payload):|: >-|: \|$", re.M),
    "a Python error": re.compile(r"Traceback \(most recent call last\)|File \"[^\"]+\", line \d+"),
}
NOT_CRAWLED = re.compile(r"/logout|/login|export|\.csv|\.xlsx|/static/|/download")
HREFS = "links => links.map(a => a.getAttribute('href'))"  # the links' addresses as written


def page_kind(href: str) -> tuple[str, ...]:
    """A console link's kind for the layout check: pages of one kind (two bookings, two topics) once."""
    path, _, query = href.partition("?")
    parts = [p for p in path.split("/") if p]
    kind = tuple("*" if re.search(r"\d", p) or i >= 2 else p for i, p in enumerate(parts))
    return kind + tuple(sorted(k.split("=")[0] for k in query.split("&") if k))


def pattern_of(path: str) -> str:
    """The page's kind: its address with ids and query values taken out (a few of each kind are read)."""
    path = re.sub(r"=[^&]*", "=", path)
    return re.sub(r"/(?:SR-)?[A-Za-z0-9_-]*\d[A-Za-z0-9_-]*|/[0-9a-f]{7,40}", "/ID", path)


def internals_on(page: Page) -> list[str]:
    """What the page shows (its visible text and its lists' options) that is one of INTERNALS."""
    text = page.locator("body").inner_text()
    options = page.locator("option").all_text_contents()
    shown = text + "\n" + "\n".join(options)
    found = []
    for what, pattern in INTERNALS.items():
        for match in pattern.finditer(shown):
            start = max(match.start() - 40, 0)
            found.append(f"{what}: {match.group(0)!r} in …{squash(shown[start : match.end() + 40])}…")
    return found


# The page's own content as axe-core would read it (its title and <main>), without the form tokens
# that differ per visit: two roles shown the same content see the same page but for the navigation.
CONTENT = """() => {
  const main = document.querySelector('main').cloneNode(true);
  main.querySelectorAll('input[name=csrf_token]').forEach(i => i.removeAttribute('value'));
  return document.title + '\\n' + main.outerHTML;
}"""


def layout_problems(page: Page, where: str, viewport: dict[str, int]) -> list[str]:
    """What is wrong with the layout of the page as shown at `viewport` (already set)."""
    offending = []
    layout = page.evaluate(LAYOUT)
    if layout["headings"] != 1:
        offending.append(f"{where}: {layout['headings']} main headings")
    if layout["page"] > layout["screen"] + 1:
        offending.append(f"{where}: the page is {layout['page']} px wide (scrolls sideways)")
    if layout["tables"]:
        offending.append(f"{where}: a table is wider than its space {layout['tables']} px")
    if viewport == PHONE and layout["top"] > NAVIGATION_MAX_PX:
        offending.append(f"{where}: the page's content starts {layout['top']} px down")
    return offending


def layout_and_axe(page: Page, where: str, viewport: dict[str, int]) -> list[str]:
    """What is wrong with the page as shown at `viewport` (already set): its layout, axe-core's findings."""
    return layout_problems(page, where, viewport) + [f"{where}: {p}" for p in axe_violations(page)]


@dataclass
class Crawled:
    """What the crawl found: layout and axe problems (and page views), words that are internals, by role."""

    offending: list[str] = field(default_factory=list)
    views: int = 0
    # The content axe-core has checked (CONTENT, by width): another role's page with the same
    # content differs only by its navigation, which axe checks on that role's first page.
    axed: set[tuple[int, str]] = field(default_factory=set)
    same_content: int = 0  # page views whose content axe had checked as another role's
    leaks: dict[str, dict[str, list[str]]] = field(default_factory=dict)
    browser_problems: list[str] = field(default_factory=list)  # errors in the pages' consoles


def crawl(person: Staff, role: str, crawled: Crawled, per_kind: int = 2) -> None:
    """Read every page `person` reaches once: its words each time, its layout once per page_kind.

    The pages are every one reachable from the navigation and the pages' links (GET, same site),
    a few of each kind (a few bookings, a few changes...). The first page of each page_kind in
    the navigation or linked from a navigation page's content is also measured and checked by
    axe-core at 1366 px and on a phone (a filtered list, e.g. ?status=..., counts as its
    unfiltered page). The crawl goes level by level, so the navigation pages are read before any
    page two links away. axe-core checks a page's content once at each width: a page an earlier
    role was shown with the same content (CONTENT) has its layout measured, and axe-core has
    checked this role's navigation on its first page.
    """
    console = person.site.console
    seen: set[str] = set()
    kinds: dict[str, int] = {}
    measured: set[tuple[str, ...]] = set()
    nav: list[str] = []
    to_measure: set[tuple[str, ...]] = set()  # the kinds of the navigation's pages and their links
    navigation_axed: set[int] = set()  # the widths at which axe-core has checked this role's pages
    queue = ["/"]
    found: dict[str, list[str]] = {}
    while queue:
        path = queue.pop(0)
        kind = pattern_of(path)
        if path in seen or kinds.get(kind, 0) >= per_kind:
            continue
        seen.add(path)
        kinds[kind] = kinds.get(kind, 0) + 1
        person.page.set_viewport_size(DESKTOP)
        response = person.page.goto(console + path)
        status = response.status if response is not None else None
        if status is None or status >= 500:
            found[path] = [f"the page answered {status}"]
            continue
        problems = internals_on(person.page)
        if problems:
            found[path] = problems
        if path == "/":
            nav = person.page.locator("header a[href^='/']").evaluate_all(HREFS)
            to_measure.update(page_kind(href) for href in nav)
        if path in nav:
            for link in person.page.locator("main a[href^='/']").evaluate_all(HREFS):
                to_measure.add(page_kind(link.split("#")[0]))
        bare = path.split("?")[0]
        new_kind = page_kind(path) in to_measure - measured and page_kind(bare) not in measured
        if new_kind and not NOT_A_PAGE.search(bare):
            measured.add(page_kind(path))
            if status != 200:
                crawled.offending.append(f"{role} {path}: answered {status}")
            else:
                for viewport in (DESKTOP, PHONE):  # the page once, seen at both sizes
                    person.page.set_viewport_size(viewport)
                    crawled.views += 1
                    where = f"{role} {path} at {viewport['width']} px"
                    content = (viewport["width"], person.page.evaluate(CONTENT))
                    if content in crawled.axed and viewport["width"] in navigation_axed:
                        crawled.same_content += 1
                        crawled.offending += layout_problems(person.page, where, viewport)
                        continue
                    crawled.offending += layout_and_axe(person.page, where, viewport)
                    crawled.axed.add(content)
                    navigation_axed.add(viewport["width"])
        for href in person.page.locator("a[href]:not([download])").evaluate_all(
            "links => links.map(a => a.href)"
        ):
            if not href.startswith(console):
                continue
            target = href[len(console) :].split("#")[0] or "/"
            if target not in seen and not NOT_CRAWLED.search(target):
                queue.append(target)
    if found:
        crawled.leaks[role] = found


def some_of_everything(browser: Browser, site: Site) -> None:
    """What the pages are to show, besides what the module's earlier tests left.

    A conversation that fell back, a booking, a renamed topic (so the History has a change).
    """
    site.chat.texts("plain-words", "hello")
    site.chat.texts("plain-words", "xqzv blorp")  # not understood
    site.chat.texts("plain-words", "what is scar relaxation?")
    site.chat.texts("phone-sized-visit", "what is scar relaxation")
    book_in_widget(browser, site, "Plain Words", "plain.words@example.com")
    context = browser.new_context(viewport=DESKTOP)
    try:
        editor = Staff(context, site)
        editor.sign_in("eddie")
        page = editor.open("/answers/topic/results_time")
        page.get_by_label("Button title").fill("When will I see results?")
        page.get_by_role("button", name="Save").click()
        assert "Saved" in editor.flash()
        assert not editor.problems, editor.problems
    finally:
        context.close()


@pytest.fixture(scope="module")
def crawled(browser: Browser, site: Site) -> Iterator[Crawled]:
    """Every page as each role, read once (after some_of_everything) for the two tests below.

    axe-core is added to each page before the page's own scripts (an init script), so the pages'
    Content-Security-Policy stays on and anything it refuses is an error in the page's console.
    """
    some_of_everything(browser, site)
    result = Crawled()
    contexts = []
    people: list[Staff] = []
    try:
        login_context = browser.new_context(viewport=DESKTOP)
        contexts.append(login_context)
        login_context.add_init_script(path=str(AXE))
        login = Staff(login_context, site)
        people.append(login)
        for viewport in (DESKTOP, PHONE):
            login.page.set_viewport_size(viewport)
            login.open("/login")
            result.offending += layout_and_axe(login.page, f"/login at {viewport['width']} px", viewport)
        for role, name in ROLE_ACCOUNTS.items():
            context = browser.new_context(viewport=DESKTOP)
            contexts.append(context)
            context.add_init_script(path=str(AXE))
            person = Staff(context, site)
            people.append(person)
            person.sign_in(name)
            crawl(person, role, result)
        result.browser_problems = [problem for person in people for problem in person.problems]
        yield result
    finally:
        for context in contexts:
            context.close()


@pytest.mark.timeout(1800)  # some 40 pages at two sizes; a busy machine took over 15 minutes
def test_every_page_as_each_role_fits_a_phone_and_passes_axe(crawled: Crawled) -> None:
    """Each kind of page each role reaches: one main heading, no sideways scroll, axe-clean, both sizes."""
    assert crawled.views > 20, f"only {crawled.views} page views: the crawl did not reach the pages"
    listed = "\n".join(crawled.offending)
    assert not crawled.offending, f"{len(crawled.offending)} problems in {crawled.views} views:\n{listed}"
    assert not crawled.browser_problems, crawled.browser_problems


@pytest.mark.timeout(1800)
def test_no_staff_page_shows_internal_names_files_commands_or_hashes(crawled: Crawled) -> None:
    """Every page each role can reach speaks plain words.

    The module's earlier tests left bookings, inbox additions, answer and clinic edits and an undo;
    the crawl adds a conversation that fell back, one that booked and a renamed topic.
    """
    report = "\n".join(
        f"{name} {path}: {problem}"
        for name, pages in crawled.leaks.items()
        for path, ps in pages.items()
        for problem in ps
    )
    assert not crawled.leaks, report
    assert not crawled.browser_problems, crawled.browser_problems


# ---------------------------------------------------------------------------- last: signing out
# Last, as signing out ends every copy of anna's session (staff/console/views.py): the next admin
# sign-in types a code, and a third code within a minute waited out the 30-second clock (22 s).
def test_sign_in_and_sign_out_with_the_keyboard_only(staff, site: Site) -> None:
    if not has_app(site.console, "anna"):  # her authenticator app is set up at her first sign-in
        staff().sign_in("anna")
    person = staff()
    page = person.open("/login")
    # The page puts the focus in the name field (autofocus, applied once the page is drawn).
    expect(page.locator("#name")).to_be_focused()
    page.keyboard.type("anna")
    page.keyboard.press("Tab")
    page.keyboard.type(PASSWORD)
    page.keyboard.press("Enter")
    page.wait_for_url(site.console + "/login/code")
    expect(page.locator("#code")).to_be_focused()  # then in the code's field
    page.keyboard.type(app_code(site.console, "anna"))
    page.keyboard.press("Enter")
    page.wait_for_url(site.console + "/")
    assert person.heading() == "Today"
    page.keyboard.press("Tab")  # the first stop is the link that skips the navigation
    assert page.evaluate("document.activeElement.textContent") == "Skip to the page's content"
    page.keyboard.press("Enter")
    assert page.evaluate("document.activeElement.id") == "main"
    for _ in range(30):  # on through the page's controls to "Sign out"
        page.keyboard.press("Shift+Tab")
        if page.evaluate("document.activeElement.textContent") == "Sign out":
            break
    page.keyboard.press("Enter")
    page.wait_for_url(re.compile(r".*/login$"))
    assert "You are signed out" in person.flash()
    person.open("/bookings/")
    assert person.heading() == "Sign in"
