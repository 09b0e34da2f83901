"""Approved wording managed by staff: the framing sentences answers may use beyond the document.

A framing sentence points the visitor to the clinic or introduces a list ("How quickly your
own scar responds is something to ask at a consultation."); an answer may use one word for
word even though the clinic's document does not say it. Admins add and retire them on the
Approved wording page; editors see them (read-only) and, on the answer editor, which answer
sentence passed because it is one, who added it and when.

A change goes the console's usual way (content.save): under the project's lock, refused if
someone saved first, the project's checks run on a copy (a retired sentence an answer still
uses would fail them), then written with the YAML round trip (only the changed line differs)
and committed with the staff member as author, so History lists it and can undo it.
What no framing sentence may say is grounding.banned_words: figures, prices, times, promises.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from ruamel.yaml.comments import CommentedSeq

from common import grounding
from staff.service import content, history
from staff.service.yamlfile import LayoutError, open_yaml, quoted

FRAMING_KEY = "framing_sentences"
MAX_SENTENCE_CHARS = 200
DEVELOPER = "a developer"


@dataclass
class Framing:
    """One approved framing sentence: who added it, when, and which answers use it (by title)."""

    text: str
    added_by: str = ""  # a staff member's name, or DEVELOPER
    added_on: datetime | None = None
    used_by: list[tuple[str, str]] = field(default_factory=list)  # (topic key, title staff see)

    def provenance(self, zone: ZoneInfo) -> str:
        """Who added it and when, in words ("added by anna on 4 Dec 2026")."""
        if not self.added_by:
            return "not yet saved in the history"
        when = f" on {self.added_on.astimezone(zone):%-d %b %Y}" if self.added_on else ""
        return f"added by {self.added_by}{when}"


def version(root: Path) -> str:
    """The token of the approved wording as a page shows it: a change from an older one is refused."""
    return content.version(root, (content.WORDING,))


def _blame(root: Path) -> dict[int, tuple[str, datetime]]:
    """Who last wrote each line of the approved wording, and when: {line number: (name, time)}."""
    if history.problem(root):
        return {}
    result = history.git(root, "blame", "--porcelain", "--", content.WORDING, check=False)
    if result.returncode != 0:
        return {}
    commits: dict[str, tuple[str, datetime]] = {}
    lines: dict[int, tuple[str, datetime]] = {}
    sha, line, name, mail, stamp = "", 0, "", "", 0
    for raw in result.stdout.splitlines():
        if raw.startswith("\t"):
            if sha not in commits and name:
                staff_member = mail.strip("<>").endswith(f"@{history.STAFF_EMAIL_DOMAIN}")
                when = datetime.fromtimestamp(stamp).astimezone()
                commits[sha] = (name if staff_member else DEVELOPER, when)
            if sha in commits and not sha.startswith("0000000"):
                lines[line] = commits[sha]
            name, mail = "", ""
            continue
        key, _, value = raw.partition(" ")
        if len(key) == 40 and all(c in "0123456789abcdef" for c in key):
            sha, line = key, int(value.split()[1])
        elif key == "author":
            name = value
        elif key == "author-mail":
            mail = value
        elif key == "author-time":
            stamp = int(value)
    return lines


def framing_sentences(root: Path) -> list[Framing]:
    """The approved framing sentences, with who added each and the answers that use it."""
    try:
        wording = grounding.read_wording(root / content.WORDING)
    except grounding.WordingError:
        return []
    text = (root / content.WORDING).read_text(encoding="utf-8")
    blame = _blame(root)
    uses = users(root)
    found = []
    for sentence in wording.framing_sentences:
        number = next(
            (
                i
                for i, line in enumerate(text.splitlines(), 1)
                if sentence in line and line.lstrip().startswith("-")
            ),
            0,
        )
        name, when = blame.get(number, ("", None))
        found.append(Framing(sentence, name, when, uses.get(grounding.normalise_sentence(sentence), [])))
    return found


def users(root: Path) -> dict[str, list[tuple[str, str]]]:
    """{a sentence as the check compares it: (key, title) of each answer that uses it word for word}."""
    found: dict[str, list[tuple[str, str]]] = {}
    for topic in content.topics(root):
        for sentence in grounding.sentences(topic.answer):
            users_of = found.setdefault(grounding.normalise_sentence(sentence), [])
            if (topic.key, topic.title) not in users_of:
                users_of.append((topic.key, topic.title))
    return found


def provenance(root: Path, zone: ZoneInfo) -> dict[str, str]:
    """{a framing sentence as the check compares it: who added it and when, in words}."""
    return {grounding.normalise_sentence(f.text): f.provenance(zone) for f in framing_sentences(root)}


# ---- why each sentence of an answer passed or failed ----------------------------------------
@dataclass(frozen=True)
class Reason:
    """One sentence of an answer and, in plain words, why it passes the check or not."""

    sentence: str
    ok: bool
    why: str
    approvable: bool = False  # fails, but states no figure or promise: an admin may approve it as framing


def reasons(root: Path, verdicts: list[grounding.Verdict], zone: ZoneInfo) -> list[Reason]:
    """Why each sentence passed ("found in the document: ...", "approved framing sentence, ...") or not."""
    added = provenance(root, zone) if any(v.framing for v in verdicts) else {}
    found = []
    for verdict in verdicts:
        if verdict.framing:
            who = added.get(grounding.normalise_sentence(verdict.sentence), "")
            found.append(
                Reason(verdict.sentence, True, "approved framing sentence" + (f", {who}" if who else ""))
            )
        elif verdict.supported:
            found.append(Reason(verdict.sentence, True, f"found in the document: '{verdict.evidence}'"))
        else:
            approvable = not grounding.banned_words(verdict.sentence)
            found.append(Reason(verdict.sentence, False, failure(verdict), approvable))
    return found


def failure(verdict: grounding.Verdict) -> str:
    """Why a sentence fails, in plain words, with what to do."""
    if verdict.figures:
        return (
            f"{grounding.quoted(verdict.figures)}: the document does not say this figure, price, time or "
            "promise. Take it out, or say only what the document says."
        )
    if verdict.words:
        return (
            f"{grounding.quoted(verdict.words)} {'is' if len(verdict.words) == 1 else 'are'} not in the "
            "document. Use the document's words; or, if the sentence only points the visitor to the "
            "clinic, an admin can approve it on the Approved wording page."
        )
    return (
        "the document says nothing close to this. Say what the document says; or, if the sentence only "
        "points the visitor to the clinic, an admin can approve it on the Approved wording page."
    )


# ---- changing the list ---------------------------------------------------------------------
def clean(sentence: str) -> str:
    """A sentence as typed, on one line with single spaces."""
    return " ".join(sentence.split())


def refusals(sentence: str, approved: list[str]) -> list[str]:
    """What stops a sentence being approved as framing, in plain words (empty: nothing)."""
    if not sentence:
        return ["Write the sentence first."]
    problems = []
    if len(sentence) > MAX_SENTENCE_CHARS:
        problems.append(f"It is {len(sentence)} characters long: keep it under {MAX_SENTENCE_CHARS}.")
    parts = grounding.sentences(sentence)
    if len(parts) != 1 or parts[0] != sentence.strip(" -"):
        problems.append(
            "Approve one sentence at a time (this reads as "
            f"{len(parts) or 'no'} sentence{'' if len(parts) == 1 else 's'}): add each on its own."
        )
    said = grounding.banned_words(sentence)
    if said:
        problems.append(
            f"It says {grounding.quoted(said)}. Figures, prices, times and promises (such as painless, "
            "safe, permanent, best) can never be approved: only the clinic's document may state them. "
            "Take those words out, so the sentence only points the visitor to the clinic."
        )
    if grounding.normalise_sentence(sentence) in {grounding.normalise_sentence(a) for a in approved}:
        problems.append("This sentence is already approved: nothing to add.")
    return problems


def _change(root: Path, started_from: str, staff_name: str, edit: Any, message: str) -> str:
    """Open the approved wording, apply `edit` to its framing list, and save it as one commit."""
    try:
        wording = open_yaml(root / content.WORDING, content.WORDING)
    except LayoutError:
        raise content.Refused(
            "The approved wording is laid out in a way the console cannot change without re-writing it: "
            "ask a developer to make this change."
        ) from None
    seq = wording.data.get(FRAMING_KEY)
    if not isinstance(seq, CommentedSeq):
        raise content.Refused(
            "The approved wording has no list of framing sentences the console can change: ask a developer."
        )
    edit(seq)
    watched = (content.WORDING,)
    return content.save(root, {content.WORDING: wording}, started_from, watched, message, staff_name)


def _keep_comment_last(seq: CommentedSeq, comment: Any) -> None:
    """Put the comment that follows the list (the next section's heading) after its last item again.

    ruamel.yaml keeps that comment on the list's last item: an item added after it, or the
    removal of that item, would otherwise move the next section's heading or lose it.
    """
    for index in list(seq.ca.items):
        if seq.ca.items[index] is comment:
            del seq.ca.items[index]
    if comment is not None and len(seq):
        seq.ca.items[len(seq) - 1] = comment


def add(root: Path, sentence: str, started_from: str, staff_name: str) -> str:
    """Approve a framing sentence (one commit, the admin as author); its id. Raises content.Refused."""
    sentence = clean(sentence)
    with content.locked(root):
        content.refuse_if_stale(root, (content.WORDING,), started_from)
        approved = [f.text for f in framing_sentences(root)]
        problems = refusals(sentence, approved)
        if problems:
            raise content.Refused("The sentence was not approved:", problems)

        def append(seq: CommentedSeq) -> None:
            comment = seq.ca.items.get(len(seq) - 1)
            seq.append(quoted(sentence))
            _keep_comment_last(seq, comment)

        return _change(root, started_from, staff_name, append, f'Approved wording: added "{sentence}"')


def retire(root: Path, sentence: str, started_from: str, staff_name: str) -> str:
    """Retire a framing sentence (one commit); its id. Refused, naming them, if answers still use it."""
    with content.locked(root):
        content.refuse_if_stale(root, (content.WORDING,), started_from)
        current = next((f for f in framing_sentences(root) if f.text == sentence), None)
        if current is None:
            raise content.Refused(
                "This sentence is not in the approved list (it may have been retired already)."
            )
        if current.used_by:
            names = grounding.quoted(title for _, title in current.used_by)
            many = len(current.used_by) > 1
            raise content.Refused(
                f"The sentence was not retired: the answer{'s' if many else ''} {names} "
                f"{'use' if many else 'uses'} it word for word, and would no longer pass the check. "
                f"Reword {'them' if many else 'it'} first (on Answers), then retire the sentence."
            )

        if len(framing_sentences(root)) == 1:
            raise content.Refused(
                "This is the only approved sentence left; the list keeps at least one. Approve its "
                "replacement first, then retire this one."
            )

        def remove(seq: CommentedSeq) -> None:
            comment = seq.ca.items.get(len(seq) - 1)
            del seq[next(i for i, item in enumerate(seq) if str(item) == sentence)]
            _keep_comment_last(seq, comment)

        return _change(root, started_from, staff_name, remove, f'Approved wording: retired "{sentence}"')
