"""Fixtures the browser tests share.

Playwright driving Debian's Chromium, one per test module; the console's stack
(tests/e2e/console_site.py) and the production profile's (tests/e2e/production_site.py), each
started once per test run for its family of modules (tests/conftest.py FAMILIES).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser, Playwright, expect, sync_playwright

from tests.e2e.console_site import Site, running_site
from tests.e2e.production_site import Production, PublishProject, publish_project, running_production
from tests.helpers import BROWSER_TIMEOUT_MS, CHROMIUM, CHROMIUM_FLAGS, CHROMIUM_PACKAGE

# Playwright's expect(...) waits as long as the pages' own calls (its 5 s is short on a busy machine).
expect.set_options(timeout=BROWSER_TIMEOUT_MS)


@pytest.fixture(scope="session")
def console_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    """The console's stack, started once per test run for every module that imports its fixtures."""
    with running_site(tmp_path_factory) as site:
        yield site


@pytest.fixture(scope="session", name="publish_project")
def shared_publish_project(tmp_path_factory: pytest.TempPathFactory) -> PublishProject:
    """The project test_publish.py trains from, and its model store (the production console's too)."""
    return publish_project(tmp_path_factory.mktemp("publish"))


@pytest.fixture(scope="session")
def production(
    tmp_path_factory: pytest.TempPathFactory, publish_project: PublishProject
) -> Iterator[Production]:
    """The production profile's stack, started once per test run (test_production.py, test_publish.py)."""
    with running_production(tmp_path_factory.mktemp("production"), publish_project) as started:
        yield started


@pytest.fixture(scope="module")
def playwright() -> Iterator[Playwright]:
    """Playwright's driver (its own browsers cannot be downloaded here; Debian's Chromium is used)."""
    with sync_playwright() as driver:
        yield driver


@pytest.fixture(scope="module")
def browser(playwright: Playwright) -> Iterator[Browser]:
    """Debian's Chromium, headless (its headless build)."""
    if not CHROMIUM.exists():
        pytest.fail(
            f"{CHROMIUM} is missing. Install Debian's Chromium: "
            f"`sudo apt-get update && sudo apt-get install -y {CHROMIUM_PACKAGE}` "
            "(`playwright install` cannot download browsers here)."
        )
    chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_FLAGS)
    yield chromium
    chromium.close()
