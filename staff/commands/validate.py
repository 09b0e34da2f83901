"""Check the assistant's questions, answers and tests before training.

    make validate   (Rasa's own checks, then clinic-validate [--root DIR])

Prints each problem as `file:line: what is wrong - what to do`, in words clinic staff
can act on, and exits 1; with no problems it prints a one-line summary and exits 0.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from common.paths import PROJECT_ROOT
from staff.service.validate import load, rasa_problems, run_checks, summary


def main(argv: Sequence[str] | None = None) -> int:
    """Check the project, print the problems (or a summary); 1 if there are problems."""
    parser = argparse.ArgumentParser(prog="clinic-validate", description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, default=PROJECT_ROOT, help="the project folder")
    parser.add_argument(
        "--without-rasa",
        action="store_true",
        help="skip Rasa's own checks (about 15 s; make validate runs them)",
    )
    args = parser.parse_args(argv)
    root = args.root.resolve()
    project, problems = load(root)
    # Invalid files would make every other check report nonsense: fix them first.
    problems = problems or run_checks(project)
    if not problems and not args.without_rasa:
        problems = rasa_problems(project, root)
    for problem in problems:
        print(problem)
    if problems:
        return 1
    print(summary(project) + ("" if args.without_rasa else ", and Rasa's own checks"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
