"""The prepared validator of action-server replies accepts and refuses exactly what Rasa's does."""

from __future__ import annotations

from typing import Any

import pytest
from jsonschema import ValidationError, validate
from rasa.core.actions.action import RemoteAction

from servers import action_validation

REPLIES = {
    "answer": {"events": [], "responses": [{"response": "utter_faq/what_is"}]},
    "slot and text": {
        "events": [{"event": "slot", "name": "booking_name", "value": "Sam", "timestamp": None}],
        "responses": [{"text": "Thanks, Sam."}],
    },
    "form": {"events": [{"event": "active_loop", "name": "booking_form"}], "responses": []},
    "unknown event": {"events": [{"event": "teleport", "to": "mars"}], "responses": []},
    "events not a list": {"events": {"event": "slot"}, "responses": []},
    "slot without name": {"events": [{"event": "slot", "value": 1}], "responses": []},
}


def stock_error(reply: dict[str, Any]) -> str | None:
    """What Rasa's own check (jsonschema.validate) says of `reply`: None if it passes."""
    try:
        validate(reply, RemoteAction.action_response_format_spec())
    except ValidationError as error:
        return error.message
    return None


@pytest.mark.parametrize("name", REPLIES)
def test_same_verdict_and_message_as_rasa(name: str) -> None:
    reply, expected = REPLIES[name], stock_error(REPLIES[name])
    if expected is None:
        assert action_validation.validate_action_result(None, reply) is True  # type: ignore[arg-type]
    else:
        with pytest.raises(ValidationError) as error:
            action_validation.validate_action_result(None, reply)  # type: ignore[arg-type]
        assert error.value.message.startswith(expected + ". Failed to validate Action server response")


def test_install_replaces_rasas_check(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(RemoteAction, "_validate_action_result", RemoteAction._validate_action_result)
    action_validation.install()
    action = RemoteAction("action_answer_faq", None)
    assert action._validate_action_result(REPLIES["answer"]) is True
    with pytest.raises(ValidationError):
        action._validate_action_result(REPLIES["unknown event"])
    assert action_validation.response_validator.cache_info().currsize == 1
