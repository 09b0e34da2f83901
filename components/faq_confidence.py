"""Falls back when the FAQ answer itself is uncertain, not only the intent.

Rasa's FallbackClassifier looks at the intent confidence only (RasaHQ/rasa#9751): an
off-topic question can be classified `faq` at 0.99 and then get whichever answer the
ResponseSelector ranks first at 0.1. For a medical FAQ that is a confident wrong answer,
so this component turns such messages into `nlu_fallback` ("did you mean...?").
"""

from __future__ import annotations

from typing import Any

from rasa.engine.recipes.default_recipe import DefaultV1Recipe
from rasa.shared.nlu.constants import INTENT, INTENT_NAME_KEY
from rasa.shared.nlu.training_data.message import Message

from components.base import ConfiguredComponent, fall_back


@DefaultV1Recipe.register(DefaultV1Recipe.ComponentType.INTENT_CLASSIFIER, is_trainable=False)
class FaqConfidenceGuard(ConfiguredComponent):
    """Sends `faq` messages with a weak or ambiguous selected answer to fallback."""

    @staticmethod
    def get_default_config() -> dict[str, Any]:
        """Thresholds: minimum answer confidence, minimum lead over the runner-up."""
        return {"retrieval_intent": "faq", "threshold": 0.5, "ambiguity_threshold": 0.1}

    def process(self, messages: list[Message]) -> list[Message]:
        """Falls back for each message whose FAQ answer is too uncertain."""
        for message in messages:
            if self._answer_is_uncertain(message):
                fall_back(message, self.component_config["threshold"])
        return messages

    def _answer_is_uncertain(self, message: Message) -> bool:
        retrieval_intent = self.component_config["retrieval_intent"]
        if (message.get(INTENT) or {}).get(INTENT_NAME_KEY) != retrieval_intent:
            return False
        selector = (message.get("response_selector") or {}).get(retrieval_intent)
        if not selector:
            return True
        ranking = [r["confidence"] for r in selector.get("ranking", [])] or [0.0]
        runner_up = ranking[1] if len(ranking) > 1 else 0.0
        return (
            ranking[0] < self.component_config["threshold"]
            or ranking[0] - runner_up < self.component_config["ambiguity_threshold"]
        )
