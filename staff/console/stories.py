"""The editor's story pages: stories and conversation tests in plain words; new ones from real conversations.

Everything is read and written through staff/service/stories.py (which checks, writes and
commits through staff/service/content.py and history.py); this module only turns forms into
calls and results into pages.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from flask_login import current_user

from staff.console.base import console, requires
from staff.service import history, transcripts
from staff.service import stories as service

stories = Blueprint("stories", __name__, url_prefix="/stories")
BLUEPRINTS = (stories,)
TRAINING_NOTE = (
    "It takes effect at the next training (Check and publish): "
    "until then the assistant keeps behaving as now."
)
KINDS = {True: "conversation test", False: "story"}


def _refused(error: Exception) -> service.Refused:
    return error if isinstance(error, service.Refused) else service.Refused(str(error))


def _choices(count: int) -> list[str]:
    """Each turn's choice from the form: keep, remove, or an option's key."""
    return [(request.form.get(f"turn-{i}") or service.KEEP)[:100] for i in range(count)]


def _inserted(turns: list[service.Turn], known: dict[str, service.Option], test: bool) -> list[service.Turn]:
    """The turns with the new step the form adds (after the chosen turn), if any."""
    choice = request.form.get("insert-option") or ""
    if not choice:
        return turns
    option = known.get(choice)
    if option is None:
        raise service.Refused("The new step is not something the assistant can do: choose it from the list.")
    text = " ".join((request.form.get("insert-text") or "").split())[: service.MAX_TEXT_CHARS]
    if test and not text:
        raise service.Refused(
            "Write what the visitor says in the new step: a conversation test needs the words."
        )
    where = request.form.get("insert-after") or "-1"
    position = int(where) + 1 if where.lstrip("-").isdigit() else len(turns)
    position = max(0, min(position, len(turns)))
    new = service.Turn(option.intent, text, option.step_maps())
    return [*turns[:position], new, *turns[position:]]


def _rows(words: service.Words, turns: list[service.Turn]) -> list[tuple[service.Turn, str, str]]:
    return [(turn, *words.turn(turn)) for turn in turns]


def to_story(root: Any, path: str, name: str) -> Any:
    """Go to the story just saved (by file and name), or to the list if it cannot be found."""
    wanted = " ".join(name.split())
    fresh = next((s for s in service.read_all(root) if s.path == path and s.name == wanted), None)
    if fresh is None:
        return redirect(url_for("stories.index"))
    return redirect(url_for("stories.edit", file=fresh.path, n=fresh.index))


# ---- the list ----------------------------------------------------------------------------
def matches(query: str, *texts: str) -> bool:
    """Whether every word of `query` is in one of `texts` (case does not matter)."""
    haystack = " ".join(texts).lower()
    return all(word in haystack for word in query.lower().split())


@stories.get("/", endpoint="index")
@requires("content")
def list_stories() -> Any:
    """Stories and conversation tests by topic, folded, in plain words; `q` finds them by words.

    A story matches when every word of the search is in its topic's title, its name or its
    plain words; the topics with matches open.
    """
    root = console().root
    words = service.Words.of(root)
    found = service.read_all(root)
    query = " ".join((request.args.get("q") or "").split())[:100]
    groups: dict[str, list[tuple[service.Story, str]]] = {}
    for story in found:
        topic, plain = service.topic_of(story, words.titles), words.story(story)
        if not query or matches(query, topic, story.name, plain):
            groups.setdefault(topic, []).append((story, plain))
    return render_template(
        "stories.html",
        groups=sorted(groups.items(), key=lambda kv: kv[0].lower()),
        query=query,
        matched=sum(len(items) for items in groups.values()),
        coverage=service.coverage(root, found, words),
        history_problem=history.problem(root),
    )


# ---- one story ---------------------------------------------------------------------------
def _story_or_404(root: Any, path: str, index: int) -> service.Story:
    story = service.find(root, path, index)
    if story is None:
        abort(404)
    return story


@stories.route("/edit", methods=["GET", "POST"])
@requires("content")
def edit() -> Any:
    """One story: each turn kept, replaced by another reply, or removed; a step inserted; renamed."""
    state = console()
    root = state.root
    path = request.args.get("file") or ""
    index = int(request.args.get("n") or "-1") if (request.args.get("n") or "").isdigit() else -1
    story = _story_or_404(root, path, index)
    words = service.Words.of(root)
    opts = service.options(root, words)
    known = {o.key: o for o in opts}
    values = {
        "story": story,
        "rows": _rows(words, story.turns),
        "options": opts,
        "history_problem": history.problem(root),
        "note": TRAINING_NOTE,
    }
    if request.method == "GET":
        return render_template("story.html", version=service.stories_version(root), name=story.name, **values)
    form = request.form
    version = form.get("version") or ""
    name = form.get("name") or ""
    try:
        if form.get("action") == "delete":
            service.delete_story(root, story, version, current_user.name)
            state.audit("deleted a story", story.name, KINDS[story.test])
            flash(f'"{story.name}" was deleted (the History has it). {TRAINING_NOTE}', "success")
            return redirect(url_for("stories.index"))
        turns = service.apply_choices(story.turns, _choices(len(story.turns)), known, story.test)
        turns = _inserted(turns, known, story.test)
        service.change_story(root, story, name, turns, version, current_user.name)
    except (service.Refused, history.HistoryError) as error:
        refused = _refused(error)
        status = 409 if "Someone else" in refused.summary else 400
        return render_template("story.html", refusal=refused, version=version, name=name, **values), status
    state.audit("changed a story", name, KINDS[story.test])
    flash(f"Saved (the History has it). {TRAINING_NOTE}", "success")
    return to_story(root, story.path, name)


# ---- from a conversation -----------------------------------------------------------------
@stories.route("/from-conversation", methods=["GET", "POST"])
@requires("content")
def from_conversation() -> Any:
    """A real conversation, turn by turn: keep or correct each reply, then save as a story or a test."""
    state = console()
    root = state.root
    handle = (request.values.get("id") or "").strip().upper()[:40]
    secret = state.settings.live_chat_key()  # staff name conversations by handle, never by id
    sender = transcripts.resolve(state.database_url, handle, secret)
    turns = service.conversation_turns(state.database_url, sender) if sender else []
    if not turns or sender is None:
        abort(404)
    words = service.Words.of(root)
    opts = service.options(root, words)
    known = {o.key: o for o in opts}
    started = transcripts.summary(state.database_url, sender, state.clinic.zone, secret).first
    values = {
        "handle": handle,
        "rows": _rows(words, turns),
        "options": opts,
        "history_problem": history.problem(root),
        "note": TRAINING_NOTE,
    }
    if request.method == "GET":
        state.audit("read conversation", handle, "to save it as a story or a test")
        return render_template(
            "from_conversation.html",
            version=service.stories_version(root),
            name=service.default_name(turns, started),
            choices=[service.KEEP] * len(turns),
            **values,
        )
    form = request.form
    test = form.get("save_as") == "test"
    choices = _choices(len(turns))
    version = form.get("version") or ""
    name = form.get("name") or ""
    try:
        corrected = service.apply_choices(turns, choices, known, test)
        path, _ = service.add_story(root, name, corrected, test, version, current_user.name)
    except (service.Refused, history.HistoryError) as error:
        refused = _refused(error)
        status = 409 if "Someone else" in refused.summary else 400
        return render_template(
            "from_conversation.html", refusal=refused, version=version, name=name, choices=choices, **values
        ), status
    kind = KINDS[test]
    state.audit(f"saved a conversation as a {kind}", handle, name)
    flash(f"Saved as a {kind} (the History has it). {TRAINING_NOTE}", "success")
    return to_story(root, path, name)
