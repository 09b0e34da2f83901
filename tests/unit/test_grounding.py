"""The grounding check (common/grounding.py): current answers pass, invented facts never do."""

from __future__ import annotations

import asyncio
import copy
from pathlib import Path

import pytest
import yaml

from common import sources
from common.domain import load_domain, read_domain
from common.grounding import Checker, WordingError, read_wording
from common.grounding import sentences as grounding_sentences
from common.names import FAQ_RESPONSE_PREFIX
from common.paths import DOCUMENT

TEST_SET = yaml.safe_load(
    (Path(__file__).parents[1] / "grounding" / "answers.yml").read_text(encoding="utf-8")
)
INVENTED = [
    pytest.param(sentence, id=f"{kind}: {sentence}")
    for kind, sentences in TEST_SET["invented"].items()
    for sentence in sentences
]
ANSWERS = {
    name: variation["text"]
    for name, variations in load_domain()["responses"].items()
    if name.startswith(FAQ_RESPONSE_PREFIX)
    for variation in variations
}


@pytest.fixture(scope="module")
def checker() -> Checker:
    return Checker.for_project()


@pytest.mark.parametrize("name", sorted(ANSWERS))
def test_every_current_answer_is_supported(checker: Checker, name: str) -> None:
    assert checker.problems(ANSWERS[name]) == []


@pytest.mark.parametrize("sentence", INVENTED)
def test_every_invented_sentence_is_refused(checker: Checker, sentence: str) -> None:
    assert checker.problems(sentence), f"{sentence!r} passed as if the document said it"


@pytest.mark.parametrize("sentence", TEST_SET["accepted"])
def test_rewordings_and_british_spellings_pass(checker: Checker, sentence: str) -> None:
    assert checker.problems(sentence) == []


def test_an_invented_sentence_inside_a_real_answer_is_named(checker: Checker) -> None:
    answer = (
        ANSWERS["utter_faq/results_time"]
        + " Most patients need 3 to 6 sessions, and the treatment is painless."
    )
    [problem] = checker.problems(answer)
    assert problem.startswith('"Most patients need 3 to 6 sessions, and the treatment is painless." says')
    for word in ('"3"', '"6"', '"sessions"', '"painless"'):
        assert word in problem
    assert "figures, prices, times and promises may only come from the document" in problem


def test_a_framing_sentence_passes_only_as_approved(checker: Checker) -> None:
    framing = "How quickly your own scar responds is something to ask at a consultation."
    assert checker.problems(framing) == []
    assert checker.problems("How quickly your own scar responds is guaranteed at a consultation.")


def test_figures_and_promises_cannot_be_approved_as_everyday_words(tmp_path: Path) -> None:
    wording = tmp_path / "approved-wording.yml"
    wording.write_text("framing_sentences: []\nplain_words: [extra, painless, sessions]\n", encoding="utf-8")
    with pytest.raises(WordingError, match='"painless" and "sessions" cannot be approved'):
        read_wording(wording)


@pytest.mark.parametrize("name", sorted(ANSWERS))
def test_every_current_answer_has_the_documents_sentences_as_its_source(checker: Checker, name: str) -> None:
    """Where is this from? quotes sentences the document really has, as it writes them."""
    document = " ".join(DOCUMENT.read_text(encoding="utf-8").split())
    found = checker.support(ANSWERS[name])
    assert found and all(sentence in document for sentence in found), found


def test_an_answer_with_an_unsupported_sentence_has_no_source(checker: Checker) -> None:
    invented = " Most patients need 3 to 6 sessions, and the treatment is painless."
    assert checker.support(ANSWERS["utter_faq/results_time"] + invented) == ()
    assert checker.support("") == ()


def test_framing_sentences_need_no_source(checker: Checker) -> None:
    framing = read_wording().framing_sentences[0]
    assert checker.support(framing) == ()  # nothing from the document: no button
    assert checker.support(ANSWERS["utter_faq/what_is"] + " " + framing) == checker.support(
        ANSWERS["utter_faq/what_is"]
    )


def test_a_reworded_answer_gets_its_own_source_and_an_unsupported_one_none() -> None:
    """As after staff publish an edit: the wording Rasa sends with its domain is what is looked up."""
    domain = copy.deepcopy(load_domain())  # the process's one copy stays as the files say
    name = "utter_faq/what_is"
    before = asyncio.run(sources.source_of(domain, name))
    assert before and before["source"]["document"] == "Non-surgical Scar Revision (Scar Relaxation)"
    reworded = "Melanin is the substance that gives color to the skin, and melanocytes make it."
    domain["responses"][name] = [{"text": reworded}]
    after = asyncio.run(sources.source_of(domain, name))
    assert after and after != before
    assert any(
        "Melanocytes are the skin cells responsible for making melanin" in s
        for s in after["source"]["sentences"]
    )
    domain["responses"][name] = [{"text": reworded + " It is painless and works after 2 sessions."}]
    assert asyncio.run(sources.source_of(domain, name)) is None  # no button rather than a wrong source


def test_the_reworded_answer_test_leaves_the_shared_domain_as_the_files_say() -> None:
    """A later test on the same worker reads the files' answers (test_review.py failed after it)."""
    test_a_reworded_answer_gets_its_own_source_and_an_unsupported_one_none()
    assert load_domain() == read_domain()


def test_a_failing_source_lookup_is_tried_once_not_on_every_answer(monkeypatch: pytest.MonkeyPatch) -> None:
    """A broken encoder costs the source, once: later answers do not wait on it again under the lock."""
    calls: list[int] = []

    def broken() -> Checker:
        calls.append(1)
        raise OSError("encoder files missing")

    monkeypatch.setattr(sources, "checker", broken)
    monkeypatch.setattr(sources, "_support", {})
    assert sources.support("It is not surgery.") == ()
    assert sources.support("It is not surgery.") == ()
    assert calls == [1]


def test_the_document_is_named_as_clinic_yml_names_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A clinic that renames its document changes clinic.yml, not code: the source names it so."""
    from common.paths import CLINIC_YML

    shipped = 'document_title: "Non-surgical Scar Revision (Scar Relaxation)"'
    renamed = 'document_title: "Our scar treatment guide"'
    text = CLINIC_YML.read_text(encoding="utf-8").replace(shipped, renamed)
    assert "Our scar treatment guide" in text
    (tmp_path / "clinic.yml").write_text(text, encoding="utf-8")
    monkeypatch.setenv("CLINIC_SETTINGS", str(tmp_path / "clinic.yml"))
    quoted = sources.payload(("A scar is a result of a series of wound healing steps.",))
    assert quoted["source"]["document"] == "Our scar treatment guide"


def test_a_restart_reads_the_sources_it_found_and_loads_no_encoder(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """warm() keeps what it found; the next start (same document, wording, code) reads it back."""
    domain = load_domain()
    cache = tmp_path / "answer-sources.json"
    monkeypatch.setattr(sources, "_support", {})
    monkeypatch.setattr(sources, "_failed", set())
    sources.warm(domain, cache, preload=False)
    found = dict(sources._support)
    assert any(found.values())

    def no_encoder() -> Checker:
        raise AssertionError("a restart with nothing new must not load MiniLM")

    monkeypatch.setattr(sources, "_support", {})
    monkeypatch.setattr(sources, "checker", no_encoder)
    sources.warm(domain, cache, preload=False)
    assert sources._support == found


def test_sources_kept_for_another_document_or_a_failed_lookup_are_not_used(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """An outdated key means nothing is read; a lookup that failed is not kept as 'no source'."""
    cache = tmp_path / "answer-sources.json"
    answer = "It is not surgery."
    sources.write_cache(cache, "an older document", {answer: ["A sentence that is no longer there."]})
    assert sources.read_cache(cache, sources.cache_key()) == {}

    def broken() -> Checker:
        raise OSError("encoder files missing")

    monkeypatch.setattr(sources, "checker", broken)
    monkeypatch.setattr(sources, "_support", {})
    monkeypatch.setattr(sources, "_failed", set())
    sources.warm({"responses": {f"{FAQ_RESPONSE_PREFIX}x": [{"text": answer}]}}, cache, preload=False)
    assert answer not in sources.read_cache(cache, sources.cache_key())


def test_with_every_source_kept_the_encoder_still_loads_in_the_background_at_low_priority(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """A wording published later must not wait for MiniLM: it loads after start, behind the servers' work."""
    import os
    import threading

    answer = "It is not surgery."
    cache = tmp_path / "answer-sources.json"
    sources.write_cache(cache, sources.cache_key(), {answer: []})
    loaded = threading.Event()
    niceness: list[int] = []

    def encoder() -> Checker:
        niceness.append(os.getpriority(os.PRIO_PROCESS, threading.get_native_id()))
        loaded.set()
        raise OSError("not needed here")

    monkeypatch.setattr(sources, "checker", encoder)
    monkeypatch.setattr(sources, "_support", {})
    sources.warm({"responses": {f"{FAQ_RESPONSE_PREFIX}x": [{"text": answer}]}}, cache)
    assert loaded.wait(10)
    assert niceness == [19]
    assert sources._support == {answer: ()}


def test_an_unreadable_clinic_yml_costs_the_documents_name_never_the_answer(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Review: payload() read clinic.yml unguarded, so a broken settings file failed the answer itself."""
    (tmp_path / "clinic.yml").write_text("name: [unclosed\n", encoding="utf-8")
    monkeypatch.setenv("CLINIC_SETTINGS", str(tmp_path / "clinic.yml"))
    quoted = sources.payload(("A scar is a result of a series of wound healing steps.",))
    assert quoted["source"]["document"] == "The clinic's treatment information"


def test_without_a_cache_key_the_sources_are_found_again_and_the_server_still_starts(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Review: a package's metadata missing made warm() raise, and the action server did not start."""
    from importlib import metadata

    def missing(name: str) -> str:
        raise metadata.PackageNotFoundError(name)

    monkeypatch.setattr(sources, "_support", {})
    monkeypatch.setattr(sources, "_failed", set())
    monkeypatch.setattr(sources.metadata, "version", missing)
    domain = {"responses": {"utter_faq/what_is_scar": load_domain()["responses"]["utter_faq/what_is_scar"]}}
    cache = tmp_path / "answer-sources.json"
    sources.warm(domain, cache=cache, preload=False)
    assert not cache.exists()
    [text] = sources.answer_texts(domain)
    assert sources.support(text), "found again, without the cache"


def test_the_kept_sources_are_outdated_by_a_new_lemma_table_or_stop_word_list(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Review: the matching reads spacy-lookups-data and scikit-learn; their versions are in the key."""
    before = sources.cache_key()
    real = sources.metadata.version
    for package in ("spacy-lookups-data", "scikit-learn"):
        monkeypatch.setattr(
            sources.metadata, "version", lambda name, p=package: "99.0" if name == p else real(name)
        )
        assert sources.cache_key() != before, package


# The document's first sentences: the kept embeddings' tests encode a part, not the whole.
EXCERPT = " ".join(grounding_sentences(DOCUMENT.read_text(encoding="utf-8"))[:8])


def test_a_later_checker_reads_the_documents_passages_and_encodes_only_a_changed_sentence(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """A start after the first reads the passages' embeddings; an edit encodes only what it changed."""
    import numpy as np

    from common import grounding
    from components.kept_embeddings import KeptEmbeddings

    folder = tmp_path / "document-embeddings"
    monkeypatch.setattr(grounding, "PASSAGE_EMBEDDINGS", folder)
    document, wording = EXCERPT, read_wording()  # a part: encoding the whole takes seconds
    monkeypatch.setattr(Checker, "_kept", {})  # a new process: nothing encoded yet
    first = Checker(document, wording)
    encoded: list[str] = []
    encode = first.encoder.encode

    def counted(texts: list[str], **options: object) -> np.ndarray:
        encoded.extend(texts)
        return encode(texts, **options)

    monkeypatch.setattr(first.encoder, "encode", counted)
    monkeypatch.setattr(Checker, "_kept", {})
    again = Checker(document, wording)
    assert encoded == []
    assert np.array_equal(again.grounding.passages, first.grounding.passages)  # the very same vectors

    added = "The clinic is on the first floor."
    edited = document.rstrip() + "\n\n" + added + "\n"
    monkeypatch.setattr(Checker, "_kept", {})
    changed = Checker(edited, wording)
    assert added in encoded and len(encoded) == 2  # the new sentence, and it with the one before
    assert changed.grounding.passages.shape[0] == first.grounding.passages.shape[0] + 2
    kept = KeptEmbeddings.load(folder, first.encoder.max_length).vectors
    assert KeptEmbeddings.key(added) in kept and len(kept) == changed.grounding.passages.shape[0]

    encoded.clear()
    monkeypatch.setattr(Checker, "_kept", {})
    Checker(document, wording)  # the edit undone: nothing to encode, only this document's kept
    kept = KeptEmbeddings.load(folder, first.encoder.max_length).vectors
    assert encoded == [] and len(kept) == first.grounding.passages.shape[0]
    assert KeptEmbeddings.key(added) not in kept


def test_a_folder_that_cannot_be_written_costs_only_the_encoding(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A read-only installation checks as before, with a quiet note, never a warning or a failure."""
    import logging

    from common import grounding

    blocked = tmp_path / "a-file-not-a-folder"
    blocked.write_text("", encoding="utf-8")
    monkeypatch.setattr(grounding, "PASSAGE_EMBEDDINGS", blocked / "document-embeddings")
    monkeypatch.setattr(Checker, "_kept", {})
    with caplog.at_level(logging.INFO):
        checker = Checker(EXCERPT, read_wording())
    assert checker.support(" ".join(checker.document_sentences[:1]))  # it checks as before
    notes = [r for r in caplog.records if "Could not keep" in r.getMessage()]
    assert notes and all(r.levelno == logging.INFO for r in notes)
