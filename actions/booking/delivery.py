"""Sending a stored request to the clinic's booking system (optional JSON webhook).

A failed delivery never loses a request: it stays stored and marked undelivered, and
`make bookings-deliver` (or the next run of this) retries it.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import aiohttp

from actions.booking.store import BookingStore
from common import settings

logger = logging.getLogger(__name__)

ATTEMPTS = 3
FIRST_BACKOFF_SECONDS = 0.5
TIMEOUT_SECONDS = 10


def payload(row: dict[str, Any]) -> dict[str, Any]:
    """The JSON the booking system receives."""
    return {
        "reference": row["reference"],
        "name": row["name"],
        "contact": row["contact"],
        "contact_type": row["contact_type"],
        "preferred_date": row["preferred_date"].isoformat(),
        "latest_date": row["latest_date"].isoformat() if row.get("latest_date") else None,
        "weekdays": [d for d in (row.get("weekdays") or "").split(",") if d],
        "time_of_day": row["time_of_day"],
        "flexible": bool(row.get("flexible")),
        "availability": row.get("availability") or "",
        "scar": row["scar"],
        "created_at": row["created_at"].isoformat(),
    }


async def post_once(session: aiohttp.ClientSession, url: str, row: dict[str, Any]) -> str | None:
    """POST one request; return None on success, else a short error without personal data."""
    headers = {"Idempotency-Key": row["reference"]}
    token = settings.current().booking_webhook_token
    if token:
        headers["Authorization"] = f"Bearer {token}"
    try:
        async with session.post(url, json=payload(row), headers=headers) as response:
            return None if 200 <= response.status < 300 else f"HTTP {response.status}"
    except (aiohttp.ClientError, asyncio.TimeoutError) as error:
        return type(error).__name__


async def deliver(
    store: BookingStore,
    url: str,
    row: dict[str, Any],
    attempts: int = ATTEMPTS,
    backoff: float = FIRST_BACKOFF_SECONDS,
) -> bool:
    """Try to deliver one request with exponential backoff; record every attempt."""
    timeout = aiohttp.ClientTimeout(total=TIMEOUT_SECONDS)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        for attempt in range(attempts):
            error = await post_once(session, url, row)
            store.record_delivery(row["reference"], error)
            if error is None:
                logger.info("Booking request %s delivered", row["reference"])
                return True
            logger.warning(
                "Booking request %s not delivered (%s), attempt %d", row["reference"], error, attempt + 1
            )
            if attempt + 1 < attempts:
                await asyncio.sleep(backoff * 2**attempt)
    return False


async def deliver_pending(store: BookingStore, url: str) -> int:
    """Retry every undelivered request; return how many got through."""
    results = [await deliver(store, url, row) for row in store.undelivered()]
    return sum(results)
