"""The test stacks' zygote (tests/zygote.py): a forked server is its own process, as `python -m` makes one."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from common.paths import PROJECT_ROOT
from tests import zygote as zygotes
from tests.zygote import Zygote

PROBE = [sys.executable, "-m", "tests.zygote_probe"]


@pytest.fixture
def zygote() -> Zygote:
    return zygotes.shared()  # the worker's own, which its stacks' servers are forked from


def test_a_child_has_its_own_environment_folder_output_session_and_exit_status(
    zygote: Zygote, tmp_path: Path
) -> None:
    log_path = tmp_path / "probe.log"
    with log_path.open("w") as log:
        log.write("before\n")  # written before the child's output, as with a Popen
        env = {**os.environ, "PROBE_SETTING": "this child's", "PROBE_EXIT": "3"}
        child = zygote.spawn([*PROBE, "one", "two"], tmp_path, env, log)
        assert child.wait(timeout=60) == 3 and child.returncode == 3 and child.poll() == 3
    before, line = log_path.read_text().splitlines()[:2]
    seen = json.loads(line)
    assert before == "before"
    assert seen["argv"] == ["one", "two"] and seen["cwd"] == str(tmp_path)
    assert seen["setting"] == "this child's" and seen["leader"] and seen["stdin"] == ""


def test_a_child_stopped_by_its_group_reports_the_signal_and_waits_time_out(
    zygote: Zygote, tmp_path: Path
) -> None:
    with (tmp_path / "probe.log").open("w") as log:
        child = zygote.spawn(PROBE, tmp_path, {**os.environ, "PROBE_SLEEP": "60"}, log)
        assert child.poll() is None
        with pytest.raises(subprocess.TimeoutExpired):
            child.wait(timeout=0.5)
        os.killpg(child.pid, signal.SIGTERM)  # as servers/launcher.py `terminate` stops a server
        assert child.wait(timeout=30) == -signal.SIGTERM


def test_an_ended_childs_group_can_be_signalled_until_its_status_is_read(
    zygote: Zygote, tmp_path: Path
) -> None:
    """As with a Popen: launcher.py's `terminate` signals a server that just ended without error."""
    with (tmp_path / "probe.log").open("w") as log:
        child = zygote.spawn(PROBE, tmp_path, dict(os.environ), log)
    with zygote.ended:  # the zygote has seen it end...
        assert zygote.ended.wait_for(lambda: child.request in zygote.exits, 60)
    os.killpg(child.pid, signal.SIGTERM)  # ...but keeps it until the worker has read its status
    assert child.poll() == 0 and child.wait(timeout=1) == 0
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:  # then it is reaped
        try:
            os.killpg(child.pid, 0)
        except ProcessLookupError:
            break
        time.sleep(0.05)
    else:
        raise AssertionError("the ended child was never reaped")


def test_a_zygote_whose_libraries_imported_the_project_refuses_to_start() -> None:
    """Children must import the project afresh, reading their own environment's settings."""
    check = "from tests.zygote import preload; preload({names})"
    fine = subprocess.run([sys.executable, "-c", check.format(names="('json',)")], cwd=PROJECT_ROOT)
    assert fine.returncode == 0
    refused = subprocess.run(
        [sys.executable, "-c", check.format(names="('common.paths',)")],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
    )
    assert refused.returncode == 1 and "imported the project's ['common', 'common.paths']" in refused.stderr


def test_only_python_module_commands_can_be_forked(zygote: Zygote, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="only `python -m` commands"):
        zygote.spawn(["sleep", "1"], tmp_path, dict(os.environ), None)
