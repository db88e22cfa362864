"""The loop closed: plan -> running fleet -> observations -> drift -> proposed re-plan.

examples/fleet-verifier/draft-choice-smollm2-cpu.yaml (16 edge devices sharing one
SmolLM2-135M verifier, drafting with its Q8_0 or Q4_0 re-quantisation) is given the
GGUF files and the verifier's URL, locked (Q8_0, K = 4, alpha(4) = 0.8929 as profiled)
and exported as `draft-client` scripts.  The pool's exported script runs against a real
llama-server; the counters it writes to `--metrics-file` (llama-server's own names) are
turned into a report, as a scraper would, and `configspec observe --lock` finds no drift.
Then the file behind the pool's Q8_0 path is replaced by the Q4_0 re-quantisation (a
worse draft: alpha(4) 0.39 as profiled), the same script runs again, and observe marks
the pool drifted (acceptance lower) and proposes a re-plan whose diff names the pool.

Decoding is greedy on both sides, so each run's counters depend only on the models and
the bundled prompts.  The matching draft is judged on few rounds, so its "ok" says the
acceptance is consistent with the profile (its 99.9 % Wilson interval reaches the
profile's band), not that it equals it; the worse draft's interval lies wholly below.
Each phase reports into its own database: a drift window of at least 60 s would pool
both runs, and this test does not wait.

Like test_export_run.py, it skips without llama-server (`python tools/build_llama_server.py`,
which CI runs before pytest, so CI runs it).
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from profiler.llama_server import LlamaServer
from profiler.quantize import quantize
from tests.cli_helpers import invoke
from tests.llama_bin import llama_server_or_skip

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "fleet-verifier" / "draft-choice-smollm2-cpu.yaml"
POOL = "edge"
K = 4  # what the example's lock assigns the pool
PROFILED = {"Q8_0": 0.8929, "Q4_0": 0.3900}  # the example's alpha(4)
SCRIPT = f"{POOL}.draft-client.sh"


@pytest.fixture(scope="module")
def binary() -> Path:
    return llama_server_or_skip()


@pytest.fixture(scope="module")
def smollm2_q8_0(tmp_path_factory: pytest.TempPathFactory, smollm2_path: Path) -> Path:
    d = tmp_path_factory.mktemp("smol-q8")
    return quantize(smollm2_path, d / "smollm2-q8_0.gguf", "Q8_0", 2)


@pytest.fixture(scope="module")
def verifier(binary: Path, smollm2_path: Path) -> Iterator[LlamaServer]:
    """The target alone, with K + 1 slots: one drafting client's round (docs/ship.md)."""
    with LlamaServer(smollm2_path, parallel=K + 1, ctx=1024 * (K + 1), threads=1,
                     binary=binary) as srv:
        yield srv


def _locked_spec(folder: Path, endpoint: str, draft_file: Path) -> Path:
    """The example with the verifier's URL and the pool's draft path, locked; the lock."""
    text = EXAMPLE.read_text(encoding="utf-8")
    edits = {
        "    verify_latency_s:": f"    endpoint: {endpoint}\n    verify_latency_s:",
        "Q8_0: {size_gb: 0.145}": f"Q8_0: {{size_gb: 0.145, gguf: {draft_file}}}",
    }
    for old, new in edits.items():
        assert text.count(old) == 1, f"{EXAMPLE.name} changed: {old!r}"
        text = text.replace(old, new)
    spec = folder / EXAMPLE.name
    spec.write_text(text, encoding="utf-8")
    r = invoke("lock", spec)
    assert r.exit_code == 0, r.stdout + r.stderr
    return spec.with_name(spec.name + ".lock")


def _env_file(path: Path) -> dict[str, str]:
    """The exported env file (KEY=shell-quoted value), prefix dropped."""
    pairs: dict[str, str] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        if line and not line.startswith("#"):
            key, _, value = line.partition("=")
            words = shlex.split(value)
            pairs[key.removeprefix("CONFIGSPEC_DEPLOY_")] = words[0] if words else ""
    return pairs


def _counters(metrics: str) -> dict[str, int]:
    """llama-server's spec-decode counters from Prometheus text, as a report names them."""
    found = dict(re.findall(r"^llamacpp:spec_decode_(num_\w+)_total (\d+)$", metrics, re.M))
    assert set(found) == {"num_drafts", "num_draft_tokens", "num_accepted_tokens"}, metrics
    return {name: int(value) for name, value in found.items()}


def _run_pool(out: Path, prom: Path) -> dict[str, Any]:
    """The pool's exported script, as a device runs it (a few greedy answers)."""
    bin_dir = str(Path(sys.executable).parent)  # where `configspec` is installed
    r = subprocess.run(
        ["sh", str(out / SCRIPT), "--n-prompts", "2", "--max-new-tokens", "32",
         "--threads", "1", "--n-ctx", "1024", "--json", "--metrics-file", str(prom)],
        capture_output=True, text=True, timeout=600, check=False,
        env={**os.environ, "PATH": bin_dir + os.pathsep + os.environ["PATH"]})
    assert r.returncode == 0, r.stderr
    return dict(json.loads(r.stdout))


def _report(env: dict[str, str], counters: dict[str, int], folder: Path) -> Path:
    """What a scraper of the device sends: its configuration (the env file) and counters."""
    obs = {"source": f"{env['POOL']}-0", "device": env["POOL"], "target": env["TARGET"],
           "draft": env["DRAFT"], "quant": env["QUANT"], "k": int(env["K"]),
           "spec_decode": counters}
    path = folder / "observations.json"
    path.write_text(json.dumps({"observations": [obs]}), encoding="utf-8")
    return path


def _folder(tmp_path: Path, name: str) -> Path:
    folder = tmp_path / name
    folder.mkdir()
    return folder


def _observe(report: Path, lock: Path, db: Path) -> tuple[int, dict[str, Any]]:
    r = invoke("observe", report, "--db", f"sqlite:///{db}", "--lock", lock, "--replan",
               "--exit-code", "--json")
    assert r.exit_code in (0, 1), r.stdout + r.stderr
    return r.exit_code, dict(json.loads(r.stdout))


def _acceptance(result: dict[str, Any]) -> dict[str, Any]:
    (pool,) = [p for p in result["drift"]["pools"] if p["device"] == POOL]
    (check,) = [c for c in pool["checks"] if c["metric"] == "acceptance"]
    return dict(check)


def test_a_worse_draft_in_the_running_fleet_is_found_and_replanned(
        verifier: LlamaServer, smollm2_q8_0: Path, smollm2_q4_0: Path,
        tmp_path: Path) -> None:
    deployed = tmp_path / "models" / "edge-draft.gguf"  # what the devices load
    deployed.parent.mkdir()
    shutil.copyfile(smollm2_q8_0, deployed)
    lock = _locked_spec(tmp_path, verifier.url, deployed)
    lock_text = lock.read_text(encoding="utf-8")
    rows = [(a["device"], a["quant"], a["k"]) for a in yaml.safe_load(lock_text)["assignments"]]
    assert rows == [(POOL, "Q8_0", K)], rows
    out = tmp_path / "export"
    r = invoke("export", lock, "--format", "draft-client", "-o", out)
    assert r.exit_code == 0, r.stdout + r.stderr
    env = _env_file(out / f"{POOL}.draft-client.env")
    assert (env["QUANT"], env["K"], env["DRAFT_GGUF"]) == ("Q8_0", str(K), str(deployed))

    # the planned draft: speculation runs, its acceptance consistent with the profile's
    run = _run_pool(out, tmp_path / "q8.prom")
    counters = _counters((tmp_path / "q8.prom").read_text(encoding="utf-8"))
    assert counters["num_draft_tokens"] > 0, "no token was drafted: speculation did not run"
    assert counters["num_draft_tokens"] == K * counters["num_drafts"]  # every round drafts K
    assert counters["num_accepted_tokens"] == run["counters"]["accepted"]
    code, result = _observe(_report(env, counters, _folder(tmp_path, "q8")), lock,
                            tmp_path / "q8.sqlite3")
    check = _acceptance(result)
    assert code == 0 and result["drift"]["drifted"] == [], check
    assert check["verdict"] == "ok" and check["n"] == counters["num_drafts"], check
    assert result["proposal"] is None

    # the same path now holds the Q4_0 re-quantisation; nothing else changes
    shutil.copyfile(smollm2_q4_0, deployed)
    run = _run_pool(out, tmp_path / "q4.prom")
    worse = _counters((tmp_path / "q4.prom").read_text(encoding="utf-8"))
    assert worse["num_draft_tokens"] > 0 and worse["num_accepted_tokens"] == \
        run["counters"]["accepted"]
    assert run["labels"]["quant"] == "Q8_0"  # the device still says what it was told
    assert worse["num_accepted_tokens"] / worse["num_draft_tokens"] < \
        counters["num_accepted_tokens"] / counters["num_draft_tokens"]
    code, result = _observe(_report(env, worse, _folder(tmp_path, "q4")), lock,
                            tmp_path / "q4.sqlite3")
    check = _acceptance(result)
    assert code == 1 and result["drift"]["drifted"] == [POOL], check
    assert check["verdict"] == "lower" and check["interval"][1] < check["band"][0], check
    proposal = result["proposal"]
    assert proposal is not None and proposal["applied"] is False
    assert any(line.startswith(f"{POOL}: acceptance of smollm2-135m Q8_0")
               for line in proposal["changes"]), proposal["changes"]
    moved = [p for p in proposal["diff"]["pools"] if p["change"] != "unchanged"]
    assert [p["device"] for p in moved] == [POOL], proposal["diff"]
    assert lock.read_text(encoding="utf-8") == lock_text  # advisory: nothing applied
