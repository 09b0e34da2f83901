"""Intents and FAQ answers from one logistic regression on the sentence features.

Why: with about 1,500 short examples, DIET and the ResponseSelector (neural networks trained
from scratch) generalised worse than a linear model on the same features. On 5-fold
cross-validation this classifier answered right more often with fewer wrong answers, and
it trains in seconds instead of a minute (docs/develop/benchmark.md).

How: every intent, and every FAQ answer `faq/<key>`, is one class of a multinomial logistic
regression over the messages' sentence features. Each featurizer's features are scaled to
unit length and weighted (`feature_weights`, keyed by the featurizers' `alias`), so that the
MiniLM embedding, the word counts and the character n-grams each count as much as
cross-validation found best. Optionally (`nearest_examples`) one more feature per class is the
cosine similarity of the message to that class's closest training example, by the embedding
of one featurizer: a paraphrase of one example counts even when its class is broad (during
training each example's own similarity is left out, as a new message would have none).
Its output has the shape Rasa's DIETClassifier and ResponseSelector give: `intent` and
`intent_ranking` (the FAQ answers' probabilities summed into `faq`), and
`response_selector.faq` with the answers ranked by P(answer | faq), so the fallback tail,
`utter_faq` and the "did you mean" buttons work unchanged. It names the answer, never its
words (`responses` is empty): they are the domain's when it is said (actions/topics.py), and
training never reads them (staff/service/rasa_train.py), so rewording an answer retrains
nothing. The trained weights are stored as plain numpy arrays and JSON (no pickle).
"""

from __future__ import annotations

import json
import logging
import warnings
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

import numpy as np
import scipy.sparse
from rasa.engine.graph import ExecutionContext, GraphComponent
from rasa.engine.recipes.default_recipe import DefaultV1Recipe
from rasa.engine.storage.resource import Resource
from rasa.engine.storage.storage import ModelStorage
from rasa.nlu.classifiers.classifier import IntentClassifier
from rasa.shared.nlu.constants import (
    FEATURE_TYPE_SENTENCE,
    INTENT,
    INTENT_NAME_KEY,
    INTENT_RANKING_KEY,
    INTENT_RESPONSE_KEY,
    PREDICTED_CONFIDENCE_KEY,
    RESPONSE_IDENTIFIER_DELIMITER,
    TEXT,
)
from rasa.shared.nlu.training_data.message import Message
from rasa.shared.nlu.training_data.training_data import TrainingData
from sklearn.linear_model import LogisticRegression

logger = logging.getLogger(__name__)

RESPONSE_SELECTOR = "response_selector"
ALL_RETRIEVAL_INTENTS = "all_retrieval_intents"
WEIGHTS_FILE = "weights.npz"
META_FILE = "meta.json"

# Rasa's recipe validator warns whenever the data has FAQ answers and the pipeline has no
# ResponseSelector; this component is the one that learns them.
warnings.filterwarnings(
    "ignore", message="You have defined training data with examples for training a response selector"
)


def softmax(scores: np.ndarray) -> np.ndarray:
    """Row-wise softmax, stable for large scores."""
    exp = np.exp(scores - scores.max(axis=-1, keepdims=True))
    return exp / exp.sum(axis=-1, keepdims=True)


@DefaultV1Recipe.register(DefaultV1Recipe.ComponentType.INTENT_CLASSIFIER, is_trainable=True)
class LinearIntentClassifier(GraphComponent, IntentClassifier):
    """Multinomial logistic regression over weighted sentence features: intents and FAQ answers."""

    @staticmethod
    def get_default_config() -> dict[str, Any]:
        """Regularisation, per-featurizer weights (by alias; others weigh 1), ranking length."""
        return {
            "C": 10.0,  # inverse L2 regularisation strength of the regression
            "feature_weights": {},  # featurizer alias -> weight of its unit-length features
            "nearest_examples": None,  # alias of a dense featurizer for the nearest-example features
            "nearest_examples_weight": 1.0,
            "retrieval_intent": "faq",
            "ranking_length": 10,
            "max_iter": 2000,
            "random_seed": 42,
        }

    def __init__(
        self,
        config: dict[str, Any],
        model_storage: ModelStorage,
        resource: Resource,
        state: dict[str, Any] | None = None,
    ) -> None:
        """A classifier with `state` (classes, origins, coef, intercept) if trained."""
        self.config = {**self.get_default_config(), **config}
        self._model_storage = model_storage
        self._resource = resource
        state = state or {}
        self.classes: list[str] = state.get("classes", [])
        self.origins: list[tuple[str, int]] = [tuple(o) for o in state.get("origins", [])]
        self.coef: np.ndarray | None = state.get("coef")
        self.intercept: np.ndarray | None = state.get("intercept")
        # Unit-length embeddings of the training examples and their class indices (nearest_examples).
        self.examples: np.ndarray | None = state.get("examples")
        self.example_classes: np.ndarray | None = state.get("example_classes")

    @classmethod
    def create(
        cls,
        config: dict[str, Any],
        model_storage: ModelStorage,
        resource: Resource,
        execution_context: ExecutionContext,
    ) -> LinearIntentClassifier:
        """An untrained classifier."""
        return cls(config, model_storage, resource)

    @classmethod
    def validate_config(cls, config: dict[str, Any]) -> None:
        """Checks the numbers a clinic might edit."""
        if float(config.get("C", 1.0)) <= 0:
            raise ValueError("C must be positive.")
        weights = [
            *(config.get("feature_weights") or {}).values(),
            config.get("nearest_examples_weight", 1.0),
        ]
        if any(float(w) < 0 for w in weights):
            raise ValueError("feature_weights and nearest_examples_weight must not be negative.")

    # ------------------------------------------------------------------ features

    @staticmethod
    def _sentence_features(message: Message) -> dict[str, Any]:
        """The message's sentence features of its text, by featurizer (origin)."""
        return {
            f.origin: f.features
            for f in message.features
            if f.attribute == TEXT and f.type == FEATURE_TYPE_SENTENCE
        }

    def _row(self, features: dict[str, Any]) -> scipy.sparse.csr_matrix | None:
        """One weighted feature row (trained column order) from a message's sentence features."""
        if not features:
            return None
        blocks = []
        for origin, width in self.origins:
            block = features.get(origin)
            if block is None:
                blocks.append(scipy.sparse.csr_matrix((1, width), dtype=np.float32))
                continue
            block = scipy.sparse.csr_matrix(block, dtype=np.float32)
            norm = np.sqrt(block.multiply(block).sum())
            weight = float(self.config["feature_weights"].get(origin, 1.0))
            blocks.append(block * (weight / norm) if norm > 0 else block)
        if self.examples is not None:
            embedding = self._embedding(features)
            similarities = self.examples @ embedding if embedding is not None else None
            blocks.append(scipy.sparse.csr_matrix(self._nearest(similarities)[None, :]))
        return scipy.sparse.hstack(blocks, format="csr")

    def _embedding(self, features: dict[str, Any]) -> np.ndarray | None:
        """The message's unit-length embedding from the `nearest_examples` featurizer, if any."""
        block = features.get(self.config["nearest_examples"])
        if block is None:
            return None
        vector = np.asarray(
            block.toarray() if scipy.sparse.issparse(block) else block, dtype=np.float32
        ).ravel()
        norm = np.linalg.norm(vector)
        return vector / norm if norm > 0 else None

    def _nearest(self, similarities: np.ndarray | None) -> np.ndarray:
        """Per class, the highest similarity to one of its examples, weighted (zeros: none known)."""
        best = np.zeros(len(self.classes), dtype=np.float32)
        if similarities is not None:
            best[:] = -1.0
            np.maximum.at(best, self.example_classes, similarities.astype(np.float32))
        return best * np.float32(self.config["nearest_examples_weight"])

    # ------------------------------------------------------------------ training

    def train(self, training_data: TrainingData) -> Resource:
        """Fits the regression on every intent example; FAQ examples by their full `faq/<key>`."""
        featured = [(e, self._sentence_features(e)) for e in training_data.intent_examples if e.get(TEXT)]
        featured = [(e, features) for e, features in featured if features]
        if not featured:
            logger.debug("No intent examples with features: nothing to train.")
            return self._resource
        features = [f for _, f in featured]
        self.origins = sorted(
            {origin: block.shape[-1] for f in features for origin, block in f.items()}.items()
        )
        y = [e.get_full_intent() for e, _ in featured]
        self.classes = sorted(set(y))  # sklearn's order of classes_
        self.examples = self.example_classes = None
        x = scipy.sparse.vstack([self._row(f) for f in features], format="csr")
        if self.config["nearest_examples"]:
            x = scipy.sparse.hstack([x, self._nearest_for_training(features, y)], format="csr")
        regression = LogisticRegression(
            C=float(self.config["C"]),
            class_weight="balanced",
            multi_class="multinomial",
            solver="lbfgs",
            max_iter=int(self.config["max_iter"]),
            random_state=int(self.config["random_seed"]),
        ).fit(x, y)
        assert [str(c) for c in regression.classes_] == self.classes
        self.coef = regression.coef_.astype(np.float32)
        self.intercept = regression.intercept_.astype(np.float32)
        self.persist()
        return self._resource

    def _nearest_for_training(
        self, features: list[dict[str, Any]], labels: list[str]
    ) -> scipy.sparse.csr_matrix:
        """The nearest-example features of every training example, its own similarity left out."""
        embeddings = [self._embedding(f) for f in features]
        known = [i for i, embedding in enumerate(embeddings) if embedding is not None]
        if not known:
            raise ValueError(
                f"nearest_examples names the featurizer alias '{self.config['nearest_examples']}', but no "
                f"training example has its features: give that featurizer this alias in config.yml, "
                f"or remove nearest_examples."
            )
        index = {label: i for i, label in enumerate(self.classes)}
        self.examples = np.stack([embeddings[i] for i in known]).astype(np.float32)
        self.example_classes = np.array([index[labels[i]] for i in known], dtype=np.int64)
        rows = np.zeros((len(features), len(self.classes)), dtype=np.float32)
        similarities = self.examples @ self.examples.T
        np.fill_diagonal(similarities, -1.0)
        for row, i in enumerate(known):
            rows[i] = self._nearest(similarities[row])
        return scipy.sparse.csr_matrix(rows)

    def persist(self) -> None:
        """Stores the weights as .npz (no pickle) and the rest as JSON."""
        with self._model_storage.write_to(self._resource) as directory:
            arrays = {"coef": self.coef, "intercept": self.intercept}
            if self.examples is not None:
                arrays.update(examples=self.examples, example_classes=self.example_classes)
            np.savez(directory / WEIGHTS_FILE, **arrays)
            meta = {"classes": self.classes, "origins": self.origins}
            (directory / META_FILE).write_text(json.dumps(meta), encoding="utf-8")

    @classmethod
    def load(
        cls,
        config: dict[str, Any],
        model_storage: ModelStorage,
        resource: Resource,
        execution_context: ExecutionContext,
        **kwargs: Any,
    ) -> LinearIntentClassifier:
        """The trained classifier, or an untrained one if nothing was trained."""
        try:
            with model_storage.read_from(resource) as directory:
                meta = json.loads((directory / META_FILE).read_text(encoding="utf-8"))
                with np.load(directory / WEIGHTS_FILE, allow_pickle=False) as weights:
                    state = {**meta, **{name: weights[name] for name in weights.files}}
        except (ValueError, FileNotFoundError):
            logger.debug(f"No trained {cls.__name__} found; it will predict nothing.")
            state = None
        return cls(config, model_storage, resource, state)

    # ------------------------------------------------------------------ prediction

    def process(self, messages: list[Message]) -> list[Message]:
        """Sets intent, intent ranking and the FAQ answer of each message."""
        for message in messages:
            row = self._row(self._sentence_features(message)) if self.coef is not None else None
            if row is None:
                message.set(
                    INTENT, {INTENT_NAME_KEY: None, PREDICTED_CONFIDENCE_KEY: 0.0}, add_to_output=True
                )
                message.set(INTENT_RANKING_KEY, [], add_to_output=True)
                continue
            probabilities = softmax(np.asarray(row @ self.coef.T).ravel() + self.intercept)
            self._set_prediction(message, probabilities)
        return messages

    def _set_prediction(self, message: Message, probabilities: Sequence[float]) -> None:
        intents: dict[str, float] = defaultdict(float)
        answers: dict[str, float] = {}
        retrieval = self.config["retrieval_intent"]
        for label, p in zip(self.classes, probabilities):
            intent, _, key = label.partition(RESPONSE_IDENTIFIER_DELIMITER)
            intents[intent] += float(p)
            if key and intent == retrieval:
                answers[label] = float(p)
        length = int(self.config["ranking_length"]) or len(intents)
        ranking = [
            {INTENT_NAME_KEY: name, PREDICTED_CONFIDENCE_KEY: p}
            for name, p in sorted(intents.items(), key=lambda item: -item[1])
        ][:length]
        message.set(INTENT, ranking[0], add_to_output=True)
        message.set(INTENT_RANKING_KEY, ranking, add_to_output=True)
        if answers:
            message.set(
                RESPONSE_SELECTOR, self._selector_output(answers, intents[retrieval]), add_to_output=True
            )

    def _selector_output(self, answers: dict[str, float], retrieval_confidence: float) -> dict[str, Any]:
        """What Rasa's ResponseSelector sets: the answers ranked by P(answer | faq).

        No answer's words (`responses`): Rasa's would put the answer's name there when it has no
        words for it, and an old wording is no better; utter_faq takes them from the domain.
        """
        retrieval = self.config["retrieval_intent"]
        total = retrieval_confidence or 1.0
        ranked = sorted(answers.items(), key=lambda item: -item[1])
        ranking = [{PREDICTED_CONFIDENCE_KEY: p / total, INTENT_RESPONSE_KEY: label} for label, p in ranked]
        best = ranked[0][0]
        utter_action = f"utter_{best}"
        return {
            ALL_RETRIEVAL_INTENTS: [retrieval],
            retrieval: {
                "response": {
                    "responses": [],
                    PREDICTED_CONFIDENCE_KEY: ranking[0][PREDICTED_CONFIDENCE_KEY],
                    INTENT_RESPONSE_KEY: best,
                    "utter_action": utter_action,
                },
                "ranking": ranking[: int(self.config["ranking_length"]) or len(ranking)],
            },
        }
