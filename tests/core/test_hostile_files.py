"""The CLI reads only what a spec is made of and writes only where it should (issue 12, 7-8).

Real `configspec` processes: a spec naming `../../fake.env` or `/dev/zero` in
profiles_from, `/dev/zero` and a FIFO as the spec, locks and formatted specs that
cannot be written (a full disk, simulated with RLIMIT_FSIZE, which holds for root
too), a symlinked spec under `fmt`, rich markup and emoji codes in names, duplicate
JSON keys.  Every run is bounded by a timeout; none may print a traceback.
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from configspec_opt.errors import SpecError
from configspec_opt.loader import parse_spec
from configspec_opt.spec_files import FileRefused, read_text_file

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = (ROOT / "examples" / "llama70b-edge.yaml").read_text()
SECRET = "hunter2-AKIAEXAMPLESECRET"
PROFILES = """\
- device: rpi5
  draft: llama-3.2-1b-instruct
  quant: Q5_K_M
  draft_tok_s: 9.5
  power_w: 8.5
  acceptance:
    llama-3.1-70b: {per_token: 0.8}
"""


def run(*args: str, cwd: Path = ROOT, env: dict[str, str] | None = None,
        fsize: int | None = None, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    def limit() -> None:  # what a full disk does to a write: EFBIG, and no more bytes
        if fsize is not None:
            resource.setrlimit(resource.RLIMIT_FSIZE, (fsize, fsize))

    proc = subprocess.run([sys.executable, "-m", "configspec_opt", *args], capture_output=True,
                          text=True, cwd=cwd, timeout=timeout, check=False,
                          env={**os.environ, **(env or {})},
                          preexec_fn=limit if fsize is not None else None)
    assert "Traceback" not in proc.stderr + proc.stdout, proc.stderr
    return proc


def with_profiles_from(*files: str) -> str:
    """The example with a Q5_K_M quant (PROFILES measures it) and profiles_from."""
    text = EXAMPLE.replace("      Q8_0: {size_gb: 1.32}\n",
                           "      Q8_0: {size_gb: 1.32}\n      Q5_K_M: {size_gb: 1.0}\n", 1)
    assert "Q5_K_M" in text
    return text.replace("search:", f"profiles_from: [{', '.join(files)}]\nsearch:", 1)


# --- spec files: regular files of bounded size ----------------------------------------


def test_dev_zero_as_the_spec_is_refused_at_once() -> None:
    proc = run("validate", "/dev/zero", timeout=60)
    assert proc.returncode == 2
    assert "not a regular file (a character device)" in proc.stderr


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs here")
def test_a_fifo_as_the_spec_does_not_block(tmp_path: Path) -> None:
    fifo = tmp_path / "spec.yaml"
    os.mkfifo(fifo)
    proc = run("validate", str(fifo), timeout=60)
    assert proc.returncode == 2 and "not a regular file (a FIFO)" in proc.stderr
    proc = run("check", str(tmp_path), timeout=60)  # found in a directory: not even read
    assert proc.returncode == 1 and "no specs found" in proc.stderr


def test_a_directory_is_refused_and_a_huge_file_only_under_the_cap_one_sets(
        tmp_path: Path) -> None:
    assert "a directory" in run("validate", str(tmp_path)).stderr
    huge = tmp_path / "huge.yaml"
    with huge.open("wb") as fh:  # sparse: 25 MB of NULs that take no disk
        fh.truncate(25_000_000)
    proc = run("validate", str(huge), env={"CONFIGSPEC_MAX_FILE_BYTES": "20_000_000"})
    assert proc.returncode == 2 and "larger than 20,000,000 bytes" in proc.stderr
    assert "CONFIGSPEC_MAX_FILE_BYTES=N raises this limit" in proc.stderr
    proc = run("validate", str(huge))  # your own file: read whatever its size (docs/limits.md)
    assert proc.returncode == 2 and "larger than" not in proc.stderr
    assert "unacceptable character #x0000" in proc.stderr


def test_the_reader_stops_at_the_limit_even_when_the_size_lies(tmp_path: Path) -> None:
    p = tmp_path / "s.yaml"
    p.write_bytes(b"x" * 101)
    assert read_text_file(p, limit=101) == "x" * 101
    with pytest.raises(FileRefused, match="larger than 100 bytes"):
        read_text_file(p, limit=100)
    if Path("/proc/self/status").exists():  # st_size 0, content nonzero: counted as read
        with pytest.raises(FileRefused, match="larger than 10 bytes"):
            read_text_file(Path("/proc/self/status"), limit=10)
    p.write_bytes(b"name: \xff")
    with pytest.raises(FileRefused, match="not UTF-8"):
        read_text_file(p)


# --- profiles_from: inside the repository, regular, never echoed -------------------------


def test_profiles_from_outside_the_spec_directory_is_refused_and_never_echoed(
        tmp_path: Path) -> None:
    (tmp_path / "fake.env").write_text(f"AWS_SECRET_ACCESS_KEY={SECRET}\n")
    spec_dir = tmp_path / "a" / "b"
    spec_dir.mkdir(parents=True)
    spec = spec_dir / "spec.yaml"
    spec.write_text(with_profiles_from("../../fake.env"))
    for command in ("validate", "check", "evaluate"):
        proc = run(command, str(spec))
        assert proc.returncode in (1, 2), (command, proc.stderr)
        assert "outside" in proc.stderr + proc.stdout and "CONFIGSPEC_PROFILES_ROOT" in \
            proc.stderr + proc.stdout, proc.stderr
        assert SECRET not in proc.stderr + proc.stdout
    # allowed by the variable, it is read, found not to be profiles, and still not echoed
    proc = run("validate", str(spec), env={"CONFIGSPEC_PROFILES_ROOT": str(tmp_path)})
    assert proc.returncode == 2 and "not a profiles file" in proc.stderr
    assert SECRET not in proc.stderr + proc.stdout


def test_a_symlink_out_of_the_repository_is_outside(tmp_path: Path) -> None:
    secret = tmp_path / "outside" / "creds.yaml"
    secret.parent.mkdir()
    secret.write_text(PROFILES)
    repo = tmp_path / "repo"
    repo.mkdir()
    (repo / "profiles.yaml").symlink_to(secret)
    (repo / "spec.yaml").write_text(with_profiles_from("profiles.yaml"))
    proc = run("validate", str(repo / "spec.yaml"))
    assert proc.returncode == 2 and "outside" in proc.stderr


def test_profiles_from_anywhere_in_the_git_work_tree_is_read(tmp_path: Path) -> None:
    if shutil.which("git") is None:
        pytest.skip("git is not installed")
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True, timeout=60)
    (tmp_path / "profiles").mkdir()
    (tmp_path / "profiles" / "rpi5.yaml").write_text(PROFILES)
    (tmp_path / "specs").mkdir()
    spec = tmp_path / "specs" / "fleet.yaml"
    spec.write_text(with_profiles_from("../profiles/rpi5.yaml"))
    proc = run("validate", str(spec), "--json")
    assert proc.returncode == 0, proc.stderr
    loaded = parse_spec(spec.read_text(), name=str(spec), base_dir=spec.parent)
    assert any(p.quant == "Q5_K_M" and p.draft_tok_s == 9.5 for p in loaded.spec.profiles)


def test_profiles_from_dev_zero_is_refused_even_where_allowed(tmp_path: Path) -> None:
    spec = tmp_path / "spec.yaml"
    spec.write_text(with_profiles_from("/dev/zero"))
    proc = run("validate", str(spec), env={"CONFIGSPEC_PROFILES_ROOT": "/"}, timeout=60)
    assert proc.returncode == 2 and "not a regular file (a character device)" in proc.stderr
    assert f"{spec.name}:" in proc.stderr  # located at the profiles_from entry


def test_values_of_a_profiles_file_are_not_echoed(tmp_path: Path) -> None:
    (tmp_path / "p.yaml").write_text(PROFILES.replace("draft_tok_s: 9.5",
                                                      f"draft_tok_s: {SECRET}"))
    spec = tmp_path / "spec.yaml"
    spec.write_text(with_profiles_from("p.yaml"))
    with pytest.raises(SpecError) as info:
        parse_spec(spec.read_text(), name=str(spec), base_dir=tmp_path)
    [issue] = info.value.issues
    assert issue.file == str(tmp_path / "p.yaml") and issue.line == 4
    assert "draft_tok_s" in issue.format() and SECRET not in issue.format()
    # the spec's own values are the user's: echoed as before
    with pytest.raises(SpecError, match=SECRET):
        parse_spec(EXAMPLE.replace("draft_tok_s: 14.4", f"draft_tok_s: {SECRET}"))


# --- writes: clear errors, exit 4; symlinks kept --------------------------------------


def _spec(tmp_path: Path) -> Path:
    spec = tmp_path / "fleet.yaml"
    spec.write_text(EXAMPLE)
    return spec


def test_lock_that_cannot_be_written_exits_4(tmp_path: Path) -> None:
    spec = _spec(tmp_path)
    proc = run("lock", str(spec), fsize=100)  # a full disk
    assert proc.returncode == 4, proc.stderr
    assert f"cannot write {spec}.lock: File too large" in proc.stderr
    assert not Path(f"{spec}.lock").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]  # nothing left
    Path(f"{spec}.lock").mkdir()  # in the way, for root too
    proc = run("lock", str(spec))
    assert proc.returncode == 4 and "cannot write" in proc.stderr


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only directories")
def test_lock_and_fmt_into_a_read_only_directory_exit_4(tmp_path: Path) -> None:
    spec = _spec(tmp_path)
    spec.write_text(EXAMPLE.replace("  - name: orin", "  -   name: orin"))
    tmp_path.chmod(stat.S_IRUSR | stat.S_IXUSR)
    try:
        for command in ("lock", "fmt"):
            proc = run(command, str(spec))
            assert proc.returncode == 4 and "Permission denied" in proc.stderr, proc.stderr
    finally:
        tmp_path.chmod(stat.S_IRWXU)


def test_fmt_and_schema_that_cannot_be_written_exit_4(tmp_path: Path) -> None:
    spec = _spec(tmp_path)
    messy = EXAMPLE.replace("version: 1", "version:   1")
    spec.write_text(messy)
    proc = run("fmt", str(spec), fsize=100)
    assert proc.returncode == 4 and "cannot write" in proc.stderr
    assert spec.read_text() == messy
    proc = run("schema", "--out", str(tmp_path / "schema.json"), fsize=100)
    assert proc.returncode == 4 and "cannot write" in proc.stderr


def test_fmt_writes_through_a_symlink(tmp_path: Path) -> None:
    real = tmp_path / "real" / "fleet.yaml"
    real.parent.mkdir()
    real.write_text(EXAMPLE.replace("version: 1", "version:   1"))
    link = tmp_path / "fleet.yaml"
    link.symlink_to(real)
    proc = run("fmt", str(link))
    assert proc.returncode == 0, proc.stderr
    assert link.is_symlink() and link.resolve() == real.resolve()
    assert "version: 1\n" in real.read_text()
    assert run("fmt", "--check", str(link)).returncode == 0


# --- what is printed is what the user wrote ---------------------------------------------

HOSTILE_NAME = "rpi5[red]:x:[/b]"


def test_markup_and_emoji_codes_in_names_print_as_written(tmp_path: Path) -> None:
    spec = tmp_path / "spec.yaml"
    spec.write_text(EXAMPLE.replace("name: rpi5", f"name: '{HOSTILE_NAME}'")
                    .replace("device: rpi5", f"device: '{HOSTILE_NAME}'"))
    for command in ("evaluate", "solve"):
        proc = run(command, str(spec), env={"COLUMNS": "200"})  # no folding of names
        assert proc.returncode == 0, proc.stderr
        assert HOSTILE_NAME in proc.stdout and "❌" not in proc.stdout
    bad = tmp_path / "bad.yaml"  # and in an error message
    bad.write_text(EXAMPLE.replace("device: rpi5", f"device: '{HOSTILE_NAME}'", 1))
    proc = run("validate", str(bad))
    assert proc.returncode == 2 and f"unknown device '{HOSTILE_NAME}'" in proc.stderr
    assert "❌" not in proc.stderr


# --- JSON: duplicate keys are refused, located -------------------------------------------


def test_duplicate_json_keys_are_refused_with_their_position(tmp_path: Path) -> None:
    from configspec_opt.loader import Source, parse_data

    data = parse_data(Source("x.yaml", EXAMPLE))
    text = json.dumps(data, indent=2)
    twice = text.replace('"count": 200,', '"count": 200,\n      "count": 2,', 1)
    spec = tmp_path / "spec.json"
    spec.write_text(twice)
    proc = run("validate", str(spec))
    assert proc.returncode == 2
    line = twice.splitlines().index('      "count": 2,') + 1
    first = twice.splitlines().index('      "count": 200,') + 1
    assert f"spec.json:{line}:7: invalid JSON: duplicate key 'count' (first at line {first}, " \
        "column 7)" in proc.stderr, proc.stderr
    # the same key in two objects is no duplicate; a repeat in a nested object is
    parse_spec(text)
    nested = text.replace('"min": 2,', '"min": 2,\n "min": 3,', 1)
    with pytest.raises(SpecError, match="duplicate key 'min'"):
        parse_spec(nested)
