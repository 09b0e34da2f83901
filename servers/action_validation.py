"""Check the action server's replies with one prepared JSON-schema validator, not a new one each time.

Rasa 3.6 checks every reply of the action server with `jsonschema.validate(reply, schema)`,
which first re-validates the whole event schema against the 2020-12 meta-schema, a large
part of the Rasa server's time per message (`make bench` measures the latency). The schema
never changes, so it is checked once; each reply is validated exactly as before (same errors).
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from jsonschema.exceptions import best_match
from jsonschema.protocols import Validator
from jsonschema.validators import validator_for
from rasa.core.actions.action import RemoteAction
from rasa.shared.constants import DOCS_BASE_URL


@lru_cache(maxsize=1)
def response_validator() -> Validator:
    """The validator of Rasa's action-server response format, its schema checked once."""
    schema = RemoteAction.action_response_format_spec()
    validator_class = validator_for(schema)
    validator_class.check_schema(schema)
    return validator_class(schema)


def validate_action_result(_: RemoteAction, result: dict[str, Any]) -> bool:
    """RemoteAction._validate_action_result with the prepared validator."""
    error = best_match(response_validator().iter_errors(result))
    if error is not None:
        error.message += (
            ". Failed to validate Action server response from API, make sure your "
            "response from the Action endpoint is valid. For more information about "
            f"the format visit {DOCS_BASE_URL}/custom-actions"
        )
        raise error
    return True


def install() -> None:
    """Use the prepared validator in this Rasa process (and the workers it forks)."""
    RemoteAction._validate_action_result = validate_action_result  # type: ignore[method-assign]
