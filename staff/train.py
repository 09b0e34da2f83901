"""Train the model only when what it is trained from has changed (by content, not mtime).

    make train   (clinic-train)

The console's "Check and train" trains candidates with the same command (train_command,
staff/candidate.py). Make's timestamps are fooled by a clone (all files new) or by edits made while a
training run is going; a hash of the inputs is not. The hash is stored beside the model.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

from common.paths import CONFIG, DATA_DIR, DOMAIN_DIR, MODEL, PROJECT_ROOT, RASA_PROGRAM

STAMP = MODEL.with_suffix(".sha256")
# Everything the model depends on, relative to the project root.
INPUT_GLOBS = ["config.yml", "domain/*.yml", "data/**/*.yml", "spacy_model/*", "components/*.py"]


def inputs_digest(root: Path = PROJECT_ROOT) -> str:
    """SHA-256 over the paths and contents of every file the model depends on."""
    digest = hashlib.sha256()
    files = sorted({p for pattern in INPUT_GLOBS for p in root.glob(pattern) if p.is_file()})
    for path in files:
        digest.update(str(path.relative_to(root)).encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


def train_command(root: Path, out: Path, name: str) -> list[str]:
    """`rasa train` for the project at `root`, writing `out/<name>.tar.gz`."""
    return [
        str(RASA_PROGRAM),
        "train",
        "--augmentation",
        "0",
        "--config",
        str(root / CONFIG.name),
        "--domain",
        str(root / DOMAIN_DIR.name),
        "--data",
        str(root / DATA_DIR.name),
        "--fixed-model-name",
        name,
        "--out",
        str(out),
    ]


def main() -> int:
    """Train if the model is missing or stale; return rasa's exit code (0 if up to date)."""
    digest = inputs_digest()
    if MODEL.exists() and STAMP.exists() and STAMP.read_text().strip() == digest:
        print(f"Model is up to date: {MODEL.relative_to(PROJECT_ROOT)}")
        return 0
    command = train_command(PROJECT_ROOT, MODEL.parent, MODEL.name.removesuffix(".tar.gz"))
    code = subprocess.run(command, cwd=PROJECT_ROOT, env=dict(os.environ)).returncode
    if code == 0:
        STAMP.write_text(digest + "\n")
    return code


if __name__ == "__main__":
    sys.exit(main())
