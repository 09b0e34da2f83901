"""Screenshots for the documentation, taken by the browser tests where a page shows realistic content.

Every browser test run writes each shot to var/screenshots/ (not in git) and replaces the one in
docs/screenshots/ only when the page looks different: another size, or more than
`CHANGED_SHARE` of its pixels changed. A new time, date or booking reference changes a few hundred
pixels and leaves git clean; a changed page (a new button, a moved table) refreshes the picture
the documentation shows. SHOTS is the one list of pictures: tests/unit/test_docs.py checks that
docs/screenshots/ holds exactly these (a picture no test takes any more is stale) and that the
documentation uses each of them.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from PIL import Image, ImageChops
from playwright.sync_api import Locator, Page

from common.paths import PROJECT_ROOT, VAR_DIR

DOCS_SHOTS = PROJECT_ROOT / "docs" / "screenshots"
RUN_SHOTS = VAR_DIR / "screenshots"
# Share of pixels that must differ before a committed screenshot is replaced.
CHANGED_SHARE = 0.02

# Each picture, by file name, with the test that takes it (tests/e2e/...).
SHOTS = {
    "widget-phone.png": "test_web.py: the chat's greeting on a phone",
    "widget.png": "test_web.py: the chat panel with its topic buttons",
    "widget-source.png": "test_web.py: an answer's document sentences shown on a phone",
    "today.png": "test_console.py: an admin's Today page",
    "today-phone.png": "test_console.py: the Today page on a phone",
    "bookings.png": "test_console.py: the list of new consultation requests",
    "booking-request.png": "test_console.py: one request with its follow-up log",
    "unanswered.png": "test_console.py: Unanswered questions with a visitor's question to decide",
    "answer-check.png": "test_console.py: an answer refused as you type",
    "history.png": "test_console.py: one staff change, before and after",
    "live.png": "test_live_chat.py: the Live page chatting with a visitor",
    "check-and-publish.png": "test_console.py: Check and publish, with the version visitors get",
}


def differs(new: Path, old: Path) -> bool:
    """Whether `new` looks different from `old`: another size, or more than CHANGED_SHARE of pixels."""
    if not old.exists():
        return True
    with Image.open(new) as a, Image.open(old) as b:
        if a.size != b.size:
            return True
        diff = ImageChops.difference(a.convert("RGB"), b.convert("RGB")).convert("L")
        changed = sum(diff.point(lambda value: 255 if value > 16 else 0).histogram()[255:])
        return changed > CHANGED_SHARE * a.size[0] * a.size[1]


def take(target: Page | Locator, name: str, *, full_page: bool = False) -> Path:
    """Screenshot a page (or one part of it) as `name`; refresh docs/screenshots/ if it looks different.

    Returns this run's copy (var/screenshots/), which tests may keep as an artefact.
    """
    assert name in SHOTS, f"{name} is not in tests/screenshots.py SHOTS"
    RUN_SHOTS.mkdir(parents=True, exist_ok=True)
    shot = RUN_SHOTS / name
    if isinstance(target, Page):
        target.evaluate("window.scrollTo(0, 0)")  # the page's top, with its navigation, whatever has focus
        target.screenshot(path=str(shot), full_page=full_page, animations="disabled", caret="hide")
    else:
        target.screenshot(path=str(shot), animations="disabled", caret="hide")
    if differs(shot, DOCS_SHOTS / name):
        DOCS_SHOTS.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(shot, DOCS_SHOTS / name)
    return shot
