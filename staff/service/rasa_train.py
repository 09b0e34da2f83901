"""`rasa train` with the FAQ answers' words left out of the NLU training data: a reword retrains no NLU.

    python -m staff.service.rasa_train train ...   (what train_command runs, staff/service/train.py)

Rasa 3.6 (rasa/shared/importers/importer.py, `ResponsesSyncImporter.get_nlu_data`) merges the
domain's FAQ answers (`utter_faq/<key>`) into the NLU training data, for its ResponseSelector,
which this project does not use: components/linear_classifier.py learns only which answer
(`faq/<key>`), and the answer's words come from the domain when it is said (actions/topics.py).
Those words are part of the NLU data's fingerprint, so rewording one answer made Rasa retrain
every NLU component instead of restoring them from its cache (73 s instead of seconds on 2 busy
cores), and the featurizers built vocabularies for answers nothing reads.

`install()` makes that importer hand over the NLU data as read from data/ (the answers stay in
the domain, which Rasa's dialogue training and every check still read as before); then Rasa's
own command line runs. Rasa's data checks see the same examples and warnings either way
(tests/unit/test_rasa_train.py); the models' predictions were the same when this was built (300
of 300 held-out questions and 2,005 of 2,005 training examples, the same confidences), as the
featurizers learn the messages' words from the examples alone. If Rasa's internals are not what
this expects, it says so and trains Rasa's way: slower after a reword, never wrong.
"""

from __future__ import annotations

import functools
import logging
import sys
import warnings
from typing import Any

logger = logging.getLogger(__name__)
# Rasa's check of the NLU data (TrainingData.validate) would warn of each FAQ example that its
# answer's words are missing (for a ResponseSelector). Whether every FAQ answer exists is checked
# with the domain by `rasa data validate` and the project's checks (staff/service/validate.py).
MISSING_WORDS = r"Your training data contains an example .* You either need to add a response phrase"


def install() -> bool:
    """Keep the domain's answers out of the NLU training data; whether that could be done."""
    try:
        from rasa.shared.importers.importer import ResponsesSyncImporter
    except ImportError as error:
        logger.warning("Training as Rasa does: its importer could not be found (%s).", error)
        return False
    original = ResponsesSyncImporter.get_nlu_data
    if getattr(original, "without_answers", False):
        return True

    @functools.wraps(original)
    def get_nlu_data(self: Any, language: str | None = "en") -> Any:
        """The NLU data as the files hold it (without the domain's answers)."""
        inner = getattr(self, "_importer", None)
        if inner is None:  # not Rasa 3.6's importer: its own way
            return original(self, language)
        # Here, not at install: Rasa's command line sets its own warning filters first.
        warnings.filterwarnings("ignore", message=MISSING_WORDS, category=UserWarning)
        return inner.get_nlu_data(language)

    get_nlu_data.without_answers = True  # type: ignore[attr-defined]
    ResponsesSyncImporter.get_nlu_data = get_nlu_data  # type: ignore[method-assign]
    return True


def main(argv: list[str] | None = None) -> None:
    """Rasa's own command line (`rasa <argv>`) after `install()`; it exits as `rasa` does."""
    install()
    from rasa.__main__ import main as rasa_main

    sys.argv = ["rasa", *(sys.argv[1:] if argv is None else argv)]
    rasa_main()


if __name__ == "__main__":
    main()
