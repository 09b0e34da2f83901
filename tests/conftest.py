"""Shared test fixtures: the project's domain and clinic settings, and live servers."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from xdist.scheduler import LoadFileScheduling

from common.domain import load_domain
from servers.launcher import Stack
from tests.helpers import METRICS_TOKEN, LiveAssistant, clinic_values, stack_config

# The longest test modules, longest first (`make test` prints the slowest tests). pytest-xdist
# hands out whole files by their number of tests, so the 6-test module that trains and publishes
# a model would start last and run alone at the end: 14 min instead of about 11 on 2 workers.
LONGEST_MODULES = [
    "tests/e2e/test_publish.py",
    "tests/e2e/test_console.py",
    "tests/e2e/test_console_stories.py",
    "tests/e2e/test_production.py",
    "tests/e2e/test_e2e.py",
    "tests/e2e/test_live_chat.py",
    "tests/e2e/test_web.py",
    "tests/e2e/test_review.py",
]


class LongestFirst(LoadFileScheduling):
    """pytest-xdist's whole-file scheduling, handing out LONGEST_MODULES first."""

    ordered = False

    def _assign_work_unit(self, node: Any) -> None:
        if not self.ordered:
            rank = {module: place for place, module in enumerate(LONGEST_MODULES)}
            self.workqueue = OrderedDict(
                sorted(self.workqueue.items(), key=lambda item: rank.get(item[0], len(rank)))
            )
            self.ordered = True
        super()._assign_work_unit(node)


def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> LoadFileScheduling | None:
    """`make test`'s `--dist loadfile`: the longest modules first, so the workers finish together."""
    return LongestFirst(config, log) if config.getvalue("dist") == "loadfile" else None


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

    def render(name: str, **values: str) -> str:
        """The response's first text with the clinic's values and these per-message ones."""
        return domain["responses"][name][0]["text"].format_map(KeepUnknown({**clinic_values(), **values}))

    return render


@pytest.fixture(scope="session")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveAssistant]:
    """One running assistant shared by the end-to-end tests."""
    tmp = tmp_path_factory.mktemp("live")
    log_path: Path = tmp / "servers.log"
    config = stack_config(tmp)
    # Every test visitor writes from 127.0.0.1, and a worker's modules share these servers: the
    # flood limit per address (120 a minute) is tested on servers of its own (test_security.py,
    # test_rate_limits.py); here it would refuse one test's visitors for another's messages.
    config.extra_env = {"MAX_MESSAGES_PER_MINUTE_PER_ADDRESS": "100000"}
    # Monitoring as an operator sets it up: /metrics behind a token, one JSON object a log line
    # (tests/e2e/test_e2e.py reads both; test_e2e_booking.py checks the lines hold no personal data).
    config.extra_env.update(METRICS_TOKEN=METRICS_TOKEN, LOG_FORMAT="json")
    with log_path.open("w") as log, Stack(config, log) as stack:
        yield LiveAssistant(stack, log_path)
