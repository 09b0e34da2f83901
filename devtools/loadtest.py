"""`make loadtest`: many visitors at once on the production profile, then check nothing was lost.

Starts throw-away PostgreSQL and Redis servers and two Rasa servers (each with its action
server) on loopback, as in production behind a load balancer: each visitor's messages go
to the two servers in turn, from an address of its own (X-Forwarded-For, as the reverse
proxy sends it), and continue the conversation whose id the first reply issued (valid on
both servers). Every visitor plays realistic conversations (questions, an unknown
question, a full booking) with pauses for reading and typing, until time is up.
Afterwards every answered message must be in PostgreSQL's conversation store and every
confirmed booking in its booking requests. Writes reports/loadtest.md and .json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import random
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

import aiohttp

from common.clinic import load_settings
from common.names import CONVERSATION_HEADER
from common.paths import REPORTS_DIR
from common.records import conversations
from common.records.bookings import BookingStore
from devtools.measure import percentile
from devtools.services import PostgresServer, RedisServer, production_configs
from servers.launcher import Stack

REPORTS = REPORTS_DIR
QUESTIONS = [
    "what is scar relaxation?",
    "how does it work",
    "how long before I see results",
    "who is it suitable for",
    "why has my scar gone dark",
    "what is PIH",
    "what are the benefits",
    "my c-section scar healed badly, what does that mean",
]
NAMES = ["Amara", "Ben", "Chloe", "Dev", "Elif", "Finn", "Grace", "Hiro"]
# Real surnames, not a marker word: an invented token such as "Loadtest" reads as off-topic to
# the classifier (p 0.8-0.96), so the form would ask again; real rare surnames do not.
SURNAMES = ["Okafor", "Nguyen", "Wojcik", "Haddad", "Lindqvist", "Brennan", "Takahashi", "Osei"]
UNKNOWN = ["how much does it cost", "does it hurt", "how many sessions will I need"]


def booking_script(day: date) -> list[str]:
    """A complete consultation request, consent included (the last message confirms it)."""
    return [
        "hello",
        "I'd like to book a consultation",
        f"{random.choice(NAMES)} {random.choice(SURNAMES)}",
        f"loadtest{random.randint(1, 9999)}@example.com",
        f"{day.day} {day:%B}",
        "morning",
        "skip",
        "/affirm",
        "/affirm",
    ]


def conversation(day: date) -> tuple[str, list[str]]:
    """One visitor's conversation: ("faq" | "booking", messages), drawn like real traffic."""
    if random.random() < 0.3:
        return "booking", booking_script(day)
    messages = ["hi", *random.sample(QUESTIONS, k=random.randint(2, 4)), random.choice(UNKNOWN)]
    return "faq", [*messages, "thanks, bye"]


@dataclass
class Results:
    """Everything the visitors saw: latencies, failures, and what the stores must now hold."""

    latencies_ms: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    answered: dict[str, int] = field(default_factory=dict)  # conversation -> messages answered (HTTP 200)
    bookings: list[str] = field(default_factory=list)  # references the visitors were given
    conversations: int = 0


async def visitor(
    session: aiohttp.ClientSession,
    urls: Sequence[str],
    deadline: float,
    results: Results,
    day: date,
    think: tuple[float, float],
    address: str,
) -> None:
    """Hold conversations one after another until the deadline, alternating servers per message."""
    await asyncio.sleep(random.uniform(0, think[1]))  # visitors arrive spread out, not in lockstep
    while time.monotonic() < deadline:
        kind, messages = conversation(day)
        conversation_id: str | None = None  # the server issues it with the first reply
        results.conversations += 1
        for turn, text in enumerate(messages):
            started = time.perf_counter()
            body_sent = (
                {"message": text} if conversation_id is None else {"sender": conversation_id, "message": text}
            )
            try:
                async with session.post(
                    urls[turn % len(urls)], json=body_sent, headers={"X-Forwarded-For": address}
                ) as reply:
                    body = await reply.json(content_type=None)
                    status = reply.status
                    issued = reply.headers.get(CONVERSATION_HEADER)
            except (aiohttp.ClientError, asyncio.TimeoutError, json.JSONDecodeError) as error:
                results.errors.append(f"{type(error).__name__} on turn {turn + 1}")
                break
            results.latencies_ms.append((time.perf_counter() - started) * 1000)
            if status != 200 or not body or not issued or conversation_id not in (None, issued):
                results.errors.append(f"HTTP {status}, {len(body or [])} messages on turn {turn + 1}")
                break
            conversation_id = issued
            results.answered[conversation_id] = results.answered.get(conversation_id, 0) + 1
            if kind == "booking" and turn == len(messages) - 1:
                reference = next(
                    (
                        m["text"].split("Your reference is ")[1][:11]
                        for m in body
                        if "Your reference is " in m.get("text", "")
                    ),
                    None,
                )
                if reference is None:
                    results.errors.append("booking not confirmed")
                else:
                    results.bookings.append(reference)
            await asyncio.sleep(random.uniform(*think))


def missing_from_stores(database_url: str, results: Results) -> tuple[int, int]:
    """(answered messages not in the conversation store, confirmed bookings not stored)."""
    store = BookingStore(database_url)
    stored = conversations.user_message_counts(store.engine)
    references = {row["reference"] for row in store.list()}
    lost_messages = sum(max(0, sent - stored.get(sender, 0)) for sender, sent in results.answered.items())
    return lost_messages, sum(1 for reference in results.bookings if reference not in references)


async def drive(
    urls: Sequence[str], visitors: int, duration: float, think: tuple[float, float], day: date
) -> tuple[Results, float]:
    """Run `visitors` concurrent visitors for `duration` seconds; return results and wall time."""
    results = Results()
    timeout = aiohttp.ClientTimeout(total=120)
    async with aiohttp.ClientSession(timeout=timeout, connector=aiohttp.TCPConnector(limit=0)) as session:
        started = time.monotonic()
        await asyncio.gather(
            *(
                visitor(session, urls, started + duration, results, day, think, f"198.51.100.{number + 1}")
                for number in range(visitors)
            )
        )
    return results, time.monotonic() - started


def report(results: Results, wall_s: float, lost: tuple[int, int], args: argparse.Namespace) -> dict:
    """The figures, as a dict (JSON) and a markdown table (printed and written to reports/)."""
    latencies = sorted(results.latencies_ms)
    figures = {
        "date": datetime.now().strftime("%Y-%m-%d %H:%M"),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores",
        "visitors": args.visitors,
        "duration_s": round(wall_s, 1),
        "rasa_servers": args.servers,
        "think_time_s": list(args.think),
        "conversations": results.conversations,
        "messages": len(latencies),
        "throughput_msg_per_s": round(len(latencies) / wall_s, 2),
        **{f"p{q}_ms": round(percentile(latencies, q), 1) if latencies else None for q in (50, 95, 99)},
        "max_ms": round(latencies[-1], 1) if latencies else None,
        "errors": len(results.errors),
        "error_kinds": sorted(set(results.errors)),
        "bookings_confirmed": len(results.bookings),
        "messages_lost": lost[0],
        "bookings_lost": lost[1],
    }
    rows = "\n".join(f"| {key.replace('_', ' ')} | {value} |" for key, value in figures.items())
    markdown = f"# Load test (`make loadtest`)\n\n| measure | value |\n|---|---|\n{rows}\n"
    REPORTS.mkdir(exist_ok=True)
    (REPORTS / "loadtest.md").write_text(markdown, encoding="utf-8")
    (REPORTS / "loadtest.json").write_text(json.dumps(figures, indent=2) + "\n", encoding="utf-8")
    print(markdown)
    return figures


def main(argv: list[str] | None = None) -> int:
    """Start the production-profile servers, run the visitors, check the stores; 1 if anything failed."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--visitors", type=int, default=50)
    parser.add_argument("--duration", type=float, default=150.0, help="seconds")
    parser.add_argument("--servers", type=int, default=2, help="Rasa servers sharing the stores")
    parser.add_argument(
        "--think",
        type=float,
        nargs=2,
        default=(2.0, 6.0),
        help="seconds a visitor pauses between messages (min max)",
    )
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args(argv)
    random.seed(args.seed)
    day = load_settings().next_open_day(date.today() + timedelta(days=3))
    log_path = REPORTS / "loadtest-servers.log"
    REPORTS.mkdir(exist_ok=True)
    with log_path.open("w") as log, PostgresServer() as postgres, RedisServer() as redis:
        # Behind the load balancer: each visitor's address comes from X-Forwarded-For.
        configs = production_configs(postgres, redis, args.servers, SANIC_PROXIES_COUNT="1")
        stacks = [Stack(config, log) for config in configs]
        try:
            for stack in stacks:
                stack.start()
            print(
                f"{args.visitors} visitors for {args.duration:.0f} s against {args.servers} Rasa servers...",
                flush=True,
            )
            urls = [f"{config.rasa_url}/webhooks/rest/webhook" for config in configs]
            results, wall_s = asyncio.run(drive(urls, args.visitors, args.duration, tuple(args.think), day))
        finally:
            for stack in stacks:
                stack.stop()
        figures = report(results, wall_s, missing_from_stores(postgres.url, results), args)
    failed = figures["errors"] or figures["messages_lost"] or figures["bookings_lost"]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
