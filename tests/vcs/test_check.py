"""`configspec check`: valid specs, locks present and up to date, one line per failure."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from configspec_opt.vcs.lock import lock_path
from tests.cli_helpers import ROOT, Run, replace_in


def _failure_lines(run: Run) -> list[str]:
    return [ln for ln in run.stderr.splitlines() if ln and "checked" not in ln]


def test_check_fails_on_a_stale_lock_and_passes_after_lock(
        cli: Callable[..., Run], spec_file: Path) -> None:
    assert cli("lock", spec_file).exit_code == 0
    assert cli("check", spec_file).exit_code == 0

    replace_in(spec_file, "draft_tok_s: 14.44", "draft_tok_s: 15.2")
    stale = cli("check", spec_file)
    assert stale.exit_code == 1
    [line] = _failure_lines(stale)
    assert line.startswith(f"{spec_file}: stale lock: fleet.yaml changed")
    assert f"configspec lock {spec_file}" in line

    assert cli("lock", spec_file).exit_code == 0
    assert cli("check", spec_file).exit_code == 0


def test_check_reports_an_invalid_spec_in_one_located_line(
        cli: Callable[..., Run], spec_file: Path) -> None:
    assert cli("lock", spec_file).exit_code == 0
    replace_in(spec_file, "memory_gb: 64", "memory_gb: lots")
    result = cli("check", spec_file)
    assert result.exit_code == 1
    [line] = _failure_lines(result)
    assert line.startswith(f"{spec_file}: invalid spec: {spec_file}:")
    assert "devices[2].memory_gb" in line


def test_check_reports_a_missing_lock_and_an_orphan_lock(
        cli: Callable[..., Run], spec_file: Path, tmp_path: Path) -> None:
    missing = cli("check", spec_file)
    assert missing.exit_code == 1
    assert _failure_lines(missing) == [
        f"{spec_file}: missing lock: run `configspec lock {spec_file}`"]

    orphan = tmp_path / "gone.yaml.lock"
    orphan.write_text("lock_version: 1\n")
    result = cli("check", orphan)
    assert result.exit_code == 1
    assert "orphan lock" in result.stderr


def test_resolve_catches_a_lock_whose_decision_was_edited(
        cli: Callable[..., Run], spec_file: Path) -> None:
    assert cli("lock", spec_file).exit_code == 0
    lock = lock_path(spec_file)
    replace_in(lock, "    k: 6\n", "    k: 5\n")  # rpi5's K; the hashes still match
    assert cli("check", spec_file).exit_code == 0  # hash mode cannot see it
    result = cli("check", "--resolve", spec_file)
    assert result.exit_code == 1
    [line] = _failure_lines(result)
    assert "re-solve differs" in line
    assert "rpi5: llama-3.2-1b-instruct Q4_K_M K=5 -> K=6" in line


def test_resolve_catches_numbers_edited_by_hand(cli: Callable[..., Run], spec_file: Path) -> None:
    assert cli("lock", spec_file).exit_code == 0
    replace_in(lock_path(spec_file), "  devices: 3\n", "  devices: 4\n")
    result = cli("check", "--resolve", spec_file)
    assert result.exit_code == 1
    assert "fleet.devices: 4 in the lock, 3 now" in result.stderr


def test_a_directory_is_searched_for_specs_and_their_profile_files_count(
        cli: Callable[..., Run], tmp_path: Path) -> None:
    specs = tmp_path / "specs"
    (specs / "profiles").mkdir(parents=True)
    text = (ROOT / "examples" / "paper" / "llama70b.yaml").read_text()
    head, _, tail = text.partition("profiles:\n")
    profiles, _, rest = tail.partition("search:\n")
    (specs / "profiles" / "measured.yaml").write_text("profiles:\n" + profiles)
    spec = specs / "fleet.yaml"
    spec.write_text(head + "profiles_from: [profiles/measured.yaml]\nsearch:\n" + rest)
    (specs / "notes.yaml").write_text("owner: platform-team\n")  # not a spec: ignored
    assert cli("lock", spec).exit_code == 0

    ok = cli("check", specs)
    assert ok.exit_code == 0, ok.stderr
    assert ok.stdout.splitlines()[0] == f"{spec}: ok"
    assert "1 spec checked" in ok.stdout

    replace_in(specs / "profiles" / "measured.yaml", "draft_tok_s: 92.64", "draft_tok_s: 95")
    stale = cli("check", specs)
    assert stale.exit_code == 1
    assert "stale lock: profiles/measured.yaml changed" in stale.stderr


def test_check_json_lists_every_spec(cli: Callable[..., Run], spec_file: Path) -> None:
    other = spec_file.with_name("other.yaml")
    other.write_text(spec_file.read_text())
    assert cli("lock", spec_file).exit_code == 0
    result = cli("check", "--json", spec_file, other)
    assert result.exit_code == 1
    data = json.loads(result.stdout)
    assert data["ok"] is False
    assert [(r["spec"], r["status"]) for r in data["results"]] == [
        (str(spec_file), "ok"), (str(other), "missing_lock")]


def test_an_empty_directory_is_an_error_when_named(cli: Callable[..., Run], tmp_path: Path) -> None:
    result = cli("check", tmp_path)
    assert result.exit_code == 1
    assert f"{tmp_path}: no specs found" in result.stderr


LOCKED_EXAMPLES = ("examples/llama70b-edge.yaml", "examples/paper/llama70b.yaml",
                   "examples/paper/qwen32b.yaml")


def test_the_committed_example_locks_are_current(cli: Callable[..., Run]) -> None:
    result = cli("check", *(ROOT / p for p in LOCKED_EXAMPLES))
    assert result.exit_code == 0, result.stderr
    assert result.stdout.count(": ok") == len(LOCKED_EXAMPLES)


def test_in_a_git_repository_ignored_files_are_not_checked(
        cli: Callable[..., Run], repo: Path, spec_file: Path) -> None:
    (repo / ".gitignore").write_text("out/\n")
    (repo / "out").mkdir()
    (repo / "out" / "generated.yaml").write_text(spec_file.read_text())  # no lock: ignored
    spec = repo / "fleet.yaml"
    spec.write_text(spec_file.read_text())
    assert cli("lock", spec).exit_code == 0
    result = cli("check", repo)
    assert result.exit_code == 0, result.stderr
    assert result.stdout.splitlines()[0] == f"{spec}: ok"
    assert "1 spec checked" in result.stdout


def test_a_json_schema_is_not_mistaken_for_a_spec(cli: Callable[..., Run], tmp_path: Path) -> None:
    (tmp_path / "configspec.schema.json").write_text(
        json.dumps({"properties": {"targets": {}, "devices": {}}}))
    result = cli("check", tmp_path)
    assert result.exit_code == 1
    assert f"{tmp_path}: no specs found" in result.stderr


def test_a_pool_without_candidates_is_an_invalid_spec_with_its_location(
        cli: Callable[..., Run], spec_file: Path) -> None:
    """As `validate --strict`: the reason, located, instead of 'missing lock'."""
    text = spec_file.read_text()
    assert "memory_gb: 64" in text
    spec_file.write_text(text.replace("memory_gb: 64", "memory_gb: 0.1"))
    result = cli("check", spec_file)
    assert result.exit_code == 1
    [line] = _failure_lines(result)
    assert line.startswith(f"{spec_file}: invalid spec: {spec_file}:")
    assert "devices[2]: pool 'jetson-orin' has no candidates" in line
    assert "needs 0.81 GB, device has 0.1 GB (memory_gb)" in line
    assert cli("validate", "--strict", spec_file).exit_code == 2


def test_a_template_is_validated_and_skipped(cli: Callable[..., Run], tmp_path: Path) -> None:
    template = tmp_path / "template.yaml"
    example = (ROOT / "examples" / "smollm2" / "spec.yaml").read_text()
    template.write_text("# configspec: template\n"
                        + example.replace("# configspec: template\n", ""))
    result = cli("check", tmp_path)
    assert result.exit_code == 0, result.stderr
    assert f"{template}: skipped: a template" in result.stdout
    assert "1 spec checked (hash), 1 template skipped" in result.stdout
    data = json.loads(cli("check", "--json", template).stdout)
    assert data["ok"] is True and data["results"][0]["status"] == "skipped"

    replace_in(template, "memory_gb: 16", "memory_gb: lots")
    broken = cli("check", template)
    assert broken.exit_code == 1
    assert "invalid spec" in broken.stderr and "memory_gb" in broken.stderr


def test_the_repository_checks_clean_and_the_smollm2_example_is_a_template(
        cli: Callable[..., Run]) -> None:
    result = cli("check", ROOT / "examples")
    assert result.exit_code == 0, result.stderr
    assert f"{ROOT / 'examples' / 'smollm2' / 'spec.yaml'}: skipped: a template" \
        in result.stdout
