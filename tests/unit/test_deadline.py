"""The action deadline (common/deadline.py): the header, its check, and a commit it stops.

The end-to-end proof (a paused action server resumed after the visitor was told "couldn't
finish" stores and sends nothing) is tests/e2e/test_turn_truth.py.
"""

from __future__ import annotations

import contextvars
from datetime import date
from pathlib import Path

import pytest

from common import deadline
from common.records.bookings import BookingRequest, BookingStore
from common.settings import COMMIT_MARGIN_SECONDS

REQUEST = BookingRequest(
    name="Dee Adline",
    contact="dee@example.com",
    contact_type="email",
    preferred_date=date(2026, 12, 1),
    time_of_day="morning",
    scar="",
)


def test_the_header_names_the_moment_the_rasa_server_gives_up() -> None:
    assert deadline.header(5, clock=lambda: 1000.0) == {deadline.DEADLINE_HEADER: "1005.000"}
    assert deadline.parse("1005.000") == 1005.0


@pytest.mark.parametrize("value", [None, "", "soon", "nan", "inf", "-inf"])
def test_a_missing_or_bad_header_sets_no_deadline(value: str | None) -> None:
    assert deadline.parse(value) is None


def test_too_late_once_less_than_the_margin_is_left() -> None:
    assert not deadline.too_late(moment=None)  # nobody waits: never too late
    assert not deadline.too_late(moment=1005.0, clock=lambda: 1005.0 - COMMIT_MARGIN_SECONDS - 0.01)
    assert deadline.too_late(moment=1005.0, clock=lambda: 1005.0 - COMMIT_MARGIN_SECONDS + 0.01)
    assert deadline.too_late(moment=1005.0, clock=lambda: 2000.0)


def test_a_request_is_not_stored_once_its_deadline_has_passed(tmp_path: Path) -> None:
    store = BookingStore(f"sqlite:///{tmp_path / 'clinic.db'}")

    def late() -> None:
        deadline.set_current(1.0)  # 1970: long gone
        with pytest.raises(deadline.DeadlinePassed):
            store.save(REQUEST, "visitor-1", before_commit=deadline.check)

    contextvars.copy_context().run(late)
    assert store.list() == [], "rolled back: nothing stored"

    def in_time() -> tuple[str, bool]:
        deadline.set_current(None)
        return store.save(REQUEST, "visitor-1", before_commit=deadline.check)

    reference, created = contextvars.copy_context().run(in_time)
    assert created and [row["reference"] for row in store.list()] == [reference]
