"""The MiniLM featurizer loads only the expected files and gives useful, well-shaped features."""

from __future__ import annotations

import os
import shutil
import statistics
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from rasa.engine.caching import CACHE_LOCATION_ENV, CACHE_SIZE_ENV
from rasa.engine.graph import ExecutionContext
from rasa.engine.storage.local_model_storage import LocalModelStorage
from rasa.engine.storage.resource import Resource
from rasa.nlu.featurizers.sparse_featurizer.count_vectors_featurizer import (
    CountVectorsFeaturizer,
)
from rasa.nlu.tokenizers.spacy_tokenizer import SpacyTokenizer
from rasa.nlu.utils.spacy_utils import SpacyNLP
from rasa.shared.nlu.training_data.message import Message
from rasa.shared.nlu.training_data.training_data import TrainingData

from components.minilm import EMBEDDING_DIM, MiniLMEncoder, ModelFilesError, default_model_dir, load_encoder
from components.sentence_embeddings import KEPT_EMBEDDINGS_FOLDER, SentenceEmbeddingFeaturizer

TYPICAL_QUESTION = "Can I book a scar relaxation session for my daughter next Tuesday afternoon?"


@pytest.fixture(scope="module")
def encoder() -> MiniLMEncoder:
    return load_encoder()


def similarity(encoder: MiniLMEncoder, a: str, b: str) -> float:
    """Cosine similarity (the embeddings are unit vectors)."""
    x, y = encoder.encode([a, b])
    return float(x @ y)


def copy_model(target: Path) -> Path:
    """Copies the two verified model files to `target`."""
    for name in ("model.safetensors", "tokenizer.json"):
        shutil.copy(default_model_dir() / name, target / name)
    return target


def flip_last_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[-1] ^= 0x01
    path.write_bytes(bytes(data))


def test_untouched_copy_loads(tmp_path: Path) -> None:
    MiniLMEncoder(copy_model(tmp_path))


@pytest.mark.parametrize("name", ["model.safetensors", "tokenizer.json"])
def test_tampered_model_file_is_refused(tmp_path: Path, name: str) -> None:
    flip_last_byte(copy_model(tmp_path) / name)
    with pytest.raises(ModelFilesError, match=f"{name} has sha256"):
        MiniLMEncoder(tmp_path)
    with pytest.raises(ModelFilesError):
        load_encoder(tmp_path)


def test_missing_model_file_is_refused(tmp_path: Path) -> None:
    (copy_model(tmp_path) / "tokenizer.json").unlink()
    with pytest.raises(ModelFilesError, match="missing"):
        MiniLMEncoder(tmp_path)


def test_embedding_is_384_d_unit_vector(encoder: MiniLMEncoder) -> None:
    embeddings = encoder.encode(["How much does it cost?", TYPICAL_QUESTION])
    assert embeddings.shape == (2, EMBEDDING_DIM)
    assert embeddings.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(embeddings, axis=1), 1.0, atol=1e-5)


def test_matches_sentence_transformers_reference(encoder: MiniLMEncoder) -> None:
    # First values of sentence-transformers' all-MiniLM-L6-v2 embedding of "hello world"
    # (as published e.g. in fastembed's tests): the numpy encoder is the same model.
    expected = [-0.034478, 0.03102, 0.00673, 0.02611, -0.039362]
    np.testing.assert_allclose(encoder.encode(["hello world"])[0, :5], expected, atol=1e-4)


def test_batching_does_not_change_embeddings(encoder: MiniLMEncoder) -> None:
    texts = ["hi", TYPICAL_QUESTION, "What causes hyperpigmentation?", "ok thanks " * 80]
    batched = encoder.encode(texts, batch_size=3)
    one_by_one = np.stack([encoder.encode([t])[0] for t in texts])
    np.testing.assert_allclose(batched, one_by_one, atol=1e-5)


@pytest.mark.parametrize(
    "query,closer,further",
    [
        (
            "How does scar relaxation work?",
            "What does the micro-needling treatment do to the skin?",
            "What are your opening hours?",
        ),
        ("Why did my scar go brown?", "What causes hyperpigmentation?", "Who is the treatment for?"),
    ],
)
def test_similar_questions_are_closer(encoder: MiniLMEncoder, query: str, closer: str, further: str) -> None:
    assert similarity(encoder, query, closer) > similarity(encoder, query, further)


@pytest.fixture(scope="module")
def rasa_context(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """What Rasa hands a component when it creates one."""
    return {
        "model_storage": LocalModelStorage(tmp_path_factory.mktemp("model_storage")),
        "resource": Resource("sentence_embeddings_test"),
        "execution_context": ExecutionContext(graph_schema=None, node_name="test_node"),
    }


@pytest.fixture(scope="module")
def pipeline(rasa_context: dict[str, Any]) -> list[Any]:
    """SpacyNLP, SpacyTokenizer, a trained CountVectorsFeaturizer and the MiniLM featurizer."""
    spacy_nlp = SpacyNLP.create(
        {**SpacyNLP.get_default_config(), "model": "en_scar_pipeline"}, **rasa_context
    )
    tokenizer = SpacyTokenizer.create(SpacyTokenizer.get_default_config(), **rasa_context)
    count_vectors = CountVectorsFeaturizer.create(CountVectorsFeaturizer.get_default_config(), **rasa_context)
    minilm = SentenceEmbeddingFeaturizer.create(
        SentenceEmbeddingFeaturizer.get_default_config(), **rasa_context
    )
    training = TrainingData(
        [
            Message(data={"text": t, "intent": i})
            for t, i in [
                ("How does scar relaxation work?", "faq"),
                ("What are your opening hours?", "contact"),
                ("Why did my scar go brown?", "faq"),
            ]
        ]
    )
    training = spacy_nlp.process_training_data(training, spacy_nlp.provide())
    training = tokenizer.process_training_data(training)
    count_vectors.train(training)
    return [spacy_nlp, tokenizer, count_vectors, minilm]


def run(pipeline: list[Any], text: str) -> Message:
    spacy_nlp, tokenizer, count_vectors, minilm = pipeline
    messages = spacy_nlp.process([Message(data={"text": text})], spacy_nlp.provide())
    return minilm.process(count_vectors.process(tokenizer.process(messages)))[0]


def test_message_gets_sentence_embedding(pipeline: list[Any]) -> None:
    message = run(pipeline, TYPICAL_QUESTION)
    sequence, sentence = message.get_dense_features("text")
    assert sentence.features.shape == (1, EMBEDDING_DIM)
    np.testing.assert_allclose(np.linalg.norm(sentence.features), 1.0, atol=1e-5)
    # One sequence row per spaCy token, like the sparse featurizers (Rasa needs equal lengths).
    sparse_sequence, _ = message.get_sparse_features("text")
    assert sequence.features.shape == (len(message.get("text_tokens")), EMBEDDING_DIM)
    assert sequence.features.shape[0] == sparse_sequence.features.shape[0]


def test_training_data_is_featurized_in_batches(
    pipeline: list[Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(CACHE_LOCATION_ENV, str(tmp_path))  # not the checkout's cache
    spacy_nlp, tokenizer, _, minilm = pipeline
    texts = ["What causes hyperpigmentation?", "Who is the treatment for?", "thanks"]
    training = TrainingData([Message(data={"text": t, "intent": "faq"}) for t in texts])
    training = tokenizer.process_training_data(spacy_nlp.process_training_data(training, spacy_nlp.provide()))
    minilm.process_training_data(training)
    expected = minilm.encoder.encode(texts)
    for message, embedding in zip(training.training_examples, expected):
        _, sentence = message.get_dense_features("text")
        np.testing.assert_allclose(sentence.features[0], embedding, atol=1e-5)


def train(pipeline: list[Any], texts: list[str]) -> TrainingData:
    """The texts' training examples, featurized as a training does."""
    spacy_nlp, tokenizer, _, minilm = pipeline
    training = TrainingData([Message(data={"text": t, "intent": "faq"}) for t in texts])
    training = tokenizer.process_training_data(spacy_nlp.process_training_data(training, spacy_nlp.provide()))
    return minilm.process_training_data(training)


@pytest.fixture
def encoded(pipeline: list[Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> list[list[str]]:
    """The texts the encoder is given, call by call, with Rasa's cache in tmp_path."""
    monkeypatch.setenv(CACHE_LOCATION_ENV, str(tmp_path))
    encoder, calls = pipeline[-1].encoder, []
    encode = encoder.encode
    monkeypatch.setattr(
        encoder, "encode", lambda texts, **kw: calls.append(list(texts)) or encode(texts, **kw)
    )
    return calls


def test_a_training_encodes_only_the_texts_no_training_encoded_before(
    pipeline: list[Any], encoded: list[list[str]], tmp_path: Path
) -> None:
    """One example added: one text encoded, not all of them again (Rasa's cache restores none)."""
    first = ["What causes hyperpigmentation?", "Who is the treatment for?"]
    train(pipeline, first)
    later = train(pipeline, [*first, "does acne cause hyperpigmentation then"])
    assert encoded == [first, ["does acne cause hyperpigmentation then"]]
    expected = pipeline[-1].encoder.encode([m.get("text") for m in later.training_examples])
    for message, embedding in zip(later.training_examples, expected):
        np.testing.assert_allclose(message.get_dense_features("text")[1].features[0], embedding, atol=1e-5)
    [kept] = tmp_path.rglob("*.npz")
    assert kept.parent.name == KEPT_EMBEDDINGS_FOLDER
    assert b"hyperpigmentation" not in kept.read_bytes()  # digests, not the examples' words


def test_an_example_taken_out_is_not_kept(pipeline: list[Any], encoded: list[list[str]]) -> None:
    """Staff took it out (it might hold someone's name): the next training drops its embedding."""
    train(pipeline, ["thanks", "my name is Petra Example"])
    train(pipeline, ["thanks"])
    train(pipeline, ["thanks", "my name is Petra Example"])
    assert encoded == [["thanks", "my name is Petra Example"], ["my name is Petra Example"]]


def test_a_damaged_file_of_kept_embeddings_is_encoded_again(
    pipeline: list[Any], encoded: list[list[str]], tmp_path: Path
) -> None:
    texts = ["What causes hyperpigmentation?", "thanks"]
    train(pipeline, texts)
    [kept] = tmp_path.rglob("*.npz")
    kept.write_bytes(b"not what was written")
    again = train(pipeline, texts)
    assert encoded == [texts, texts]
    assert all(m.get_dense_features("text")[1] is not None for m in again.training_examples)
    train(pipeline, texts)
    assert len(encoded) == 2  # the file was written whole again


def test_nothing_is_kept_when_rasas_cache_is_off(
    pipeline: list[Any], encoded: list[list[str]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(CACHE_SIZE_ENV, "0")
    train(pipeline, ["thanks"])
    train(pipeline, ["thanks"])
    assert encoded == [["thanks"], ["thanks"]] and list(tmp_path.rglob("*")) == []


def test_message_without_text_is_left_alone(pipeline: list[Any]) -> None:
    minilm = pipeline[-1]
    message = minilm.process([Message(data={"text": ""})])[0]
    assert message.get_dense_features("text") == (None, None)


def test_per_message_latency_is_reported(pipeline: list[Any], capsys: pytest.CaptureFixture[str]) -> None:
    spacy_nlp, tokenizer, _, minilm = pipeline
    template = tokenizer.process(
        spacy_nlp.process([Message(data={"text": TYPICAL_QUESTION})], spacy_nlp.provide())
    )[0]
    timings = []
    for i in range(60):
        message = Message(data=dict(template.data))
        start = time.perf_counter()
        minilm.process([message])
        if i >= 10:  # warm-up
            timings.append((time.perf_counter() - start) * 1000)
    with capsys.disabled():
        print(
            f"\nSentenceEmbeddingFeaturizer: {len(TYPICAL_QUESTION.split())}-word question, "
            f"median {statistics.median(timings):.1f} ms, "
            f"max {max(timings):.1f} ms per message"
        )


def test_a_draft_left_by_a_stopped_training_is_removed(
    pipeline: list[Any], encoded: list[list[str]], tmp_path: Path
) -> None:
    """A training stopped while writing leaves a draft; the next one removes it once an hour old."""
    train(pipeline, ["thanks"])
    [kept] = tmp_path.rglob("*.npz")
    stale, fresh = kept.with_name(f"{kept.stem}.1.2.npz"), kept.with_name(f"{kept.stem}.3.4.npz")
    stale.write_bytes(b"half written")
    fresh.write_bytes(b"being written")
    os.utime(stale, (time.time() - 7200, time.time() - 7200))
    train(pipeline, ["thanks", "hello"])
    assert not stale.exists() and fresh.exists() and kept.exists()
