"""The clinic's settings (clinic.yml): the one file staff edit, never code."""

from __future__ import annotations

import os
from dataclasses import dataclass, fields
from functools import lru_cache
from pathlib import Path

import yaml

PROJECT_ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class ClinicSettings:
    """Contact details and booking options shown to visitors."""

    name: str
    phone: str
    email: str
    hours: str
    address: str
    emergency_number: str
    booking_link: str = ""


def settings_path() -> Path:
    """clinic.yml in the project, or the file named by CLINIC_SETTINGS."""
    return Path(os.environ.get("CLINIC_SETTINGS", PROJECT_ROOT / "clinic.yml"))


@lru_cache(maxsize=1)
def load_settings(path: Path | None = None) -> ClinicSettings:
    """Read and check clinic.yml; a missing value is an error, not a blank answer."""
    raw = yaml.safe_load((path or settings_path()).read_text(encoding="utf-8")) or {}
    known = {f.name for f in fields(ClinicSettings)}
    unknown = sorted(set(raw) - known)
    if unknown:
        raise ValueError(f"clinic.yml: unknown setting(s) {unknown}; known: {sorted(known)}")
    values = {key: "" if value is None else str(value).strip() for key, value in raw.items()}
    missing = [f.name for f in fields(ClinicSettings) if f.name != "booking_link" and not values.get(f.name)]
    if missing:
        raise ValueError(f"clinic.yml: please fill in {missing}")
    return ClinicSettings(**values)
