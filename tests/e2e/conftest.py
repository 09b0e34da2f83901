"""Fixtures the browser tests share.

Playwright driving Debian's Chromium, one per test module, and the console's stack, one per test
run (tests/e2e/console_site.py).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser, Playwright, sync_playwright

from tests.e2e.console_site import Site, running_site
from tests.helpers import CHROMIUM, CHROMIUM_FLAGS


@pytest.fixture(scope="session")
def console_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    """The console's stack, started once per test run for every module that imports its fixtures."""
    with running_site(tmp_path_factory) as site:
        yield site


@pytest.fixture(scope="module")
def playwright() -> Iterator[Playwright]:
    """Playwright's driver (its own browsers cannot be downloaded here; Debian's Chromium is used)."""
    with sync_playwright() as driver:
        yield driver


@pytest.fixture(scope="module")
def browser(playwright: Playwright) -> Iterator[Browser]:
    """Debian's Chromium, headless."""
    if not CHROMIUM.exists():
        pytest.fail(
            f"{CHROMIUM} is missing. Install Debian's Chromium: "
            "`sudo apt-get update && sudo apt-get install -y chromium` "
            "(`playwright install` cannot download browsers here)."
        )
    chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_FLAGS)
    yield chromium
    chromium.close()
