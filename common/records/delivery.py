"""Sending stored requests, and withdrawals of erased ones, to the clinic's booking system.

The booking system (optional JSON webhook, `booking_webhook_url` in clinic.yml) receives
two kinds of message, told apart by `event`:

* "requested": a new consultation request. The visitor typed the contact details and
  nobody has checked them (`contact_verified: false`): the team should confirm them
  before relying on them.
* "withdrawn": the visitor (or staff, on their behalf) erased a request the booking system
  may hold: it should delete it. Only the reference is sent.

A failed delivery never loses anything: the request (or the withdrawal notice) stays
stored and marked undelivered, and `make bookings-deliver` (or the next run of this)
retries it. A request erased while its delivery was under way is not sent.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from datetime import timezone
from typing import Any

import aiohttp

from common import metrics, settings
from common.records.bookings import BookingStore

logger = logging.getLogger(__name__)

ATTEMPTS = 3
FIRST_BACKOFF_SECONDS = 0.5
TIMEOUT_SECONDS = 10
UNVERIFIED = "Typed by a website visitor and not checked: please confirm before relying on them."
WITHDRAWN = "The visitor asked for their data to be erased: please delete this request and its details."


def payload(row: dict[str, Any]) -> dict[str, Any]:
    """The JSON the booking system receives for a new request."""
    return {
        "event": "requested",
        "reference": row["reference"],
        "name": row["name"],
        "contact": row["contact"],
        "contact_type": row["contact_type"],
        "contact_verified": False,
        "contact_note": UNVERIFIED,
        "preferred_date": row["preferred_date"].isoformat(),
        "latest_date": row["latest_date"].isoformat() if row.get("latest_date") else None,
        "weekdays": [d for d in (row.get("weekdays") or "").split(",") if d],
        "time_of_day": row["time_of_day"],
        "flexible": bool(row.get("flexible")),
        "availability": row.get("availability") or "",
        "understood": row.get("understood") or "",  # the days as read back, alternatives included
        "scar": row["scar"],
        "created_at": row["created_at"].isoformat(),
    }


def withdrawal_payload(row: dict[str, Any]) -> dict[str, Any]:
    """The JSON the booking system receives for an erased request: its reference, nothing personal."""
    withdrawn_at = row["withdrawn_at"]
    if withdrawn_at.tzinfo is None:  # SQLite gives back naive UTC times
        withdrawn_at = withdrawn_at.replace(tzinfo=timezone.utc)
    return {
        "event": "withdrawn",
        "reference": row["reference"],
        "withdrawn_at": withdrawn_at.isoformat(),
        "note": WITHDRAWN,
    }


async def post_once(
    session: aiohttp.ClientSession, url: str, body: dict[str, Any], idempotency_key: str
) -> str | None:
    """POST one message; return None on success, else a short error without personal data."""
    headers = {"Idempotency-Key": idempotency_key}
    token = settings.current().booking_webhook_token
    if token:
        headers["Authorization"] = f"Bearer {token}"
    try:
        async with session.post(url, json=body, headers=headers) as response:
            return None if 200 <= response.status < 300 else f"HTTP {response.status}"
    except (aiohttp.ClientError, asyncio.TimeoutError) as error:
        return type(error).__name__


async def _with_retries(
    send: Callable[[aiohttp.ClientSession], Awaitable[str | None]],
    record: Callable[[str | None], None],
    still_wanted: Callable[[], bool],
    label: str,
    attempts: int,
    backoff: float,
    kind: str = "request",
) -> bool:
    """Try `send` up to `attempts` times with exponential backoff, recording every attempt.

    `kind` ("request" or "withdrawal") names what was delivered in the figures (common/metrics.py).
    """
    timeout = aiohttp.ClientTimeout(total=TIMEOUT_SECONDS)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        for attempt in range(attempts):
            if not still_wanted():
                return False
            error = await send(session)
            record(error)
            if error is None:
                logger.info("%s delivered", label)
                metrics.REQUESTS_DELIVERED.labels(kind=kind).inc()
                return True
            metrics.WEBHOOK_FAILURES.inc()
            logger.warning("%s not delivered (%s), attempt %d", label, error, attempt + 1)
            if attempt + 1 < attempts:
                await asyncio.sleep(backoff * 2**attempt)
    return False


async def deliver(
    store: BookingStore,
    url: str,
    row: dict[str, Any],
    attempts: int = ATTEMPTS,
    backoff: float = FIRST_BACKOFF_SECONDS,
) -> bool:
    """Try to deliver one request with exponential backoff; record every attempt.

    Stops as soon as the request has been erased: an erased request is never sent.
    """
    reference = row["reference"]
    return await _with_retries(
        lambda session: post_once(session, url, payload(row), reference),
        lambda error: store.record_delivery(reference, error),
        lambda: store.get(reference) is not None,
        f"Booking request {reference}",
        attempts,
        backoff,
    )


async def deliver_withdrawal(
    store: BookingStore,
    url: str,
    row: dict[str, Any],
    attempts: int = ATTEMPTS,
    backoff: float = FIRST_BACKOFF_SECONDS,
) -> bool:
    """Tell the booking system an erased request is withdrawn; record every attempt."""
    reference = row["reference"]
    return await _with_retries(
        lambda session: post_once(session, url, withdrawal_payload(row), f"{reference}-withdrawn"),
        lambda error: store.record_withdrawal_delivery(reference, error),
        lambda: True,
        f"Withdrawal of {reference}",
        attempts,
        backoff,
        kind="withdrawal",
    )


async def deliver_pending(store: BookingStore, url: str) -> tuple[int, int]:
    """Retry every undelivered request and withdrawal; return (delivered, pending) counts."""
    requests, withdrawals = store.undelivered(), store.pending_withdrawals()
    delivered = [await deliver(store, url, row) for row in requests]
    delivered += [await deliver_withdrawal(store, url, row) for row in withdrawals]
    return sum(delivered), len(requests) + len(withdrawals)
