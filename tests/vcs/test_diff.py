"""`configspec diff`: decisions compared across a real git history."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.cli_helpers import PAPER_DIR, Run, git, replace_in


@pytest.fixture
def history(repo: Path) -> Path:
    """A spec committed, then a faster RPi 5 profile committed on top."""
    spec = repo / "specs" / "fleet.yaml"
    spec.parent.mkdir()
    shutil.copy(PAPER_DIR / "llama70b.yaml", spec)
    git(repo, "add", ".")
    git(repo, "commit", "-qm", "fleet spec")
    replace_in(spec, "draft_tok_s: 14.44", "draft_tok_s: 40.0")
    git(repo, "commit", "-qam", "re-profiled rpi5")
    return spec


def test_diff_between_revisions_shows_the_pool_that_changed(
        cli: Callable[..., Run], history: Path) -> None:
    result = cli("diff", "--json", f"{history}@HEAD~1", history)
    assert result.exit_code == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["assignments_changed"] is True
    pools = {p["device"]: p for p in data["pools"]}
    assert pools["rpi5"]["change"] == "configuration"
    assert [e["k"] for e in pools["rpi5"]["old"]] == [6]
    assert [e["k"] for e in pools["rpi5"]["new"]] == [8]
    assert pools["rpi4"]["change"] == pools["jetson-orin"]["change"] == "unchanged"
    goodput = next(m for m in data["fleet"] if m["metric"] == "goodput_tok_s")
    assert goodput["delta"] > 0
    assert data["old"]["commit"] == git(history.parent, "rev-parse", "HEAD~1").strip()

    text = cli("diff", f"{history}@HEAD~1", history)
    assert "rpi5: llama-3.2-1b-instruct Q4_K_M K=6 -> K=" in text.stdout
    assert "2 pools unchanged" in text.stdout
    assert "goodput (tok/s)" in text.stdout


def test_diff_from_another_directory_runs_git_where_the_file_is(
        cli: Callable[..., Run], history: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    result = cli("diff", "--exit-code", f"{history}@main~1", f"{history}@main")
    assert result.exit_code == 1  # the assignment changed
    assert "rpi5:" in result.stdout


def test_profiles_from_is_read_at_the_same_revision(
        cli: Callable[..., Run], repo: Path) -> None:
    text = (PAPER_DIR / "llama70b.yaml").read_text()
    head, _, tail = text.partition("profiles:\n")
    profiles, _, rest = tail.partition("search:\n")
    (repo / "profiles.yaml").write_text("profiles:\n" + profiles)
    spec = repo / "fleet.yaml"
    spec.write_text(head + "profiles_from: [profiles.yaml]\nsearch:\n" + rest)
    git(repo, "add", ".")
    git(repo, "commit", "-qm", "one")
    replace_in(repo / "profiles.yaml", "draft_tok_s: 92.64", "draft_tok_s: 400")
    git(repo, "commit", "-qam", "faster orin")

    data = json.loads(cli("diff", "--json", f"{spec}@HEAD~1", spec).stdout)
    pools = {p["device"]: p for p in data["pools"]}
    assert pools["jetson-orin"]["change"] == "configuration"
    assert data["old"]["spec_sha256"] != data["new"]["spec_sha256"]


def test_identical_sides_show_no_change(cli: Callable[..., Run], history: Path) -> None:
    result = cli("diff", "--exit-code", f"{history}@HEAD", history)
    assert result.exit_code == 0
    assert "no change in assignments or fleet metrics" in result.stdout


def test_a_lock_can_be_one_side(cli: Callable[..., Run], history: Path) -> None:
    assert cli("lock", history).exit_code == 0
    result = cli("diff", "--json", f"{history}.lock", f"{history}@HEAD~1")
    assert result.exit_code == 0, result.stderr
    pools = {p["device"]: p for p in json.loads(result.stdout)["pools"]}
    assert [e["k"] for e in pools["rpi5"]["new"]] == [6]


def test_unknown_revision_and_missing_file_are_clear_errors(
        cli: Callable[..., Run], history: Path, tmp_path: Path) -> None:
    bad_rev = cli("diff", f"{history}@HEAD~7", history)
    assert bad_rev.exit_code == 2
    assert "unknown revision 'HEAD~7'" in bad_rev.stderr

    missing = cli("diff", f"{history.parent / 'nope.yaml'}@HEAD", history)
    assert missing.exit_code == 2
    assert "nope.yaml does not exist at HEAD" in missing.stderr

    outside = tmp_path / "loose.yaml"
    shutil.copy(history, outside)
    no_repo = cli("diff", f"{outside}@HEAD", history)
    assert no_repo.exit_code == 2
    assert "not inside a git repository" in no_repo.stderr

    assert cli("diff", f"{history}@", history).exit_code == 2
