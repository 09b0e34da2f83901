"""Train the model only when what it is trained from has changed (by content, not mtime).

The command (`make train`, clinic-train) is staff/commands/train.py.
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

import hashlib
import os
import sys
from collections.abc import Mapping
from pathlib import Path

from common.paths import CONFIG, DATA_DIR, DOMAIN_DIR, MODEL, PROJECT_ROOT

STAMP = MODEL.with_suffix(".sha256")
LATER = (
    "Visitors get the model published in the staff console (or, if nothing was ever published, "
    "the assistant as installed, recorded when the console first started): restarting does not "
    "change it. To give visitors saved changes, use Check and train, then Publish, in the console."
)
# Everything the model depends on, relative to the project root: the files it learns from, the
# pipeline's code, and how Rasa is run to train (what it leaves out of the NLU data changes what is
# trained and what Rasa's cache restores). A project copy without the code hashes what it has.
INPUT_GLOBS = [
    "config.yml",
    "domain/*.yml",
    "data/**/*.yml",
    "spacy_model/*",
    "components/*.py",
    "staff/service/rasa_train.py",
]


def inputs_digest(root: Path = PROJECT_ROOT) -> str:
    """SHA-256 over the paths and contents of every file the model depends on."""
    digest = hashlib.sha256()
    files = sorted({p for pattern in INPUT_GLOBS for p in root.glob(pattern) if p.is_file()})
    for path in files:
        digest.update(str(path.relative_to(root)).encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


# `rasa train ...` is run as `RASA_TRAIN train ...`: Rasa's own command line with the FAQ answers'
# words kept out of the NLU training data, so rewording one retrains no NLU component (rasa_train.py).
RASA_TRAIN = [sys.executable, "-m", "staff.service.rasa_train"]


def train_environment(environment: Mapping[str, str]) -> dict[str, str]:
    """`environment` for train_command's process: this code's RASA_TRAIN module found from any project.

    The process runs in the project it trains (`root`, which may hold no code: the console's
    project copies, the production content volume); its own folder still comes first, so a
    project's own components/ are the ones trained.
    """
    paths = [str(PROJECT_ROOT), *filter(None, [environment.get("PYTHONPATH")])]
    return {**environment, "PYTHONPATH": os.pathsep.join(paths)}


def train_command(root: Path, out: Path, name: str, checked: bool = False) -> list[str]:
    """`rasa train` for the project at `root`, writing `out/<name>.tar.gz`.

    `checked`: Rasa's own data checks (`rasa data validate`, staff/service/validate.py) have just
    passed on these files, so `rasa train` skips repeating them (about 15 s on a busy machine).
    """
    return [
        *RASA_TRAIN,
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
        *(["--skip-validation"] if checked else []),
    ]
