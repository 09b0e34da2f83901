"""Rasa's own command line, loading the dialogue model as the product's servers do.

`python -m devtools.rasa_cli test core --e2e --stories ...` is `rasa test core ...` with
servers/model_load.py installed first: Rasa's test runner, story reader and reports, with TED
built for prediction without tracing a training step and its prediction graph traced without
AutoGraph, as every chat server and candidate evaluation loads it. Measured on tests/stories
(2026-12-05): the same reports (every figure equal, the same failed stories), 14 s instead of
27 s. The conversation tests (tests/helpers.py `run_stories`) run it.
"""

from __future__ import annotations

from servers import model_load


def main() -> None:
    """Install the quick load, then hand the command line to Rasa's main."""
    model_load.install()
    from rasa.__main__ import main as rasa_main

    rasa_main()


if __name__ == "__main__":
    main()
