"""The dialogue model (TED) loads in seconds instead of most of a minute: no training step to build it.

Rasa 3.6 rebuilds a saved TensorFlow model (rasa/utils/tensorflow/models.py `RasaModel.load`)
by training it on one example, to create its weights at the right sizes, then reads the saved
weights over them and traces the prediction graph once. That one training step runs as a
traced `tf.function`: tracing TED's whole training graph (loss, gradients, optimiser) took
40 of the Rasa server's 80 s start on 2 busy cores (py-spy), only for variables whose values
are then overwritten. `install()` (servers/chat.py, before Rasa starts) replaces that step by
one eager forward pass of the same training loss, which creates the same variables (no
gradients, no optimiser step), every one of them must take its saved value or the model is loaded Rasa's
way, and the prediction graph is still traced before the server answers: the first visitor's
answer is as quick as before and every prediction the same (weights and outputs compared with
Rasa's own load: identical, tests/unit/test_model_load.py; 50 s -> 9 s on 2 busy cores).
"""

from __future__ import annotations

import functools
import logging
from typing import Any

logger = logging.getLogger(__name__)


def install() -> None:
    """Patch RasaModel.load to build a model for prediction without tracing a training step."""
    from rasa.utils.tensorflow.models import RasaModel

    if getattr(RasaModel.load, "eager_build", False):
        return
    original = RasaModel.load.__func__

    @functools.wraps(original)
    def load(
        cls: type,
        model_file_name: str,
        model_data_example: Any,
        predict_data_example: Any = None,
        finetune_mode: bool = False,
        *args: Any,
        **kwargs: Any,
    ) -> Any:
        if finetune_mode:  # training goes on: Rasa's own way
            return original(
                cls, model_file_name, model_data_example, predict_data_example, finetune_mode, *args, **kwargs
            )
        try:
            return eager_load(cls, model_file_name, model_data_example, predict_data_example, *args, **kwargs)
        except Exception as error:  # never a half-loaded model (TEDPolicy.load would hide a ValueError)
            logger.warning(
                "Loading the dialogue model the quick way failed (%s); loading it as Rasa does.", error
            )
            return original(
                cls, model_file_name, model_data_example, predict_data_example, False, *args, **kwargs
            )

    load.eager_build = True  # type: ignore[attr-defined]
    load.rasa_load = original  # type: ignore[attr-defined]
    RasaModel.load = classmethod(load)  # type: ignore[method-assign,assignment]


def eager_load(
    cls: type,
    model_file_name: str,
    model_data_example: Any,
    predict_data_example: Any,
    *args: Any,
    **kwargs: Any,
) -> Any:
    """RasaModel.load (Rasa 3.6.21) for prediction: variables made by an eager forward pass."""
    import tensorflow as tf
    from rasa.utils.tensorflow.constants import LEARNING_RATE, RUN_EAGERLY
    from rasa.utils.tensorflow.data_generator import RasaBatchDataGenerator

    model = cls(*args, **kwargs)
    config = kwargs.get("config", {})
    model.compile(
        optimizer=tf.keras.optimizers.Adam(config.get(LEARNING_RATE, 0.001)),
        run_eagerly=config.get(RUN_EAGERLY),
    )
    # The layers' variables, made by one eager forward pass of the training loss (no gradients,
    # no optimiser step: the optimiser's own saved state is only for training on, not needed here).
    model._training = True
    model.batch_loss(RasaBatchDataGenerator(model_data_example, batch_size=1)[0][0])
    model._training = None
    # Every variable made above must take its saved value (else: Rasa's own way, in load above);
    # the optimiser's saved state is left unread on purpose.
    model.load_weights(model_file_name).assert_existing_objects_matched().expect_partial()
    if predict_data_example:  # trace the prediction graph now, not at a visitor's first message
        trace_prediction(model, predict_data_example)
    return model


def trace_prediction(model: Any, predict_data_example: Any) -> None:
    """Trace the model's prediction graph without AutoGraph's rewrite of its Python code.

    TED's prediction step has no Python `if` or loop on a tensor's value, so tracing it as
    written gives the graph AutoGraph would, without rewriting and compiling its source first
    (about 2 CPU-seconds of each Rasa server's start, py-spy). The function is made as Rasa's
    `batch_predict` makes it (the input signature of the first batch `run_inference` feeds it),
    on this model alone. Were tracing ever to refuse (a tensor used as a Python bool), the graph
    is traced with AutoGraph, as Rasa does.
    """
    import tensorflow as tf
    from rasa.utils.train_utils import create_data_generators

    if getattr(model, "_run_eagerly", False):  # nothing is traced: Rasa runs the step as written
        model.run_inference(predict_data_example)
        return
    batches, _ = create_data_generators(
        model_data=predict_data_example, batch_sizes=1, epochs=1, shuffle=False
    )
    first = next(iter(batches))[0]
    model._tf_predict_step = tf.function(
        model.predict_step, input_signature=model._dynamic_signature(first), autograph=False
    )
    try:
        model.run_inference(predict_data_example)
    except Exception as error:  # any refusal: trace it Rasa's way
        logger.info("Tracing the dialogue model without AutoGraph failed (%s); tracing it with it.", error)
        model._tf_predict_step = None
        model.run_inference(predict_data_example)
