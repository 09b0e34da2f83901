"""Rasa's own data validation must pass, as `make validate` runs it."""

from __future__ import annotations

import os
import subprocess

from common.paths import DOMAIN_DIR, PROJECT_ROOT, RASA_PROGRAM


def test_rasa_data_validate_passes_with_fail_on_warnings() -> None:
    result = subprocess.run(
        [str(RASA_PROGRAM), "data", "validate", "--fail-on-warnings", "--domain", str(DOMAIN_DIR)],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        env={**os.environ, "RASA_TELEMETRY_ENABLED": "false", "TF_CPP_MIN_LOG_LEVEL": "3"},
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
