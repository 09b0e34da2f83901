"""The project's Python (docs/deploy/index.md, "Python 3.11").

Rasa 3.6 is installed on 3.11 despite its declared <3.11, and `make install` replaces an older
clone's venv (made by 3.10, or by a Python that is gone) instead of silently keeping it.
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import tomli
from packaging.specifiers import SpecifierSet

from common.paths import PROJECT_ROOT


def python(version: str) -> str | None:
    """An interpreter of this `major.minor` version on this machine, found as the Makefile finds one."""
    candidates = [f"/usr/bin/python{version}", shutil.which(f"python{version}") or ""]
    candidates += glob.glob(os.path.expanduser(f"~/.pyenv/versions/{version}*/bin/python{version}"))
    for candidate in candidates:
        if candidate and os.access(candidate, os.X_OK):
            check = [
                candidate,
                "-c",
                f"import sys; assert sys.version_info[:2] == ({version.replace('.', ', ')})",
            ]
            if subprocess.run(check, capture_output=True).returncode == 0:
                return candidate
    return None


def test_pyproject_allows_python_3_11_and_this_python() -> None:
    project = tomli.loads((PROJECT_ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    allowed = SpecifierSet(project["requires-python"])
    assert "3.11.2" in allowed  # Debian bookworm's python3.11
    assert "3.12.0" not in allowed  # not checked with Rasa 3.6
    assert ".".join(map(str, sys.version_info[:3])) in allowed


def old_venv(kind: str, where: Path) -> Path:
    """A venv like an older clone's: made by Python 3.10, or pointing at a Python that is gone."""
    venv = where / ".venv"
    if kind == "3.10":
        python310 = python("3.10")
        if python310 is None:
            pytest.skip("no Python 3.10 on this machine")
        subprocess.run([python310, "-m", "venv", "--without-pip", str(venv)], check=True)
    else:
        (venv / "bin").mkdir(parents=True)
        (venv / "bin" / "python").symlink_to(where / "pyenv" / "versions" / "3.10.13" / "bin" / "python3.10")
    (venv / ".installed").touch()  # it was a complete install then
    return venv


@pytest.mark.parametrize("kind", ["3.10", "gone"])
def test_make_install_replaces_a_venv_of_another_python(kind: str, tmp_path: Path) -> None:
    if python("3.11") is None:
        pytest.skip("no Python 3.11 on this machine")
    venv = old_venv(kind, tmp_path)
    make = ["make", "--no-print-directory", "-C", str(PROJECT_ROOT), f"VENV={venv}", "BUILD_PACKAGES="]
    # The first step of `make install`: the venv's interpreter (the packages are not installed here).
    result = subprocess.run([*make, f"{venv}/.python-3.11"], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert f"Replacing {venv}" in result.stdout and "this project needs 3.11" in result.stdout
    assert not (venv / ".installed").exists(), "the old install's stamp survived: packages would be kept"
    version = subprocess.run(
        [str(venv / "bin" / "python"), "-c", "import sys; print(sys.version_info[:2])"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert version.stdout.strip() == "(3, 11)"
    # Once replaced, `make install` would go on to install the packages into it.
    dry_run = subprocess.run([*make, "-n", f"{venv}/.installed"], capture_output=True, text=True, check=True)
    assert "--ignore-requires-python -r requirements.txt" in dry_run.stdout
