"""Signing in with a second factor, and who may change where personal data is sent, in Chromium.

One running stack (tests/e2e/console_site.py). An admin made on the command line sets up an
authenticator app at her first sign-in (the QR code and the key to type are on the page; the
test's "app" is pyotp with that key), and is not signed in until a code from it is right;
later sign-ins ask for a code, which works once. A recovery code works once. Wrong codes count
in the sign-in limit. Reception turns the app on from their account page, and an admin resets
it when the phone is lost (audited). Every new page passes axe and refuses a form without its
CSRF token. Where consultation requests are sent (the booking system address) is an admin's
setting: an editor can neither see a field for it nor post one, nor undo an admin's change
from the History; an admin's change is in the audit log as old host -> new host.
"""

from __future__ import annotations

import re

import pyotp
import sqlalchemy as sa

from common.clinic import load_settings
from tests.e2e import console_site
from tests.e2e.console_site import (  # noqa: F401 (fixtures)
    APPS,
    PASSWORD,
    RECOVERY_CODES,
    Site,
    app_code,
    site,
    staff,
)
from tests.helpers import axe_violations, squash

NEW_ADMIN = "nora"


def add_user(site: Site, name: str, role: str) -> None:
    """Add a staff account to this site with the staff command."""
    console_site.add_user(site.database_url, name, role)


def password_step(person, name: str):
    page = person.open("/login")
    page.get_by_label("Your name").fill(name)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_load_state()
    return page


def audit_rows(site: Site) -> list[tuple[str, str, str, str]]:
    with sa.create_engine(site.database_url).connect() as db:
        return [
            tuple(row)
            for row in db.execute(
                sa.text("SELECT staff_name, action, target, detail FROM audit_log ORDER BY id")
            )
        ]


# ---------------------------------------------------------------------------- second factor
def test_a_new_admin_sets_up_the_app_at_first_sign_in_and_then_signs_in_with_a_code(
    staff, site: Site
) -> None:
    add_user(site, NEW_ADMIN, "admin")
    person = staff(bypass_csp=True)  # axe is injected as a script tag
    page = password_step(person, NEW_ADMIN)
    assert page.url == site.console + "/login/set-up"
    assert person.heading() == "Set up your authenticator app"
    assert page.locator("figure.qr-code svg").is_visible()  # made on the server: no other site
    assert axe_violations(page) == []
    # Not signed in yet: every other page sends her back to sign in.
    for path in ["/", "/admin/users", "/account/"]:
        person.open(path)
        assert person.page.url.split("?")[0] == site.console + "/login", path
    page = person.open("/login/set-up")
    page.get_by_label("Code from the app").fill("123456")
    page.get_by_role("button", name="Turn on").click()
    assert "not right" in page.get_by_role("alert").inner_text()
    codes = person.set_up_app(NEW_ADMIN)
    assert len(codes) == 10 and len(set(codes)) == 10
    assert "shown only now" in page.locator("main").inner_text()
    assert axe_violations(page) == []
    page.get_by_role("link", name="I have saved them: continue").click()
    assert person.heading() == "Today"
    page.get_by_role("button", name="Sign out").click()

    # The next sign-in asks for the code; the one used already is refused.
    page = password_step(person, NEW_ADMIN)
    assert page.url == site.console + "/login/code"
    assert axe_violations(page) == []
    used = pyotp.TOTP(APPS[site.console, NEW_ADMIN]).now()
    page.get_by_label("Code (or a recovery code)").fill(used)
    page.get_by_role("button", name="Sign in").click()
    if person.heading() != "Today":  # `used` was the code that set the app up: refused
        assert "already used" in page.get_by_role("alert").inner_text()
        page.get_by_label("Code (or a recovery code)").fill(app_code(site.console, NEW_ADMIN))
        page.get_by_role("button", name="Sign in").click()
    assert person.heading() == "Today"
    actions = [(name, action) for name, action, _, _ in audit_rows(site)]
    assert (NEW_ADMIN, "set up a second factor") in actions


def test_an_admin_without_the_app_can_open_nothing_but_its_set_up(staff, site: Site) -> None:
    add_user(site, "olga", "editor")
    editor = staff()
    editor.sign_in("olga")
    assert editor.heading() == "Today"  # an editor signs in with a password only
    admin = staff()
    admin.sign_in("anna")
    page = admin.open("/admin/users")
    row = page.locator("tr", has_text="olga")
    row.get_by_label("Role of olga").select_option("admin")
    row.get_by_role("button", name="Save olga").click()
    assert "olga: saved" in admin.flash()
    # Her session ended with the change; at her next sign-in she sets up the app first.
    page = password_step(editor, "olga")
    assert page.url == editor.site.console + "/login/set-up"
    editor.open("/bookings/")
    assert editor.heading() == "Sign in"


def test_reception_turns_the_app_on_uses_a_recovery_code_once_and_an_admin_resets_it(
    staff, site: Site
) -> None:
    add_user(site, "rosa", "reception")
    person = staff(bypass_csp=True)
    person.sign_in("rosa")
    assert person.heading() == "Today"
    page = person.open("/account/")
    assert "Off: you sign in with your password only" in page.locator("#second-factor").inner_text()
    assert axe_violations(page) == []
    page.get_by_role("link", name="Set up an authenticator app").click()
    assert axe_violations(page) == []
    codes = person.set_up_app("rosa")
    page.get_by_role("link", name="I have saved them: continue").click()
    assert "On: you sign in with a code" in page.locator("#second-factor").inner_text()
    page.get_by_role("button", name="Sign out").click()

    page = password_step(person, "rosa")
    page.get_by_label("Code (or a recovery code)").fill(codes[0])
    page.get_by_role("button", name="Sign in").click()
    assert person.heading() == "Today"
    assert "You have 9 left" in person.flash()
    page.get_by_role("button", name="Sign out").click()
    page = password_step(person, "rosa")
    page.get_by_label("Code (or a recovery code)").fill(codes[0])
    page.get_by_role("button", name="Sign in").click()
    assert "not right, or was already used" in page.get_by_role("alert").inner_text()

    # She lost her phone and her codes: an admin resets her second factor.
    admin = staff()
    admin.sign_in("anna")
    page = admin.open("/admin/users")
    page.get_by_role("button", name="Reset the second factor of rosa").click()
    assert "rosa's second factor was removed" in admin.flash()
    assert ("anna", "reset a second factor", "rosa", "") in audit_rows(site)
    person.sign_in("rosa")
    assert person.heading() == "Today"  # a password only, until she turns it on again


def test_wrong_codes_count_in_the_sign_in_limit(staff, site: Site) -> None:
    add_user(site, "paula", "admin")
    person = staff()
    password_step(person, "paula")
    person.set_up_app("paula")
    person.page.get_by_role("button", name="Sign out").click()
    page = password_step(person, "paula")
    for _ in range(5):
        page.get_by_label("Code (or a recovery code)").fill("000000")
        page.get_by_role("button", name="Sign in").click()
        assert "not right" in page.get_by_role("alert").inner_text()
    page.get_by_label("Code (or a recovery code)").fill(app_code(site.console, "paula"))  # right, too late
    page.get_by_role("button", name="Sign in").click()
    assert "Too many failed sign-ins" in page.get_by_role("alert").inner_text()
    assert person.heading() != "Today"


def test_the_new_forms_refuse_a_post_without_their_csrf_token(staff, site: Site) -> None:
    person = staff()
    password_step(person, "anna")  # half signed in: the code step
    for path in ["/login/code", "/login/set-up"]:
        response = person.context.request.post(site.console + path, form={"code": "123456"}, max_redirects=0)
        assert response.status == 400 and "Nothing was changed" in response.text(), path
    person.sign_in("anna")
    for path in ["/account/two-factor", "/account/recovery-codes", "/account/turn-off"]:
        response = person.context.request.post(site.console + path, form={"code": "123456"}, max_redirects=0)
        assert response.status == 400, path
    assert RECOVERY_CODES[site.console, "anna"]  # her codes were not replaced


# ---------------------------------------------------------------------------- data routing
def test_an_editor_cannot_change_where_requests_are_sent(staff, site: Site) -> None:
    before = (site.root / "clinic.yml").read_text(encoding="utf-8")
    editor = staff()
    editor.sign_in("eddie")
    page = editor.open("/clinic/")
    assert page.get_by_label("Booking system address (optional, webhook)").count() == 0
    assert (
        "Only an admin can change where consultation requests are sent" in page.locator("main").inner_text()
    )
    # A forged form with the field in it is refused, and nothing is saved.
    form = {name: page.locator(f"[name={name}]").input_value() for name in ("phone", "address", "version")}
    form.update(
        csrf_token=page.locator("[name=csrf_token]").first.input_value(),
        opening_days="monday",
        booking_webhook_url="https://collector.example.net/steal",
    )
    response = editor.context.request.post(site.console + "/clinic/", form=form)
    assert response.status == 403
    assert "Only an admin can change where consultation requests are sent" in response.text()
    assert (site.root / "clinic.yml").read_text(encoding="utf-8") == before
    assert load_settings(site.root / "clinic.yml").booking_webhook_url == ""


def test_an_admin_changes_where_requests_are_sent_audited_and_an_editor_cannot_undo_it(
    staff, site: Site
) -> None:
    admin = staff()
    admin.sign_in("anna")
    page = admin.open("/clinic/")
    page.get_by_label("Booking system address (optional, webhook)").fill(
        "https://bookings.example-clinic.test/api"
    )
    page.get_by_role("button", name="Save").click()
    assert "Saved" in admin.flash()
    assert (
        load_settings(site.root / "clinic.yml").booking_webhook_url
        == "https://bookings.example-clinic.test/api"
    )
    entry = [row for row in audit_rows(site) if row[1] == "changed where requests are sent"]
    assert entry == [
        (
            "anna",
            "changed where requests are sent",
            "clinic details",
            "(none) -> bookings.example-clinic.test",
        )
    ]
    page = admin.open("/admin/audit")
    assert "(none) -> bookings.example-clinic.test" in squash(page.locator("main").inner_text())

    editor = staff()
    editor.sign_in("eddie")
    page = editor.open("/history/")
    page.locator("tbody tr").first.get_by_role("link").click()
    page.get_by_role("button", name="Undo this change").click()
    assert "Only an admin can change where consultation requests are sent" in editor.flash()
    assert (
        load_settings(site.root / "clinic.yml").booking_webhook_url
        == "https://bookings.example-clinic.test/api"
    )

    page = admin.open("/clinic/")
    page.get_by_label("Booking system address (optional, webhook)").fill("")
    page.get_by_role("button", name="Save").click()
    assert "Saved" in admin.flash()
    assert audit_rows(site)[-1][1:] == (
        "changed where requests are sent",
        "clinic details",
        "bookings.example-clinic.test -> (none)",
    )
    assert re.search(r"booking_webhook_url: \"?\"?", (site.root / "clinic.yml").read_text(encoding="utf-8"))
