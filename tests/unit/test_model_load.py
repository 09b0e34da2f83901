"""The dialogue model built the quick way (servers/model_load.py) is the model Rasa's own load gives."""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import pytest

from common.paths import MODEL
from servers import model_load


def test_the_quick_load_gives_the_same_weights_and_predictions_as_rasas_own(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """Each load of the trained model's TED is done both ways; every weight and output must match.

    The quick way traces the prediction graph without AutoGraph (it did not fall back to it).
    """
    from rasa.core.agent import Agent
    from rasa.utils.tensorflow.models import RasaModel

    original = getattr(RasaModel.load, "rasa_load", RasaModel.load.__func__)  # Rasa's, even if installed
    compared: list[tuple[dict[str, Any], dict[str, Any], dict[str, Any], dict[str, Any]]] = []

    def both(
        cls: type,
        path: str,
        model_data: Any,
        predict_data: Any = None,
        finetune_mode: bool = False,
        **kwargs: Any,
    ) -> Any:
        rasas = original(cls, path, model_data, predict_data, finetune_mode, **kwargs)
        quick = model_load.eager_load(cls, path, model_data, predict_data, **kwargs)
        weights = [{v.name: v.numpy() for v in model.weights} for model in (rasas, quick)]
        outputs = [model.run_inference(predict_data) for model in (rasas, quick)]
        compared.append((*weights, *outputs))
        assert quick._tf_predict_step is not None  # traced before the first visitor, as Rasa does
        assert quick._tf_predict_step._autograph is False  # without AutoGraph (TF 2.12's attribute)
        return quick

    monkeypatch.setattr(RasaModel, "load", classmethod(both))
    with caplog.at_level(logging.INFO, logger=model_load.__name__):
        Agent.load(str(MODEL))
    assert compared, "the model has no TED policy to compare"
    assert "without AutoGraph failed" not in caplog.text
    for rasas_weights, quick_weights, rasas_outputs, quick_outputs in compared:
        assert rasas_weights.keys() == quick_weights.keys()
        for name, value in rasas_weights.items():
            np.testing.assert_array_equal(quick_weights[name], value, err_msg=name)
        for key, value in rasas_outputs.items():
            if isinstance(value, np.ndarray):
                np.testing.assert_array_equal(quick_outputs[key], value, err_msg=key)


def test_installing_twice_patches_once() -> None:
    """servers/chat.py and the console's evaluation both install it; the second is a no-op."""
    from rasa.utils.tensorflow.models import RasaModel

    model_load.install()
    patched = RasaModel.load
    model_load.install()
    assert RasaModel.load.__func__ is patched.__func__
    assert getattr(RasaModel.load, "eager_build", False)
