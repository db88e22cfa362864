"""A command whose extra is not installed exits 3 with one line ending in the pip command.

Every command of the README's "which extra" table (`errors.EXTRA_OF_COMMAND`, the one
place that says which extra a command needs) runs here without its extra, and the
commands the table says need none run with every extra missing.

The real CLI runs in a subprocess that cannot import the extra's packages: a
`sitecustomize` first on PYTHONPATH puts a meta-path finder in front of every other
that answers ModuleNotFoundError for the named top-level modules, as an install
without the extra would.  The finder is inherited by every process the command
starts (serve's solver workers too), because they read the same PYTHONPATH.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from configspec_opt.errors import EXTRA_OF_COMMAND, install_command

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "llama70b-edge.yaml"
DATA = ROOT / "tests" / "ship" / "data"

BLOCKER = '''\
import os
import sys

_BLOCKED = frozenset(filter(None, os.environ.get("CONFIGSPEC_TEST_BLOCK", "").split(",")))


class _NotInstalled:
    """Finds the blocked top-level modules missing, before any real finder looks."""

    @classmethod
    def find_spec(cls, name, path=None, target=None):
        if name.partition(".")[0] in _BLOCKED:
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None


sys.meta_path.insert(0, _NotInstalled)
'''

PROFILER = ("llama_cpp", "gguf")
SOLVER = ("pyomo", "highspy")
BASE = ("pyomo", "highspy", "numpy")  # an install with no extra has no numpy either
SERVER = ("fastapi", "uvicorn", "sqlalchemy", "alembic", "platformdirs")
PLOT = ("matplotlib",)
POSTGRES = ("psycopg",)
EVERY_EXTRA = (*PROFILER, *BASE, *SERVER, *PLOT, *POSTGRES)
MODULES = {"solver": SOLVER, "profiler": PROFILER, "plot": PLOT, "server": SERVER,
           "postgres": POSTGRES, None: EVERY_EXTRA}
PG = "postgresql+psycopg://nobody@127.0.0.1:9/none"  # never reached: the driver is missing

ROWS: dict[str, list[list[str]]] = {
    "validate, evaluate, schema, fmt, check": [
        ["--help"], ["validate", "{spec}"], ["evaluate", "{spec}", "--top", "1"], ["schema"],
        ["fmt", "--check", "{spec}"], ["check", "{spec}"]],
    "export LOCK, diff LOCK LOCK": [
        ["export", "{lock}", "-o", "{tmp}/out"], ["diff", "{lock}", "{lock}"]],
    "import llama-bench / vllm-metrics / llama-spec": [
        ["import", "llama-bench", "{data}/llama-bench.json", "{spec}", "-d", "rpi5",
         "--draft", "llama-3.2-1b-instruct", "--quant", "Q4_K_M", "--threads", "4",
         "--dry-run"],
        ["import", "vllm-metrics", "{data}/vllm-metrics.prom", "{spec}", "-d", "rpi5",
         "--draft", "llama-3.2-1b-instruct", "--dry-run"],
        ["import", "llama-spec", "{data}/llama-speculative.log", "{spec}", "-d", "rpi5",
         "--draft", "llama-3.2-1b-instruct", "--dry-run"]],
    "profile-verifier": [
        ["profile-verifier", "{spec}", "--target", "llama-3.1-70b", "--endpoint",
         "http://127.0.0.1:{port}", "--replicas-max", "2", "--price-per-replica-hour", "1",
         "--max-batch", "4"]],
    "fleet-trial --recording FILE (an existing recording)": [
        ["fleet-trial", "--recording", "{tmp}/old.json", "--k", "2", "--n", "1"]],
    "solve, pareto, lock, report": [
        ["solve", "{spec}"], ["pareto", "{spec}"], ["lock", "{spec}"],
        ["report", "{spec}", "-o", "{tmp}/r.html"]],
    "check --resolve, diff SPEC, export SPEC": [
        ["check", "--resolve", "{spec}"], ["diff", "{spec}", "{spec}"],
        ["export", "{spec}", "-o", "{tmp}/out"]],
    "group": [
        ["group", "{tmp}/devices.jsonl", "--spec", "{spec}", "--out", "{tmp}/fleet.yaml"]],
    "profile, trial, quantize, draft-client": [
        ["profile", "{spec}", "-d", "rpi5"],
        ["trial", "{spec}", "-d", "rpi5", "--draft", "llama-3.2-1b-instruct", "--quant",
         "Q4_K_M"],
        ["quantize", "{tmp}/model.gguf", "Q4_0", "-o", "{tmp}/model-q4_0.gguf"],
        ["draft-client", "--server", "http://127.0.0.1:{port}", "--draft",
         "{tmp}/model.gguf", "--k", "3", "--metrics-file", "{tmp}/m.prom"]],
    "fleet-trial (recording)": [
        ["fleet-trial", "--recording", "{tmp}/new.json", "--k", "2", "--n", "1"]],
    "plot, trial --plot": [
        ["plot", "{spec}", "--kind", "goodput-k", "-o", "{tmp}/figure.png"],
        ["trial", "{spec}", "-d", "rpi5", "--draft", "llama-3.2-1b-instruct", "--quant",
         "Q4_K_M", "--plot", "{tmp}/trial.png"]],
    "serve, worker, db prune": [
        ["serve", "--db", "{tmp}/s.sqlite3", "--port", "{port}"],
        ["worker", "--db", "{tmp}/s.sqlite3"], ["db", "prune", "--db", "{tmp}/s.sqlite3"]],
    "observe": [["observe", "{spec}", "--db", "{tmp}/s.sqlite3", "--lock", "{lock}"]],
    "serve, worker, db prune with --db postgresql+psycopg://...": [
        ["serve", "--db", PG, "--port", "{port}"], ["worker", "--db", PG],
        ["db", "prune", "--db", PG]],
}
"""Commands run for each row of `EXTRA_OF_COMMAND` (and of the README's table)."""


@pytest.fixture
def blocker(tmp_path: Path) -> Path:
    d = tmp_path / "blocker"
    d.mkdir()
    (d / "sitecustomize.py").write_text(BLOCKER, encoding="utf-8")
    return d


@pytest.fixture
def spec(tmp_path: Path) -> Path:
    """A copy of the example and its lock under their own names (the lock matches, and
    `check --resolve` has one to re-solve), in a folder of their own: a command that
    wrongly went ahead could not touch the repository, and what it wrote shows."""
    work = tmp_path / "work"
    work.mkdir()
    dest = work / EXAMPLE.name
    shutil.copy(EXAMPLE, dest)
    shutil.copy(EXAMPLE.with_name(EXAMPLE.name + ".lock"), dest.with_name(dest.name + ".lock"))
    (work / "old.json").write_text("{}\n")  # a recording fleet-trial reads (and refuses)
    return dest


def configspec(blocker: Path, blocked: tuple[str, ...], *args: str | Path, cwd: Path
               ) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "CONFIGSPEC_TEST_BLOCK": ",".join(blocked), "NO_COLOR": "1",
           "PYTHONPATH": os.pathsep.join([str(blocker), str(ROOT),
                                          *filter(None, [os.environ.get("PYTHONPATH")])]),
           # should a server start after all, its default database stays in the test's folder
           "XDG_DATA_HOME": str(cwd / "data"), "HOME": str(cwd)}
    return subprocess.run([sys.executable, "-m", "configspec_opt", *map(str, args)],
                          capture_output=True, text=True, cwd=cwd, env=env, timeout=120,
                          check=False)


def assert_missing_extra(res: subprocess.CompletedProcess[str], extra: str) -> None:
    """Exit 3 and one line, ending in the exact command that adds the extra."""
    assert "Traceback" not in res.stderr + res.stdout, res.stderr
    assert res.returncode == 3, (res.returncode, res.stderr)
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1, res.stderr
    assert lines[0].startswith("error: ")
    assert lines[0].endswith(f'pip install "configspec-opt[{extra}]"'), lines[0]


def _files(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file()}


def test_the_blocker_makes_a_module_missing(blocker: Path, tmp_path: Path) -> None:
    env = {**os.environ, "CONFIGSPEC_TEST_BLOCK": "json", "PYTHONPATH": str(blocker)}
    res = subprocess.run([sys.executable, "-c", "import json"], capture_output=True, text=True,
                         env=env, cwd=tmp_path, timeout=60, check=False)
    assert res.returncode == 1
    assert "ModuleNotFoundError: No module named 'json'" in res.stderr


def test_every_row_of_the_table_is_run_here() -> None:
    assert set(ROWS) == set(EXTRA_OF_COMMAND)


def test_the_readme_table_is_the_one_mapping() -> None:
    """The README's "command -> extra" table says exactly what the code says."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text.split("### Which extra a command needs", 1)[1].split("\n#", 1)[0]
    rows = re.findall(r"^\| `([^`]+)` \| (?:`([a-z]+)`|none) \| `([^`]+)` \|$", section,
                      re.M)
    assert {command: extra or None for command, extra, _ in rows} == EXTRA_OF_COMMAND
    for _, extra, install in rows:
        assert install == (install_command(extra) if extra else "pip install configspec-opt")


@pytest.mark.parametrize("row, command", [
    pytest.param(row, command, id=f"{EXTRA_OF_COMMAND[row] or 'none'}-{'-'.join(command[:2])}")
    for row, commands in ROWS.items() for command in commands])
def test_each_command_without_its_extra(blocker: Path, spec: Path, row: str,
                                        command: list[str]) -> None:
    """Without its extra: exit 3, one line ending in the pip command, nothing written.
    A command that needs none runs with every extra missing: no exit 3, no traceback."""
    from profiler.testing import free_port

    extra = EXTRA_OF_COMMAND[row]
    if "--plot" in command:
        pytest.importorskip("llama_cpp")  # with the profiler present, --plot is what is missing
    work = spec.parent
    args = [a.format(spec=spec, lock=spec.with_name(spec.name + ".lock"), tmp=work,
                     data=DATA, port=free_port()) for a in command]
    before = _files(work)
    res = configspec(blocker, MODULES[extra], *args, cwd=work)
    if extra is None:
        # done (0), or refused for what the run met: a recording that is none, nothing
        # listening at the endpoint (4); never a missing extra (3) or a traceback
        assert res.returncode in (0, 4), (res.returncode, res.stderr)
        assert "Traceback" not in res.stderr + res.stdout, res.stderr
        assert "not installed" not in res.stderr + res.stdout, res.stderr
        assert _files(work) == before or command[0] == "export"
        return
    assert_missing_extra(res, extra)
    if extra == "postgres":
        assert "psycopg is not installed" in res.stderr
    if "--plot" in command:
        assert "--plot" in res.stderr
    assert _files(work) == before


@pytest.mark.parametrize("module", [*SERVER, *SOLVER])
def test_serve_without_any_one_module_of_the_server_extra(blocker: Path, tmp_path: Path,
                                                          module: str) -> None:
    """Each of them, alone: FastAPI, Alembic, platformdirs and the solver are imported only
    while the server starts, where a missing one used to end in a traceback."""
    from profiler.testing import free_port

    db = tmp_path / "service.sqlite3"
    res = configspec(blocker, (module,), "serve", "--db", db, "--port", str(free_port()),
                     cwd=tmp_path)
    assert_missing_extra(res, "server")
    assert f"{module} is not installed" in res.stderr
    assert not db.exists()
    assert not (tmp_path / "data").exists()


@pytest.mark.parametrize("blocked, command", [
    pytest.param(blocked, command, id=f"{name}-{bid}")
    for bid, blocked in (("base-install", BASE), ("highspy-only", ("highspy",)))
    for name, command in (("solve", ["solve", "{spec}"]), ("pareto", ["pareto", "{spec}"]),
                          ("lock", ["lock", "{spec}"]),
                          ("check-resolve", ["check", "--resolve", "{spec}"]),
                          ("diff", ["diff", "{spec}", "{spec}"]))
])
def test_solver_commands_without_the_solver(blocker: Path, spec: Path, tmp_path: Path,
                                            blocked: tuple[str, ...], command: list[str]
                                            ) -> None:
    lock = spec.with_name(spec.name + ".lock")
    before = lock.read_bytes()
    res = configspec(blocker, blocked, *[a.format(spec=spec) for a in command], cwd=tmp_path)
    assert_missing_extra(res, "solver")
    assert lock.read_bytes() == before


def test_solve_json_without_the_solver_is_a_json_error(blocker: Path, spec: Path,
                                                       tmp_path: Path) -> None:
    res = configspec(blocker, BASE, "solve", spec, "--json", cwd=tmp_path)
    assert res.returncode == 3, res.stderr
    assert "Traceback" not in res.stderr
    data = json.loads(res.stdout)
    assert data["status"] == "error"
    assert data["error"].endswith(install_command("solver"))
