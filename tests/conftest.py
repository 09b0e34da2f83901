"""Shared test fixtures: the project's domain and clinic settings, and live servers."""

from __future__ import annotations

import os

# One thread per process for the numeric libraries, in this process and every server and command
# the tests start (they inherit the environment), set before any of them is imported. A test run
# keeps both cores busy with its two workers and their servers; each library's own pool of one
# thread per core then only waits for a core and spins while it waits. Measured on test_web.py:
# its Rasa server 19 CPU-seconds with the pools, 14 without, the same replies. The product's
# servers keep the libraries' defaults.
for _pool in (
    "OMP_NUM_THREADS",  # scikit-learn's OpenMP
    "OPENBLAS_NUM_THREADS",  # numpy's and scipy's BLAS (MiniLM, the classifier)
    "MKL_NUM_THREADS",
    "TF_NUM_INTRAOP_THREADS",  # TensorFlow (the dialogue policy)
    "TF_NUM_INTEROP_THREADS",
):
    os.environ.setdefault(_pool, "1")

import functools
import shutil
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from xdist.scheduler import LoadFileScheduling

from common.domain import load_domain
from common.paths import CLINIC_YML, PROJECT_ROOT
from common.settings import page_origins
from servers.launcher import Stack, free_port
from tests import zygote
from tests.helpers import METRICS_TOKEN, LiveAssistant, clinic_values, stack_config

# The longest work units (a module or a FAMILIES family), longest first, for a run with no
# figures of its own yet (a fresh clone): pytest-xdist hands out whole files by their number of
# tests, so a 2-test module that restarts servers five times would start last and run alone at
# the end. After a run, each unit's measured seconds (UNIT_SECONDS in pytest's cache) order the
# next run instead: the longest first, each worker taking the next when it is free.
LONGEST_MODULES = [  # as measured 2026-12-06 (night): 261, 148, 122, 92, 59, 55, 47, 41 s ...
    "tests/e2e/test_publish.py",
    "tests/e2e/test_console_stories.py",
    "tests/e2e/test_console.py",
    "tests/e2e/test_e2e.py",
    "tests/e2e/test_turn_truth.py",
    "tests/e2e/test_backups_restored.py",
    "tests/e2e/test_publish_restart.py",
    "tests/e2e/test_sign_in_burst.py",
    "tests/unit/test_rasa_validate.py",
    "tests/unit/test_model_load.py",
    "tests/e2e/test_faults.py",
    "tests/e2e/test_conversations.py",
]
UNIT_SECONDS = "clinic/unit_seconds"  # pytest cache key: {work unit: seconds of its tests}
# Module families that share one session-wide stack (`live` below; tests/e2e/conftest.py:
# `console_stack`, and `production`): each family is handed to one worker as a whole, named by one
# of its modules, so its stack starts once per run instead of once per module or worker (a module's
# tests run in file order, the modules in name order). Their tests keep apart by their own visitors
# and staff names.
# The console's modules are two families, each starting its own console stack on the worker that
# runs it (one stack when both go to the same worker): test_console.py alone (186 s of tests
# alone on a busy machine) and the other four (242 s, their own stack's start included); as one
# unit (716 s before its sign-ins stopped waiting for the authenticator's clock) it was most of
# a worker's share.
FAMILIES = {
    "tests/e2e/test_console_handles.py": "tests/e2e/test_console_stories.py",
    "tests/e2e/test_console_second_factor.py": "tests/e2e/test_console_stories.py",
    "tests/e2e/test_live_chat.py": "tests/e2e/test_console_stories.py",
    "tests/e2e/test_production.py": "tests/e2e/test_publish.py",
    "tests/e2e/test_booking_abuse.py": "tests/e2e/test_e2e.py",
    "tests/e2e/test_conversation_ids.py": "tests/e2e/test_e2e.py",
    "tests/e2e/test_e2e_booking.py": "tests/e2e/test_e2e.py",
    "tests/e2e/test_erasure.py": "tests/e2e/test_e2e.py",
    "tests/e2e/test_privacy.py": "tests/e2e/test_e2e.py",
    "tests/e2e/test_security.py": "tests/e2e/test_e2e.py",
    "tests/e2e/test_web.py": "tests/e2e/test_e2e.py",
}


class LongestFirst(LoadFileScheduling):
    """pytest-xdist's whole-file scheduling, handing out LONGEST_MODULES first."""

    ordered = False

    def _split_scope(self, nodeid: str) -> str:
        """A test's work unit: its module, or the family (FAMILIES) the module belongs to."""
        module = super()._split_scope(nodeid)
        return FAMILIES.get(module, module)

    def _assign_work_unit(self, node: Any) -> None:
        if not self.ordered:
            cache = getattr(self.config, "cache", None)  # None with -p no:cacheprovider
            measured = cache.get(UNIT_SECONDS, {}) if cache else {}
            rank = {module: place for place, module in enumerate(LONGEST_MODULES)}

            def longest_first(unit: str) -> tuple[float, int]:
                if measured:  # the last run's seconds (a unit new since then: last)
                    return (-float(measured.get(unit, 0.0)), 0)
                return (0.0, rank.get(unit, len(rank)))

            self.workqueue = OrderedDict(
                sorted(self.workqueue.items(), key=lambda item: longest_first(item[0]))
            )
            self.ordered = True
        super()._assign_work_unit(node)


def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> LoadFileScheduling | None:
    """`make test`'s `--dist loadfile`: the longest modules first, so the workers finish together."""
    return LongestFirst(config, log) if config.getvalue("dist") == "loadfile" else None


def work_unit(nodeid: str) -> str:
    """The scheduler's unit of a test: its module, or the family (FAMILIES) the module is in."""
    module = nodeid.split("::", 1)[0]
    return FAMILIES.get(module, module)


# On the controller of an xdist run: seconds of tests per work unit and per worker (`make test`
# prints the workers' and keeps the units' for the next run's order).
UNIT_TIMES: dict[str, float] = {}
WORKER_TIMES: dict[str, float] = {}


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    """Add a test's setup, call and teardown seconds to its unit and (xdist) its worker."""
    worker = getattr(getattr(report, "node", None), "gateway", None)
    if worker is None:  # not a worker's report on the controller
        return
    UNIT_TIMES[work_unit(report.nodeid)] = UNIT_TIMES.get(work_unit(report.nodeid), 0.0) + report.duration
    WORKER_TIMES[worker.id] = WORKER_TIMES.get(worker.id, 0.0) + report.duration


# Every stack this process started: the module that started it, with a console or not, the
# seconds until it answered and the seconds it took to stop. `make test` ends with the count
# (the workers' lists are gathered).
STACK_STARTS: list[dict[str, Any]] = []
# How long a test stack may take to answer unless the test says otherwise (the launcher's own 180 s
# is for `make run`): a stack shared by a family fails every test of the family if its start does,
# and a Rasa server took over 180 s to start on 2 cores shared with 6 other test runs.
START_TIMEOUT_S = 360.0


def timed(start: Callable[..., Stack]) -> Callable[..., Stack]:
    """Stack.start, recording each start in STACK_STARTS (with START_TIMEOUT_S unless given)."""

    @functools.wraps(start)
    def record(self: Stack, *args: Any, **kwargs: Any) -> Stack:
        if not args and "timeout" not in kwargs:
            kwargs["timeout"] = START_TIMEOUT_S
        began = time.monotonic()
        try:
            return start(self, *args, **kwargs)
        finally:
            STACK_STARTS.append(
                {
                    "module": os.environ.get("PYTEST_CURRENT_TEST", "?").split("::")[0],
                    "console": bool(self.config.console_port),
                    "seconds": round(time.monotonic() - began, 1),
                    "stop": 0.0,
                }
            )
            self._started_record = STACK_STARTS[-1]  # type: ignore[attr-defined]

    return record


def timed_stop(stop: Callable[..., None]) -> Callable[..., None]:
    """Stack.stop, adding its seconds to the start it ends."""

    @functools.wraps(stop)
    def record(self: Stack) -> None:
        began = time.monotonic()
        try:
            stop(self)
        finally:
            started = getattr(self, "_started_record", None)
            if started is not None:
                started["stop"] = round(started["stop"] + time.monotonic() - began, 1)

    return record


Stack.start = timed(Stack.start)  # type: ignore[method-assign]
Stack.stop = timed_stop(Stack.stop)  # type: ignore[method-assign]


def pytest_sessionfinish(session: pytest.Session) -> None:
    """A worker hands its stack starts to the controller; the controller keeps the units' seconds."""
    if hasattr(session.config, "workeroutput"):
        session.config.workeroutput["stack_starts"] = STACK_STARTS
    elif UNIT_TIMES and getattr(session.config, "cache", None) is not None:  # a partial run: its units
        kept = session.config.cache.get(UNIT_SECONDS, {})
        session.config.cache.set(UNIT_SECONDS, {**kept, **{u: round(s, 1) for u, s in UNIT_TIMES.items()}})


def pytest_testnodedown(node: Any, error: Any) -> None:
    """On the controller: gather a worker's stack starts."""
    STACK_STARTS.extend(getattr(node, "workeroutput", {}).get("stack_starts", []))


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """Each worker's seconds of tests; how many stacks (Rasa + action server) started, their wait."""
    if hasattr(terminalreporter.config, "workeroutput"):
        return
    if WORKER_TIMES:
        terminalreporter.section("workers")
        terminalreporter.write_line(
            "seconds of tests per worker (even is best): "
            + ", ".join(f"{worker} {seconds:.0f} s" for worker, seconds in sorted(WORKER_TIMES.items()))
        )
        longest = sorted(UNIT_TIMES.items(), key=lambda item: -item[1])[:8]
        terminalreporter.write_line(
            "longest units: " + ", ".join(f"{u.split('/')[-1]} {s:.0f} s" for u, s in longest)
        )
    if not STACK_STARTS:
        return
    by_module: dict[str, list[dict[str, Any]]] = {}
    for start in STACK_STARTS:
        by_module.setdefault(start["module"], []).append(start)
    started = sum(start["seconds"] for start in STACK_STARTS)
    stopped = sum(start["stop"] for start in STACK_STARTS)
    consoles = sum(start["console"] for start in STACK_STARTS)
    write = terminalreporter.write_line
    terminalreporter.section("servers started")
    write(
        f"{len(STACK_STARTS)} stacks (a Rasa server each; {consoles} with a console): "
        f"{started:.0f} s until ready, {stopped:.0f} s stopping"
    )
    for module, starts in sorted(by_module.items(), key=lambda item: -sum(s["seconds"] for s in item[1])):
        ready, stop = sum(s["seconds"] for s in starts), sum(s["stop"] for s in starts)
        write(f"{ready:6.0f} s ready {stop:5.0f} s stop  {len(starts)} x  {module}")


@pytest.fixture(scope="session", autouse=True)
def forked_servers() -> Iterator[None]:
    """The stacks' servers forked from one process per worker that imported their libraries once.

    tests/zygote.py says why and how; TEST_FORK_SERVERS=0 starts each with `python -m` instead,
    in the whole run or (in its StackConfig.extra_env) one stack's. Forked, a server has every
    preloaded library already imported, so an import the product forgot would go unnoticed:
    test_security's servers and test_sign_in_burst's consoles start as real commands.
    """
    if os.environ.get("TEST_FORK_SERVERS", "1") == "0":
        yield
        return
    spawn_normally = Stack._spawn

    def spawn(stack: Stack, command: list[str]) -> Any:
        if stack.environment.get("TEST_FORK_SERVERS") == "0":  # this stack's servers as commands
            return spawn_normally(stack, command)
        return zygote.shared().spawn(command, PROJECT_ROOT, stack.environment, stack.log)

    Stack._spawn = spawn  # type: ignore[method-assign]
    try:
        yield
    finally:
        Stack._spawn = spawn_normally  # type: ignore[method-assign]
        zygote.stop_shared()


@pytest.fixture(scope="session")
def domain() -> dict[str, Any]:
    """The domain (domain/*.yml merged) as the action server receives it."""
    return load_domain()


@pytest.fixture(scope="session")
def expected(domain: dict[str, Any]):
    """A function giving the text a visitor sees for a domain response, by its name."""

    class KeepUnknown(dict):
        def __missing__(self, key: str) -> str:  # per-message values, e.g. {reference}
            return "{" + key + "}"

    def render(name: str, **values: str) -> str:
        """The response's first text with the clinic's values and these per-message ones."""
        return domain["responses"][name][0]["text"].format_map(KeepUnknown({**clinic_values(), **values}))

    return render


@pytest.fixture(scope="session")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveAssistant]:
    """One running assistant shared by the end-to-end tests."""
    tmp = tmp_path_factory.mktemp("live")
    log_path: Path = tmp / "servers.log"
    config = stack_config(tmp)
    # The demo page with the chat widget too (tests/e2e/test_web.py), and the clinic's settings in a
    # copy of clinic.yml, which a module may change for its own tests (LiveAssistant.clinic_changed).
    config.web_port = free_port()
    config.cors_origins = [*page_origins(), f"http://127.0.0.1:{config.web_port}"]
    shutil.copyfile(CLINIC_YML, tmp / "clinic.yml")
    # Every test visitor writes from 127.0.0.1, and a worker's modules share these servers: the
    # flood limit per address (120 a minute) is tested on servers of its own (test_security.py,
    # test_rate_limits.py); here it would refuse one test's visitors for another's messages.
    config.extra_env = {"MAX_MESSAGES_PER_MINUTE_PER_ADDRESS": "100000"}
    # Monitoring as an operator sets it up: /metrics behind a token, one JSON object a log line
    # (tests/e2e/test_e2e.py reads both; test_e2e_booking.py checks the lines hold no personal data).
    config.extra_env.update(
        METRICS_TOKEN=METRICS_TOKEN, LOG_FORMAT="json", CLINIC_SETTINGS=str(tmp / "clinic.yml")
    )
    with log_path.open("w") as log, Stack(config, log) as stack:
        yield LiveAssistant(stack, log_path)
