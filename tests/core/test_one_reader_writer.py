"""The one reader and the one writer (issue 25): what every file configspec reads or writes
can rely on.

The writer (`files.write_output`): the umask's mode for a new file (0644 under umask
022, 0600 under 077, as every Unix tool), an existing file's mode kept, a symlink kept
and its target replaced, `validate` before anything touches the disk, no temporary
file left.  The reader (`spec_files.read_text_file`) and the data it hands to JSON and
YAML (`loader.parse_data`): /dev/zero, a FIFO and a directory refused without reading,
100,000-deep nesting (JSON, flow YAML, block YAML: the C parsers would crash the
process) and numbers no float holds refused with file:line:column, every limit raised
by the environment variable its refusal names.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from configspec_opt.errors import OutputError, SpecError
from configspec_opt.files import atomic_write_text, write_output
from configspec_opt.limits import ALL, DEPTH, DIGITS, FILE_BYTES
from configspec_opt.loader import Source, parse_data
from configspec_opt.spec_files import FileRefused, read_text_file

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "llama70b-edge.yaml"


@contextlib.contextmanager
def umask(mask: int) -> Iterator[None]:
    old = os.umask(mask)
    try:
        yield
    finally:
        os.umask(old)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def leftovers(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if p.name.endswith(".tmp"))


def configspec(*args: str, umask_to: int | None = None,
               env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """A real process (the umask is per process; a crash of a C parser must not end pytest).
    The timeout is a safety net only: every case here ends in well under a second."""
    proc = subprocess.run([sys.executable, "-m", "configspec_opt", *args], capture_output=True,
                          text=True, cwd=ROOT, timeout=120, check=False,
                          env={**os.environ, **(env or {})},
                          preexec_fn=(lambda: os.umask(umask_to)) if umask_to is not None
                          else None)
    assert "Traceback" not in proc.stderr + proc.stdout, proc.stderr
    assert proc.returncode >= 0, f"killed by signal {-proc.returncode}: {proc.stderr}"
    return proc


# --- the writer ----------------------------------------------------------------------------


@pytest.mark.parametrize(("mask", "expected"), [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_a_new_file_gets_the_umask_s_mode(tmp_path: Path, mask: int, expected: int) -> None:
    with umask(mask):
        atomic_write_text(tmp_path / "out.json", "{}\n")
    assert mode(tmp_path / "out.json") == expected
    assert leftovers(tmp_path) == []


@pytest.mark.parametrize(("mask", "existing"), [(0o077, 0o644), (0o022, 0o600), (0o022, 0o640)])
def test_an_existing_file_keeps_its_mode(tmp_path: Path, mask: int, existing: int) -> None:
    p = tmp_path / "spec.yaml"
    p.write_text("old\n")
    p.chmod(existing)
    with umask(mask):
        atomic_write_text(p, "new\n")
    assert p.read_text() == "new\n" and mode(p) == existing


@pytest.mark.parametrize("mask", [0o022, 0o077])
def test_schema_out_is_readable_as_the_umask_says(tmp_path: Path, mask: int) -> None:
    out = tmp_path / "spec.schema.json"
    proc = configspec("schema", "--out", str(out), umask_to=mask)
    assert proc.returncode == 0, proc.stderr
    assert mode(out) == 0o666 & ~mask
    assert json.loads(out.read_text())["type"] == "object"


def test_a_symlink_is_kept_and_its_target_replaced(tmp_path: Path) -> None:
    real = tmp_path / "real" / "spec.yaml"
    real.parent.mkdir()
    real.write_text("old\n")
    real.chmod(0o640)
    link = tmp_path / "spec.yaml"
    link.symlink_to(real)
    assert atomic_write_text(link, "new\n") == real
    assert link.is_symlink() and os.readlink(link) == str(real)
    assert real.read_text() == "new\n" and mode(real) == 0o640
    assert leftovers(tmp_path) == [] and leftovers(real.parent) == []
    dangling = tmp_path / "new.yaml"
    dangling.symlink_to(tmp_path / "real" / "created.yaml")
    atomic_write_text(dangling, "x\n")
    assert dangling.is_symlink() and (tmp_path / "real" / "created.yaml").read_text() == "x\n"


def test_validate_runs_before_anything_touches_the_disk(tmp_path: Path) -> None:
    p = tmp_path / "spec.yaml"
    p.write_text("old\n")

    def refuse(text: str) -> None:
        assert text == "new\n"
        raise SpecError([])

    with pytest.raises(SpecError):
        write_output(p, "new\n", validate=refuse)
    assert p.read_text() == "old\n" and leftovers(tmp_path) == []
    with pytest.raises(SpecError):
        write_output(tmp_path / "absent.yaml", "new\n", validate=refuse)
    assert not (tmp_path / "absent.yaml").exists()


def test_a_write_that_fails_is_an_output_error_and_leaves_nothing(tmp_path: Path) -> None:
    with pytest.raises(OutputError, match=r"cannot write .*missing/out\.json"):
        write_output(tmp_path / "missing" / "out.json", "{}")
    (tmp_path / "dir").mkdir()
    with pytest.raises(OutputError, match="cannot write"):
        write_output(tmp_path / "dir", "{}")
    assert (tmp_path / "dir").is_dir() and leftovers(tmp_path) == []
    with pytest.raises(OutputError, match="lone surrogate"):
        write_output(tmp_path / "s.txt", "a\ud800b")
    assert not (tmp_path / "s.txt").exists() and leftovers(tmp_path) == []
    assert write_output(tmp_path / "b.bin", b"\x00\xff") == tmp_path / "b.bin"
    assert (tmp_path / "b.bin").read_bytes() == b"\x00\xff"


def test_no_other_write_path_is_left() -> None:
    """Every file configspec writes goes through files.py (llama.cpp's quantiser writes its
    GGUF itself, beside the target, and renames it: a model is not text in memory)."""
    allowed = {"configspec_opt/files.py", "profiler/quantize.py"}
    writes = re.compile(r"write_text\(|write_bytes\(|mkstemp\(|os\.replace\(|\.rename\("
                        r"|savefig\((?!buf)|NamedTemporaryFile\(|json\.dump\("
                        r"""|open\([^)]*["'][wax]b?\+?["']""")
    found = []
    for package in ("configspec_opt", "solvers", "profiler"):
        for path in sorted((ROOT / package).rglob("*.py")):
            rel = path.relative_to(ROOT).as_posix()
            if rel not in allowed:
                found += [f"{rel}: {m.group()}" for m in writes.finditer(path.read_text())]
    assert sorted(found) == ['profiler/llama_server.py: NamedTemporaryFile(',  # its own log
                             'solvers/highs_model.py: open(os.devnull, "wb"'], found


# --- the reader ----------------------------------------------------------------------------


def test_no_other_read_path_is_left() -> None:
    """Every file a user names is read by spec_files.read_text_file; what remains reads the
    package's own files, /proc and /sys, a model's first bytes, or the profiler's own log."""
    allowed = {
        "configspec_opt/spec_files.py": 1,  # the reader
        "configspec_opt/files.py": 1,  # the writer (its temporary file)
        "configspec_opt/api/telemetry.py": 1,  # /proc/self/statm
        "configspec_opt/api/routes/web.py": 1,  # the package's index.html
        "profiler/prompts.py": 1,  # the bundled prompts
        "profiler/paths.py": 2,  # a GGUF's magic and its hash (binary, checked regular)
        "profiler/llama_server.py": 1,  # llama-server's log, a temporary file it made
        "profiler/power/rapl.py": 2,  # /sys/class/powercap
        "profiler/power/jetson.py": 3,  # /sys (INA3221 rails)
        "solvers/highs_model.py": 1,  # /dev/null
    }
    reads = re.compile(r"\.read_text\(\)|\.read_text\(encoding|read_bytes\(|json\.load\("
                       r"|(?<![\w.])open\(|\.open\(")
    found: dict[str, int] = {}
    for package in ("configspec_opt", "solvers", "profiler"):
        for path in sorted((ROOT / package).rglob("*.py")):
            n = len(reads.findall(path.read_text()))
            if n:
                found[path.relative_to(ROOT).as_posix()] = n
    assert found == allowed


def test_special_files_are_refused_without_reading(tmp_path: Path) -> None:
    with pytest.raises(FileRefused, match="character device"):
        read_text_file("/dev/zero")
    with pytest.raises(FileRefused, match="a directory"):
        read_text_file(tmp_path)
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    with pytest.raises(FileRefused, match="a FIFO"):
        read_text_file(fifo)  # opened non-blocking: no writer needed to come back


def test_a_limit_is_raised_by_the_variable_its_refusal_names(tmp_path: Path,
                                                             monkeypatch: pytest.MonkeyPatch
                                                             ) -> None:
    p = tmp_path / "s.yaml"
    p.write_text("a: 1\n" * 10)
    monkeypatch.setenv(FILE_BYTES.env, "20")
    with pytest.raises(FileRefused) as info:
        read_text_file(p)
    assert "larger than 20 bytes" in str(info.value) and FILE_BYTES.env in str(info.value)
    monkeypatch.setenv(FILE_BYTES.env, "1_000")
    assert read_text_file(p) == "a: 1\n" * 10
    monkeypatch.setenv(FILE_BYTES.env, "lots")
    with pytest.raises(Exception, match=f"{FILE_BYTES.env}='lots'"):
        read_text_file(p)
    assert len({lim.env for lim in ALL}) == len(ALL)


NESTED = 100_000


@pytest.mark.parametrize(("name", "text", "where"), [
    ("deep.json", "[" * NESTED + "]" * NESTED, "deep.json:1:65:"),
    ("deep.yaml", "a: " + "[" * NESTED + "]" * NESTED, "deep.yaml:1:67:"),
    ("deep.yaml", "a:\n  " + "- " * NESTED + "x\n", "deep.yaml:2:129:"),
    ("deep.yaml", "? " * NESTED + "x\n", "deep.yaml:1:129:"),
])
def test_deep_nesting_is_refused_where_it_goes_too_deep(name: str, text: str,
                                                        where: str) -> None:
    with pytest.raises(SpecError) as info:
        parse_data(Source(name, text))
    message = str(info.value)
    assert where in message and "nested deeper than 64 levels" in message
    assert DEPTH.env in message and len(message) < 300


@pytest.mark.parametrize(("name", "text", "where", "why"), [
    ("n.json", '{"a":\n  1' + "0" * 400 + "}", "n.json:2:3:", "401 digits, more than 400"),
    ("n.json", '{"a": 1' + "0" * 5000 + "}", "n.json:1:7:", "5,001 digits"),
    ("n.json", '{"a": [1, -1e400]}', "n.json:1:11:", "too large"),
    ("n.json", '{"a": [1,\n NaN]}', "n.json:2:2:", "NaN is not a number"),
    ("n.yaml", "a: 1\nb: 1" + "0" * 400 + "\n", "n.yaml:2:4:", "401 digits"),
    ("n.yaml", "a: 1\nb: [2, 1" + "0" * 5000 + "]\n", "n.yaml:2:8:", "5,001 digits"),
    ("n.yaml", "a: 1\nb: 1" + "0" * 320 + "\n", "n.yaml:2:4:", "too large"),
    ("n.yaml", "a: 0x" + "f" * 300 + "\n", "n.yaml:1:4:", "too large"),
    ("n.yaml", "a: 1\nb: {c: 1.0e400}\n", "n.yaml:2:8:", "too large"),
])
def test_numbers_no_float_holds_are_refused_with_their_position(name: str, text: str,
                                                                where: str, why: str) -> None:
    with pytest.raises(SpecError) as info:
        parse_data(Source(name, text))
    message = str(info.value)
    assert where in message and why in message, message
    assert len(message) < 400 and "set_int_max_str_digits" not in message
    if "digits" in why:
        assert DIGITS.env in message


def test_what_a_spec_may_hold_is_still_read() -> None:
    data = parse_data(Source("ok.yaml", "a: .inf\nb: -.inf\nc: 1e308\nd: 12345678901234567890\n"
                                        "e: '1" + "0" * 500 + "'\nf: [[[[1]]]]\n"))
    assert data["a"] == float("inf") and data["d"] == 12345678901234567890
    assert data["e"] == "1" + "0" * 500  # a string, not a number
    assert parse_data(Source("ok.json", '{"a": 1e308, "b": "' + "9" * 500 + '"}'))["a"] == 1e308


@pytest.mark.parametrize("body", [
    "[" * NESTED + "]" * NESTED,  # ruamel's C composer: SIGSEGV before the depth check
    "\n  " + "- " * 1_000_000 + "x",  # yaml-rs: SIGSEGV near 20,000 levels of block nesting
])
def test_validate_of_a_deeply_nested_yaml_spec_exits_2(tmp_path: Path, body: str) -> None:
    spec = tmp_path / "spec.yaml"
    spec.write_text(EXAMPLE.read_text() + "x-deep: " + body + "\n")
    proc = configspec("validate", str(spec))
    assert proc.returncode == 2, proc.stderr
    assert "nested deeper than 64 levels" in proc.stderr and f"{spec}:" in proc.stderr


def test_validate_of_a_huge_number_in_a_spec_exits_2(tmp_path: Path) -> None:
    spec = tmp_path / "spec.yaml"
    text = EXAMPLE.read_text().replace("count: 200", "count: 1" + "0" * 5000, 1)
    assert "0" * 5000 in text
    spec.write_text(text)
    proc = configspec("validate", str(spec))
    assert proc.returncode == 2 and "5,001 digits" in proc.stderr, proc.stderr
    line = next(i for i, t in enumerate(text.splitlines(), 1) if "0" * 5000 in t)
    assert f"{spec}:{line}:" in proc.stderr and len(proc.stderr) < 1_000


def test_an_error_message_stays_small(capsys: pytest.CaptureFixture[str]) -> None:
    import typer

    from configspec_opt.cli.app import MAX_MESSAGE, fail
    from configspec_opt.errors import UsageError

    for as_json in (False, True):
        with pytest.raises(typer.Exit):
            fail(UsageError("cannot tell which draft " + "m" * 5_000_000 + " is"), as_json)
        captured = capsys.readouterr()
        shown = captured.err + captured.out
        assert 100 < len(shown) < MAX_MESSAGE + 200 and "5,000,027 characters" in shown
