"""Every command that reads a file, fed hostile variants of a valid one (issue 25).

For the spec (`validate`, `evaluate`, `solve`, `pareto`, `report`, `lock`, `check`, `fmt`,
`export`), a lock (`diff`, `export`, `check`), each importer (`configspec import
llama-bench`, `vllm-metrics`, `llama-spec`) and a `profiles_from` file, Hypothesis
damages a valid seed (tests/fuzz/strategies.py: bytes, numbers, lines, parsed structure)
and runs the real command in this process (typer's runner: the same code as the
console script, ~100 times faster to start; a few cases at the end run as real
processes and must end the same way).  Each run must:

- print no traceback and raise nothing but its exit;
- end with a documented exit code (0, 1, 2, 3, 4: README, "Exit codes");
- change no file when it refuses (exit != 0), and never a file it has no business
  writing: the spec, its lock, the profiles file, the input, no new files; a command
  that only reads changes nothing even on success;
- leave what it wrote valid: an import's spec still loads, `fmt` keeps a spec's
  validity, a lock reads back.

A hang is a failure too (an alarm after `HANG_S` seconds).  Every example draws the same
inputs on every run (tests/conftest.py's 'repeatable' profile); the number of cases per
command is printed at the end of the session (tests/fuzz/conftest.py) and scaled with
CONFIGSPEC_FUZZ_SCALE (e.g. 5 for a longer hunt, with HYPOTHESIS_PROFILE=explore for
fresh draws).
"""

from __future__ import annotations

import json
import logging
import os
import re
import signal
import stat
import tempfile
import traceback
from collections import Counter, defaultdict
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import FrameType

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from configspec_opt.cli import app
from configspec_opt.errors import ConfigspecError
from configspec_opt.loader import load_spec
from configspec_opt.vcs.lock import read_lock
from tests.cli_helpers import DATA, EXAMPLE, run_process
from tests.fuzz.strategies import Format, hostile_file, mild_file, shown, string_mutated

DOCUMENTED = frozenset({0, 1, 2, 3, 4})
HANG_S = 60
SCALE = float(os.environ.get("CONFIGSPEC_FUZZ_SCALE", "1"))
DRAFT = "llama-3.2-1b-instruct"
SPEC = EXAMPLE.name
LOCK = SPEC + ".lock"
SPEC_TEXT = EXAMPLE.read_text()
LOCK_TEXT = EXAMPLE.with_name(LOCK).read_text()

CASES: Counter[str] = Counter()
"""Runs per command (printed by tests/fuzz/conftest.py at the end of the session)."""
CODES: defaultdict[str, Counter[int]] = defaultdict(Counter)
"""Exit codes per command: a fuzz test whose every case ends at the parser says little."""


def fuzz(examples: int) -> settings:
    return settings(max_examples=max(1, round(examples * SCALE)), deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                           HealthCheck.large_base_example,
                                           HealthCheck.function_scoped_fixture])


# --------------------------------------------------------------------------- running


class Hang(BaseException):
    """A command still running after HANG_S seconds (a BaseException: no `except
    Exception` in the command swallows it)."""


def _alarm(signum: int, frame: FrameType | None) -> None:
    raise Hang(f"still running after {HANG_S} s")


@dataclass
class Outcome:
    code: int
    output: str
    error: BaseException | None


def cli(*args: str | Path) -> Outcome:
    """`configspec ARGS` in this process; an exception it lets out is kept, not raised."""
    logging.root.handlers.clear()  # basicConfig binds to this run's stderr, as in a process
    previous = signal.signal(signal.SIGALRM, _alarm)
    signal.alarm(HANG_S)
    try:
        result = CliRunner().invoke(app, [str(a) for a in args])
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)
    error = None if isinstance(result.exception, SystemExit) else result.exception
    return Outcome(result.exit_code, result.stdout + result.stderr, error)


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


NEW_FILE_MODE = 0o666 & ~_umask()
"""The mode every tool gives a file it creates (the issue: not mkstemp's 0600)."""


@dataclass(frozen=True)
class Entry:
    content: bytes | str  # a file's bytes, or a link's "-> target"
    mode: int


def snapshot(root: Path) -> dict[str, Entry]:
    """Every file under root (bytes, mode) and every link (its target), by relative path."""
    found: dict[str, Entry] = {}
    for dirpath, _dirs, files in os.walk(root):
        for name in files:
            p = Path(dirpath) / name
            rel = str(p.relative_to(root))
            if p.is_symlink():
                found[rel] = Entry(f"-> {os.readlink(p)}", 0)
            else:
                found[rel] = Entry(p.read_bytes(), stat.S_IMODE(p.stat().st_mode))
    return found


@dataclass(frozen=True)
class Link:
    target: str


@contextmanager
def workdir(files: dict[str, bytes | str | Link]) -> Iterator[Path]:
    """A fresh directory holding `files` (name: content), removed afterwards."""
    with tempfile.TemporaryDirectory(prefix="fuzz-") as d:
        root = Path(d)
        for name, content in files.items():
            path = root / name
            path.parent.mkdir(parents=True, exist_ok=True)
            if isinstance(content, Link):
                path.symlink_to(content.target)
            else:
                path.write_bytes(content.encode() if isinstance(content, str) else content)
        yield root


def _last_frame(error: BaseException) -> str:
    frames = traceback.extract_tb(error.__traceback__)
    return f"{frames[-1].filename}:{frames[-1].lineno}" if frames else "?"


def _change(old: Entry | None, new: Entry | None) -> str:
    if old is None or new is None:
        return "created" if old is None else "deleted"
    if isinstance(old.content, str) and isinstance(new.content, bytes):
        return "a symlink replaced by a regular file"
    return "mode changed" if old.content == new.content else "modified"


def run_checked(command: str, root: Path, args: Sequence[str | Path], data: bytes,
                seed: str, *, writes: Sequence[str] = (),
                success: frozenset[int] = frozenset({0})) -> Outcome:
    """Run one case and check what every run must satisfy (module docstring).

    `writes`: the paths under root (a file, or a folder's prefix) the command may change
    when it ends with an exit code in `success`; any other change fails.
    """
    before = snapshot(root)
    outcome = cli(*args)
    CASES[command] += 1
    CODES[command][outcome.code] += 1
    where = f"`configspec {' '.join(str(a) for a in args)}` on {shown(data, seed.encode())}"
    if outcome.error is not None:  # raised as itself: Hypothesis tells bugs apart by origin
        outcome.error.add_note(f"fuzz: {where} raised {type(outcome.error).__name__} at "
                               f"{_last_frame(outcome.error)}")
        raise outcome.error
    assert "Traceback (most recent call last)" not in outcome.output, \
        f"{where}: a traceback in the output:\n{outcome.output[-3000:]}"
    assert outcome.code in DOCUMENTED, \
        f"{where}: exit {outcome.code}, not a documented code:\n{outcome.output[-2000:]}"
    after = snapshot(root)
    changed = sorted(p for p in before.keys() | after.keys() if before.get(p) != after.get(p))
    modes = [f"{p} {after[p].mode:o} (was {before[p].mode:o})" if p in before else
             f"{p} created {after[p].mode:o}" for p in changed
             if p in after and isinstance(after[p].content, bytes)
             and after[p].mode != (before[p].mode if p in before else NEW_FILE_MODE)]
    allowed = [p for p in changed if outcome.code in success
               and any(p == w or p.startswith(w.rstrip("/") + "/") for w in writes)]
    wrong = [f"{p} ({_change(before.get(p), after.get(p))})" for p in changed
             if p not in allowed]
    refused = " (a refusal)" if outcome.code not in success else ""
    assert not wrong, f"{where}: exit {outcome.code}{refused} changed {wrong}:\n" \
        f"{outcome.output[-2000:]}"
    assert not modes, f"{where}: a file written with the wrong mode (umask {_umask():03o}): " \
        f"{modes}"
    return outcome


# --------------------------------------------------------------------------- seeds


def _spec_as_json(text: str) -> str:
    from ruamel.yaml import YAML

    return json.dumps(YAML(typ="safe", pure=True).load(text), indent=2)


FLOW_SPEC = SPEC_TEXT.replace(
    "  - name: rpi5\n    platform: raspberry-pi-5\n    count: 200                      "
    "# identical devices in this pool\n    memory_gb: 8\n    rtt_s: 0.04",
    "  - {name: rpi5, platform: raspberry-pi-5, count: 200, memory_gb: 8, rtt_s: 0.04}").replace(
    "  - name: orin\n    platform: jetson-agx-orin\n    count: 20\n    memory_gb: 64\n",
    "  - {name: orin, platform: jetson-agx-orin, count: 20, memory_gb: 64}\n")
"""The example with its pools written as flow mappings (where `fmt` once unquoted text)."""
SPEC_SEEDS: dict[str, str] = {"yaml": SPEC_TEXT, "json": _spec_as_json(SPEC_TEXT),
                              "flow": FLOW_SPEC}
SPEC_JSON = SPEC.replace(".yaml", ".json")


def _tagged(seeds: dict[str, tuple[str, Format]]) -> st.SearchStrategy[tuple[str, bytes]]:
    """A hostile variant of one of the seeds, with the seed's name."""
    return st.one_of([st.tuples(st.just(name), hostile_file(text, fmt))
                      for name, (text, fmt) in seeds.items()])

def _spec_args(command: str, spec: Path, flag: bool, fmt_choice: str) -> tuple[list[str | Path],
                                                                              list[str], set[int]]:
    """The command line of a spec command, what it may write, and when."""
    json_flag = ["--json"] if flag else []
    if command == "validate":
        return ["validate", spec, *json_flag, *(["--strict"] if flag else [])], [], {0}
    if command == "evaluate":
        return ["evaluate", spec, "--top", "2", *json_flag], [], {0}
    if command == "solve":
        return ["solve", spec, *json_flag], [], {0}
    if command == "pareto":
        return ["pareto", spec, "--points", "3", *json_flag], [], {0}
    if command == "check":
        return ["check", spec, *json_flag], [], {0}
    if command == "fmt --check":
        return ["fmt", "--diff" if flag else "--check", spec], [], {0}
    if command == "fmt":
        return ["fmt", spec], [spec.name], {0}
    if command == "lock":
        return ["lock", spec, *json_flag], [spec.name + ".lock"], {0}
    if command == "report":
        return (["report", spec, "-o", spec.parent / "report.html", "--points", "2",
                 "--pareto" if flag else "--no-pareto"], ["report.html"], {0, 1})
    assert command == "export", command
    return (["export", spec, "-o", spec.parent / "out", "--format", fmt_choice, *json_flag],
            ["out"], {0})


SPEC_COMMANDS = {"validate": 20, "evaluate": 8, "solve": 10, "pareto": 5, "check": 10,
                 "fmt --check": 10, "fmt": 20, "lock": 10, "report": 6, "export": 10}


def _meaning(text: bytes, is_json: bool = False) -> str | None:
    """The data a spec's text holds, comparable across layouts (NaN equal to NaN), as
    json or ruamel reads it; None where that reader refuses it (then nothing to compare)."""
    from ruamel.yaml import YAML
    from ruamel.yaml.error import YAMLError

    try:
        data = (json.loads(text) if is_json
                else YAML(typ="safe", pure=True).load(text.decode("utf-8")))
    except (ValueError, YAMLError, RecursionError):
        return None
    return json.dumps(data, sort_keys=True, default=repr)


def _validity(path: Path) -> str:
    """Whether a spec loads, as a string a failure message can show."""
    try:
        load_spec(path)
    except ConfigspecError as exc:
        return f"invalid ({type(exc).__name__})"
    return "valid"


@pytest.mark.parametrize("command", list(SPEC_COMMANDS))
def test_spec_commands_refuse_hostile_specs_cleanly(command: str) -> None:
    @fuzz(SPEC_COMMANDS[command])
    @given(st.one_of(_tagged({"yaml": (SPEC_SEEDS["yaml"], "yaml"),
                              "json": (SPEC_SEEDS["json"], "json")}),
                     st.tuples(st.just("yaml"), mild_file(SPEC_SEEDS["yaml"])),
                     st.tuples(st.just("flow"), mild_file(FLOW_SPEC))),
           st.booleans(),
           st.sampled_from(["json", "env", "yaml"]))
    def case(drawn: tuple[str, bytes], flag: bool, fmt_choice: str) -> None:
        fmt, data = drawn
        name = SPEC_JSON if fmt == "json" else SPEC
        files: dict[str, bytes | str | Link] = {name: data}
        if fmt != "json":
            files[LOCK] = LOCK_TEXT
        with workdir(files) as root:
            spec = root / name
            was = _validity(spec) if command.startswith("fmt") else ""
            args, writes, success = _spec_args(command, spec, flag, fmt_choice)
            outcome = run_checked(command, root, args, data, SPEC_SEEDS[fmt], writes=writes,
                                  success=frozenset(success))
            if command.startswith("fmt") and was == "valid":
                assert outcome.code in ((0,) if command == "fmt" else (0, 1)), \
                    (f"`configspec {command}` refused a valid spec: "
                     f"{shown(data, SPEC_SEEDS[fmt].encode())}\n{outcome.output}")
            if command == "fmt" and outcome.code == 0:
                now, after = _validity(spec), spec.read_bytes()
                became = (f"{shown(data, SPEC_SEEDS[fmt].encode())} became "
                          f"{shown(after, data)}")
                assert now == was, f"`configspec fmt` turned a {was} spec into an {now} one: " \
                    + became
                meant = _meaning(data, fmt == "json")
                assert meant is None or _meaning(after, fmt == "json") == meant, \
                    "`configspec fmt` changed what the spec says: " + became
            if command == "lock" and outcome.code == 0:
                read_lock(root / (name + ".lock"))

    case()


@fuzz(30)
@given(string_mutated(FLOW_SPEC), st.booleans())
def test_fmt_keeps_text_that_needs_quotes(data: bytes, check: bool) -> None:
    """A valid spec whose free text (its name, a platform) a YAML writer must quote, in
    block and flow mappings: `fmt` keeps it valid and saying the same, `--check` accepts it."""
    with workdir({SPEC: data}) as root:
        spec = root / SPEC
        was = _validity(spec)
        command = "fmt --check" if check else "fmt"
        outcome = run_checked(command, root, ["fmt", *(["--check"] if check else []), spec],
                              data, FLOW_SPEC, writes=[] if check else [SPEC])
        if was == "valid":
            assert outcome.code in ((0, 1) if check else (0,)), \
                f"`configspec {command}` refused a valid spec: {shown(data, FLOW_SPEC.encode())}" \
                f"\n{outcome.output}"
        if outcome.code == 0 and not check:
            after = spec.read_bytes()
            meant = _meaning(data)
            assert _validity(spec) == was and (meant is None or _meaning(after) == meant), \
                f"`configspec fmt` changed {shown(data, FLOW_SPEC.encode())} into " \
                f"{shown(after, data)}"


# --------------------------------------------------------------------------- locks

LOCK_COMMANDS = {"diff": 30, "export lock": 20, "check lock": 20}


@pytest.mark.parametrize("command", list(LOCK_COMMANDS))
def test_lock_readers_refuse_hostile_locks_cleanly(command: str) -> None:
    @fuzz(LOCK_COMMANDS[command])
    @given(hostile_file(LOCK_TEXT, "yaml"), st.integers(0, 3), st.booleans(),
           st.sampled_from(["json", "env", "yaml"]))
    def case(data: bytes, variant: int, first: bool, fmt_choice: str) -> None:
        with workdir({SPEC: SPEC_TEXT, LOCK: data, "good.lock": LOCK_TEXT}) as root:
            lock = root / LOCK
            if command == "diff":
                sides = [lock, root / "good.lock"]
                flags = [[], ["--json"], ["--html"], ["--exit-code"]][variant]
                run_checked(command, root, ["diff", *(sides if first else sides[::-1]),
                                            *flags], data, LOCK_TEXT)
            elif command == "export lock":
                run_checked(command, root, ["export", lock, "-o", root / "out", "--format",
                                            fmt_choice, *(["--json"] if first else [])],
                            data, LOCK_TEXT, writes=["out"])
            else:
                run_checked(command, root, ["check", root / SPEC,
                                            *(["--resolve"] if variant == 0 else []),
                                            *(["--json"] if first else [])], data, LOCK_TEXT)

    case()


# --------------------------------------------------------------------------- importers

GGUF_SPEC = SPEC_TEXT.replace(
    "Q4_K_M: {size_gb: 0.81}",
    "Q4_K_M: {size_gb: 0.81, gguf: models/Llama-3.2-1B-Instruct-Q4_K_M.gguf}")
"""The example with the file llama-bench ran declared (the importer matches it by name)."""
IMPORT_SPEC = GGUF_SPEC.replace("    memory_gb: 64\n",
                                "    memory_gb: 64\n  - name: laptop   # one engineer's machine\n"
                                "    count: 1\n    memory_gb: 16\n    power_w: 30\n")
"""... and a pool without profiles, for the import that creates one."""
BENCH = (DATA / "llama-bench.json").read_text()
BENCH_JSONL = "\n".join(json.dumps(r) for r in json.loads(BENCH)) + "\n"
VLLM = (DATA / "vllm-metrics.prom").read_text()
VLLM_EARLIER = re.sub(r"^(vllm:spec_decode_\S+_total\{.*\}) (\d+)\.0$",
                      lambda m: f"{m[1]} {int(m[2]) // 2}.0", VLLM, flags=re.MULTILINE)
"""A scrape taken earlier (every counter at half), the baseline whose damage is tested."""


@dataclass(frozen=True)
class Importer:
    seed: str
    fmt: Format
    options: tuple[str, ...]
    examples: int


IMPORTERS = {
    "llama-bench json": Importer(BENCH, "json", ("llama-bench", "{input}", "{spec}", "-d",
                                                 "rpi5", "--threads", "4"), 30),
    "llama-bench jsonl": Importer(BENCH_JSONL, "text", (
        "llama-bench", "{input}", "{spec}", "-d", "laptop", "--threads", "2", "--draft", DRAFT,
        "--quant", "Q4_K_M"), 15),
    "vllm-metrics vllm": Importer(VLLM, "text", (
        "vllm-metrics", "{input}", "{spec}", "--draft", DRAFT, "--quant", "Q4_K_M"), 30),
    "vllm-metrics llama-server": Importer((DATA / "llama-server-metrics.prom").read_text(),
                                          "text", ("vllm-metrics", "{input}", "{spec}",
                                                   "--draft", DRAFT, "-d", "rpi5"), 15),
    "vllm-metrics --baseline": Importer(VLLM_EARLIER, "text", (
        "vllm-metrics", "{vllm}", "{spec}", "--draft", DRAFT, "--baseline", "{input}"), 10),
    "llama-spec speculative": Importer((DATA / "llama-speculative.log").read_text(), "text", (
        "llama-spec", "{input}", "{spec}", "--draft", DRAFT, "--quant", "Q8_0"), 20),
    "llama-spec server": Importer((DATA / "llama-server-spec.log").read_text(), "text", (
        "llama-spec", "{input}", "{spec}", "--draft", DRAFT, "-d", "rpi5", "--quant",
        "Q4_K_M", "--k", "4"), 20),
}


IMPORT_MODES = ["write", "--dry-run", "--json", "symlinked spec"]


def _import_case(command: str, options: Sequence[str], spec_text: str | bytes,
                 files: dict[str, bytes | str | Link], data: bytes, seed: str,
                 writes: list[str], mode: str) -> None:
    """One import; `data` is the hostile file among `files`, `seed` what it was made from
    (for the failure message).  A symlinked spec must stay a link: only its target may
    change."""
    spec_files: dict[str, bytes | str | Link] = {"fleet.yaml": spec_text}
    if mode == "symlinked spec":
        spec_files = {"real/fleet.yaml": spec_text, "fleet.yaml": Link("real/fleet.yaml")}
        writes = ["real/fleet.yaml" if w == "fleet.yaml" else w for w in writes]
    with workdir({**spec_files, "vllm.prom": VLLM, **files}) as root:
        places = {"{input}": str(root / "input.txt"), "{vllm}": str(root / "vllm.prom"),
                  "{spec}": str(root / "fleet.yaml")}
        args = ["import", *(places.get(o, o) for o in options),
                *([mode] if mode.startswith("--") else [])]
        outcome = run_checked(command, root, args, data, seed,
                              writes=[] if mode == "--dry-run" else writes)
        if outcome.code == 0 and mode != "--dry-run":
            try:
                load_spec(root / "fleet.yaml")
            except ConfigspecError as exc:
                raise AssertionError(f"import exit 0 left an invalid spec from "
                                     f"{shown(data, seed.encode())}: {exc}") from None


@pytest.mark.parametrize("command", list(IMPORTERS))
def test_importers_refuse_hostile_inputs_cleanly(command: str) -> None:
    imp = IMPORTERS[command]

    @fuzz(imp.examples)
    @given(hostile_file(imp.seed, imp.fmt), st.sampled_from(IMPORT_MODES))
    def case(data: bytes, mode: str) -> None:
        _import_case(command, imp.options, IMPORT_SPEC, {"input.txt": data}, data, imp.seed,
                     ["fleet.yaml"], mode)

    case()


SPEC_IMPORTS = {"llama-bench json": 15, "llama-spec speculative": 15}


@pytest.mark.parametrize("importer", list(SPEC_IMPORTS))
def test_imports_into_hostile_specs(importer: str) -> None:
    """The spec an import writes into is read (and round-tripped) too: damage it instead."""
    imp = IMPORTERS[importer]

    @fuzz(SPEC_IMPORTS[importer])
    @given(st.one_of(hostile_file(IMPORT_SPEC, "yaml"), mild_file(IMPORT_SPEC)),
           st.sampled_from(IMPORT_MODES))
    def case(data: bytes, mode: str) -> None:
        _import_case(f"import {importer.split()[0]} (hostile spec)", imp.options,
                     data, {"input.txt": imp.seed},
                     data, IMPORT_SPEC, ["fleet.yaml"], mode)

    case()


# --------------------------------------------------------------------------- profiles_from


def _split_profiles(text: str) -> tuple[str, str]:
    """The spec with its profiles moved to profiles.yaml (comments kept), and that list."""
    start, end = text.index("profiles:"), text.index("search:")
    block = text[start:end].split("\n", 1)[1]
    return text[:start] + "profiles_from: [profiles.yaml]\n" + text[end:], block


PROFILES_SPEC, PROFILES_YAML = _split_profiles(GGUF_SPEC)
PROFILES_SEEDS: dict[str, tuple[str, Format]] = {
    "yaml list": (PROFILES_YAML, "yaml"),
    "yaml mapping": ("profiles:\n" + PROFILES_YAML, "yaml"),
    "json list": (_spec_as_json(PROFILES_YAML), "json"),
}
PROFILES_COMMANDS = {"validate": 20, "solve": 8, "lock": 8, "check": 8,
                     "import llama-bench": 15}


@pytest.mark.parametrize("command", list(PROFILES_COMMANDS))
def test_profiles_files_are_refused_cleanly(command: str) -> None:
    @fuzz(PROFILES_COMMANDS[command])
    @given(st.one_of(_tagged(PROFILES_SEEDS),
                     st.tuples(st.just("yaml list"), mild_file(PROFILES_YAML))), st.booleans())
    def case(drawn: tuple[str, bytes], flag: bool) -> None:
        kind, data = drawn
        name = "profiles.json" if kind.startswith("json") else "profiles.yaml"
        spec_text = PROFILES_SPEC.replace("profiles.yaml", name)
        label = f"profiles_from {command}"
        if command == "import llama-bench":
            _import_case(label, IMPORTERS["llama-bench json"].options, spec_text,
                         {"input.txt": BENCH, name: data}, data, PROFILES_SEEDS[kind][0],
                         ["fleet.yaml", name], "--dry-run" if flag else "write")
            return
        with workdir({"fleet.yaml": spec_text, name: data}) as root:
            spec = root / "fleet.yaml"
            args, writes, success = _spec_args(command, spec, flag, "json")
            run_checked(label, root, args, data, PROFILES_SEEDS[kind][0], writes=writes,
                        success=frozenset(success))

    case()


def test_profiles_seed_is_a_valid_spec(tmp_path: Path) -> None:
    """The fuzz tests above start from valid files (else they test only the parser)."""
    for kind, (text, _fmt) in PROFILES_SEEDS.items():
        name = "profiles.json" if kind.startswith("json") else "profiles.yaml"
        (tmp_path / name).write_text(text)
        (tmp_path / "fleet.yaml").write_text(PROFILES_SPEC.replace("profiles.yaml", name))
        assert len(load_spec(tmp_path / "fleet.yaml").spec.profiles) == 6, kind
    (tmp_path / "fleet.yaml").write_text(IMPORT_SPEC)
    for command, imp in IMPORTERS.items():
        (tmp_path / "input.txt").write_text(imp.seed)
        (tmp_path / "vllm.prom").write_text(VLLM)
        places = {"{input}": str(tmp_path / "input.txt"), "{vllm}": str(tmp_path / "vllm.prom"),
                  "{spec}": str(tmp_path / "fleet.yaml")}
        r = cli("import", *(places.get(o, o) for o in imp.options), "--dry-run")
        assert r.error is None and r.code == 0, (command, r.output)


# --------------------------------------------------------------------------- real processes

HUGE = "1" + "0" * 400
DIGITS = "9" * 5000


def _process_cases() -> list[tuple[str, dict[str, str], list[str]]]:
    bench = json.loads(BENCH)
    bench[1]["avg_ts"] = "@HUGE@"
    prom = (DATA / "vllm-metrics.prom").read_text().replace(" 6000.0", " NaN", 1)
    return [
        ("spec: 5,000 digits", {SPEC: SPEC_TEXT.replace("draft_tok_s: 14.4", "draft_tok_s: "
                                                        + DIGITS, 1)}, ["validate", SPEC]),
        ("spec: NUL in a name", {SPEC: SPEC_TEXT.replace("name: rpi5", 'name: "rp\\0i5"', 1)},
         ["solve", SPEC]),
        ("lock: NaN count", {SPEC: SPEC_TEXT, LOCK: LOCK_TEXT.replace("count: 200", "count: .nan",
                                                                       1)},
         ["export", LOCK, "-o", "out"]),
        ("llama-bench: 10**400", {"fleet.yaml": IMPORT_SPEC, "in.json": json.dumps(bench)
                                  .replace('"@HUGE@"', HUGE)},
         ["import", "llama-bench", "in.json", "fleet.yaml", "-d", "rpi5", "--threads", "4"]),
        ("vllm: NaN counter", {"fleet.yaml": IMPORT_SPEC, "m.prom": prom},
         ["import", "vllm-metrics", "m.prom", "fleet.yaml", "--draft", DRAFT]),
        ("profiles: deep nesting", {"fleet.yaml": PROFILES_SPEC,
                                    "profiles.yaml": "[" * 100_000 + "]" * 100_000},
         ["validate", "fleet.yaml"]),
    ]


@pytest.mark.parametrize("label,files,args", _process_cases(),
                         ids=[c[0] for c in _process_cases()])
def test_real_processes_end_as_the_runner_says(label: str, files: dict[str, str],
                                              args: list[str]) -> None:
    """The console script in a fresh interpreter: the same exit code as in this process
    (so the runner above is faithful), no traceback, nothing changed on a refusal."""
    with workdir(dict(files)) as root:
        before = snapshot(root)
        real = run_process(*args, cwd=root)
        CASES["real process"] += 1
        assert "Traceback (most recent call last)" not in real.stdout + real.stderr, \
            real.stderr[-3000:]
        assert real.exit_code in DOCUMENTED, (real.exit_code, real.stderr[-2000:])
        if real.exit_code != 0:
            assert snapshot(root) == before
    here = _in_dir(files, args)
    assert here.error is None and here.code == real.exit_code, (here, real.stderr)


def _in_dir(files: dict[str, str], args: list[str]) -> Outcome:
    """The same command in this process, in a fresh copy of the same files."""
    cwd = Path.cwd()
    with workdir(dict(files)) as root:
        os.chdir(root)
        try:
            return cli(*args)
        finally:
            os.chdir(cwd)


def summary() -> list[str]:
    """Lines for the end of the session: cases and exit codes per command."""
    lines = []
    for command, n in sorted(CASES.items()):
        codes = ", ".join(f"{c}: {k}" for c, k in sorted(CODES[command].items()))
        lines.append(f"{command:34} {n:5} cases" + (f"  (exit {codes})" if codes else ""))
    if CASES:
        lines.append(f"{'total':34} {sum(CASES.values()):5} cases")
    return lines

