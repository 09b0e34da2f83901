"""What a security reviewer tries against the public endpoint, on the real servers.

The servers here run as a clinic would deploy them: Rasa's HTTP API on with a token, the
action server behind a shared secret, one web origin allowed, and a low flood limit so the
flood test is quick. Each probe gets its clear answer, and a normal visitor is served next.
"""

from __future__ import annotations

import asyncio
import json
import select
import socket
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import jwt
import pytest

from channels.guarded import TOO_FAST
from common.names import CONVERSATION_HEADER
from servers.launcher import Stack
from tests.helpers import Chat, LiveAssistant, WidgetSession, stack_config

pytestmark = pytest.mark.e2e

API_TOKEN = "api-token-for-tests-0123456789abcdef"
JWT_SECRET = "jwt-secret-for-tests-0123456789abcdef"
ACTION_TOKEN = "action-token-for-tests-0123456789abcdef"
SITE = "https://www.example-clinic.test"
FOREIGN = "https://evil.example"
FLOOD_LIMIT = 5
ADDRESS_LIMIT = 40
INTEGRATION_TOKEN = "integration-token-for-tests-0123456789"


def visitor() -> str:
    return f"visitor-{uuid.uuid4().hex[:8]}"


@pytest.fixture(scope="module")
def guarded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveAssistant]:
    """The servers with the API token, the action server token and one allowed origin."""
    tmp = tmp_path_factory.mktemp("security")
    config = stack_config(tmp)
    config.cors_origins = [SITE]
    config.extra_env = {
        "RASA_API_TOKEN": API_TOKEN,
        "RASA_JWT_SECRET": JWT_SECRET,
        "ACTION_SERVER_TOKEN": ACTION_TOKEN,
        "MAX_MESSAGES_PER_MINUTE": str(FLOOD_LIMIT),
        "MAX_MESSAGES_PER_MINUTE_PER_ADDRESS": str(ADDRESS_LIMIT),
        "CHAT_INTEGRATION_TOKEN": INTEGRATION_TOKEN,
        "SANIC_PROXIES_COUNT": "1",  # behind one reverse proxy: the client is in X-Forwarded-For
        "TEST_FORK_SERVERS": "0",  # started as `python -m` commands, not forked (tests/conftest.py)
    }
    log_path = tmp / "servers.log"
    with log_path.open("w") as log, Stack(config, log) as stack:
        yield LiveAssistant(stack, log_path)


def request(
    url: str, method: str = "GET", body: bytes | None = None, headers: dict[str, str] | None = None
) -> tuple[int, dict[str, str], str]:
    """Status, headers and body text of one HTTP request (errors included)."""
    req = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=60) as response:
            return response.status, dict(response.headers), response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read().decode()


def base(chat: Chat) -> str:
    return chat.url.rsplit("/webhooks/", 1)[0]


@pytest.mark.parametrize("query", ["", "?token=wrong-token-0123456789"], ids=["no token", "wrong token"])
def test_api_refuses_requests_without_the_token(guarded: LiveAssistant, query: str) -> None:
    me = visitor()
    for method, path, body in [
        ("GET", f"/conversations/{me}/tracker", None),
        (
            "POST",
            f"/conversations/{me}/tracker/events",
            b'{"event": "slot", "name": "booking_consent", "value": true}',
        ),
        ("GET", "/status", None),
    ]:
        status, _, _ = request(
            f"{base(guarded)}{path}{query}", method, body, {"Content-Type": "application/json"}
        )
        assert status == 401, path


def test_api_answers_with_the_token(guarded: LiveAssistant, expected) -> None:
    me = visitor()
    assert guarded.texts(me, "what is PIH") == [expected("utter_faq/what_is_pih")]
    conversation = guarded.conversation_id(me)
    status, _, body = request(f"{base(guarded)}/conversations/{conversation}/tracker?token={API_TOKEN}")
    assert status == 200 and json.loads(body)["latest_message"]["intent"]["name"] == "faq"


@pytest.mark.parametrize(
    "secret, role, status",
    [(JWT_SECRET, "admin", 200), ("another-secret-0123456789abcdef-0123456789", "admin", 401)],
    ids=["signed with the secret", "signed with another key"],
)
def test_api_takes_a_jwt_signed_with_the_configured_secret(
    guarded: LiveAssistant, secret: str, role: str, status: int
) -> None:
    token = jwt.encode({"user": {"username": "clinic-it", "role": role}}, secret, algorithm="HS256")
    assert (
        request(
            f"{base(guarded)}/conversations/{visitor()}/tracker", headers={"Authorization": f"Bearer {token}"}
        )[0]
        == status
    )


def test_api_is_off_when_no_token_is_configured(live: LiveAssistant) -> None:
    """The default servers (no RASA_API_TOKEN) do not serve Rasa's API at all."""
    assert request(f"{base(live)}/conversations/{visitor()}/tracker")[0] == 404
    assert request(f"{base(live)}/status")[0] == 404


def test_action_server_requires_the_shared_secret(guarded: LiveAssistant) -> None:
    url = guarded.action_server_url
    call = json.dumps(
        {
            "next_action": "action_answer_faq",
            "sender_id": "x",
            "tracker": {"sender_id": "x", "slots": {}, "events": []},
            "domain": {},
        }
    ).encode()
    status, _, body = request(f"{url}/webhook", "POST", call, {"Content-Type": "application/json"})
    assert status == 401 and "token" in json.loads(body)["error"]
    assert request(f"{url}/health")[0] == 200  # health checks stay open


def test_only_the_configured_origin_may_call_from_a_browser(guarded: LiveAssistant) -> None:
    preflight = {"Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "content-type"}
    _, headers, _ = request(guarded.url, "OPTIONS", headers={"Origin": SITE, **preflight})
    assert headers.get("Access-Control-Allow-Origin") == SITE
    _, headers, _ = request(guarded.url, "OPTIONS", headers={"Origin": FOREIGN, **preflight})
    assert "Access-Control-Allow-Origin" not in headers
    status, _, _ = request(f"{base(guarded)}/socket.io/?EIO=4&transport=polling", headers={"Origin": FOREIGN})
    assert status == 403


def post_big_body(url: str, size: int) -> str:
    """POST `size` bytes in 64 KB chunks, as a browser or curl would, and return the status line.

    The server answers while the body is still arriving; reading that answer as soon as it
    comes (before the server resets the connection) is what a real client shows its user.
    """
    parts = urllib.parse.urlsplit(url)
    with socket.create_connection((parts.hostname, parts.port), timeout=30) as conn:
        conn.sendall(
            f"POST {parts.path} HTTP/1.1\r\nHost: {parts.netloc}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {size}\r\n\r\n".encode()
        )
        for _ in range(0, size, 65536):
            if select.select([conn], [], [], 0)[0]:
                break
            try:
                conn.sendall(b"x" * 65536)
            except OSError:
                break
        return conn.recv(4096).decode("latin-1").split("\r\n", 1)[0]


def test_five_megabyte_body_is_refused_and_the_next_visitor_is_served(
    guarded: LiveAssistant, expected
) -> None:
    assert post_big_body(guarded.url, 5_000_000) == "HTTP/1.1 413 Request Entity Too Large"
    assert guarded.texts(visitor(), "what is a scar") == [expected("utter_faq/what_is_scar")]


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded", ""])
def test_wrong_content_type_gets_415(guarded: LiveAssistant, content_type: str) -> None:
    status, error = guarded.post(json.dumps({"sender": visitor(), "message": "hi"}).encode(), content_type)
    assert status == 415 and "Content-Type: application/json" in error["error"]


@pytest.mark.parametrize(
    "body",
    [b"[1, 2, 3]", b'{"sender": "x", "message": ', b"\xff\xfe\x00"],
    ids=["array", "truncated", "binary"],
)
def test_malformed_json_gets_400(guarded: LiveAssistant, body: bytes) -> None:
    assert guarded.post(body)[0] == 400


def test_a_flooding_sender_is_slowed_down_and_others_are_still_served(
    guarded: LiveAssistant, expected
) -> None:
    flooder = visitor()
    assert guarded.texts(flooder, "what is PIH") == [expected("utter_faq/what_is_pih")]
    conversation = guarded.conversation_id(flooder)
    body = json.dumps({"sender": conversation, "message": "what is PIH"}).encode()
    with ThreadPoolExecutor(8) as pool:
        replies = list(pool.map(lambda _: guarded.post(body), range(4 * FLOOD_LIMIT)))
    statuses = sorted(status for status, _ in replies)
    assert statuses == [200] * (FLOOD_LIMIT - 1) + [429] * (3 * FLOOD_LIMIT + 1)
    assert all(reply == {"error": TOO_FAST} for status, reply in replies if status == 429)
    assert guarded.texts(visitor(), "what is PIH") == [expected("utter_faq/what_is_pih")]
    # What was answered is stored; the refused messages were never processed.
    status, _, tracker = request(f"{base(guarded)}/conversations/{conversation}/tracker?token={API_TOKEN}")
    user_turns = [e for e in json.loads(tracker)["events"] if e["event"] == "user"]
    assert status == 200 and len(user_turns) == FLOOD_LIMIT


def test_a_flood_from_one_address_is_slowed_down_whatever_sender_it_claims(
    guarded: LiveAssistant, expected
) -> None:
    """A new conversation for every message does not get round the limit: the address counts too."""

    def from_address(address: str) -> int:
        body = json.dumps({"message": "what is PIH"}).encode()  # a new conversation each time
        return guarded.post(body, headers={"X-Forwarded-For": address})[0]

    statuses = [from_address("203.0.113.7") for _ in range(ADDRESS_LIMIT + 5)]
    assert statuses.count(200) == ADDRESS_LIMIT and statuses.count(429) == 5
    assert from_address("203.0.113.8") == 200  # another address is served


def test_a_trusted_integration_keeps_its_own_ids_with_its_token(guarded: LiveAssistant, expected) -> None:
    own_id = f"crm-{uuid.uuid4().hex[:8]}"

    def post(message: str, token: str | None) -> tuple[int, object, str | None]:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        status, answer = guarded.post(
            json.dumps({"sender": own_id, "message": message}).encode(), headers=headers
        )
        return status, answer, guarded.last_headers.get(CONVERSATION_HEADER)

    status, answer, issued = post("book a consultation", INTEGRATION_TOKEN)
    assert (status, issued) == (200, own_id)
    status, answer, issued = post("Ingrid Larsen", INTEGRATION_TOKEN)
    assert (status, issued) == (200, own_id) and answer[0]["text"] == expected("utter_ask_booking_contact")
    status, answer, issued = post("Mallory", None)  # the same id without the token: someone else
    assert status == 200 and issued != own_id
    assert post("hi", "wrong-token-0123456789abcdef-0123456789")[0] == 401


async def socketio_flood(url: str, messages: int) -> list[str]:
    """Send `messages` messages at once from one widget session; return what the bot said."""
    async with WidgetSession(url) as widget:
        await widget.request_session(None)
        await asyncio.gather(
            *(
                widget.client.emit(
                    "user_uttered", {"message": "what is PIH", "session_id": widget.session_id}
                )
                for _ in range(messages)
            )
        )
        for _ in range(120):  # until every message has its one reply
            if len(widget.said) >= messages:
                break
            await asyncio.sleep(0.5)
        return widget.said


def test_a_flooding_widget_session_is_told_to_slow_down(guarded: LiveAssistant, expected) -> None:
    said = asyncio.run(socketio_flood(base(guarded), 2 * FLOOD_LIMIT))
    assert sorted(said) == sorted(
        [expected("utter_faq/what_is_pih")] * FLOOD_LIMIT + [TOO_FAST] * FLOOD_LIMIT
    )


def test_secrets_never_reach_the_log(guarded: LiveAssistant) -> None:
    log = Path(guarded.log_path).read_text(encoding="utf-8", errors="replace")
    assert API_TOKEN not in log and ACTION_TOKEN not in log
