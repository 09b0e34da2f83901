"""clinic.yml: staff mistakes are reported clearly instead of shown to visitors."""

from __future__ import annotations

from pathlib import Path

import pytest

from common.clinic import load_settings, read_settings


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "clinic.yml"
    path.write_text(text)
    return path


def test_the_shipped_settings_are_complete() -> None:
    settings = load_settings()
    assert settings.phone and settings.email and settings.emergency_number


def test_a_missing_value_is_named(tmp_path: Path) -> None:
    path = write(
        tmp_path, 'name: A\nphone: ""\nemail: a@b.test\nhours: x\naddress: y\nemergency_number: "999"\n'
    )
    with pytest.raises(ValueError, match="phone"):
        read_settings(path)


def test_a_misspelt_setting_is_named(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        'name: A\nphone: "1"\nemail: a@b.test\nhours: x\naddress: y\n'
        'emergency_number: "999"\nphonenumber: "2"\n',
    )
    with pytest.raises(ValueError, match="phonenumber"):
        read_settings(path)
