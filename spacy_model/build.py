"""Build the project's spaCy pipeline from registry packages only and install it.

Official spaCy models are downloaded from GitHub, which this project cannot rely on,
so we build a blank English pipeline with a lookup lemmatizer (tables from the
``spacy-lookups-data`` PyPI package) and an attribute ruler that maps patients'
words for the same thing (``synonyms.yml``) to one lemma. Rasa's SpacyNLP loads
it by package name, so it works from any working directory.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

import spacy
import yaml
from spacy.language import Language

PACKAGE_NAME = "scar_pipeline"  # installed as the Python package en_scar_pipeline
VERSION = "1.0.0"
HERE = Path(__file__).resolve().parent


def load_synonyms(path: Path = HERE / "synonyms.yml") -> dict[str, str]:
    """Read the word -> lemma table staff maintain, lowercased."""
    table = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    return {str(word).lower(): str(lemma).lower() for word, lemma in table.items()}


def build_pipeline(synonyms: dict[str, str]) -> Language:
    """Return a blank English pipeline with lookup lemmas and synonym lemmas."""
    nlp = spacy.blank("en")
    nlp.meta["name"] = PACKAGE_NAME
    nlp.meta["version"] = VERSION
    nlp.meta["description"] = "Blank English + lookup lemmatizer + clinic synonyms"
    nlp.add_pipe("lemmatizer", config={"mode": "lookup"})
    ruler = nlp.add_pipe("attribute_ruler")
    nlp.initialize()  # loads the lookup tables; it would also clear the ruler's patterns
    for word, lemma in synonyms.items():
        ruler.add(patterns=[[{"LOWER": word}]], attrs={"LEMMA": lemma})
    return nlp


def install(nlp: Language) -> None:
    """Package the pipeline as a wheel and pip-install it into this interpreter."""
    with tempfile.TemporaryDirectory() as tmp:
        source, dist = Path(tmp, "source"), Path(tmp, "dist")
        nlp.to_disk(source)
        dist.mkdir()
        subprocess.run(
            [sys.executable, "-m", "spacy", "package", str(source), str(dist), "--build", "wheel", "--force"],
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wheel = next(dist.rglob("*.whl"))
        subprocess.run(
            [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--force-reinstall", str(wheel)],
            check=True,
        )


if __name__ == "__main__":
    install(build_pipeline(load_synonyms()))
    print(f"installed spaCy pipeline en_{PACKAGE_NAME} {VERSION}")
