"""A real llama-cpp-python server on 127.0.0.1 as the target (verifier)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from configspec_opt.cli import app
from configspec_opt.loader import load_spec
from profiler.testing import free_port, llama_server

pytest.importorskip("llama_cpp.server")
runner = CliRunner()
FAST = ["--n-prompts", "3", "--max-new-tokens", "24", "--repeats", "1", "--idle-s", "0",
        "--threads", "1", "--n-ctx", "512", "--power", "none", "--max-spread", "100"]


@pytest.fixture(scope="module")
def server(tiny_dir: Path) -> Iterator[str]:
    with llama_server(tiny_dir / "tiny-target.gguf") as url:
        yield url


def _remote_spec(spec: Path, endpoint: str) -> None:
    spec.write_text(spec.read_text().replace(
        "    gguf: tiny-target.gguf\n",
        f"    gguf: tiny-target.gguf\n  - name: tiny-remote\n    family: tiny\n"
        f"    price_usd_per_mtok: 0.5\n    verify_latency_s: 0.01\n    endpoint: {endpoint}\n"))


def test_remote_alpha_equals_local_alpha(tiny_spec: Path, server: str,
                                         tiny_robust_prompt_file: Path) -> None:
    """Equal on prompts whose target decisions the server's batched prompt evaluation and the
    local token-by-token decoding cannot round differently (see conftest.decision_margin)."""
    _remote_spec(tiny_spec, server)
    res = runner.invoke(app, ["profile", str(tiny_spec), "-d", "here", *FAST, "--drafts",
                              "tiny-draft:close", "--verify-latency", "--json",
                              "--prompts", str(tiny_robust_prompt_file)])
    assert res.exit_code == 0, res.output
    prof = load_spec(tiny_spec).spec.profiles[0]
    assert prof.acceptance["tiny-remote"] == prof.acceptance["tiny-target"]
    prov = prof.provenance or {}
    remote = prov["acceptance"]["tiny-remote"]
    assert remote["target"] == {"kind": "remote", "endpoint": server}
    assert "probe round trip" in remote["tokenizer"]["checked"]
    verify = prov["verify"]["tiny-remote"]
    assert set(verify["latency_s"]) == {2, 3, 4, 5, 6} and verify["rtt_s"] > 0
    assert json.loads(res.stdout)["warnings"] == []  # no re-tokenization mismatch


def test_remote_tokenizer_mismatch_is_refused(tiny_spec: Path, server: str) -> None:
    _remote_spec(tiny_spec, server)
    tiny_spec.write_text(tiny_spec.read_text().replace("gguf: tiny-draft-close.gguf",
                                                       "gguf: tiny-foreign.gguf"))
    res = runner.invoke(app, ["profile", str(tiny_spec), "-d", "here", *FAST, "--drafts",
                              "tiny-draft:close", "--target", "tiny-remote"])
    assert res.exit_code == 4
    assert "do not share a tokenizer" in res.output and "Traceback" not in res.output


def test_endpoint_down_is_a_clear_error(tiny_spec: Path) -> None:
    _remote_spec(tiny_spec, f"http://127.0.0.1:{free_port()}")
    res = runner.invoke(app, ["profile", str(tiny_spec), "-d", "here", *FAST, "--drafts",
                              "tiny-draft:close", "--target", "tiny-remote", "--retries", "1",
                              "--timeout", "2"])
    assert res.exit_code == 4
    assert "failed after 2 attempts" in res.output and "is the server running" in res.output
