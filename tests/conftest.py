"""Shared test fixtures: the project's domain and clinic settings, and live servers."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from common.domain import load_domain
from servers.launcher import Stack
from tests.helpers import LiveAssistant, clinic_values, stack_config


@pytest.fixture(scope="session")
def domain() -> dict[str, Any]:
    """The domain (domain/*.yml merged) as the action server receives it."""
    return load_domain()


@pytest.fixture(scope="session")
def expected(domain: dict[str, Any]):
    """A function giving the text a visitor sees for a domain response, by its name."""

    class KeepUnknown(dict):
        def __missing__(self, key: str) -> str:  # per-message values, e.g. {reference}
            return "{" + key + "}"

    def render(name: str) -> str:
        return domain["responses"][name][0]["text"].format_map(KeepUnknown(clinic_values()))

    return render


@pytest.fixture(scope="session")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveAssistant]:
    """One running assistant shared by the end-to-end tests."""
    tmp = tmp_path_factory.mktemp("live")
    log_path: Path = tmp / "servers.log"
    with log_path.open("w") as log, Stack(stack_config(tmp), log) as stack:
        yield LiveAssistant(stack, log_path)
