"""`configspec import` never leaves a spec broken, whenever it is killed (issue 25).

The kill test forks the import from this (warmed-up) process and SIGKILLs it at random
moments across its run; after each kill the spec is byte for byte what it was, or the
complete new text that loads.  A kill that lands between the write of a temporary
file and its rename leaves that file beside the spec (`.fleet.yaml.XXXXXXXX.tmp`, the
writer's name for it): those are counted and printed (`pytest -s`, and in every
assertion message), so a run shows how many kills hit the window that matters.  The
importer before this issue wrote the new text first and validated it after: a kill
during that validation left a spec that no longer loads, and this test fails on it.

Also: an import into a symlinked spec keeps the link; an existing spec keeps its mode;
import inputs that are not regular files (/dev/zero, a FIFO, a directory), numbers no
float holds and 100,000-deep nesting are refused with exit 4 and a short message.
"""

from __future__ import annotations

import os
import random
import signal
import stat
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import NoReturn

import pytest

from configspec_opt.errors import SpecError
from configspec_opt.loader import load_spec
from tests.cli_helpers import DATA, ROOT, invoke
from tests.ship.test_imports import DRAFT, make_spec

BENCH = DATA / "llama-bench.json"
PROM = DATA / "vllm-metrics.prom"
SAFETY_NET_S = 120  # a hung child is killed and reported, never waited for forever


def _child(argv: list[str]) -> NoReturn:
    """The forked import: the CLI in this process's interpreter, output discarded."""
    null = os.open(os.devnull, os.O_WRONLY)
    os.dup2(null, 1)
    os.dup2(null, 2)
    sys.argv = ["configspec", *argv]
    code = 0
    try:
        from configspec_opt.cli import main

        main()
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    except BaseException:
        code = 99
    os._exit(code)


def _run(argv: list[str], kill_after: float | None = None,
         kill_on_temporary: Path | None = None) -> int:
    """Exit status of a forked import (negative: the signal that ended it), killed after
    `kill_after` seconds or as soon as a temporary file shows in `kill_on_temporary`."""
    pid = os.fork()
    if pid == 0:
        _child(argv)
    deadline = time.monotonic() + (SAFETY_NET_S if kill_after is None else kill_after)
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return os.waitstatus_to_exitcode(status)
        if time.monotonic() >= deadline or (
                kill_on_temporary is not None and _temporaries(kill_on_temporary)):
            os.kill(pid, signal.SIGKILL)
            return os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])
        time.sleep(0.0002)


def _temporaries(directory: Path) -> list[Path]:
    return sorted(p for p in directory.iterdir() if p.name.startswith(".")
                  and p.name.endswith(".tmp"))


@dataclass
class Tally:
    duration: float
    kills: int = 0
    finished_first: int = 0
    between_write_and_rename: int = 0
    states: dict[str, int] = field(default_factory=dict)

    def line(self, name: str) -> str:
        return (f"{name} (a whole run {self.duration:.2f} s): {self.kills} kills "
                f"({RANDOM_KILLS[name]} at random times, {ON_SIGHT_KILLS} on seeing a "
                f"temporary file), {self.finished_first} after the import had "
                f"ended, {self.between_write_and_rename} between a write and its rename "
                f"(temporary file left); files after each: {self.states}")


def _spec_with_profiles_file(tmp_path: Path) -> tuple[Path, Path]:
    """The import spec with orin's profiles moved to a profiles_from file: a vLLM import
    of the draft then changes both files."""
    spec = make_spec(tmp_path)
    lines = spec.read_text().splitlines(keepends=True)
    start = next(i for i, t in enumerate(lines) if t.startswith("  - device: orin"))
    end = next(i for i, t in enumerate(lines) if i > start and not t.startswith("  "))
    moved = lines[start:end]
    profiles = tmp_path / "orin-profiles.yaml"
    profiles.write_text("profiles:\n" + "".join(moved))
    rest = lines[:start] + lines[end:]
    at = next(i for i, t in enumerate(rest) if t.startswith("search:"))
    spec.write_text("".join([*rest[:at], "profiles_from: [orin-profiles.yaml]\n", *rest[at:]]))
    load_spec(spec)
    return spec, profiles


SCENARIOS = {
    # a new laptop profile without power data, in a spec whose constraints need it: the
    # import is refused by the spec's validation (exit 2); the spec must stay as it was
    "refused": (["llama-bench", str(BENCH), "{spec}", "-d", "laptop", "--threads", "4"], 2),
    "accepted": (["llama-bench", str(BENCH), "{spec}", "-d", "rpi5", "--threads", "4"], 0),
    "two files": (["vllm-metrics", str(PROM), "{spec}", "--draft", DRAFT], 0),
}
RANDOM_KILLS = {"refused": 16, "accepted": 10, "two files": 10}
ON_SIGHT_KILLS = 3  # as soon as the parent sees a temporary file: inside the window


def _setup(name: str, tmp_path: Path) -> list[Path]:
    if name == "two files":
        return list(_spec_with_profiles_file(tmp_path))
    spec = make_spec(tmp_path)
    if name == "refused":  # the laptop pool loses its power_w: its new profile has none
        text = spec.read_text()
        assert "    memory_gb: 16\n    power_w: 30\n" in text
        spec.write_text(text.replace("    memory_gb: 16\n    power_w: 30\n",
                                     "    memory_gb: 16\n"))
        load_spec(spec)
    return [spec]


@pytest.mark.parametrize("name", list(SCENARIOS))
def test_a_killed_import_leaves_the_old_spec_or_the_new_one(name: str, tmp_path: Path) -> None:
    files = _setup(name, tmp_path)
    spec = files[0]
    old = {p: p.read_bytes() for p in files}
    template, expected = SCENARIOS[name]
    argv = ["import", *(a.replace("{spec}", str(spec)) for a in template)]

    invoke(*argv, "--dry-run")  # warm this process: the children import nothing more
    started = time.monotonic()
    assert _run(argv, None) == expected  # the whole run, unkilled: how long it takes
    duration = time.monotonic() - started
    new = {p: p.read_bytes() for p in files}
    assert (new == old) == (expected != 0)

    rng = random.Random(f"kill-{name}")
    tally = Tally(duration=duration)
    for i in range(RANDOM_KILLS[name] + ON_SIGHT_KILLS):
        for p, text in old.items():
            p.write_bytes(text)
        if i < RANDOM_KILLS[name]:
            status = _run(argv, kill_after=rng.uniform(0, 1.1 * duration))
        else:
            status = _run(argv, kill_on_temporary=tmp_path)
        tally.kills += 1
        if status >= 0:
            tally.finished_first += 1
        left = _temporaries(tmp_path)
        if left:
            tally.between_write_and_rename += 1
            for p in left:
                p.unlink()
        state = []
        for p in files:
            now = p.read_bytes()
            state.append("old" if now == old[p] else "new")
        key = "+".join(state)
        tally.states[key] = tally.states.get(key, 0) + 1
        try:
            load_spec(spec)
            loads = True
        except SpecError:
            loads = False
        report = tally.line(name)
        assert loads or state == ["old"] * len(files), f"the spec no longer loads: {report}"
        if expected != 0:
            assert state == ["old"], f"a refused import changed the spec: {report}"
        if name == "two files":
            assert state != ["new", "old"], f"the spec was written before its profiles: {report}"
    print("\n" + tally.line(name))
    assert tally.kills - tally.finished_first > 0, tally.line(name)


def test_a_dry_run_of_an_import_the_spec_refuses_exits_2(tmp_path: Path) -> None:
    spec = _setup("refused", tmp_path)[0]
    before = spec.read_bytes()
    r = invoke("import", "llama-bench", BENCH, spec, "-d", "laptop", "--threads", "4",
               "--dry-run")
    assert r.exit_code == 2 and "no power data for device laptop" in r.stderr, r.stderr
    assert spec.read_bytes() == before


# --- symlinks and modes -------------------------------------------------------------------


def test_import_into_a_symlinked_spec_keeps_the_link_and_the_mode(tmp_path: Path) -> None:
    real = make_spec(tmp_path)
    real.chmod(0o640)
    link = tmp_path / "link" / "fleet.yaml"
    link.parent.mkdir()
    link.symlink_to(real)
    r = invoke("import", "llama-bench", BENCH, link, "-d", "rpi5", "--threads", "4")
    assert r.exit_code == 0, r.stderr
    assert link.is_symlink() and link.resolve() == real
    assert "draft_tok_s: 14.48" in real.read_text()
    assert stat.S_IMODE(real.stat().st_mode) == 0o640
    assert _temporaries(tmp_path) == [] and _temporaries(link.parent) == []


# --- inputs that are not what an importer reads ---------------------------------------------


def _configspec(*args: str | Path) -> subprocess.CompletedProcess[str]:
    """A real process: the timeout is only a safety net (a FIFO once blocked forever)."""
    proc = subprocess.run([sys.executable, "-m", "configspec_opt", *map(str, args)],
                          capture_output=True, text=True, cwd=ROOT, timeout=SAFETY_NET_S,
                          check=False)
    assert "Traceback" not in proc.stderr + proc.stdout, proc.stderr
    return proc


def test_special_files_as_import_inputs_exit_4(tmp_path: Path) -> None:
    spec = make_spec(tmp_path)
    before = spec.read_bytes()
    fifo = tmp_path / "metrics.fifo"
    os.mkfifo(fifo)
    proc = _configspec("import", "vllm-metrics", fifo, spec, "--draft", DRAFT)
    assert proc.returncode == 4, proc.stderr
    assert f"cannot read {fifo}: not a regular file (a FIFO)" in proc.stderr
    for importer, given, *rest in [("llama-bench", "/dev/zero", "-d", "rpi5"),
                                   ("llama-spec", str(tmp_path), "--draft", DRAFT, "--k", "4")]:
        r = invoke("import", importer, given, spec, *rest)
        assert r.exit_code == 4, (importer, r.stderr)
        assert f"cannot read {given}: not a regular file" in r.stderr
    assert spec.read_bytes() == before


@pytest.mark.parametrize("content", [
    "[" * 100_000 + "]" * 100_000,
    '[{"model_filename": "m.gguf", "n_prompt": 0, "n_gen": 128, "avg_ts": 1' + "0" * 400 + "}]",
    '[{"model_filename": "m.gguf", "n_prompt": 0, "n_gen": 1' + "0" * 5000 + ', "avg_ts": 9}]',
])
def test_hostile_json_as_an_import_input_exits_4(tmp_path: Path, content: str) -> None:
    spec = make_spec(tmp_path)
    before = spec.read_bytes()
    bench = tmp_path / "bench.json"
    bench.write_text(content)
    r = invoke("import", "llama-bench", bench, spec, "-d", "rpi5")
    assert r.exit_code == 4 and str(bench) in r.stderr, r.stderr
    assert len(r.stderr) < 1_000
    assert spec.read_bytes() == before


def test_an_error_about_a_huge_input_stays_small(tmp_path: Path) -> None:
    spec = make_spec(tmp_path)
    bench = tmp_path / "bench.json"
    name = "m" * 5_000_000
    rows = ",".join(f'{{"model_filename": "{name}{i}.gguf", "n_prompt": 0, "n_gen": 128, '
                    f'"avg_ts": {i + 1}}}' for i in range(10))
    bench.write_text(f"[{rows}]")
    assert bench.stat().st_size > 50_000_000
    r = invoke("import", "llama-bench", bench, spec, "-d", "rpi5")
    assert r.exit_code in (2, 4) and len(r.stderr) < 5_000, (r.exit_code, len(r.stderr))
