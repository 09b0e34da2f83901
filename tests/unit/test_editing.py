"""Editing the assistant in the console: the round-trip writer, the checks before a save, git history.

Every test works on a copy of the project in a temporary git repository (tests/helpers.py
project_copy), never on the real files. The grounding check is the real one (MiniLM).
"""

from __future__ import annotations

import re
import subprocess
import time
from pathlib import Path

import pytest

from common.clinic import load_settings
from common.paths import PROJECT_ROOT
from common.settings import Settings
from staff.commands import validate as validate_command
from staff.console.app import create_app
from staff.service import accounts, content, db, describe, history, inbox, plain, validate
from staff.service.yamlfile import answer_text, open_yaml, quoted
from tests.helpers import project_copy

PASSWORD = "correct horse battery staple"
INVENTED = "Treatment costs 150 pounds per session."
MELANIN_ANSWER = (
    "Melanocytes are the skin cells that make melanin, the substance that gives color to the skin."
)
MELANIN_EXAMPLES = [
    "what does melanin do",
    "where does melanin come from",
    "what makes melanin in the skin",
    "which cells make melanin",
    "tell me about melanin",
    "melanin meaning",
    "what is melanin for",
    "what gives skin its colour",
    "why does skin have colour",
    "what are melanocytes",
    "is melanin a pigment",
    "how is melanin made in skin cells",
    "explain melanin to me",
    "what is the pigment in skin called",
    "which substance colours the skin",
]


@pytest.fixture
def root(tmp_path: Path) -> Path:
    return project_copy(tmp_path / "project")


def git(root: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=root, check=True, capture_output=True, text=True).stdout


def changed_lines(before: str, after: str) -> list[int]:
    """The (1-based) line numbers that differ, for files of the same length."""
    old, new = before.splitlines(), after.splitlines()
    assert len(old) == len(new)
    return [n for n, (a, b) in enumerate(zip(old, new), 1) if a != b]


def topic_change(root: Path, key: str, **changes) -> content.TopicChange:
    current = content.topic(root, key)
    assert current is not None
    values = {
        "answer": current.answer,
        "title": current.title,
        "version": content.version(root, content.topic_files(root)),
        **changes,
    }
    return content.TopicChange(**values)


def clinic_change(root: Path, **values) -> content.ClinicChange:
    raw = content.clinic_values(root)
    fields = {name: str(raw.get(name) or "") for name in content.CLINIC_FIELDS}
    return content.ClinicChange(
        values={**fields, **values},
        opening_days=list(raw["opening_days"]),
        closed_dates=[str(d) for d in raw["closed_dates"]],
        version=content.version(root, (content.CLINIC,)),
    )


# ---------------------------------------------------------------------------- the writer
@pytest.mark.parametrize(
    "name",
    sorted(
        p.relative_to(PROJECT_ROOT).as_posix()
        for p in [
            *PROJECT_ROOT.glob("domain/*.yml"),
            *PROJECT_ROOT.glob("data/*/*.yml"),
            PROJECT_ROOT / "clinic.yml",
        ]
    ),
)
def test_every_file_the_console_edits_is_written_back_byte_for_byte(name: str) -> None:
    opened = open_yaml(PROJECT_ROOT / name, name)
    assert opened.text() == opened.original


def test_a_new_answer_changes_only_its_own_lines(root: Path) -> None:
    path = root / "domain" / "faq.yml"
    opened = open_yaml(path, "domain/faq.yml")
    opened.data["responses"]["utter_faq/what_is"][0]["text"] = answer_text(
        "Non-surgical Scar Revision, also known as Scar Relaxation, uses advanced skin needling techniques "
        "to reduce the appearance of scars. It is not surgery."
    )
    after = opened.text()
    lines = opened.original.splitlines()
    start = lines.index("  utter_faq/what_is:")
    # Only the answer's own text lines (below `- text: >-`) changed; comments and the rest are the same bytes.
    new_lines = after.splitlines()
    assert new_lines[: start + 2] == lines[: start + 2]
    tail = lines.index("      metadata:", start)
    assert new_lines[new_lines.index("      metadata:", start) :] == lines[tail:]
    assert "# Staff: each answer's `metadata` names the section" in after
    assert "It is not surgery." in after and "naturally" not in after.split("utter_faq/how_it_works")[0]


def test_a_button_title_changes_only_the_title_lines_and_keeps_the_flow_lists(root: Path) -> None:
    name = "domain/conversation.yml"
    opened = open_yaml(root / name, name)
    for variation in opened.data["responses"]["utter_help"]:
        for button in variation["buttons"]:
            if "what_is" in button["payload"]:
                button["title"] = quoted("What is it?")
    after = opened.text()
    assert (
        after.count("mappings: [{type: custom}]") == opened.original.count("mappings: [{type: custom}]") > 0
    )
    [line] = changed_lines(opened.original, after)
    assert after.splitlines()[line - 1] == '        - title: "What is it?"'


def test_a_clinic_detail_keeps_its_comment_and_the_other_lines(root: Path) -> None:
    sha = content.change_clinic(root, clinic_change(root, phone="020 7946 0999"), "eddie")
    before = git(root, "show", f"{sha}^:clinic.yml")
    after = (root / "clinic.yml").read_text(encoding="utf-8")
    [line] = changed_lines(before, after)
    assert (
        after.splitlines()[line - 1]
        == 'phone: "020 7946 0999"                          # EXAMPLE (fictional number)'
    )


# ---------------------------------------------------------------------------- saving topics
def test_a_reworded_answer_is_committed_with_the_staff_member_as_author(root: Path) -> None:
    current = content.topic(root, "what_is")
    new_answer = current.answer.replace("and it repairs itself naturally.", "and it repairs itself.")
    sha = content.change_topic(root, "what_is", topic_change(root, "what_is", answer=new_answer), "eddie")
    assert git(root, "log", "-1", "--format=%an <%ae>|%s", sha).strip() == (
        'eddie <eddie@staff.invalid>|Topic "What is Scar Relaxation?": answer reworded'
    )
    assert git(root, "show", "--name-only", "--format=", sha).split() == ["domain/faq.yml"]
    assert content.topic(root, "what_is").answer == new_answer
    assert git(root, "status", "--porcelain", "--", "domain", "data") == ""  # everything is committed
    assert validate_command.main(["--root", str(root), "--without-rasa"]) == 0


def test_a_title_and_examples_change_together_as_one_commit(root: Path) -> None:
    current = content.topic(root, "what_is")
    first, second = current.examples[:2]
    change = topic_change(
        root,
        "what_is",
        title="What is it?",
        moves={first: "remove", second: "how_it_works"},
        added=["could you describe scar relaxation for me", "  "],
    )
    sha = content.change_topic(root, "what_is", change, "eddie")
    after = content.topic(root, "what_is")
    assert after.title == "What is it?"
    assert first not in after.examples and second not in after.examples
    assert after.examples[-1] == "could you describe scar relaxation for me"
    assert second in content.topic(root, "how_it_works").examples
    assert '- title: "What is it?"' in (root / "domain" / "conversation.yml").read_text(encoding="utf-8")
    message = git(root, "log", "-1", "--format=%s", sha)
    assert '1 example(s) moved to "How does it work?"' in message and "1 example(s) removed" in message


@pytest.mark.parametrize(
    ("example", "what"),
    [
        ("hi I'm Quentin, does it work on my scar", "someone's name"),
        ("can you call me back on 07911 123456", "a phone number"),
    ],
)
def test_an_example_with_personal_data_is_refused_and_nothing_is_written(
    root: Path, example: str, what: str
) -> None:
    """An example pasted from a visitor's message must not carry their details into git (issue 20)."""
    head = git(root, "rev-parse", "HEAD")
    before = (root / "data" / "nlu" / "faq.yml").read_bytes()
    with pytest.raises(content.Refused) as refused:
        content.change_topic(root, "what_is", topic_change(root, "what_is", added=[example]), "eddie")
    assert what in refused.value.summary and "not saved" in refused.value.summary
    assert (root / "data" / "nlu" / "faq.yml").read_bytes() == before
    assert git(root, "rev-parse", "HEAD") == head


def test_an_invented_fact_is_refused_with_the_checkers_words_and_nothing_is_written(root: Path) -> None:
    current = content.topic(root, "what_is")
    head = git(root, "rev-parse", "HEAD")
    before = (root / "domain" / "faq.yml").read_bytes()
    with pytest.raises(content.Refused) as refused:
        content.change_topic(
            root, "what_is", topic_change(root, "what_is", answer=f"{current.answer} {INVENTED}"), "eddie"
        )
    assert "the clinic's document does not support all of it" in refused.value.summary
    [problem] = refused.value.problems
    assert INVENTED in problem and '"150"' in problem and "pounds" in problem
    assert (root / "domain" / "faq.yml").read_bytes() == before
    assert git(root, "rev-parse", "HEAD") == head


def test_a_save_from_an_older_version_is_refused(root: Path) -> None:
    stale = topic_change(root, "what_is", title="Scar Relaxation")
    content.change_topic(
        root, "how_it_works", topic_change(root, "how_it_works", title="How it works"), "anna"
    )
    with pytest.raises(content.Refused, match="Someone else saved a change"):
        content.change_topic(root, "what_is", stale, "eddie")
    assert content.topic(root, "what_is").title == "What is Scar Relaxation?"


def test_a_change_the_projects_checks_refuse_is_not_written(root: Path) -> None:
    current = content.topic(root, "who_for")
    moves = dict.fromkeys(current.examples[: len(current.examples) - validate.MIN_EXAMPLES + 1], "remove")
    before = (root / "data" / "nlu" / "faq.yml").read_bytes()
    with pytest.raises(content.Refused) as refused:
        content.change_topic(root, "who_for", topic_change(root, "who_for", moves=moves), "eddie")
    assert "project's checks found a problem" in refused.value.summary
    assert any("fewer than" in p and "“Who is it for?”" in p for p in refused.value.problems)
    assert not any("faq/" in p or ".yml" in p for p in refused.value.problems)  # staff's words
    assert (root / "data" / "nlu" / "faq.yml").read_bytes() == before


def test_a_new_topic_passes_make_validates_checks(root: Path) -> None:
    lines = content.document_lines(root)
    [(number, quote)] = [s for line in lines for s in line.sentences if s[1].startswith("Melanocytes are")]
    new = content.NewTopic(
        title="What is melanin?",
        answer=MELANIN_ANSWER,
        quotes=[number],
        examples=MELANIN_EXAMPLES,
        version=content.version(root, content.topic_files(root)),
    )
    key, sha = content.add_topic(root, new, "eddie")
    assert key == "what_is_melanin"
    added = content.topic(root, key)
    assert added.title == "What is melanin?" and added.examples == MELANIN_EXAMPLES
    assert added.quote == quote and added.source.startswith("What causes post inflammatory")
    assert validate_command.main(["--root", str(root), "--without-rasa"]) == 0
    assert git(root, "log", "-1", "--format=%an|%s", sha).strip() == (
        'eddie|New topic "What is melanin?" with 15 example questions'
    )


def test_a_new_topic_needs_the_minimum_number_of_examples(root: Path) -> None:
    new = content.NewTopic("Why?", "A scar is a result of wound healing.", [0], ["why", "why not"], "x")
    with pytest.raises(content.Refused, match=f"at least {validate.MIN_EXAMPLES} different example"):
        content.add_topic(root, new, "eddie")


# ---------------------------------------------------------------------------- clinic details
def test_clinic_details_are_checked_as_make_validate_checks_them(root: Path) -> None:
    before = (root / "clinic.yml").read_bytes()
    with pytest.raises(content.Refused) as refused:
        content.change_clinic(
            root, clinic_change(root, phone="", booking_link="booking.example.test"), "eddie"
        )
    assert any("phone" in p for p in refused.value.problems), refused.value.problems
    change = clinic_change(root)
    change.closed_dates = ["25/12/2026"]
    with pytest.raises(content.Refused) as refused:
        content.change_clinic(root, change, "eddie")
    assert any("25/12/2026" in p and "YYYY-MM-DD" in p for p in refused.value.problems)
    assert (root / "clinic.yml").read_bytes() == before


def test_clinic_details_are_read_again_when_the_file_changes(tmp_path: Path) -> None:
    path = tmp_path / "clinic.yml"
    path.write_text((PROJECT_ROOT / "clinic.yml").read_text(encoding="utf-8"), encoding="utf-8")
    assert load_settings(path).phone == "020 7946 0000"
    time.sleep(0.01)
    path.write_text(
        path.read_text(encoding="utf-8").replace("020 7946 0000", "020 7946 0999"), encoding="utf-8"
    )
    assert load_settings(path).phone == "020 7946 0999"  # no restart


# ---------------------------------------------------------------------------- history
def test_the_history_lists_who_changed_what_and_undo_restores_it(root: Path) -> None:
    sha = content.change_clinic(root, clinic_change(root, phone="020 7946 0999"), "eddie")
    [latest, first] = history.changes(root)[:2]
    assert (latest.sha, latest.author, latest.by_staff, latest.files) == (sha, "eddie", True, ["clinic.yml"])
    assert latest.message == "Clinic details: phone"
    assert (first.author, first.by_staff) == ("Dee Veloper", False)
    assert '+phone: "020 7946 0999"' in history.diff(root, sha)
    undone = content.undo(root, sha, "anna")
    assert load_settings(root / "clinic.yml").phone == "020 7946 0000"
    assert git(root, "log", "-1", "--format=%an|%s", undone).strip() == "anna|Undone: Clinic details: phone"
    with pytest.raises(content.Refused, match="already been undone"):
        content.undo(root, sha, "anna")


# Issue 21: the History in words, only staff changes, titles that never nest.
INTERNAL = re.compile(r"utter_|faq/|\.ya?ml|- text:|: >-|[0-9a-f]{7,}|\b[a-z]+_[a-z_]+\b")


def test_an_undo_of_an_undo_reads_put_back_and_titles_never_nest(root: Path) -> None:
    sha = content.change_clinic(root, clinic_change(root, phone="020 7946 0999"), "eddie")
    undone = content.undo(root, sha, "anna")
    put_back = content.undo(root, undone, "eddie")
    again = content.undo(root, put_back, "anna")
    titles = [describe.title(root, history.change(root, s)) for s in (undone, put_back, again)]
    assert titles == [
        "Undone: Clinic details: phone",
        "Put back: Clinic details: phone",
        "Undone: Clinic details: phone",
    ]
    assert git(root, "log", "-1", "--format=%s", put_back).strip() == "Put back: Clinic details: phone"
    assert load_settings(root / "clinic.yml").phone == "020 7946 0000"
    # A title from before this change (git keeps them) reads the same way.
    nested = history.Change("0", "anna", "anna@staff.invalid", None, 'Undo "Undo "Clinic details: phone""')
    assert describe.title(root, nested) == "Put back: Clinic details: phone"


def test_the_history_shows_only_staff_changes(root: Path) -> None:
    sha = content.change_clinic(root, clinic_change(root, phone="020 7946 0999"), "eddie")
    (root / "clinic.yml").write_text(
        (root / "clinic.yml").read_text(encoding="utf-8") + "# a developer's note\n", encoding="utf-8"
    )
    git(root, "-c", "user.name=Dee Veloper", "-c", "user.email=dee@example.com", "commit", "-qam", "Tidy")
    git(root, "checkout", "-qb", "side", "HEAD~1")
    git(root, "checkout", "-q", "-")
    git(
        root,
        "-c",
        "user.name=Dee Veloper",
        "-c",
        "user.email=dee@example.com",
        "merge",
        "--no-ff",
        "-qm",
        "Merge branch 'side'",
        "side",
    )
    shown = history.staff_changes(root)
    assert [item.sha for item in shown] == [sha]
    assert all(item.by_staff and item.parents == 1 for item in shown)


def test_a_change_is_described_in_words_before_and_after(root: Path) -> None:
    current = content.topic(root, "what_is")
    new_answer = current.answer.replace("and it repairs itself naturally.", "and it repairs itself.")
    change = topic_change(
        root, "what_is", answer=new_answer, title="What is it?", added=["describe the treatment"]
    )
    sha = content.change_topic(root, "what_is", change, "eddie")
    item = history.change(root, sha)
    said = describe.describe(root, item)
    by_what = {d.what: d for d in said}
    answer = by_what["Answer “What is it?” reworded"]
    assert answer.before == [" ".join(current.answer.split())] and answer.after == [
        " ".join(new_answer.split())
    ]
    assert by_what["Topic “What is Scar Relaxation?” renamed"].after == ["What is it?"]
    assert by_what["1 example question added to “What is it?”"].after == ["describe the treatment"]
    assert describe.title(root, item) == (
        "Answer “What is it?” reworded; Topic “What is Scar Relaxation?” renamed “What is it?”; "
        "1 example question added to “What is it?”"
    )
    for text in [
        describe.title(root, item),
        *(d.what for d in said),
        *(x for d in said for x in d.before + d.after),
    ]:
        assert not INTERNAL.search(text), text
    clinic = content.change_clinic(root, clinic_change(root, phone="020 7946 0999"), "eddie")
    [phone] = describe.describe(root, history.change(root, clinic))
    assert (phone.what, phone.before, phone.after) == (
        "Clinic details: phone changed",
        ["020 7946 0000"],
        ["020 7946 0999"],
    )


def test_an_inbox_addition_names_the_topic_as_staff_see_it(root: Path) -> None:
    item = history.Change(
        "0",
        "eddie",
        "eddie@staff.invalid",
        None,
        "2 example(s) added to out_of_scope from Unanswered questions",
    )
    assert describe.title(root, item) == (
        f"2 example questions added to “{plain.INTENTS['out_of_scope']}” from Unanswered questions"
    )
    assert plain.topic_title(root, "faq/results_time") == content.topic(root, "results_time").title
    assert plain.topic_title(root, "utter_faq/results_time") == content.topic(root, "results_time").title
    assert not INTERNAL.search(plain.topic_title(root, "utter_booking_intro"))


def test_undo_is_refused_when_later_changes_edited_the_same_lines(root: Path) -> None:
    first = content.change_clinic(root, clinic_change(root, phone="020 7946 0111"), "eddie")
    content.change_clinic(root, clinic_change(root, phone="020 7946 0222"), "anna")
    with pytest.raises(content.Refused, match="later changes edited the same lines of Clinic details"):
        content.undo(root, first, "eddie")
    assert load_settings(root / "clinic.yml").phone == "020 7946 0222"


def test_undo_is_refused_when_the_result_would_fail_the_checks(root: Path) -> None:
    current = content.topic(root, "who_for")
    sha = content.change_topic(
        root, "who_for", topic_change(root, "who_for", added=["who can have scar relaxation done"]), "eddie"
    )
    # Later, a developer removes other examples: the topic has exactly the minimum, counting the added one.
    # (the first ones, away from the added line, so the two changes do not touch the same lines)
    keep = current.examples[-(validate.MIN_EXAMPLES - 1) :] + ["who can have scar relaxation done"]
    path = root / "data" / "nlu" / "faq.yml"
    text = path.read_text(encoding="utf-8")
    for example in current.examples[: -(validate.MIN_EXAMPLES - 1)]:
        text = text.replace(f"    - {example}\n", "", 1)
    path.write_text(text, encoding="utf-8")
    git(root, "-c", "user.name=Dee", "-c", "user.email=dee@example.test", "commit", "-qam", "Fewer examples")
    assert content.topic(root, "who_for").examples == keep
    with pytest.raises(content.Refused) as refused:
        content.undo(root, sha, "eddie")
    assert "would not pass the project's checks" in refused.value.summary
    assert any("“Who is it for?”" in p for p in refused.value.problems)
    assert content.topic(root, "who_for").examples == keep


# ---------------------------------------------------------------------------- the console
def signed_in_client(root: Path, tmp_path: Path, role: str):
    url = f"sqlite:///{tmp_path / 'console.db'}"
    accounts.create_user(db.engine(url), f"{role}1", role, PASSWORD)
    settings = Settings.from_env(
        {
            "DATABASE_URL": url,
            "STAFF_SECRET_KEY": "unit-test-console-key-" + "z" * 20,
            "STAFF_PROJECT_ROOT": str(root),
        },
        lock_store=False,
    )
    assert settings.staff_project_root == root
    client = create_app(settings, settings.staff_project_root).test_client()
    page = client.get("/login").text
    token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    client.post("/login", data={"name": f"{role}1", "password": PASSWORD, "csrf_token": token})
    return client


def test_reception_cannot_reach_the_editing_pages(root: Path, tmp_path: Path) -> None:
    client = signed_in_client(root, tmp_path, "reception")
    for path in ["/answers/", "/answers/topic/what_is", "/answers/new", "/clinic/", "/history/"]:
        assert client.get(path).status_code == 403, path
    assert client.post("/answers/check", json={"answer": "x"}).status_code in (400, 403)


def test_the_live_check_needs_the_csrf_token_and_answers_in_json(root: Path, tmp_path: Path) -> None:
    client = signed_in_client(root, tmp_path, "editor")
    assert client.post("/answers/check", json={"answer": INVENTED}).status_code == 400  # no token
    page = client.get("/answers/topic/what_is").text
    token = re.search(r'<meta name="csrf-token" content="([^"]+)"', page).group(1)
    result = client.post(
        "/answers/check", json={"answer": INVENTED}, headers={"X-CSRFToken": token}
    ).get_json()
    assert result["ok"] is False and INVENTED in result["problems"][0]
    supported = client.post(
        "/answers/check",
        json={
            "answer": "A scar is the result of wound-healing steps the body takes to repair damage to "
            "the skin."
        },
        headers={"X-CSRFToken": token},
    ).get_json()
    assert supported["ok"] is True and supported["supporting"]


def test_a_project_inside_another_checkout_is_not_committed_to(tmp_path: Path) -> None:
    outer = project_copy(tmp_path / "outer")
    inner = outer / "copy"
    inner.mkdir()
    for folder in (inner, tmp_path):  # staff read these: plain words, no git, no server path
        said = history.problem(folder) or ""
        assert "cannot be kept here" in said and "IT" in said, said
        assert not re.search(r"\bgit\b|checkout|commit|branch|/", said), said
    assert history.problem(outer) is None
    with pytest.raises(history.HistoryError) as refused:
        history.git(outer, "cat-file", "-p", "0" * 40)
    assert not re.search(r"\bgit\b|commit|fatal|tell a developer", str(refused.value)), refused.value
    assert "IT" in str(refused.value)


def test_a_new_topic_takes_examples_from_the_new_topic_list(root: Path, tmp_path: Path) -> None:
    client = signed_in_client(root, tmp_path, "editor")
    engine = db.engine(f"sqlite:///{tmp_path / 'console.db'}")
    asked, masked = "which substance colours the skin", "email me about melanin at [email]"
    inbox.mark(
        engine, [inbox.Member(t, 1, inbox.text_key(t)) for t in (asked, masked)], inbox.NEW_TOPIC, "eddie"
    )
    page = client.get("/answers/new").text
    assert asked in page and "[email]" not in page  # masked text is never offered
    token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    version = re.search(r'name="version" value="([^"]+)"', page).group(1)
    number = next(
        n
        for line in content.document_lines(root)
        for n, s in line.sentences
        if s.startswith("Melanocytes are")
    )
    response = client.post(
        "/answers/new",
        data={
            "csrf_token": token,
            "version": version,
            "title": "What is melanin?",
            "answer": MELANIN_ANSWER,
            "quote": str(number),
            "examples": "\n".join(MELANIN_EXAMPLES[:-1]),
            "suggestion": [asked, "a text that was never suggested"],
        },
    )
    assert response.status_code == 302, response.text
    assert content.topic(root, "what_is_melanin").examples == MELANIN_EXAMPLES[:-1] + [asked]
    assert [row["text"] for row in inbox.new_topics(engine)] == [masked]  # the used one left the list
    assert [(r["text"], r["intent"]) for r in inbox.pending(engine, tmp_path / "no-model")] == [
        (asked, "faq/what_is_melanin")
    ]
