"""Staff edits in production: a workspace seeded from a release, and new releases merged into it.

Real git repositories in temporary folders: release A seeds the workspace, staff edit it through
the console's own service, release B (a change to other lines) merges, release C (a change to the
lines staff edited) keeps staff's words and waits as a proposal to take or leave, and running
`prepare` again (a restart, the same image) changes and loses nothing.
"""

from __future__ import annotations

import html
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from common.paths import PROJECT_ROOT
from common.settings import Settings
from staff.console import server
from staff.console.app import create_app
from staff.service import accounts, content, db, describe, history, releases
from tests.helpers import PROJECT_PARTS

PASSWORD = "correct horse battery staple"
SHIPPED = "and it repairs itself naturally."
STAFF_WORDS = "and it repairs itself."
RELEASE_WORDS = "and the skin then repairs itself naturally."
WHAT_IS = "What is Scar Relaxation?"


def release(target: Path, replacements: dict[str, tuple[str, str]] | None = None) -> Path:
    """A release's files (as the image ships them: no history), with some text replaced per file."""
    for part in PROJECT_PARTS:
        source, copy = PROJECT_ROOT / part, target / part
        copy.parent.mkdir(parents=True, exist_ok=True)
        if source.is_dir():
            shutil.copytree(source, copy, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copyfile(source, copy)
    for name, (old, new) in (replacements or {}).items():
        path = target / name
        text = path.read_text(encoding="utf-8")
        assert old in text, (name, old)
        path.write_text(text.replace(old, new, 1), encoding="utf-8")
    return target


def git(root: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=root, check=True, capture_output=True, text=True).stdout


def phone_of(root: Path) -> str:
    return str(content.clinic_values(root)["phone"])


def staff_phone(root: Path, phone: str) -> str:
    raw = content.clinic_values(root)
    change = content.ClinicChange(
        values={name: str(raw.get(name) or "") for name in content.CLINIC_FIELDS} | {"phone": phone},
        opening_days=list(raw["opening_days"]),
        closed_dates=[str(d) for d in raw["closed_dates"]],
        version=content.version(root, (content.CLINIC,)),
    )
    return content.change_clinic(root, change, "eddie")


def staff_reword(root: Path) -> str:
    current = content.topic(root, "what_is")
    change = content.TopicChange(
        answer=current.answer.replace(SHIPPED, STAFF_WORDS),
        title=current.title,
        version=content.version(root, content.topic_files(root)),
    )
    return content.change_topic(root, "what_is", change, "eddie")


def titles(root: Path) -> list[str]:
    return [describe.title(root, item) for item in history.shown_changes(root)]


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    """A workspace seeded from release A (the project as it is)."""
    root = tmp_path / "content"
    done = releases.prepare(root, release(tmp_path / "release-a"))
    assert done.outcome == "seeded"
    return root


def test_an_empty_volume_is_seeded_with_the_releases_files_and_a_restart_changes_nothing(
    workspace: Path, tmp_path: Path
) -> None:
    for part in releases.RELEASE_PARTS:
        assert (workspace / part).exists(), part
    assert (workspace / "domain" / "faq.yml").read_bytes() == (
        PROJECT_ROOT / "domain" / "faq.yml"
    ).read_bytes()
    assert git(workspace, "branch", "--show-current").strip() == "main"
    before = git(workspace, "rev-parse", "main", "release")
    again = releases.prepare(workspace, tmp_path / "release-a")
    assert again.outcome == "unchanged"
    assert git(workspace, "rev-parse", "main", "release") == before
    assert git(workspace, "status", "--porcelain") == ""
    assert titles(workspace) == []  # the installed content is not a change anyone made


def test_a_folder_with_files_but_no_history_is_left_alone(tmp_path: Path) -> None:
    root = tmp_path / "content"
    root.mkdir()
    (root / "clinic.yml").write_text("name: kept\n", encoding="utf-8")
    with pytest.raises(releases.ReleaseError, match="left as it is"):
        releases.prepare(root, release(tmp_path / "release-a"))
    assert (root / "clinic.yml").read_text(encoding="utf-8") == "name: kept\n"
    assert not (root / ".git").exists()


def test_a_release_changing_other_lines_merges_with_staffs_edit_and_the_history_says_so(
    workspace: Path, tmp_path: Path
) -> None:
    staff_phone(workspace, "020 7946 0999")
    new = release(tmp_path / "release-b", {"domain/faq.yml": (SHIPPED, RELEASE_WORDS)})
    done = releases.prepare(workspace, new)
    assert done.outcome == "merged", done.said
    assert phone_of(workspace) == "020 7946 0999"  # staff's edit stays
    assert RELEASE_WORDS in content.topic(workspace, "what_is").answer  # the release's arrives
    assert releases.proposals(workspace) == []
    assert titles(workspace) == ["New release: Answers updated", "Clinic details: phone"]
    merged = history.shown_changes(workspace)[0]
    assert [d.what for d in describe.describe(workspace, merged)] == [
        "Answer “What is Scar Relaxation?” reworded"
    ]
    # The same image started again: nothing new, nothing lost.
    head = git(workspace, "rev-parse", "HEAD")
    assert releases.prepare(workspace, new).outcome == "unchanged"
    assert git(workspace, "rev-parse", "HEAD") == head
    assert phone_of(workspace) == "020 7946 0999"


def conflicting_release(workspace: Path, tmp_path: Path) -> releases.Prepared:
    """Staff reword `what_is`; release C rewords the same line and changes the phone."""
    staff_reword(workspace)
    phone = str(content.clinic_values(workspace)["phone"])
    new = release(
        tmp_path / "release-c",
        {"domain/faq.yml": (SHIPPED, RELEASE_WORDS), "clinic.yml": (phone, "020 7946 0123")},
    )
    return releases.prepare(workspace, new)


def test_a_release_changing_lines_staff_edited_keeps_staffs_words_and_proposes_its_own(
    workspace: Path, tmp_path: Path
) -> None:
    done = conflicting_release(workspace, tmp_path)
    assert (done.outcome, done.proposals) == ("proposed", 1)
    answer = content.topic(workspace, "what_is").answer
    assert STAFF_WORDS in answer and RELEASE_WORDS not in answer  # never a silent overwrite
    assert phone_of(workspace) == "020 7946 0123"  # the release's other change merged
    assert git(workspace, "status", "--porcelain") == ""
    (waiting,) = releases.proposals(workspace)
    (what,) = waiting.described
    assert what.what == "Answer “What is Scar Relaxation?” reworded"
    assert STAFF_WORDS in " ".join(what.before) and RELEASE_WORDS in " ".join(what.after)
    # A restart keeps the proposal and proposes nothing twice.
    assert releases.prepare(workspace, tmp_path / "release-c").outcome == "unchanged"
    assert [p.id for p in releases.proposals(workspace)] == [waiting.id]

    sha = releases.accept(workspace, waiting.id, "eddie")
    assert RELEASE_WORDS in content.topic(workspace, "what_is").answer
    assert releases.proposals(workspace) == []
    taken = history.change(workspace, sha)
    assert taken.author == "eddie" and taken.by_staff
    assert titles(workspace)[0] == "Taken from the new release: Answer “What is Scar Relaxation?” reworded"
    with pytest.raises(content.Refused, match="already taken or left"):
        releases.accept(workspace, waiting.id, "eddie")


def test_a_dismissed_release_change_leaves_staffs_words_and_is_not_proposed_again(
    workspace: Path, tmp_path: Path
) -> None:
    conflicting_release(workspace, tmp_path)
    (waiting,) = releases.proposals(workspace)
    head = git(workspace, "rev-parse", "HEAD")
    assert releases.dismiss(workspace, waiting.id) == "Answer “What is Scar Relaxation?” reworded"
    assert git(workspace, "rev-parse", "HEAD") == head
    assert STAFF_WORDS in content.topic(workspace, "what_is").answer
    assert releases.prepare(workspace, tmp_path / "release-c").outcome == "unchanged"
    assert releases.proposals(workspace) == []


def test_a_proposal_is_refused_when_staff_changed_the_same_words_again(
    workspace: Path, tmp_path: Path
) -> None:
    conflicting_release(workspace, tmp_path)
    (waiting,) = releases.proposals(workspace)
    current = content.topic(workspace, "what_is")
    change = content.TopicChange(
        answer=current.answer.replace(STAFF_WORDS, "and it heals by itself."),
        title=current.title,
        version=content.version(workspace, content.topic_files(workspace)),
    )
    content.change_topic(workspace, "what_is", change, "eddie")
    with pytest.raises(content.Refused, match="changed again in the same words"):
        releases.accept(workspace, waiting.id, "eddie")
    assert "and it heals by itself." in content.topic(workspace, "what_is").answer
    assert [p.id for p in releases.proposals(workspace)] == [waiting.id]


def test_the_history_page_offers_the_release_change_in_words_and_takes_it(
    workspace: Path, tmp_path: Path
) -> None:
    conflicting_release(workspace, tmp_path)
    url = f"sqlite:///{tmp_path / 'console.db'}"
    accounts.create_user(db.engine(url), "eddie", "editor", PASSWORD)
    settings = Settings.from_env(
        {
            "DATABASE_URL": url,
            "STAFF_SECRET_KEY": "unit-test-console-key-" + "z" * 20,
            "STAFF_PROJECT_ROOT": str(workspace),
        },
        lock_store=False,
    )
    client = create_app(settings, workspace).test_client()
    token = re.search(r'name="csrf_token" value="([^"]+)"', client.get("/login").text).group(1)
    client.post("/login", data={"name": "eddie", "password": PASSWORD, "csrf_token": token})
    today = html.unescape(re.sub(r"<[^>]+>", " ", client.get("/").text))
    assert "change from a new release to words staff had changed, waiting for you" in " ".join(today.split())
    page = client.get("/history/").text
    shown = html.unescape(re.sub(r"<[^>]+>", " ", page))
    assert "A new release would change words you had changed" in shown
    assert "Answer “What is Scar Relaxation?” reworded" in shown
    assert STAFF_WORDS in shown and RELEASE_WORDS.split(" and ")[-1] in shown
    assert "New release: Clinic details and Answers updated" in shown
    for internal in (".yml", "utter_", "faq/", "release@"):
        assert internal not in shown
    assert not re.search(r"\b[0-9a-f]{7,40}\b", shown)
    (waiting,) = releases.proposals(workspace)
    token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    done = client.post(
        f"/history/release/{waiting.id}/accept", data={"csrf_token": token}, follow_redirects=True
    )
    assert done.status_code == 200
    said = html.unescape(done.text)
    assert "The new release's version was taken" in said
    assert RELEASE_WORDS in content.topic(workspace, "what_is").answer
    assert "A new release would change" not in said
    assert "from a new release" not in client.get("/").text


def test_clinic_content_prepare_seeds_from_the_environment_and_then_has_nothing_to_do(tmp_path: Path) -> None:
    """The command the image runs (or a person after an upgrade), with the production variables."""
    env = {
        **os.environ,
        "STAFF_PROJECT_ROOT": str(tmp_path / "content"),
        "CONTENT_RELEASE_DIR": str(release(tmp_path / "release-a")),
    }
    command = [sys.executable, "-m", "staff.commands.workspace"]
    first = subprocess.run([*command, "prepare"], env=env, capture_output=True, text=True, cwd=PROJECT_ROOT)
    assert first.returncode == 0, first.stderr
    assert "set up from this release" in first.stdout
    again = subprocess.run([*command, "prepare"], env=env, capture_output=True, text=True, cwd=PROJECT_ROOT)
    assert again.returncode == 0, again.stderr
    assert "already in the content staff edit" in again.stdout
    waiting = subprocess.run([*command, "status"], env=env, capture_output=True, text=True, cwd=PROJECT_ROOT)
    assert waiting.stdout.strip() == "No change of a new release is waiting for staff."
    missing = subprocess.run(
        [*command, "prepare", "--release", str(tmp_path / "nowhere")], env=env, capture_output=True, text=True
    )
    assert missing.returncode == 2 and "is not in" in missing.stderr


def test_the_console_start_up_seeds_the_content_and_refuses_a_folder_it_cannot_use(tmp_path: Path) -> None:
    new = release(tmp_path / "release-a")
    assert server.bring_in_release(tmp_path / "content", new)
    assert (tmp_path / "content" / "clinic.yml").read_bytes() == (new / "clinic.yml").read_bytes()
    occupied = tmp_path / "occupied"
    occupied.mkdir()
    (occupied / "notes.txt").write_text("someone's notes\n", encoding="utf-8")
    assert not server.bring_in_release(occupied, new)
    assert not server.bring_in_release(tmp_path / "empty", tmp_path / "nowhere")
    shutil.rmtree(new / "tests" / "stories")  # an image that left the stories out
    assert "lacks tests/stories" in releases.release_dir_problem(new)
    assert not server.bring_in_release(tmp_path / "empty", new)
    assert not (tmp_path / "empty" / ".git").exists()
    # Seeded content with the release's files missing (a mistaken mount) is served as it is.
    assert server.bring_in_release(tmp_path / "content", tmp_path / "nowhere")


def test_content_restored_from_a_bundle_keeps_its_release_line_and_waiting_change(
    workspace: Path, tmp_path: Path
) -> None:
    """A backup (git bundle --all) restored into an empty volume, as clinic-restore does it."""
    conflicting_release(workspace, tmp_path)
    (waiting,) = releases.proposals(workspace)
    bundle = tmp_path / "content.bundle"
    git(workspace, "bundle", "create", "--quiet", str(bundle), "--all")
    restored = tmp_path / "restored"
    restored.mkdir()
    git(restored, "init", "--quiet")
    git(restored, "fetch", "--quiet", "--update-head-ok", str(bundle), "+refs/*:refs/*")
    git(restored, "symbolic-ref", "HEAD", "refs/heads/main")
    git(restored, "reset", "--quiet", "--hard", git(workspace, "rev-parse", "main").strip())
    assert releases.prepare(restored, tmp_path / "release-c").outcome == "unchanged"
    assert [p.id for p in releases.proposals(restored)] == [waiting.id]
    assert STAFF_WORDS in content.topic(restored, "what_is").answer
    releases.accept(restored, waiting.id, "eddie")
    assert git(restored, "status", "--porcelain") == ""  # the console's lock file stays out of it


def test_a_release_whose_clean_merge_fails_the_checks_keeps_main_and_is_proposed_whole(
    workspace: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    staff_phone(workspace, "020 7946 0999")
    head = git(workspace, "rev-parse", "HEAD")
    clinic_before = (workspace / content.CLINIC).read_text(encoding="utf-8")
    # The release adds a second phone line a few lines below the one staff changed: git merges
    # the lines cleanly, but the result has the key twice, which the console cannot read.
    new = release(
        tmp_path / "release-b",
        {
            "clinic.yml": ('emergency_number: "999"', 'emergency_number: "999"\nphone: "020 7946 0111"'),
            "domain/faq.yml": (SHIPPED, RELEASE_WORDS),
        },
    )
    with caplog.at_level("WARNING"):
        done = releases.prepare(workspace, new)
    assert done.outcome == "proposed", done.said
    assert "would not pass the checks" in done.said
    assert (workspace / content.CLINIC).read_text(encoding="utf-8") == clinic_before  # main as it was
    assert git(workspace, "diff", head.strip(), "HEAD") == ""
    assert git(workspace, "status", "--porcelain", "--untracked-files=no") == ""
    assert phone_of(workspace) == "020 7946 0999"
    assert SHIPPED in content.topic(workspace, "what_is").answer
    [waiting] = releases.proposals(workspace)  # the whole release, offered to staff
    assert RELEASE_WORDS in history.file_at(workspace, waiting.id, "domain/faq.yml")
    assert "IT" in caplog.text and "clinic.yml" in caplog.text  # the detail is logged for IT
    with pytest.raises(content.Refused, match="would not pass the checks"):
        releases.accept(workspace, waiting.id, "eddie")
    # The same image started again: nothing new, nothing proposed twice.
    assert releases.prepare(workspace, new).outcome == "unchanged"
    assert len(releases.proposals(workspace)) == 1
