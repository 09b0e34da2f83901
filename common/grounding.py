"""Is an answer supported by the clinic's document? The check `make validate`, the console and the chat share.

An answer passes only if every sentence of it is either one of the clinic's approved framing
sentences (content/approved-wording.yml: sentences that point to a consultation or introduce
a list, not facts), or supported by the document on three counts:

1. No number, price, duration, count, percentage or claim word (painless, safe, guaranteed,
   permanent, cure...) that the document does not contain. These fail outright: a confident
   invented figure or promise is the worst thing a medical FAQ can say.
2. Every word that carries meaning is the document's own (compared by lemma and with British
   and American spellings made one, so "colour" matches the document's "color"), a close
   relative of one ("softens" / "softening"), or one of the approved everyday words
   (content/approved-wording.yml) that explain the document's terms in plain English.
3. The sentence means something the document says: its MiniLM embedding is close to a
   sentence (or two neighbouring sentences) of the document. SIMILARITY_THRESHOLD was chosen
   on the current answers and on the invented ones in tests/grounding/answers.yml.

What it cannot see: a new claim assembled only from the document's own words ("melanin is
made in the dermis"); the editor's reading and the tests remain for that.

The same matching tells visitors where an answer comes from (`Checker.support`: the document's
sentences closest to each of the answer's sentences, shown by "Where is this from?" in the
chat, common/sources.py); an answer with a sentence the check would refuse has no source.
"""

from __future__ import annotations

import gzip
import json
import logging
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from itertools import pairwise
from pathlib import Path
from typing import ClassVar

import numpy as np
import spacy_lookups_data
from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS as STOP_WORDS

from common import yamlio
from common.paths import APPROVED_WORDING, DOCUMENT, PASSAGE_EMBEDDINGS, relative
from components.kept_embeddings import KeptEmbeddings
from components.minilm import load_encoder

# The lowest MiniLM cosine similarity of a supported sentence to the document's closest
# sentence or pair of neighbouring sentences (after spelling normalisation). Chosen on the
# current answers (their sentences score 0.615 and above) and on invented sentences built
# from the document's own words, which only this check can catch (tests/grounding/answers.yml:
# those scoring below it are refused; the rest are the limitation named above).
SIMILARITY_THRESHOLD = 0.6
# Embeddings the checkers keep (1.5 KB each): the document's passages and the answers' sentences
# many times over.
EMBEDDINGS_KEPT = 4096
# Words that share this many first letters are relatives ("surgically", "surgical").
RELATIVE_PREFIX = 5
SHORTEST_MEANINGFUL = 3
NUMBER_WORDS = frozenset(
    """zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen
    fifteen sixteen seventeen eighteen nineteen twenty thirty forty fifty sixty seventy eighty
    ninety hundred thousand million once twice thrice half dozen single double triple""".split()
)
# Money, time and counts: a figure's unit is a claim even without the figure.
UNIT_WORDS = frozenset(
    """pound pence penny dollar cent euro price cost fee charge free discount offer cheap
    expensive affordable second minute hour day week month year session appointment visit
    course percent percentage""".split()
)
CLAIM_WORDS = frozenset(
    """painless pain painful hurt hurts sore safe safely safety risk risky harmless guarantee
    guaranteed permanent permanently forever cure cures cured heal heals proven prove clinically
    approve approved fda nhs certified licensed accredited best leading only instant instantly
    immediate immediately effective effectiveness success successful side effect effects downtime
    recovery anaesthetic anesthetic numb numbing always never everyone everybody all completely
    totally fully entirely 100 miracle scarless remove removal eliminate erase disappear invisible
    natural-looking recommend recommended doctor doctors dermatologist surgeon nurse""".split()
)
SYMBOLS = re.compile(r"[£$€%]")
DIGITS = re.compile(r"\d+(?:[.,]\d+)?")
WORD = re.compile(r"[A-Za-z]+(?:-[A-Za-z]+)*")
# A sentence ends at . ! ? or : before a capital letter, at a bullet, or at a line break.
SENTENCE_END = re.compile(r"(?<=[.!?:])\s+(?=[A-Z•])|\s*•\s*|\n+")


def banned_words(text: str) -> list[str]:
    """The numbers, money and percent signs, counts, durations and claim words in a text, in order.

    The one definition of what only the clinic's document may state: an answer's sentence may
    say them only where the document does (Grounding.figures), and approved wording (framing
    sentences, everyday words) may never say them.
    """
    found = [m.group(0) for m in DIGITS.finditer(text)] + SYMBOLS.findall(text)
    for match in WORD.finditer(text):
        word = normalise(match.group(0))
        if word in NUMBER_WORDS | UNIT_WORDS | CLAIM_WORDS or match.group(0).lower() in CLAIM_WORDS:
            found.append(match.group(0))
    return list(dict.fromkeys(found))


@dataclass(frozen=True)
class Verdict:
    """Why one sentence of an answer is or is not supported (empty lists and True: it is)."""

    sentence: str
    figures: list[str] = field(default_factory=list)  # numbers, prices, durations, claims
    words: list[str] = field(default_factory=list)  # meaningful words not in the document
    similar: bool = True  # close in meaning to something the document says
    framing: bool = False  # one of the approved framing sentences, word for word
    evidence: str = ""  # the document's closest sentence (or two neighbouring ones)

    @property
    def supported(self) -> bool:
        """Whether nothing is wrong with the sentence."""
        return not self.figures and not self.words and self.similar

    def explain(self) -> str:
        """What is wrong, in plain words (empty when nothing is)."""
        if self.figures:
            return (
                f'"{self.sentence}" says {quoted(self.figures + self.words)}, which the clinic\'s document '
                "does not: figures, prices, times and promises may only come from the document"
            )
        if self.words:
            return f'"{self.sentence}" uses {quoted(self.words)}, which the clinic\'s document does not'
        if not self.similar:
            return f'"{self.sentence}" says something the clinic\'s document does not say'
        return ""


def quoted(items: Iterable[str]) -> str:
    """Items as "a", "b" and "c"."""
    names = [f'"{item}"' for item in items]
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


def words_with_spelling(text: str) -> list[tuple[str, str]]:
    """(normalised word, word as written) for each word of a text; hyphenated words by their parts."""
    return [(normalise(part), part) for match in WORD.finditer(text) for part in match.group(0).split("-")]


def sentences(text: str) -> list[str]:
    """The sentences and list items of a text, each on one line."""
    parts = (" ".join(part.split()).strip(" -") for part in SENTENCE_END.split(text))
    return [part for part in parts if any(c.isalpha() for c in part)]


def _lookup_table(name: str) -> dict[str, str]:
    """One of spaCy's English lookup tables, read from spacy-lookups-data (without loading spaCy)."""
    path = Path(str(spacy_lookups_data.en[name]))
    if not path.exists():
        path = path.with_name(path.name + ".gz")
    with gzip.open(path, "rt", encoding="utf-8") as file:
        return json.load(file)


@lru_cache(maxsize=1)
def _tables() -> tuple[dict[str, str], dict[str, str]]:
    """British -> American spellings, and word -> lemma: spaCy's English lookup tables."""
    return _lookup_table("lexeme_norm"), _lookup_table("lemma_lookup")


def normalise(word: str) -> str:
    """A word in lower case, American spelling, as its lemma ("Colours" -> "color")."""
    spelling, lemmas = _tables()
    word = word.lower()
    word = spelling.get(word, word)
    return lemmas.get(word, word)


def american(text: str) -> str:
    """The text with British spellings made American, for comparing meanings."""
    spelling, _ = _tables()
    return WORD.sub(lambda m: _same_case(m.group(0), spelling.get(m.group(0).lower())), text)


def _same_case(word: str, replacement: str | None) -> str:
    if replacement is None:
        return word
    return replacement.capitalize() if word[:1].isupper() else replacement


def words_of(text: str) -> list[str]:
    """The normalised words of a text; a hyphenated word counts as its parts."""
    return [word for word, _ in words_with_spelling(text)]


@dataclass(frozen=True)
class Grounding:
    """The document, the approved wording and the document's sentence embeddings."""

    document_words: frozenset[str]
    document_text: str  # lower case, normalised spelling: for figures such as "a few weeks"
    framing: frozenset[str]
    plain_words: frozenset[str]
    passages: np.ndarray  # unit embeddings of the document's sentences and neighbouring pairs

    def is_known(self, word: str) -> bool:
        """Whether a meaningful word is the document's, a relative of one, or an approved word."""
        if word in self.document_words or word in self.plain_words:
            return True
        if len(word) < RELATIVE_PREFIX:
            return any(known.startswith(word) for known in self.document_words if len(word) >= 4)
        return any(known[:RELATIVE_PREFIX] == word[:RELATIVE_PREFIX] for known in self.document_words)

    def figures(self, sentence: str) -> list[str]:
        """The numbers, prices, durations and claims in the sentence that the document lacks."""
        return [f for f in banned_words(sentence) if not self.in_document(f)]

    def in_document(self, figure: str) -> bool:
        """Whether the document itself says this number, symbol or word."""
        if not figure[:1].isalpha():
            return figure.lower() in self.document_text
        return normalise(figure) in self.document_words

    def check(
        self, sentences_: Sequence[str], similarities: np.ndarray, evidence: Sequence[str] = ()
    ) -> list[Verdict]:
        """A verdict per sentence, given each sentence's best similarity to the document.

        `evidence` is, per sentence, the document's passage closest to it (shown to staff as why
        a sentence passed).
        """
        verdicts = []
        evidence = list(evidence) or [""] * len(sentences_)
        for sentence, similarity, closest in zip(sentences_, similarities, evidence):
            if normalise_sentence(sentence) in self.framing:
                verdicts.append(Verdict(sentence, framing=True))
                continue
            figures = self.figures(sentence)
            claimed = {normalise(f) for f in figures}
            unknown = list(
                dict.fromkeys(
                    written
                    for word, written in words_with_spelling(sentence)
                    if len(word) >= SHORTEST_MEANINGFUL
                    and word not in STOP_WORDS
                    and word not in claimed
                    and not self.is_known(word)
                )
            )
            similar = bool(similarity >= SIMILARITY_THRESHOLD)
            verdicts.append(Verdict(sentence, figures, unknown, similar, evidence=closest if similar else ""))
        return verdicts


def normalise_sentence(sentence: str) -> str:
    """A sentence compared with the framing sentences: lower case, single spaces, American spelling."""
    return " ".join(american(sentence).lower().split())


@dataclass(frozen=True)
class Wording:
    """content/approved-wording.yml: framing sentences and everyday words answers may use."""

    framing_sentences: tuple[str, ...]
    plain_words: tuple[str, ...]


class WordingError(ValueError):
    """content/approved-wording.yml cannot be used; the message says what to fix."""


def read_wording(path: Path = APPROVED_WORDING) -> Wording:
    """The approved wording; a claim word or a number among the plain words is refused."""
    try:
        data = yamlio.load(path.read_text(encoding="utf-8")) or {}
    except FileNotFoundError:
        raise WordingError(f"{relative(path)} is missing - restore it from the project's history") from None
    if not isinstance(data, dict):
        raise WordingError(f"{relative(path)} must have framing_sentences: and plain_words: lists")
    framing = tuple(str(s) for s in data.get("framing_sentences") or [])
    plain = tuple(str(w).strip().lower() for w in data.get("plain_words") or [])
    forbidden = [w for w in plain if banned_words(w)]
    if forbidden:
        raise WordingError(
            f"{relative(path)}: {quoted(forbidden)} cannot be approved as everyday words: they are "
            "figures, prices, times or promises, which only the clinic's document may state"
        )
    for sentence in framing:
        said = banned_words(sentence)
        if said:
            raise WordingError(
                f'{relative(path)}: the framing sentence "{sentence}" says {quoted(said)}: figures, prices, '
                "times and promises can never be approved, only the clinic's document may state them"
            )
    return Wording(framing, plain)


class Checker:
    """Checks answers against one document and one approved wording (loads MiniLM once)."""

    # Each text's embedding, kept for the process and shared by the checkers (all use the one
    # installed MiniLM): `make validate` and every console save check all the answers again, an
    # edit changes few of their sentences, and a new approved wording keeps the document's
    # passages (MiniLM takes about 0.1 s a sentence).
    _kept: ClassVar[dict[str, np.ndarray]] = {}

    def __init__(self, document: str, wording: Wording) -> None:
        self.encoder = load_encoder()
        written = sentences(document)
        self.document_sentences = tuple(written)
        # The passages as the document writes them (shown to staff), and as compared (American spelling).
        self.passage_texts = tuple(written + [f"{a} {b}" for a, b in pairwise(written)])
        document_sentences = [american(s) for s in written]
        passages = document_sentences + [f"{a} {b}" for a, b in pairwise(document_sentences)]
        self.grounding = Grounding(
            document_words=frozenset(words_of(document)),
            document_text=" ".join(american(document).lower().split()),
            framing=frozenset(normalise_sentence(s) for s in wording.framing_sentences),
            plain_words=frozenset(normalise(w) for w in wording.plain_words),
            passages=self._embed_passages(passages),
        )

    def _embed_passages(self, passages: list[str]) -> np.ndarray:
        """The passages' embeddings, those a previous process kept (PASSAGE_EMBEDDINGS) read, not encoded.

        Encoding a whole document took about 3 CPU-seconds at every start of an action server,
        a console or a check. The file is rewritten only when the document changed; a folder
        that cannot be written (a read-only installation) only costs that time again.
        """
        kept = KeptEmbeddings.load(PASSAGE_EMBEDDINGS, self.encoder.max_length)
        current = set(kept.vectors) == set(map(kept.key, passages))  # no more, no fewer
        vectors = kept.embeddings(passages, self._embed)
        if not current:
            kept.save(passages, unwritable=logging.INFO)
        return vectors

    def _embed(self, texts: list[str]) -> np.ndarray:
        """The embeddings of `texts` (len(texts), 384): those not seen before encoded together.

        The kept embeddings are only ever added to (when full, a new dict replaces them), so the
        console's threads may share them.
        """
        if not texts:
            return self.encoder.encode([])
        kept = Checker._kept
        found = {text: kept[text] for text in texts if text in kept}
        new = [text for text in dict.fromkeys(texts) if text not in found]
        if new:
            encoded = dict(zip(new, self.encoder.encode(new)))
            found.update(encoded)
            if len(kept) + len(encoded) > EMBEDDINGS_KEPT:
                Checker._kept = kept = {}
            kept.update(encoded)
        return np.stack([found[text] for text in texts])

    @staticmethod
    @lru_cache(maxsize=2)
    def cached(document: str, wording: Wording) -> Checker:
        """One checker per document and wording, kept for the process (the console checks as staff type)."""
        return Checker(document, wording)

    @classmethod
    def for_project(cls, document: Path = DOCUMENT, wording: Path = APPROVED_WORDING) -> Checker:
        """The checker of the project's document and approved wording (one per process, `cached`)."""
        return cls.cached(document.read_text(encoding="utf-8"), read_wording(wording))

    def _scored(self, answer: str) -> tuple[list[str], list[Verdict], list[int]]:
        """The answer's sentences, their verdicts and the index of each one's closest passage."""
        parts = sentences(answer)
        if not parts:
            return [], [], []
        embeddings = self._embed([american(p) for p in parts])
        scores = embeddings @ self.grounding.passages.T
        best = [int(i) for i in scores.argmax(axis=1)]
        closest = [self.passage_texts[i] for i in best]
        return parts, self.grounding.check(parts, scores.max(axis=1), closest), best

    def verdicts(self, answer: str) -> list[Verdict]:
        """A verdict for each sentence of an answer."""
        return self._scored(answer)[1]

    def support(self, answer: str) -> tuple[str, ...]:
        """The document's sentences an answer rests on, in the document's order, as it writes them.

        Each sentence of the answer is matched to its closest passage (a sentence of the document
        or two neighbouring ones); approved framing sentences ("Ask at your consultation") need
        none. Empty when any sentence is not supported, or none needs the document: no source
        is better than a wrong one.
        """
        _, verdicts, best = self._scored(answer)
        if not verdicts or not all(v.supported for v in verdicts):
            return ()
        count = len(self.document_sentences)
        found: set[int] = set()
        for verdict, index in zip(verdicts, best):
            if not verdict.framing:  # a passage past the sentences is the pair starting at index - count
                found.update([index] if index < count else [index - count, index - count + 1])
        return tuple(self.document_sentences[i] for i in sorted(found))

    def problems(self, answer: str) -> list[str]:
        """What the document does not support in an answer, one line per sentence (empty: all)."""
        return [verdict.explain() for verdict in self.verdicts(answer) if not verdict.supported]
