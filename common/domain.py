"""The assistant's domain: the YAML files in domain/, read and merged as Rasa merges them.

Rasa trains from the whole directory (`rasa train --domain domain`); staff edit the FAQ
answers in domain/faq.yml, the booking conversation in domain/booking.yml and the rest in
domain/conversation.yml. Every tool finds the domain through this module.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any

from common import yamlio
from common.paths import DOMAIN_DIR

# Keys whose values are lists (concatenated) or mappings (merged) across the files.
_LIST_KEYS = ("intents", "entities", "actions")


def domain_files(directory: Path = DOMAIN_DIR) -> list[Path]:
    """The domain's YAML files, in a stable order."""
    return sorted(directory.glob("*.yml"))


def merge(parts: list[dict[str, Any]]) -> dict[str, Any]:
    """One domain from several files: lists joined, mappings merged, other values from the last."""
    merged: dict[str, Any] = {}
    for part in parts:
        for key, value in (part or {}).items():
            if key in _LIST_KEYS:
                merged.setdefault(key, []).extend(value or [])
            elif isinstance(value, dict):
                merged.setdefault(key, {}).update(value)
            else:
                merged[key] = value
    return merged


def read_domain(directory: Path = DOMAIN_DIR) -> dict[str, Any]:
    """The merged domain of the files in `directory`."""
    return merge([yamlio.load(path.read_text(encoding="utf-8")) or {} for path in domain_files(directory)])


@lru_cache(maxsize=1)
def load_domain() -> dict[str, Any]:
    """The project's merged domain, read once per process: shared, so copy it before changing it."""
    return read_domain()
