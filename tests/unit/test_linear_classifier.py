"""The linear classifier picks intents and FAQ answers as Rasa's own classifiers report them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from rasa.engine.graph import ExecutionContext
from rasa.engine.storage.local_model_storage import LocalModelStorage
from rasa.engine.storage.resource import Resource
from rasa.nlu.featurizers.sparse_featurizer.count_vectors_featurizer import CountVectorsFeaturizer
from rasa.nlu.tokenizers.whitespace_tokenizer import WhitespaceTokenizer
from rasa.shared.nlu.training_data.message import Message
from rasa.shared.nlu.training_data.training_data import TrainingData

from components.linear_classifier import LinearIntentClassifier
from components.sentence_embeddings import SentenceEmbeddingFeaturizer

EXAMPLES: list[tuple[str, str]] = [
    ("hello", "greet"),
    ("hi there", "greet"),
    ("good morning", "greet"),
    ("hey", "greet"),
    ("bye", "goodbye"),
    ("see you later", "goodbye"),
    ("goodbye for now", "goodbye"),
    ("cheers, bye", "goodbye"),
    ("how does the treatment work", "faq/how_it_works"),
    ("what happens during scar relaxation", "faq/how_it_works"),
    ("how does micro-needling work on scars", "faq/how_it_works"),
    ("explain the procedure", "faq/how_it_works"),
    ("why do scars go dark", "faq/pih_causes"),
    ("what makes a scar turn brown", "faq/pih_causes"),
    ("why is my scar darker than my skin", "faq/pih_causes"),
    ("what causes dark marks after a wound", "faq/pih_causes"),
]
CLASSIFIER = Resource("linear_classifier")  # its own folder in the model storage
RESPONSES = {
    "utter_faq/how_it_works": [{"text": "It works like this."}],
    "utter_faq/pih_causes": [{"text": "Scars darken because..."}],
}


def message(text: str, label: str = "") -> Message:
    """A message with a text and, for training, its intent (FAQ answers as `faq/<key>`)."""
    data: dict[str, Any] = {"text": text}
    if label:
        intent, _, key = label.partition("/")
        data["intent"] = intent
        if key:
            data["intent_response_key"] = label
    return Message(data=data)


@pytest.fixture(scope="module")
def context(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """What Rasa hands a component when it creates one."""
    return {
        "model_storage": LocalModelStorage(tmp_path_factory.mktemp("storage")),
        "resource": Resource("linear_classifier_test"),
        "execution_context": ExecutionContext(graph_schema=None, node_name="test_node"),
    }


@pytest.fixture(scope="module")
def featurizers(context: dict[str, Any]) -> list[Any]:
    """Whitespace tokens, word counts (alias words) and MiniLM (alias minilm), trained on EXAMPLES."""
    tokenizer = WhitespaceTokenizer.create(WhitespaceTokenizer.get_default_config(), **context)
    words = CountVectorsFeaturizer.create(
        {**CountVectorsFeaturizer.get_default_config(), "alias": "words"}, **context
    )
    minilm = SentenceEmbeddingFeaturizer.create(
        {**SentenceEmbeddingFeaturizer.get_default_config(), "alias": "minilm"}, **context
    )
    data = tokenizer.process_training_data(TrainingData([message(t, label) for t, label in EXAMPLES]))
    words.train(data)
    return [tokenizer, words, minilm]


def featurized(featurizers: list[Any], messages: list[Message]) -> list[Message]:
    tokenizer, words, minilm = featurizers
    return minilm.process(words.process(tokenizer.process(messages)))


@pytest.fixture(scope="module")
def classifier(featurizers: list[Any], context: dict[str, Any]) -> LinearIntentClassifier:
    config = {**LinearIntentClassifier.get_default_config(), "feature_weights": {"minilm": 2.0, "words": 0.5}}
    component = LinearIntentClassifier.create(config, **{**context, "resource": CLASSIFIER})
    examples = featurized(featurizers, [message(t, label) for t, label in EXAMPLES])
    component.train(TrainingData(examples, responses=RESPONSES))
    return component


def predict(classifier: LinearIntentClassifier, featurizers: list[Any], text: str) -> Message:
    return classifier.process(featurized(featurizers, [message(text)]))[0]


def test_unseen_paraphrase_gets_its_faq_answer(
    classifier: LinearIntentClassifier, featurizers: list[Any]
) -> None:
    result = predict(classifier, featurizers, "how come my scar has gone brown")
    assert result.get("intent")["name"] == "faq"
    selected = result.get("response_selector")["faq"]
    assert selected["response"]["intent_response_key"] == "faq/pih_causes"
    assert selected["response"]["utter_action"] == "utter_faq/pih_causes"
    # No words (the domain's are said, actions/topics.py), neither the answer's name: even though
    # this training data held the answers' words, the model carries none of them.
    assert selected["response"]["responses"] == []
    assert result.get("response_selector")["all_retrieval_intents"] == ["faq"]


def test_other_intents_and_the_ranking(classifier: LinearIntentClassifier, featurizers: list[Any]) -> None:
    result = predict(classifier, featurizers, "hiya, good afternoon")
    ranking = result.get("intent_ranking")
    assert result.get("intent") == ranking[0] and ranking[0]["name"] == "greet"
    assert [r["name"] for r in ranking].count("faq") == 1  # the answers are summed into one faq intent
    assert sum(r["confidence"] for r in ranking) == pytest.approx(1.0, abs=1e-5)
    confidences = [r["confidence"] for r in ranking]
    assert confidences == sorted(confidences, reverse=True)


def test_answer_confidences_are_given_faq(classifier: LinearIntentClassifier, featurizers: list[Any]) -> None:
    # The ResponseSelector's meaning, which the guard and the "did you mean" buttons rely on.
    result = predict(classifier, featurizers, "what is the procedure like")
    answers = result.get("response_selector")["faq"]["ranking"]
    assert {a["intent_response_key"] for a in answers} == {"faq/how_it_works", "faq/pih_causes"}
    assert sum(a["confidence"] for a in answers) == pytest.approx(1.0, abs=1e-5)
    assert answers[0]["intent_response_key"] == "faq/how_it_works"
    assert result.get("response_selector")["faq"]["response"]["confidence"] == answers[0]["confidence"]


def test_stored_as_arrays_and_loaded_back_the_same(
    classifier: LinearIntentClassifier, featurizers: list[Any], context: dict[str, Any]
) -> None:
    with context["model_storage"].read_from(CLASSIFIER) as directory:
        assert sorted(p.name for p in Path(directory).iterdir()) == ["meta.json", "weights.npz"]
    loaded = LinearIntentClassifier.load(classifier.config, **{**context, "resource": CLASSIFIER})
    for text in ("why do scars go dark", "see ya", "tell me about micro-needling"):
        a, b = predict(classifier, featurizers, text), predict(loaded, featurizers, text)
        assert a.get("intent_ranking") == b.get("intent_ranking")
        assert a.get("response_selector") == b.get("response_selector")


def test_message_without_features_gets_no_intent(classifier: LinearIntentClassifier) -> None:
    result = classifier.process([Message(data={"text": ""})])[0]
    assert result.get("intent") == {"name": None, "confidence": 0.0}
    assert result.get("intent_ranking") == []


def test_missing_featurizer_counts_as_zeros(
    classifier: LinearIntentClassifier, featurizers: list[Any]
) -> None:
    # A model trained with a featurizer that a message lacks still predicts, from the others.
    tokenizer, words, _ = featurizers
    only_words = classifier.process(words.process(tokenizer.process([message("goodbye for now")])))[0]
    ranking = only_words.get("intent_ranking")
    assert {r["name"] for r in ranking} == {"greet", "goodbye", "faq"}
    assert sum(r["confidence"] for r in ranking) == pytest.approx(1.0, abs=1e-5)
    with_all = predict(classifier, featurizers, "goodbye for now").get("intent_ranking")
    assert ranking != with_all


def test_weights_change_the_prediction(featurizers: list[Any], context: dict[str, Any]) -> None:
    # "bye" is a goodbye by its words; with words weighted out only the embedding decides.
    examples = featurized(featurizers, [message(t, label) for t, label in EXAMPLES])
    scores = {}
    for name, weights in {
        "words": {"minilm": 0.0, "words": 1.0},
        "minilm": {"minilm": 1.0, "words": 0.0},
    }.items():
        component = LinearIntentClassifier.create(
            {**LinearIntentClassifier.get_default_config(), "feature_weights": weights},
            **{**context, "resource": Resource(f"weights_{name}")},
        )
        component.train(TrainingData(examples, responses=RESPONSES))
        ranking = predict(component, featurizers, "farewell, take care").get("intent_ranking")
        scores[name] = next(r["confidence"] for r in ranking if r["name"] == "goodbye")
    assert scores["words"] != pytest.approx(scores["minilm"], abs=1e-3)
    assert scores["minilm"] > scores["words"]  # no training word in common: only meaning can tell


@pytest.mark.parametrize(
    "config", [{"C": 0}, {"feature_weights": {"minilm": -1}}, {"nearest_examples_weight": -1}]
)
def test_bad_settings_are_refused(config: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        LinearIntentClassifier.validate_config({**LinearIntentClassifier.get_default_config(), **config})


def test_probabilities_are_a_softmax() -> None:
    from components.linear_classifier import softmax

    p = softmax(np.array([1000.0, 1000.0, 0.0]))
    np.testing.assert_allclose(p, [0.5, 0.5, 0.0], atol=1e-9)


@pytest.fixture(scope="module")
def with_nearest(featurizers: list[Any], context: dict[str, Any]) -> LinearIntentClassifier:
    """The classifier with nearest-example features by the MiniLM embedding."""
    config = {
        **LinearIntentClassifier.get_default_config(),
        "feature_weights": {"minilm": 2.0, "words": 0.5},
        "nearest_examples": "minilm",
    }
    component = LinearIntentClassifier.create(config, **{**context, "resource": Resource("nearest")})
    component.train(
        TrainingData(
            featurized(featurizers, [message(t, label) for t, label in EXAMPLES]), responses=RESPONSES
        )
    )
    return component


def test_nearest_examples_leave_each_training_example_out(
    with_nearest: LinearIntentClassifier, featurizers: list[Any]
) -> None:
    examples = featurized(featurizers, [message(t, label) for t, label in EXAMPLES])
    features = [with_nearest._sentence_features(e) for e in examples]
    training_rows = with_nearest._nearest_for_training(features, [label for _, label in EXAMPLES]).toarray()
    own = [with_nearest.classes.index(label) for _, label in EXAMPLES]
    # In training an example never finds itself; a message identical to it at run time does.
    assert all(row[c] < 0.99 for row, c in zip(training_rows, own))
    _, label = EXAMPLES[0]
    embedding = with_nearest._embedding(features[0])
    at_run_time = with_nearest._nearest(with_nearest.examples @ embedding)
    assert at_run_time[with_nearest.classes.index(label)] == pytest.approx(1.0, abs=1e-5)


def test_nearest_examples_are_stored_and_loaded(
    with_nearest: LinearIntentClassifier, featurizers: list[Any], context: dict[str, Any]
) -> None:
    assert with_nearest.examples.shape == (len(EXAMPLES), 384)
    loaded = LinearIntentClassifier.load(with_nearest.config, **{**context, "resource": Resource("nearest")})
    np.testing.assert_array_equal(loaded.examples, with_nearest.examples)
    for text in ("why has my scar darkened", "cya"):
        assert predict(loaded, featurizers, text).get("intent_ranking") == predict(
            with_nearest, featurizers, text
        ).get("intent_ranking")
    assert (
        predict(loaded, featurizers, "why has my scar darkened").get("response_selector")["faq"]["response"][
            "intent_response_key"
        ]
        == "faq/pih_causes"
    )


def test_nearest_examples_without_that_featurizer_is_a_clear_error(
    featurizers: list[Any], context: dict[str, Any]
) -> None:
    config = {**LinearIntentClassifier.get_default_config(), "nearest_examples": "no_such_alias"}
    component = LinearIntentClassifier.create(config, **{**context, "resource": Resource("misnamed")})
    examples = featurized(featurizers, [message(t, label) for t, label in EXAMPLES])
    with pytest.raises(ValueError, match="no_such_alias"):
        component.train(TrainingData(examples, responses=RESPONSES))
