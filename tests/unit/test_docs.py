"""The documentation: the site builds strictly, the README stays short, the pictures are the tests' own.

The strict build is a test rather than part of `make lint` so that `make test-fast` (the edit
loop) and `make test` (CI) both catch a broken link or a missing page, as the data checks do
for the training data; lint stays ruff's.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

from PIL import Image, ImageDraw

from common.paths import PROJECT_ROOT
from tests import screenshots

DOCS = PROJECT_ROOT / "docs"
README = PROJECT_ROOT / "README.md"
STAFF_PAGES = sorted(p for p in (DOCS / "staff").glob("*.md") if p.name != "terminal.md")
# What staff must never meet outside the terminal appendix (COMMON: pages free of internals).
INTERNALS = re.compile(r"utter_|faq/|action_|make |\.yml|\byaml\b|`|\b[0-9a-f]{7,}\b|(^|\s)/[a-z_]+\b", re.I)
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)|src=\"([^\"]+)\"")


def build(root: Path, site: Path) -> subprocess.CompletedProcess[str]:
    """`mkdocs build --strict` of the project at `root` into `site`."""
    return subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(site)],
        cwd=root,
        capture_output=True,
        text=True,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
        timeout=300,
    )


def test_the_site_builds_strictly(tmp_path: Path) -> None:
    done = build(PROJECT_ROOT, tmp_path / "site")
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "site" / "staff" / "index.html").exists()
    assert (tmp_path / "site" / "security" / "index.html").exists()


def test_a_broken_link_or_anchor_fails_the_build(tmp_path: Path) -> None:
    copy = tmp_path / "project"
    shutil.copytree(DOCS, copy / "docs")
    shutil.copy(PROJECT_ROOT / "mkdocs.yml", copy / "mkdocs.yml")
    page = copy / "docs" / "staff" / "today.md"
    page.write_text(page.read_text() + "\nSee [the old guide](../staff-guide.md).\n")
    done = build(copy, tmp_path / "site")
    assert done.returncode != 0 and "staff-guide.md" in done.stderr
    page.write_text(page.read_text().replace("../staff-guide.md", "live.md#no-such-heading"))
    done = build(copy, tmp_path / "site")
    assert done.returncode != 0 and "no-such-heading" in done.stderr


def test_the_readme_is_short_and_every_link_in_it_resolves() -> None:
    assert README.stat().st_size < 12 * 1024
    found = LINK.findall(README.read_text(encoding="utf-8"))
    targets = [link or image for link, image in found if "://" not in (link or image)]
    assert any(t.startswith("docs/screenshots/") for t in targets), "the README shows the pictures"
    assert any(t.startswith("docs/staff/") for t in targets), "the README links into the documentation"
    missing = [t for t in targets if not (PROJECT_ROOT / t.split("#")[0]).exists()]
    assert missing == []


def test_the_screenshots_are_exactly_those_the_browser_tests_take() -> None:
    committed = {p.name for p in screenshots.DOCS_SHOTS.glob("*")}
    assert committed == set(screenshots.SHOTS), "a stale picture, or one no test has taken yet"
    calls = "\n".join(p.read_text(encoding="utf-8") for p in (PROJECT_ROOT / "tests" / "e2e").glob("*.py"))
    taken = set(re.findall(r"screenshots\.take\(.*?\"([\w-]+\.png)\"", calls, re.S))
    assert taken == set(screenshots.SHOTS)


def test_every_screenshot_is_shown_in_the_documentation() -> None:
    pages = "\n".join(p.read_text(encoding="utf-8") for p in [README, *DOCS.rglob("*.md")])
    assert [name for name in screenshots.SHOTS if f"screenshots/{name}" not in pages] == []


def test_the_staff_pages_speak_plainly() -> None:
    found = {
        page.name: [m.group(0) for m in INTERNALS.finditer(page.read_text(encoding="utf-8"))]
        for page in STAFF_PAGES
    }
    assert {name: hits for name, hits in found.items() if hits} == {}


Box = tuple[int, int, int, int]


def picture(path: Path, size: tuple[int, int] = (200, 100), box: Box | None = None) -> Path:
    """A white picture, with a black box if given."""
    image = Image.new("RGB", size, "white")
    if box:
        ImageDraw.Draw(image).rectangle(box, fill="black")
    image.save(path)
    return path


def test_a_screenshot_is_replaced_only_when_the_page_looks_different(tmp_path: Path) -> None:
    old = picture(tmp_path / "old.png")
    assert not screenshots.differs(picture(tmp_path / "same.png"), old)
    # 66 pixels, as a new time or reference: not replaced
    assert not screenshots.differs(picture(tmp_path / "time.png", box=(10, 10, 20, 15)), old)
    assert screenshots.differs(picture(tmp_path / "table.png", box=(0, 0, 100, 50)), old)  # a quarter changed
    assert screenshots.differs(picture(tmp_path / "taller.png", size=(200, 120)), old)
    assert screenshots.differs(old, tmp_path / "absent.png")
