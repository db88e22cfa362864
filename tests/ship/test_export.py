"""`configspec export`: deployment files that match the solve, from a spec or from its lock."""

from __future__ import annotations

import json
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest
from ruamel.yaml import YAML

from configspec_opt.export import read_pool_file
from tests.cli_helpers import EXAMPLE, HIDE, PAPER, invoke, run_process

EPOCH = {"SOURCE_DATE_EPOCH": "1750000000"}


@pytest.fixture
def spec(tmp_path: Path) -> Path:
    """The example with a GGUF URL and a target endpoint declared, and its lock."""
    dest = tmp_path / "fleet.yaml"
    dest.write_text(EXAMPLE.read_text()
                    .replace("Q4_K_M: {size_gb: 0.81}", "Q4_K_M: {size_gb: 0.81, gguf: "
                             "'https://models.example/llama-1b-q4_k_m.gguf'}")
                    .replace("verify_latency_s: 0.5 ", "verify_latency_s: 0.5\n"
                             "    endpoint: http://verifier.internal:8080/v1 "))
    r = invoke("lock", dest)
    assert r.exit_code == 0, r.stderr
    return dest


def _export(src: Path, out: Path, fmt: str = "json") -> dict:  # type: ignore[type-arg]
    r = run_process("export", src, "--format", fmt, "-o", out, "--json", env=EPOCH)
    assert r.exit_code == 0, r.stderr
    return json.loads(r.stdout)  # type: ignore[no-any-return]


def test_pool_files_match_the_solve(spec: Path, tmp_path: Path) -> None:
    out = tmp_path / "deploy"
    summary = _export(spec, out)
    solved = json.loads(invoke("solve", spec, "--json").stdout)
    manifest = json.loads((out / "fleet.json").read_text())
    assert manifest["kind"] == "configspec-fleet" and manifest["status"] == "optimal"
    assert manifest["spec"]["sha256"] == solved["spec_sha256"]
    assert manifest["tool"] == "configspec-opt 0.1.0"
    assert manifest["generated_at"] == "2025-06-15T15:06:40Z"  # SOURCE_DATE_EPOCH
    assert manifest["objective"]["metric"] == "goodput"
    assert sorted(summary["files"]) == sorted(str(out / f) for p in manifest["pools"]
                                              for f in p["files"])
    rows = []
    for pool in manifest["pools"]:
        doc = read_pool_file(out / pool["files"][0])
        assert doc["pool"] == pool["pool"] and doc["spec"]["sha256"] == solved["spec_sha256"]
        for cfg in doc["configurations"]:
            rows.append((doc["pool"], cfg["count"], cfg["draft"]["name"], cfg["draft"]["quant"],
                         cfg["k"], cfg["target"]["name"], cfg["expected"]["goodput_tok_s"]))
            assert cfg["draft"]["gguf"] == "https://models.example/llama-1b-q4_k_m.gguf"
            assert cfg["target"]["endpoint"] == "http://verifier.internal:8080/v1"
            assert cfg["expected"]["energy_j_per_tok"] > 0
    want = [(a["device"], a["count"], a["draft"], a["quant"], a["k"], a["target"],
             pytest.approx(a["goodput_tok_s"], rel=1e-9)) for a in solved["assignments"]]
    assert rows == want


def test_the_pool_file_says_how_to_trial_it(spec: Path, tmp_path: Path) -> None:
    """Its trial_command is a `configspec trial` line the CLI parses; here it then stops
    where a device without the model file would (llama.cpp or the GGUF missing)."""
    _export(spec, tmp_path / "d")
    cfg = read_pool_file(tmp_path / "d" / "orin.json")["configurations"][0]
    argv = shlex.split(cfg["trial_command"])
    assert argv[:3] == ["configspec", "trial", "fleet.yaml"]
    assert argv[3:] == ["--device", "orin", "--draft", cfg["draft"]["name"], "--quant",
                        cfg["draft"]["quant"], "--k", str(cfg["k"]), "--target",
                        cfg["target"]["name"]]
    r = invoke(*[str(spec) if a == "fleet.yaml" else a for a in argv[1:]])
    assert "No such option" not in r.stderr and "Missing option" not in r.stderr
    assert r.exit_code in (2, 3, 4) and "Traceback" not in r.stderr, r.stderr


def test_lock_and_spec_export_the_same_files(spec: Path, tmp_path: Path) -> None:
    lock = spec.with_name(spec.name + ".lock")
    for fmt in ("json", "yaml", "env"):
        a, b = tmp_path / f"from-spec-{fmt}", tmp_path / f"from-lock-{fmt}"
        _export(spec, a, fmt)
        _export(lock, b, fmt)
        names = sorted(p.name for p in a.iterdir())
        assert names == sorted(p.name for p in b.iterdir())
        for name in names:
            ta, tb = (a / name).read_text(), (b / name).read_text()
            if name.startswith("fleet."):  # only where the files came from differs
                ta = ta.replace("fleet.yaml.lock", "fleet.yaml").replace("lock", "spec")
                tb = tb.replace("fleet.yaml.lock", "fleet.yaml").replace("lock", "spec")
            assert ta == tb, name


def test_lock_exports_without_the_solver(spec: Path, tmp_path: Path) -> None:
    r = run_process("export", spec.with_name("fleet.yaml.lock"), "-o", tmp_path / "d",
                    prelude=HIDE.format(name="pyomo") + HIDE.format(name="highspy"))
    assert r.exit_code == 0, r.stderr
    assert (tmp_path / "d" / "rpi5.json").is_file()
    r = run_process("export", spec, "-o", tmp_path / "e",
                    prelude=HIDE.format(name="pyomo"))
    assert r.exit_code == 3 and 'pip install "configspec-opt[solver]"' in r.stderr


def test_yaml_and_env_round_trip_to_the_json_data(spec: Path, tmp_path: Path) -> None:
    _export(spec, tmp_path / "j")
    _export(spec, tmp_path / "y", "yaml")
    _export(spec, tmp_path / "e", "env")
    for pool in ("rpi5", "orin"):
        doc = json.loads((tmp_path / "j" / f"{pool}.json").read_text())
        assert YAML(typ="safe", pure=True).load((tmp_path / "y" / f"{pool}.yaml").read_text()) \
            == doc
        # the env file as a real shell reads it
        env_file = tmp_path / "e" / f"{pool}.env"
        shown = subprocess.run(["sh", "-c", f'set -a; . "{env_file}"; env'],
                               capture_output=True, text=True, check=True, env={}).stdout
        env = dict(line.split("=", 1) for line in shown.splitlines() if "=" in line)
        cfg = doc["configurations"][0]
        assert env["CONFIGSPEC_DEPLOY_POOL"] == pool
        assert env["CONFIGSPEC_DEPLOY_DRAFT"] == cfg["draft"]["name"]
        assert env["CONFIGSPEC_DEPLOY_DRAFT_GGUF"] == cfg["draft"]["gguf"]
        assert int(env["CONFIGSPEC_DEPLOY_K"]) == cfg["k"]
        assert env["CONFIGSPEC_DEPLOY_TARGET_ENDPOINT"] == cfg["target"]["endpoint"]
        assert float(env["CONFIGSPEC_DEPLOY_EXPECTED_GOODPUT_TOK_S"]) == \
            cfg["expected"]["goodput_tok_s"]
    manifest = (tmp_path / "e" / "fleet.env").read_text()
    assert "CONFIGSPEC_DEPLOY_FILES='rpi5.env orin.env'" in manifest


def test_unknown_energy_is_null_or_na_never_zero(tmp_path: Path) -> None:
    """The paper's RPi 4B has no power data: its energy per token is unknown."""
    spec = tmp_path / "paper.yaml"
    shutil.copy(PAPER, spec)
    _export(spec, tmp_path / "j")
    _export(spec, tmp_path / "e", "env")
    doc = json.loads((tmp_path / "j" / "rpi4.json").read_text())
    assert doc["configurations"][0]["expected"]["energy_j_per_tok"] is None
    env = (tmp_path / "e" / "rpi4.env").read_text()
    assert "CONFIGSPEC_DEPLOY_EXPECTED_ENERGY_J_PER_TOK=n/a\n" in env
    assert "CONFIGSPEC_DEPLOY_EXPECTED_POWER_W=n/a\n" in env


def test_refusals_are_clear(spec: Path, tmp_path: Path) -> None:
    a_file = tmp_path / "not-a-dir"
    a_file.write_text("x")
    r = invoke("export", spec, "-o", a_file)
    assert r.exit_code == 2 and "exists and is not a directory" in r.stderr
    assert a_file.read_text() == "x"
    # a directory that cannot be created: exit 4, as for every file configspec cannot write
    r = invoke("export", spec.with_name("fleet.yaml.lock"), "-o", "/proc/configspec-test/d")
    assert r.exit_code == 4 and "cannot create /proc/configspec-test/d" in r.stderr
    # a lock older than its spec is refused, saying which file changed
    spec.write_text(spec.read_text().replace("count: 20\n", "count: 21\n"))
    r = invoke("export", spec.with_name("fleet.yaml.lock"), "-o", tmp_path / "d")
    assert r.exit_code == 2 and "out of date: fleet.yaml changed" in r.stderr
    # a lock without its spec
    lone = tmp_path / "lone"
    lone.mkdir()
    shutil.copy(spec.with_name("fleet.yaml.lock"), lone / "fleet.yaml.lock")
    r = invoke("export", lone / "fleet.yaml.lock", "-o", tmp_path / "d")
    assert r.exit_code == 2 and "is missing" in r.stderr
    # an infeasible spec has nothing to deploy
    tight = tmp_path / "tight.yaml"
    tight.write_text(EXAMPLE.read_text().replace("min_goodput_tok_s: 2.0",
                                                 "min_goodput_tok_s: 9.0"))
    r = invoke("export", tight, "-o", tmp_path / "t")
    assert r.exit_code == 1 and "nothing to deploy" in r.stderr
    assert "Traceback" not in r.stderr


def test_files_of_a_pool_that_went_away_are_removed(spec: Path, tmp_path: Path) -> None:
    out = tmp_path / "d"
    _export(spec, out)
    (out / "notes.txt").write_text("mine")
    spec.write_text(spec.read_text().replace("rpi5", "pi5"))
    _export(spec, out)
    assert sorted(p.name for p in out.iterdir()) == ["fleet.json", "notes.txt", "orin.json",
                                                     "pi5.json"]
    _export(spec, out, "yaml")  # another format beside it leaves the JSON files alone
    assert (out / "pi5.json").is_file() and (out / "pi5.yaml").is_file()


def test_pool_names_that_are_not_file_names(tmp_path: Path) -> None:
    spec = tmp_path / "odd.yaml"
    spec.write_text(EXAMPLE.read_text().replace("rpi5", "../rpi 5").replace("orin", "fleet"))
    out = tmp_path / "d"
    _export(spec, out)
    names = sorted(p.name for p in out.iterdir())
    assert len(names) == 3 and "fleet.json" in names
    assert all("/" not in n and not n.startswith(".") for n in names)
    manifest = json.loads((out / "fleet.json").read_text())
    assert [p["pool"] for p in manifest["pools"]] == ["../rpi 5", "fleet"]
    for p in manifest["pools"]:
        assert read_pool_file(out / p["files"][0])["pool"] == p["pool"]
