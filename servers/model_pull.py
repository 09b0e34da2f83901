"""Rasa's model server pulling, starting from the model `make train` built, swapping without a stall.

With a `models:` endpoint (endpoints.yml), Rasa 3.6 ignores `--model` and loads only what
the model server returns (rasa/core/agent.py, `load_agent` -> `load_from_server`): with the
console not yet up, or nothing to serve, a server would start with no model at all. This
wraps `load_from_server` so the local model is loaded first, with its SHA-256 as the
fingerprint; Rasa's own pull then sends it as If-None-Match and gets 304 while the console
serves that same model, 200 with the published one otherwise. Unreachable console, 404 or
a broken archive: Rasa keeps the model it has and asks again after `wait_time_between_pulls`.

Rasa loads a pulled model inside its event loop (`Agent.load_model`, several seconds), so
every visitor waits while it loads. `pull_and_swap` is Rasa's `_update_model_from_server`
with the loading done in a worker thread: the running model answers until the new one is
ready, then the agent's parts are switched in one step of the event loop, as
`Agent.load_model` switches them.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from pathlib import Path
from typing import Any

from common import model_archive

logger = logging.getLogger(__name__)


def swap(agent: Any, processor: Any, fingerprint: str) -> None:
    """Give `agent` the loaded model, as `Agent.load_model` does (between two messages)."""
    from rasa.core.nlg import TemplatedNaturalLanguageGenerator

    agent.processor = processor
    agent.domain = processor.domain
    agent._set_fingerprint(fingerprint)
    agent.tracker_store.domain = agent.domain
    if isinstance(agent.nlg, TemplatedNaturalLanguageGenerator):
        agent.nlg.responses = agent.domain.responses if agent.domain else {}


async def pull_and_swap(model_server: Any, agent: Any) -> None:
    """Ask the model server for a newer model; load it beside the running one, then switch."""
    import aiohttp
    from rasa.core import agent as rasa_agent
    from rasa.core.processor import MessageProcessor
    from rasa.nlu.utils import is_url
    from rasa.utils.common import TempDirectoryPath, get_temp_dir_name

    if not is_url(model_server.url):
        raise aiohttp.InvalidURL(model_server.url)
    with TempDirectoryPath(get_temp_dir_name()) as directory:
        try:
            fingerprint = await rasa_agent._pull_model_and_fingerprint(
                model_server, agent.fingerprint, directory
            )
            if not fingerprint:
                return
            load = functools.partial(
                MessageProcessor,
                model_path=directory,
                tracker_store=agent.tracker_store,
                lock_store=agent.lock_store,
                action_endpoint=agent.action_endpoint,
                generator=agent.nlg,
                http_interpreter=agent.http_interpreter,
            )
            processor = await asyncio.get_running_loop().run_in_executor(None, load)
            swap(agent, processor, fingerprint)
            logger.info("Now serving the published model %s.", fingerprint[:12])
        except Exception:  # as Rasa: a bad model must never stop the server
            logger.exception("The published model could not be loaded; the current model stays.")


def install(model: Path) -> None:
    """Make Rasa load `model` before its first pull, and load pulled models beside the running one."""
    from rasa.core import agent as rasa_agent

    pull_from_server = rasa_agent.load_from_server

    async def load_local_then_pull(agent: Any, model_server: Any) -> Any:
        if agent.processor is None and model.is_file():
            agent.load_model(str(model), fingerprint=model_archive.sha256(model))
            logger.info("Loaded %s; the model server may replace it with the published model.", model.name)
        return await pull_from_server(agent, model_server)

    rasa_agent.load_from_server = load_local_then_pull
    rasa_agent._update_model_from_server = pull_and_swap
