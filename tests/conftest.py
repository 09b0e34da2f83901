"""Shared test fixtures: the project's domain and clinic settings, and live servers."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any, Dict, Iterator, List

import pytest
import yaml

from actions.settings import load_settings
from tools.stack import Stack, StackConfig, free_port

PROJECT_ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def domain() -> Dict[str, Any]:
    """domain.yml as the action server receives it."""
    return yaml.safe_load((PROJECT_ROOT / "domain.yml").read_text(encoding="utf-8"))


def clinic_values() -> Dict[str, str]:
    """The slot values the answers are filled with (from clinic.yml)."""
    s = load_settings()
    return {"clinic_name": s.name, "clinic_phone": s.phone, "clinic_email": s.email,
            "clinic_hours": s.hours, "clinic_address": s.address,
            "emergency_number": s.emergency_number, "booking_link": s.booking_link}


@pytest.fixture(scope="session")
def expected(domain: Dict[str, Any]):
    """expected(name) -> the text a visitor sees for domain response `name`."""
    class KeepUnknown(dict):
        def __missing__(self, key: str) -> str:  # per-message values, e.g. {reference}
            return "{" + key + "}"

    def render(name: str) -> str:
        return domain["responses"][name][0]["text"].format_map(KeepUnknown(clinic_values()))
    return render


class Chat:
    """A visitor talking to the REST channel of a running server."""

    def __init__(self, base_url: str) -> None:
        self.url = f"{base_url}/webhooks/rest/webhook"

    def post(self, body: bytes, content_type: str = "application/json") -> tuple[int, Any]:
        request = urllib.request.Request(self.url, data=body, method="POST",
                                         headers={"Content-Type": content_type})
        try:
            with urllib.request.urlopen(request, timeout=60) as response:
                return response.status, json.loads(response.read() or b"null")
        except urllib.error.HTTPError as error:
            body = error.read().decode("utf-8", "replace")
            try:
                return error.code, json.loads(body)
            except json.JSONDecodeError:
                return error.code, body

    def say(self, sender: str, text: str) -> List[Dict[str, Any]]:
        """Send one message; return the bot's messages (asserting HTTP 200)."""
        status, messages = self.post(json.dumps({"sender": sender, "message": text}).encode())
        assert status == 200, messages
        return messages

    def texts(self, sender: str, text: str) -> List[str]:
        return [m["text"] for m in self.say(sender, text) if "text" in m]


def stack_config(tmp_path: Path) -> StackConfig:
    """Servers on free ports with their own SQLite database in tmp_path."""
    return StackConfig(rasa_port=free_port(), action_port=free_port(),
                       database_url=f"sqlite:///{tmp_path / 'clinic.db'}")


class LiveAssistant(Chat):
    """The running servers: chat with them, read their log and their database."""

    def __init__(self, stack: Stack, log_path: Path) -> None:
        super().__init__(stack.config.rasa_url)
        self.database_url = stack.config.database_url
        self.action_server_url = f"http://127.0.0.1:{stack.config.action_port}"
        self.log_path = log_path


@pytest.fixture(scope="session")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveAssistant]:
    """One running assistant shared by the end-to-end tests."""
    tmp = tmp_path_factory.mktemp("live")
    log_path = tmp / "servers.log"
    with log_path.open("w") as log, Stack(stack_config(tmp), log) as stack:
        yield LiveAssistant(stack, log_path)
