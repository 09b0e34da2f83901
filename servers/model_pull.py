"""Rasa's model server pulling, starting from the model `make train` built.

With a `models:` endpoint (endpoints.yml), Rasa 3.6 ignores `--model` and loads only what
the model server returns (rasa/core/agent.py, `load_agent` -> `load_from_server`): with the
console not yet up, or nothing to serve, a server would start with no model at all. This
wraps `load_from_server` so the local model is loaded first, with its SHA-256 as the
fingerprint; Rasa's own pull then sends it as If-None-Match and gets 304 while the console
serves that same model, 200 with the published one otherwise. Unreachable console, 404 or
a broken archive: Rasa keeps the model it has and asks again after `wait_time_between_pulls`.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from common import model_archive

logger = logging.getLogger(__name__)


def install(model: Path) -> None:
    """Make Rasa load `model` before its first pull from the model server."""
    from rasa.core import agent as rasa_agent

    pull_from_server = rasa_agent.load_from_server

    async def load_local_then_pull(agent: Any, model_server: Any) -> Any:
        if agent.processor is None and model.is_file():
            agent.load_model(str(model), fingerprint=model_archive.sha256(model))
            logger.info("Loaded %s; the model server may replace it with the published model.", model.name)
        return await pull_from_server(agent, model_server)

    rasa_agent.load_from_server = load_local_then_pull
