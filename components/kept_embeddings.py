"""Sentence embeddings kept on disk, so a later process encodes only texts it has not seen.

The trainings keep their examples' (components/sentence_embeddings.py, in Rasa's cache) and the
grounding checker keeps the clinic document's passages (common/grounding.py): encoding them all
again took about 3 CPU-seconds at every start of an action server or console, and about a third
of a training's CPU time when one example was added.
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from components import minilm
from components.minilm import EMBEDDING_DIM, EXPECTED_SHA256

logger = logging.getLogger(__name__)


class KeptEmbeddings:
    """The embeddings of the last use's texts (a training's examples), so the next encodes only new ones.

    Rasa's cache restores a featurizer's output only when all of the NLU data is unchanged; one
    added example made every training example be encoded again (about a third of the training's
    CPU time). An embedding depends only on the text, the model files (checked at load), the
    longest input and this encoder's code, so the file is named by a digest of the last two and
    of the model files' expected sha256. It holds the embeddings of the examples of the last
    training only, each under the sha256 of its text rather than the text: an example staff took
    out (say, with someone's name in it) is gone from it at the next training. The file is
    replaced whole; one that cannot be read is ignored (everything is encoded, as before).
    """

    def __init__(self, path: Path, vectors: dict[str, np.ndarray]) -> None:
        self.path = path
        self.vectors = vectors  # sha256 of a text -> its embedding

    @staticmethod
    def key(text: str) -> str:
        """What a text is kept under."""
        return hashlib.sha256(text.encode("utf-8")).hexdigest()

    @staticmethod
    def named(folder: Path, max_length: int) -> Path:
        """The file for embeddings made with this encoder code, these model files and this length."""
        digest = hashlib.sha256(Path(minilm.__file__).read_bytes())
        digest.update(repr((sorted(EXPECTED_SHA256.items()), max_length)).encode())
        return folder / f"{folder.name}-{digest.hexdigest()[:16]}.npz"

    @classmethod
    def load(cls, folder: Path, max_length: int) -> KeptEmbeddings:
        """The kept embeddings (none if there is no readable file)."""
        path = cls.named(folder, max_length)
        try:
            with np.load(path, allow_pickle=False) as kept:
                keys, vectors = kept["keys"], kept["vectors"]
            if vectors.shape != (len(keys), EMBEDDING_DIM):
                raise ValueError(f"shape {vectors.shape} for {len(keys)} examples")
            return cls(path, {str(key): vector for key, vector in zip(keys, vectors)})
        except FileNotFoundError:
            return cls(path, {})
        except Exception as error:  # damaged or foreign: encode everything, as without it
            logger.warning("Encoding every example again: %s could not be read (%s).", path, error)
            return cls(path, {})

    def embeddings(self, texts: list[str], encode: Callable[[list[str]], np.ndarray]) -> np.ndarray:
        """The texts' embeddings: kept ones as kept, the others from `encode` (and kept)."""
        keys = [self.key(text) for text in texts]
        new = {key: text for key, text in zip(keys, texts) if key not in self.vectors}
        if new:
            self.vectors.update(zip(new, encode(list(new.values()))))
        return np.stack([self.vectors[key] for key in keys])

    def _remove_others(self) -> None:
        """Remove other encoder versions' files, and drafts a stopped training left (an hour old)."""
        for other in self.path.parent.glob(f"{self.path.parent.name}-*.npz"):
            draft = "." in other.stem
            if other != self.path and (not draft or time.time() - other.stat().st_mtime > 3600):
                other.unlink(missing_ok=True)

    def save(self, texts: list[str], unwritable: int = logging.WARNING) -> None:
        """Keep the embeddings of these texts (this training's) and no others, whole or not at all.

        A folder that cannot be written is logged at level `unwritable`: the next use encodes again.
        """
        keys = [key for key in dict.fromkeys(map(self.key, texts)) if key in self.vectors]
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            draft = self.path.with_name(f"{self.path.stem}.{os.getpid()}.{threading.get_ident()}.npz")
            vectors = [self.vectors[key] for key in keys]
            np.savez(
                draft,
                keys=np.array(keys, dtype=str),
                vectors=np.stack(vectors).astype(np.float32) if vectors else np.zeros((0, EMBEDDING_DIM)),
            )
            draft.replace(self.path)
            self._remove_others()
        except OSError as error:  # a read-only cache: the next training encodes them again
            logger.log(unwritable, "Could not keep the texts' embeddings in %s (%s).", self.path, error)
