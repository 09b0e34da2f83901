"""Where the project's files are: each path defined once, relative to the project root."""

from __future__ import annotations

import sys
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent

# Settings: the clinic's details (staff edit) and deployment settings (.env, never committed).
CLINIC_YML = PROJECT_ROOT / "clinic.yml"
DOTENV = PROJECT_ROOT / ".env"
CONFIG = PROJECT_ROOT / "config.yml"
CREDENTIALS = PROJECT_ROOT / "credentials.yml"

# What the assistant is trained from and answers with.
DOMAIN_DIR = PROJECT_ROOT / "domain"
DATA_DIR = PROJECT_ROOT / "data"
DOCUMENT = PROJECT_ROOT / "content" / "scar-relaxation.txt"
# Sentences and everyday words answers may use beyond the document (common/grounding.py).
APPROVED_WORDING = PROJECT_ROOT / "content" / "approved-wording.yml"
SPACY_MODEL_DIR = PROJECT_ROOT / "spacy_model"

# Tests the model must pass (also read by the data checks and the benchmark).
TEST_STORIES_DIR = PROJECT_ROOT / "tests" / "stories"
HELDOUT = PROJECT_ROOT / "tests" / "heldout" / "nlu.yml"
HELDOUT_CONVERSATIONS = PROJECT_ROOT / "tests" / "heldout" / "conversations.yml"
# Further held-out first turns, one file per set, named by the date it was written
# (first_turns_<yyyy-mm-dd>.yml): never training data, scored by the benchmark beside the others.
HELDOUT_DIR = PROJECT_ROOT / "tests" / "heldout"
HELDOUT_FIRST_TURN_PATTERN = "first_turns_*.yml"

# What training, the servers and the reports write.
MODEL = PROJECT_ROOT / "models" / "scar-faq.tar.gz"
VAR_DIR = PROJECT_ROOT / "var"
# Candidate models trained in the console and the models published from them (MODEL_STORE_DIR).
MODEL_STORE_DIR = VAR_DIR / "models"
DEFAULT_DATABASE_FILE = VAR_DIR / "clinic.db"
# The local profile's key for conversation ids, made once if CONVERSATION_SECRET is not set.
CONVERSATION_SECRET_FILE = VAR_DIR / "conversation-secret"
REPORTS_DIR = PROJECT_ROOT / "reports"
# Where clinic-backup writes its files unless told otherwise (staff/commands/backup.py).
BACKUP_DIR = VAR_DIR / "backups"
# The MiniLM embeddings of the document's passages, kept for the next start (common/grounding.py).
PASSAGE_EMBEDDINGS = VAR_DIR / "document-embeddings"

# The demo clinic page with the chat widget.
WEB_ROOT = PROJECT_ROOT / "web"


def program(name: str) -> Path:
    """A command of the Python environment the project runs in (rasa, clinic-validate...)."""
    return Path(sys.executable).parent / name


# Rasa's command line.
RASA_PROGRAM = program("rasa")


def relative(path: Path) -> str:
    """`path` as written from the project root (e.g. `domain/faq.yml`), for messages."""
    try:
        return path.resolve().relative_to(PROJECT_ROOT).as_posix()
    except ValueError:
        return str(path)
