"""Train the model only when what it is trained from has changed (by content, not mtime).

    make train   (clinic-train)

The console's "Check and train" trains candidates with the same command (train_command,
staff/service/candidate.py). Make's timestamps are fooled by a clone (all files new) or by edits made while a
training run is going; a hash of the inputs is not. The hash is stored beside the model.

This model is not simply what visitors get: `make run` trains it from the files as they are,
saved but unpublished changes included. Visitors get what the console says is live
(staff/service/models.py `live`): the published model, else the assistant as installed, which
is this model as it was when the console first started, kept unchanged in the model store.
So a restart never publishes anything; only "Publish" in the console does.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

from common.paths import MODEL, PROJECT_ROOT
from staff.service.train import LATER, STAMP, inputs_digest, train_command, train_environment


def main(argv: list[str] | None = None) -> int:
    """Train if the model is missing or stale; return rasa's exit code (0 if up to date)."""
    parser = argparse.ArgumentParser(prog="clinic-train", description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, default=PROJECT_ROOT, help="the project (default: this one)")
    root = parser.parse_args(argv).root.resolve()
    model = root / MODEL.relative_to(PROJECT_ROOT)
    stamp = root / STAMP.relative_to(PROJECT_ROOT)
    digest = inputs_digest(root)
    if model.exists() and stamp.exists() and stamp.read_text().strip() == digest:
        print(f"Model is up to date: {model.relative_to(root)}\n{LATER}")
        return 0
    command = train_command(root, model.parent, model.name.removesuffix(".tar.gz"))
    code = subprocess.run(command, cwd=root, env=train_environment(os.environ)).returncode
    if code == 0:
        stamp.write_text(digest + "\n")
        print(LATER)
    return code


if __name__ == "__main__":
    sys.exit(main())
