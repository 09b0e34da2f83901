"""Nobody but the visitor can act as the visitor: staff see a public handle, never the id.

Issue 20, finding 3, on the real servers (servers/launcher.py: action server, Rasa server,
demo page and console, fresh SQLite database) and in Chromium: the console listed every
conversation's id to every role, and that id is all the chat needs. An editor posted a listed
id to the REST channel and "what do you know about me?" showed the visitor's reference; a
socket.io client that sent `session_request` with an issued id was confirmed into the
visitor's conversation and heard her replies live. Now the console names conversations by a
handle (common/conversation_ids.py) that the chat refuses like any id it did not issue, the
console finds the conversation behind a handle on the server, reading one is audited with its
handle, and a socket.io session resumes only with the visitor's resume proof.
"""

from __future__ import annotations

import asyncio
import json
import re
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from urllib.parse import parse_qs, urlparse

import pytest

from common import conversation_ids, settings
from tests.e2e.console_site import Site, site, staff  # noqa: F401 (fixtures)
from tests.helpers import CONVERSATION_HEADER, ISSUED_IDS, WidgetSession, handle_of, open_day, squash

pytestmark = pytest.mark.e2e

REFERENCE = re.compile(r"SR-[A-Z2-7]{8}")
VISITOR = "handle-visitor"
NAME, EMAIL = "Hanna Handle", "hanna.handle@example.com"


@pytest.fixture(scope="module")
def booked(site: Site) -> tuple[str, str]:
    """A visitor's whole consultation request through the REST channel: (her id, her reference)."""
    day = open_day()
    site.chat.texts(VISITOR, "book a consultation")
    for answer in [NAME, EMAIL, f"{day.day} {day:%B}", "afternoon", "skip", "/affirm"]:
        site.chat.texts(VISITOR, answer)
    [saved] = site.chat.texts(VISITOR, "/affirm")
    match = REFERENCE.search(saved)
    assert match, saved
    return ISSUED_IDS[VISITOR], match.group()


def speak_as(site: Site, sender: str, text: str) -> tuple[str, str]:
    """Post `text` to the REST channel as `sender`, as the editor did: (what came back, the id used)."""
    status, answer = site.chat.post(json.dumps({"sender": sender, "message": text}).encode())
    assert status == 200, answer
    return " ".join(m.get("text", "") for m in answer), site.chat.last_headers[CONVERSATION_HEADER]


def named_on(page: Any) -> list[str]:
    """What the page's links to transcripts name a conversation by (their `id`)."""
    links = page.locator("a[href*='/conversations/view']").all()
    hrefs = [link.get_attribute("href") or "" for link in links]
    return [parse_qs(urlparse(href).query)["id"][0] for href in hrefs]


def test_console_pages_show_a_handle_that_the_chat_does_not_accept(
    staff, site: Site, booked: tuple[str, str]
) -> None:
    conversation, reference = booked
    editor = staff()
    editor.sign_in("eddie")
    page = editor.open("/conversations/")
    named = named_on(page)
    assert named, "today's conversations are listed"
    for name in named:  # each, posted as the chat's sender, is someone else: a new conversation
        said, used = speak_as(site, name, "what do you know about me?")
        assert reference not in said and used != conversation
    assert conversation not in page.content()
    assert handle_of(conversation) in named and all(conversation_ids.is_handle(n) for n in named)
    assert handle_of(conversation) in squash(page.locator(".conversation-list").inner_text())

    # Her transcript, opened from the list: named by its handle, and the id is nowhere on it.
    page.locator(f"a[href*='{handle_of(conversation)}']").click()
    assert editor.heading().startswith("Conversation of")
    assert f"Conversation {handle_of(conversation)}" in squash(page.locator("main").inner_text())
    assert conversation not in page.content()
    page.get_by_role("link", name="Correct and save as a story or a test").click()
    assert editor.heading() == "Correct and save as a story or a test"
    assert conversation not in page.content()

    # The receptionist's request page links to it by handle, and it leads to her conversation.
    receptionist = staff()
    receptionist.sign_in("rita")
    page = receptionist.open(f"/bookings/{reference}")
    assert named_on(page) == [handle_of(conversation)] and conversation not in page.content()
    page.get_by_role("link", name=re.compile("Read the conversation")).click()
    assert NAME in page.locator(".transcript").inner_text()
    # The reference search goes to it too; an id typed into the address finds nothing.
    receptionist.open(f"/conversations/?reference={reference}")
    assert NAME in page.locator(".transcript").inner_text() and conversation not in page.content()
    assert page.goto(f"{site.console}/conversations/view?id={conversation}").status == 404

    # Who read which conversation, in the audit log (by handle).
    admin = staff()
    admin.sign_in("anna")
    rows = [squash(row.inner_text()) for row in admin.open("/admin/audit").locator("tbody tr").all()]
    for who, detail in [("eddie", "personal data hidden"), ("rita", "personal data shown")]:
        assert any(f"{who} read conversation {handle_of(conversation)} {detail}" in row for row in rows), rows
    assert not any(conversation in row for row in rows)


async def second_connection(url: str, stranger_names: str) -> dict[str, Any]:
    """A visitor's widget session, and a second client that asks for her conversation by name."""
    async with WidgetSession(url) as visitor, WidgetSession(url) as stranger:
        mine = await visitor.request_session(None)
        proof = visitor.resume
        named = mine if stranger_names == "id" else handle_of(mine)
        given = await stranger.request_session(named, resume="not her proof")
        also_given = await stranger.request_session(named)
        said = await visitor.say("what is PIH")
        await asyncio.sleep(1)
        heard = list(stranger.said)
        await stranger.client.emit("user_uttered", {"message": "Mallory Takeover", "session_id": mine})
        await asyncio.sleep(2)
    async with WidgetSession(url) as again:  # her own page, reloaded: the id with its proof
        resumed = await again.request_session(mine, resume=proof)
        said_again = await again.say("what is PIH")
    return {
        "mine": mine,
        "proof": proof,
        "given": [given, also_given],
        "said": said,
        "heard": heard,
        "resumed": resumed,
        "said_again": said_again,
    }


@pytest.mark.parametrize("stranger_names", ["id", "handle"])
def test_a_second_socketio_connection_without_the_visitors_proof_gets_a_new_conversation(
    site: Site, stranger_names: str, expected
) -> None:
    # In a thread of its own: the module's Playwright (sync API) keeps an event loop in this one.
    with ThreadPoolExecutor(1) as thread:
        talk = second_connection(site.stack.config.rasa_url, stranger_names)
        seen = thread.submit(asyncio.run, talk).result()
    mine = seen["mine"]
    assert conversation_ids.is_issued(mine, settings.current().conversation_key())
    assert all(given not in (None, mine) for given in seen["given"]), "the stranger got her conversation"
    assert seen["heard"] == [], "the stranger heard the visitor's replies"
    assert seen["said"] == [expected("utter_faq/what_is_pih")]
    rows = site_query(site, "SELECT data FROM events WHERE type_name = 'user' AND sender_id = :s", s=mine)
    assert rows and not [data for (data,) in rows if "Mallory" in data]
    # The visitor herself (her proof kept beside the id) carries on.
    assert isinstance(seen["proof"], str) and seen["proof"] not in (mine, handle_of(mine))
    assert seen["resumed"] == mine and seen["said_again"] == [expected("utter_faq/what_is_pih")]


def site_query(site: Site, sql: str, **params: object) -> list[tuple]:
    """Rows of one SQL query on the servers' database."""
    import sqlalchemy as sa

    engine = sa.create_engine(site.database_url)
    try:
        with engine.connect() as db:
            return [tuple(row) for row in db.execute(sa.text(sql), params)]
    finally:
        engine.dispose()


def test_the_servers_log_names_conversations_by_handle_never_by_id(site: Site, booked) -> None:
    """After the tests above: the refused resume is logged with the handle; no id is in the log."""
    log = (site.root.parent / "servers.log").read_text(encoding="utf-8", errors="replace")
    ids = {sender for (sender,) in site_query(site, "SELECT DISTINCT sender_id FROM events")}
    assert booked[0] in ids and len(ids) > 3
    assert "without the visitor's resume proof" in log
    assert [i for i in ids if handle_of(i) in log], "the refused resume names the conversation's handle"
    assert [i for i in ids if i in log] == [], "a conversation id is in the servers' log"
