"""Rasa's model server pulling: the published model, kept on disk, swapped in without a stall.

What visitors get is what the console's model server says is live (staff/service/models.py
`live`: the newest publication not withdrawn, else the assistant as installed), never simply
the newest file `make train` wrote. With a `models:` endpoint (endpoints.yml), Rasa 3.6
ignores `--model` and loads only what the model server returns (rasa/core/agent.py,
`load_agent` -> `load_from_server`), so this wraps `load_from_server`:

1. Before the first pull, load the model this server last got from the console, kept on disk
   (`kept_model`), or, on a first start, the model `make train` built (`settings.model`).
2. Ask the console with that model's SHA-256 as If-None-Match: 304 confirms it, 200 brings the
   live model (checked against its ETag, loaded, kept on disk for the next start).
3. If the console cannot be reached, keep serving and say in the log what is served and that
   it is not confirmed; ask again every `wait_time_between_pulls`.

A restart, a crash or `make run`'s training therefore never puts an unpublished model in
front of visitors while the console answers, and while it does not, a server that has ever
talked to it serves the last model the console gave it. `make run` starts the console before
the Rasa server (servers/launcher.py), and compose starts the Rasa servers once the console
is healthy.

Rasa loads a pulled model inside its event loop (`Agent.load_model`, several seconds), so
every visitor would wait while it loads. `pull_and_swap` replaces Rasa's
`_update_model_from_server`: the model is loaded in a worker thread, the running one answers
until it is ready, then the agent's parts are switched in one step of the event loop, as
`Agent.load_model` switches them.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import logging
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from common import model_archive
from common.settings import Settings

logger = logging.getLogger(__name__)

KEPT_DIR = "served"  # in MODEL_STORE_DIR: the last model each Rasa server got from the console
REQUEST_TIMEOUT_SECONDS = 120  # one download of a model archive (a few MB) from the console


@dataclass
class Serving:
    """What this server serves, for the log: its fingerprint, where it came from, and whether confirmed."""

    fingerprint: str | None = None
    source: str = "no model yet"
    confirmed: bool = False  # the console said this is the live model
    problem: str | None = None  # the last reason the console did not confirm it (logged once)


SERVING = Serving()
_KEPT: list[Path] = []  # this server's kept model (set by `install`)


def kept_model(settings: Settings) -> Path:
    """Where this server keeps the last model the console gave it.

    One file per database, model server and port: two stacks on one machine (tests, a
    second clinic) never start from each other's model.
    """
    key = f"{settings.database_url}|{settings.model_server_url}|{settings.rasa_port}"
    return settings.model_store_dir / KEPT_DIR / f"{hashlib.sha256(key.encode()).hexdigest()[:20]}.tar.gz"


def swap(agent: Any, processor: Any, fingerprint: str) -> None:
    """Give `agent` the loaded model, as `Agent.load_model` does (between two messages)."""
    from rasa.core.nlg import TemplatedNaturalLanguageGenerator

    agent.processor = processor
    agent.domain = processor.domain
    agent._set_fingerprint(fingerprint)
    agent.tracker_store.domain = agent.domain
    if isinstance(agent.nlg, TemplatedNaturalLanguageGenerator):
        agent.nlg.responses = agent.domain.responses if agent.domain else {}


def keep(archive: Path) -> None:
    """Copy the model the console gave into this server's kept file (whole, or not at all)."""
    if not _KEPT:
        return
    kept = _KEPT[0]
    try:
        kept.parent.mkdir(parents=True, exist_ok=True)
        draft = kept.with_suffix(f".{os.getpid()}.tmp")
        shutil.copyfile(archive, draft)
        draft.replace(kept)
    except OSError as error:  # a read-only disk must not stop the server: it only loses the fallback
        logger.warning(
            "Could not keep the published model on disk (%s): a restart will ask the console.", error
        )


def unconfirmed(problem: str) -> None:
    """Log, once per problem, that the console did not confirm the model served (and what is served)."""
    SERVING.confirmed = False
    if SERVING.problem != problem:
        SERVING.problem = problem
        logger.warning(
            "%s Serving %s (fingerprint %s), not confirmed as the published model; asking again.",
            problem,
            SERVING.source,
            (SERVING.fingerprint or "none")[:12],
        )


def confirmed() -> None:
    """Record (and log, when it changes) that the console confirmed the model served is the live one."""
    if not SERVING.confirmed:
        logger.info(
            "Serving the live model %s (%s), as the console says.",
            (SERVING.fingerprint or "")[:12],
            SERVING.source,
        )
    SERVING.confirmed, SERVING.problem = True, None


async def fetch(model_server: Any, fingerprint: str | None, directory: Path) -> tuple[Path, str] | None:
    """Ask the model server; the new archive and its SHA-256, or None (unchanged, or no answer)."""
    import aiohttp

    try:
        async with (
            model_server.session() as session,
            session.get(
                model_server.url,
                headers={"If-None-Match": fingerprint or ""},
                params=model_server.combine_parameters(),
                timeout=aiohttp.ClientTimeout(total=REQUEST_TIMEOUT_SECONDS),
            ) as reply,
        ):
            if reply.status in (204, 304):
                confirmed()
                return None
            if reply.status != 200:
                unconfirmed(f"The console's model server answered {reply.status}.")
                return None
            data = await reply.read()
            etag = reply.headers.get("ETag", "").strip('"')
    except (aiohttp.ClientError, asyncio.TimeoutError) as error:
        unconfirmed(f"The console's model server cannot be reached ({type(error).__name__}).")
        return None
    if hashlib.sha256(data).hexdigest() != etag:
        unconfirmed("The model the console sent does not match its fingerprint (damaged on the way).")
        return None
    archive = directory / "model.tar.gz"
    archive.write_bytes(data)
    return archive, etag


async def pull_and_swap(model_server: Any, agent: Any) -> None:
    """Ask the model server for the live model; load a new one beside the running one, then switch."""
    from rasa.core.processor import MessageProcessor
    from rasa.utils.common import TempDirectoryPath, get_temp_dir_name

    with TempDirectoryPath(get_temp_dir_name()) as directory:
        try:
            pulled = await fetch(model_server, agent.fingerprint, Path(directory))
            if pulled is None:
                return
            archive, fingerprint = pulled
            load = functools.partial(
                MessageProcessor,
                model_path=str(archive),
                tracker_store=agent.tracker_store,
                lock_store=agent.lock_store,
                action_endpoint=agent.action_endpoint,
                generator=agent.nlg,
                http_interpreter=agent.http_interpreter,
            )
            processor = await asyncio.get_running_loop().run_in_executor(None, load)
            swap(agent, processor, fingerprint)
            keep(archive)
            SERVING.fingerprint, SERVING.source, SERVING.confirmed = fingerprint, "sent by the console", False
            confirmed()
        except Exception:  # as Rasa: a bad model must never stop the server
            logger.exception("The published model could not be loaded; the current model stays.")


def install(settings: Settings) -> None:
    """Make Rasa start from the kept (else the installed) model, then take the console's live model."""
    from rasa.core import agent as rasa_agent

    kept = kept_model(settings)
    _KEPT[:] = [kept]

    async def load_kept_then_pull(agent: Any, model_server: Any) -> Any:
        if agent.processor is None:
            if kept.is_file():
                start, source = kept, "the last model the console gave this server (kept on disk)"
            else:
                start, source = settings.model, "the model make train built"
            if start.is_file():
                SERVING.fingerprint = model_archive.sha256(start)
                SERVING.source = source
                agent.load_model(str(start), fingerprint=SERVING.fingerprint)
                logger.info("Loaded %s; asking the console for the published model.", source)
        await pull_and_swap(model_server, agent)
        seconds = int(model_server.kwargs.get("wait_time_between_pulls", 100) or 0)
        if seconds:
            await rasa_agent._schedule_model_pulling(model_server, seconds, agent)
        return agent

    rasa_agent.load_from_server = load_kept_then_pull
    rasa_agent._update_model_from_server = pull_and_swap
