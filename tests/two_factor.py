"""Codes of a test account's authenticator app, as the phone would show them (pyotp).

A code works once (the console refuses a code of a step already used), so tests that sign in
again within 30 seconds take the next step's code, which the console accepts for clock drift,
and wait only when that one is used too.
"""

from __future__ import annotations

import time

import pyotp

from staff.service import second_factor

STEP = second_factor.STEP_SECONDS


def next_code(secret: str, last_step: int | None) -> tuple[str, int]:
    """A code the console accepts now and its step: a step after `last_step`, never one behind."""
    current = int(time.time()) // STEP
    step = max(current, (last_step or 0) + 1)
    if step > current + second_factor.DRIFT_STEPS:  # both codes the console takes now are used
        time.sleep(max(0.0, (step - second_factor.DRIFT_STEPS) * STEP - time.time()) + 0.1)
    return pyotp.TOTP(secret).generate_otp(step), step


def secret_from_page(text: str) -> str:
    """The key the set-up page shows for typing (in groups of four), as one string."""
    return "".join(text.split())
