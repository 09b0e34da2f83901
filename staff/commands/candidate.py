"""One "Check and train" run, in its own process: check, train a candidate, compare it with the live model.

    python -m staff.commands.candidate RUN_ID --root PROJECT

Started by the console (staff/service/models.py `launch`); writes its stage, progress and
report to the run's row, which the console's page shows. The checks are `make validate`'s;
a candidate is trained with `make train`'s command into MODEL_STORE_DIR, named by the
digest of the files it learns from (so when nothing it learns from changed, for instance
only a conversation test, the model already there is reused); then the candidate and the
live model answer the held-out questions and the candidate runs the conversation tests
(staff/service/evaluate.py). Staff see plain words; the details are in the run's log file.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from staff.service.candidate import run


def main(argv: list[str] | None = None) -> int:
    """Work one run (the console starts this)."""
    parser = argparse.ArgumentParser(
        prog="python -m staff.commands.candidate", description=__doc__.splitlines()[0]
    )
    parser.add_argument("run_id", type=int)
    parser.add_argument("--root", type=Path, required=True, help="the project to check and train")
    args = parser.parse_args(argv)
    return run(args.run_id, args.root.resolve())


if __name__ == "__main__":
    sys.exit(main())
