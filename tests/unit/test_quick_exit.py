"""servers/quick_exit.py: a stopped server still finishes its threads' work and exit handlers, then leaves."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

from common.paths import PROJECT_ROOT


def test_running_work_and_exit_handlers_finish_before_the_quick_exit(tmp_path: Path) -> None:
    """A thread pool's running write and an atexit handler both happen; the exit code is kept."""
    script = textwrap.dedent(
        f"""
        import atexit, time
        from concurrent.futures import ThreadPoolExecutor
        from pathlib import Path
        from servers import quick_exit

        out = Path({str(tmp_path)!r})
        atexit.register(lambda: (out / "handler").write_text("ran"))
        pool = ThreadPoolExecutor(1)
        pool.submit(lambda: (time.sleep(0.5), (out / "work").write_text("done")))
        quick_exit.after_serving(3)
        (out / "after").write_text("not reached")
        """
    )
    result = subprocess.run([sys.executable, "-c", script], cwd=PROJECT_ROOT, timeout=60)
    assert result.returncode == 3
    assert (tmp_path / "work").read_text() == "done"
    assert (tmp_path / "handler").read_text() == "ran"
    assert not (tmp_path / "after").exists()
