"""Rasa's FallbackClassifier, except that a likely "I can't answer that" is not second-guessed.

The fallback exists so that the assistant never answers a question it is unsure of. When the
best guess is itself a refusal to answer (`out_of_scope`: the document does not cover it,
`medical_advice`: only a clinician can say) there is no answer to get wrong, so a weaker
confidence is enough: at `deflection_threshold` (0.5 by default: more likely than every other
intent together) the visitor is told plainly that the document does not say, with the team's
details, instead of being shown FAQ topics that do not match. What this gains and costs on
cross-validation is measured by `make bench` (docs/develop/benchmark.md).
"""

from __future__ import annotations

from typing import Any

from rasa.engine.recipes.default_recipe import DefaultV1Recipe
from rasa.nlu.classifiers.fallback_classifier import FallbackClassifier
from rasa.shared.nlu.constants import INTENT, INTENT_NAME_KEY, PREDICTED_CONFIDENCE_KEY
from rasa.shared.nlu.training_data.message import Message

# The intents that decline to answer; the bench's replay (devtools/bench/nlu_eval.py) uses the same list.
DEFLECTION_INTENTS = ("out_of_scope", "medical_advice")


@DefaultV1Recipe.register(DefaultV1Recipe.ComponentType.INTENT_CLASSIFIER, is_trainable=False)
class DeflectionAwareFallbackClassifier(FallbackClassifier):
    """FallbackClassifier with a lower bar for intents that decline to answer."""

    @staticmethod
    def get_default_config() -> dict[str, Any]:
        """Rasa's thresholds, plus the bar for a deflecting intent (DEFLECTION_INTENTS)."""
        return {**FallbackClassifier.get_default_config(), "deflection_threshold": 0.5}

    def _should_fallback(self, message: Message) -> bool:
        """Rasa's test, unless the top intent deflects and reaches `deflection_threshold`."""
        intent = message.data.get(INTENT) or {}
        if (
            intent.get(INTENT_NAME_KEY) in DEFLECTION_INTENTS
            and intent.get(PREDICTED_CONFIDENCE_KEY, 0.0) >= self.component_config["deflection_threshold"]
        ):
            return False
        return super()._should_fallback(message)
