"""A command whose extra is not installed exits 3 with one line naming the pip command.

The real CLI runs in a subprocess that cannot import the extra's packages: a
`sitecustomize` first on PYTHONPATH puts a meta-path finder in front of every other
that answers ModuleNotFoundError for the named top-level modules, as an install
without the extra would.  The finder is inherited by every process the command
starts (serve's solver workers too), because they read the same PYTHONPATH.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "llama70b-edge.yaml"

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
EVERY_EXTRA = (*PROFILER, *BASE, *SERVER, *PLOT)


@pytest.fixture
def blocker(tmp_path: Path) -> Path:
    d = tmp_path / "blocker"
    d.mkdir()
    (d / "sitecustomize.py").write_text(BLOCKER, encoding="utf-8")
    return d


@pytest.fixture
def spec(tmp_path: Path) -> Path:
    """A copy of the example and its lock (so that `check --resolve` has one to re-solve):
    a command that wrongly went ahead could not touch the repository."""
    dest = tmp_path / "fleet.yaml"
    shutil.copy(EXAMPLE, dest)
    shutil.copy(EXAMPLE.with_name(EXAMPLE.name + ".lock"), dest.with_name(dest.name + ".lock"))
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
    assert "Traceback" not in res.stderr + res.stdout, res.stderr
    assert res.returncode == 3, (res.returncode, res.stderr)
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1, res.stderr
    assert lines[0].startswith("error: ")
    assert f"pip install 'configspec-opt[{extra}]'" in lines[0]


def test_the_blocker_makes_a_module_missing(blocker: Path, tmp_path: Path) -> None:
    env = {**os.environ, "CONFIGSPEC_TEST_BLOCK": "json", "PYTHONPATH": str(blocker)}
    res = subprocess.run([sys.executable, "-c", "import json"], capture_output=True, text=True,
                         env=env, cwd=tmp_path, timeout=60, check=False)
    assert res.returncode == 1
    assert "ModuleNotFoundError: No module named 'json'" in res.stderr


@pytest.mark.parametrize("command", [
    ["profile", "{spec}", "-d", "rpi5"],
    ["trial", "{spec}", "-d", "rpi5", "--draft", "llama-3.2-1b-instruct", "--quant", "Q4_K_M"],
    ["trial", "{spec}", "-d", "rpi5", "--draft", "llama-3.2-1b-instruct", "--quant", "Q4_K_M",
     "--plot", "{tmp}/trial.png"],
    ["quantize", "{tmp}/model.gguf", "Q4_0", "-o", "{tmp}/model-q4_0.gguf"],
    ["fleet-trial", "--recording", "{tmp}/rec.json", "--k", "2", "--n", "1"],
], ids=["profile", "trial", "trial-plot", "quantize", "fleet-trial-record"])
def test_profiler_commands_without_the_profiler(blocker: Path, spec: Path, tmp_path: Path,
                                                command: list[str]) -> None:
    before = spec.read_bytes()
    args = [a.format(spec=spec, tmp=tmp_path) for a in command]
    res = configspec(blocker, PROFILER, *args, cwd=tmp_path)
    assert_missing_extra(res, "profiler")
    assert spec.read_bytes() == before
    assert not (tmp_path / "model-q4_0.gguf").exists()
    assert not (tmp_path / "trial.png").exists()
    assert not (tmp_path / "rec.json").exists()


def test_trial_plot_without_matplotlib_fails_before_the_run(blocker: Path, spec: Path,
                                                            tmp_path: Path) -> None:
    pytest.importorskip("llama_cpp")  # with the profiler present, --plot is what is missing
    res = configspec(blocker, PLOT, "trial", spec, "-d", "rpi5", "--draft",
                     "llama-3.2-1b-instruct", "--quant", "Q4_K_M", "--plot",
                     tmp_path / "trial.png", cwd=tmp_path)
    assert_missing_extra(res, "plot")
    assert "--plot" in res.stderr


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
    for bid, blocked in (("solver", SOLVER), ("base-install", BASE), ("highspy-only", ("highspy",)))
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
    assert "pip install 'configspec-opt[solver]'" in data["error"]


def test_plot_without_matplotlib(blocker: Path, spec: Path, tmp_path: Path) -> None:
    out = tmp_path / "figure.png"
    res = configspec(blocker, PLOT, "plot", spec, "--kind", "goodput-k", "-o", out, cwd=tmp_path)
    assert_missing_extra(res, "plot")
    assert not out.exists()


@pytest.mark.parametrize("command", [
    ["--help"],
    ["validate", "{spec}"],
    ["evaluate", "{spec}", "--top", "1"],
    ["schema"],
], ids=["help", "validate", "evaluate", "schema"])
def test_commands_that_need_no_extra_run_without_any(blocker: Path, spec: Path, tmp_path: Path,
                                                     command: list[str]) -> None:
    res = configspec(blocker, EVERY_EXTRA, *[a.format(spec=spec) for a in command],
                     cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    assert "Traceback" not in res.stderr
