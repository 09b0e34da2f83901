"""Word patterns that decide the intent whatever the classifier predicted.

Used twice in config.yml: messages with no words at all (empty, emoji, punctuation)
are `unclear`, and messages that mention urgent symptoms are `urgent_symptoms`. A
missed emergency is the worst error this assistant can make, so the urgent patterns
run last and override everything; a false alarm only costs one cautious reply.
"""

from __future__ import annotations

import re
from typing import Any

from rasa.engine.recipes.default_recipe import DefaultV1Recipe
from rasa.shared.nlu.constants import TEXT
from rasa.shared.nlu.training_data.message import Message

from components.base import ConfiguredComponent, override_intent


@DefaultV1Recipe.register(DefaultV1Recipe.ComponentType.INTENT_CLASSIFIER, is_trainable=False)
class PatternIntentOverride(ConfiguredComponent):
    """Sets the configured intent when any of its patterns matches the message."""

    def __init__(self, config: dict[str, Any]) -> None:
        super().__init__(config)
        self._pattern = re.compile("|".join(f"(?:{p})" for p in config["patterns"]), re.IGNORECASE)

    @staticmethod
    def get_default_config() -> dict[str, Any]:
        """`patterns` are regular expressions, searched case-insensitively."""
        return {"intent": None, "patterns": []}

    def process(self, messages: list[Message]) -> list[Message]:
        """Overrides the intent of each typed message that matches a pattern."""
        for message in messages:
            text = message.get(TEXT) or ""
            if not text.startswith("/") and self._pattern.search(text):
                override_intent(message, self.component_config["intent"], 1.0)
        return messages
