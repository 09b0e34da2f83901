"""Shared plumbing for the project's untrained, config-driven NLU components."""

from __future__ import annotations

from typing import Any

from rasa.engine.graph import ExecutionContext, GraphComponent
from rasa.engine.storage.resource import Resource
from rasa.engine.storage.storage import ModelStorage
from rasa.shared.constants import DEFAULT_NLU_FALLBACK_INTENT_NAME
from rasa.shared.nlu.constants import (
    INTENT,
    INTENT_NAME_KEY,
    INTENT_RANKING_KEY,
    PREDICTED_CONFIDENCE_KEY,
)
from rasa.shared.nlu.training_data.message import Message


class ConfiguredComponent(GraphComponent):
    """A component with no training: it only needs its config from config.yml."""

    def __init__(self, config: dict[str, Any]) -> None:
        self.component_config = config

    @classmethod
    def create(
        cls,
        config: dict[str, Any],
        model_storage: ModelStorage,
        resource: Resource,
        execution_context: ExecutionContext,
    ) -> ConfiguredComponent:
        """Creates the component from its config (no training state to load)."""
        return cls(config)


def override_intent(message: Message, name: str, confidence: float) -> None:
    """Make `name` the message's intent and put it first in the ranking."""
    intent = {INTENT_NAME_KEY: name, PREDICTED_CONFIDENCE_KEY: confidence}
    message.set(INTENT, intent, add_to_output=True)
    ranking = [r for r in message.get(INTENT_RANKING_KEY) or [] if r.get(INTENT_NAME_KEY) != name]
    message.set(INTENT_RANKING_KEY, [intent, *ranking], add_to_output=True)


def fall_back(message: Message, confidence: float) -> None:
    """Mark the message as not understood, exactly as Rasa's FallbackClassifier does."""
    override_intent(message, DEFAULT_NLU_FALLBACK_INTENT_NAME, confidence)
