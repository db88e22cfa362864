"""`configspec import` given impossible measurements: refused, the input blamed, nothing written.

Each importer reads another tool's output, which a user may have edited, truncated or
pasted together.  A number no measurement has (a boolean, a numeric string, NaN,
1e400, a 5,000-digit integer, more accepted than drafted tokens) is refused with exit
4 and a message naming the input and its line; the spec is left byte for byte as it
was.  Importing into a table that keeps K values from another source says so, and
a table whose expected accepted tokens per round fall as K grows is warned about.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from configspec_opt.loader import load_spec
from configspec_opt.metrics import falling_expectation, written_precision
from tests.cli_helpers import DATA, EXAMPLE, invoke
from tests.ship.test_imports import DRAFT, TARGET, make_spec

BENCH = json.loads((DATA / "llama-bench.json").read_text())
PROM = (DATA / "vllm-metrics.prom").read_text()
SERVER_LOG = (DATA / "llama-server-spec.log").read_text()
SUMMARY_LOG = (DATA / "llama-speculative.log").read_text()
ACCEPT_LINE = "draft acceptance = 0.72917 (   35 accepted /    48 generated)"


@pytest.fixture
def spec(tmp_path: Path) -> Path:
    return make_spec(tmp_path)


def _line_of(text: str, needle: str) -> int:
    return next(i for i, t in enumerate(text.splitlines(), 1) if needle in t)


def _refused(r: object, spec: Path, before: str, *needles: str) -> None:
    """Exit 4, every needle in the message, no traceback, the spec untouched."""
    code, err = r.exit_code, r.stderr  # type: ignore[attr-defined]
    assert code == 4, (code, err)
    assert "Traceback" not in err
    for needle in needles:
        assert needle in err, (needle, err)
    assert spec.read_text() == before


def _table(spec: Path, device: str = "rpi5", quant: str = "Q4_K_M",
           name: str = "acceptance") -> dict[int, float]:
    p = next(p for p in load_spec(spec).spec.profiles
             if (p.device, p.draft, p.quant) == (device, DRAFT, quant))
    return dict(getattr(p, name)[TARGET])


def _record(spec: Path, device: str = "rpi5", quant: str = "Q4_K_M") -> dict[str, Any]:
    p = next(p for p in load_spec(spec).spec.profiles
             if (p.device, p.draft, p.quant) == (device, DRAFT, quant))
    assert p.provenance is not None
    return dict(p.provenance["acceptance"][TARGET])


# --------------------------------------------------------------------------- llama-bench


def _bench(tmp_path: Path, row: int, raw_value: str, key: str = "avg_ts") -> Path:
    """The sample with result `row`'s `key` written as `raw_value` (raw JSON text)."""
    rows = [dict(r) for r in BENCH]
    rows[row][key] = "@@"
    text = json.dumps(rows, indent=2).replace('"@@"', raw_value)
    path = tmp_path / "bench.json"
    path.write_text(text)
    return path


@pytest.mark.parametrize(("key", "raw", "why"), [
    ("avg_ts", "true", 'avg_ts true: expected a number'),
    ("avg_ts", '"14.48"', 'avg_ts "14.48": expected a number'),
    ("n_gen", '"128"', 'n_gen "128": expected an integer'),
    ("n_gen", "128.5", "n_gen 128.5: expected an integer"),
    ("n_threads", "true", "n_threads true: expected an integer"),
    ("n_prompt", "-1", "n_prompt -1: a count is not negative"),
    ("model_filename", "42", "model_filename 42: expected the model's file name"),
])
def test_llama_bench_types_are_strict(spec: Path, tmp_path: Path, key: str, raw: str,
                                      why: str) -> None:
    before = spec.read_text()
    bench = _bench(tmp_path, 1, raw, key)
    starts = [i for i, t in enumerate(bench.read_text().splitlines(), 1) if t == "  {"]
    r = invoke("import", "llama-bench", bench, spec, "-d", "rpi5", "--threads", "4")
    _refused(r, spec, before, f"{bench}:{starts[1]}: result #1 has {why}")


@pytest.mark.parametrize(("raw", "why"), [
    ("1e400", "too large for a float"),
    ("1" + "0" * 400, "an integer of 401 digits"),
    ("9" * 5000, "an integer of 5,000 digits"),
    ("NaN", "NaN is not a JSON number"),
    ("-Infinity", "-Infinity is not a JSON number"),
])
def test_llama_bench_refuses_numbers_no_measurement_has(spec: Path, tmp_path: Path, raw: str,
                                                        why: str) -> None:
    before = spec.read_text()
    bench = _bench(tmp_path, 1, raw)
    line = _line_of(bench.read_text(), raw[:30])
    r = invoke("import", "llama-bench", bench, spec, "-d", "rpi5", "--threads", "4")
    _refused(r, spec, before, f"{bench}:{line}: ", why)


def test_llama_bench_deep_nesting_and_jsonl(spec: Path, tmp_path: Path) -> None:
    before = spec.read_text()
    deep = tmp_path / "deep.json"
    deep.write_text("[" * 100_000 + "]" * 100_000)
    r = invoke("import", "llama-bench", deep, spec, "-d", "rpi5")
    _refused(r, spec, before, f"{deep}:1: JSON nested too deeply")
    jsonl = tmp_path / "bench.jsonl"
    rows = [json.dumps(r) for r in BENCH]
    rows[2] = rows[2].replace('"avg_ts": 8.475231', '"avg_ts": 1e999')
    assert "1e999" in rows[2]
    jsonl.write_text("\n".join(rows) + "\n")
    r = invoke("import", "llama-bench", jsonl, spec, "-d", "rpi5", "--threads", "2")
    _refused(r, spec, before, f"{jsonl}:3: 1e999 is too large for a float")


@pytest.mark.parametrize(("avg", "why"), [
    ("20000000.0", "draft_tok_s 20000000.0"),
    ("0.001", "draft_tok_s 0.0"),  # rounded to 0.01 tok/s as the spec is written
])
def test_llama_bench_out_of_range_is_the_input_s_fault(spec: Path, tmp_path: Path, avg: str,
                                                        why: str) -> None:
    before = spec.read_text()
    bench = _bench(tmp_path, 1, avg)
    start = [i for i, t in enumerate(bench.read_text().splitlines(), 1) if t == "  {"][1]
    r = invoke("import", "llama-bench", bench, spec, "-d", "rpi5", "--threads", "4")
    _refused(r, spec, before, f"{bench}:{start}: the imported {why} is not a value a spec "
             "holds")
    assert str(spec) not in r.stderr


def test_llama_bench_lists_at_most_ten_results(spec: Path, tmp_path: Path) -> None:
    """A file of thousands of fitting results gets a message of a few lines, not megabytes."""
    tg = next(r for r in BENCH if r["n_prompt"] == 0)
    many = tmp_path / "many.json"
    many.write_text(json.dumps([{**tg, "n_threads": i + 1} for i in range(5000)]))
    r = invoke("import", "llama-bench", many, spec, "-d", "rpi5")
    assert r.exit_code == 2 and "several text-generation results fit" in r.stderr
    assert "and 4,990 more" in r.stderr and len(r.stderr) < 2000


# --------------------------------------------------------------------------- vLLM counters

DRAFTS_0 = ('vllm:spec_decode_num_drafts_total{engine="0",model_name='
            '"meta-llama/Llama-3.1-70B-Instruct"} 6000.0')
POS_0_0 = ('vllm:spec_decode_num_accepted_tokens_per_pos_total{engine="0",model_name='
           '"meta-llama/Llama-3.1-70B-Instruct",position="0"} 4800.0')
ACCEPTED_1 = ('vllm:spec_decode_num_accepted_tokens_total{engine="1",model_name='
              '"meta-llama/Llama-3.1-70B-Instruct"} 10200.0')


def _prom(tmp_path: Path, old: str, new: str) -> tuple[Path, int]:
    assert old in PROM
    path = tmp_path / "metrics.prom"
    path.write_text(PROM.replace(old, new, 1))
    return path, _line_of(PROM, old)


@pytest.mark.parametrize("value", ["NaN", "+Inf", "-Inf", "-5.0", "1" + "0" * 400, "9" * 5000,
                                   "1e400", "1_000"])
def test_vllm_counters_that_are_not_counts_are_refused(spec: Path, tmp_path: Path,
                                                       value: str) -> None:
    before = spec.read_text()
    prom, line = _prom(tmp_path, DRAFTS_0, DRAFTS_0.replace("6000.0", value))
    r = invoke("import", "vllm-metrics", prom, spec, "--draft", DRAFT)
    _refused(r, spec, before, f"{prom}:{line}: vllm:spec_decode_num_drafts_total is ",
             "a counter is a finite count >= 0")


def test_vllm_more_accepted_than_drafted_is_refused(spec: Path, tmp_path: Path) -> None:
    before = spec.read_text()
    # position 0 accepted in more rounds than engine 0 drafted (the old code clamped to 1)
    prom, line = _prom(tmp_path, POS_0_0, POS_0_0.replace("4800.0", "6001.0"))
    r = invoke("import", "vllm-metrics", prom, spec, "--draft", DRAFT)
    _refused(r, spec, before, f"{prom}:{line}: vllm:spec_decode_num_accepted_tokens_per_pos_total"
             '{position="0"} counts 6,001 accepted tokens at position 0 in 6,000 draft rounds',
             f"{prom}:{_line_of(PROM, DRAFTS_0)})")
    # in total: more accepted tokens than draft tokens
    prom, line = _prom(tmp_path, ACCEPTED_1, ACCEPTED_1.replace("10200.0", "20001.0"))
    r = invoke("import", "vllm-metrics", prom, spec, "--draft", DRAFT)
    _refused(r, spec, before, f"{prom}:{line}: vllm:spec_decode_num_accepted_tokens_total counts "
             "20,001 accepted tokens, more than the 20,000 drafted")


def test_vllm_a_series_written_twice_is_refused(spec: Path, tmp_path: Path) -> None:
    before = spec.read_text()
    prom = tmp_path / "twice.prom"
    prom.write_text(PROM.rstrip("\n") + "\n" + PROM)
    r = invoke("import", "vllm-metrics", prom, spec, "--draft", DRAFT)
    second = len(PROM.splitlines()) + _line_of(PROM, DRAFTS_0)
    _refused(r, spec, before, f"{prom}:{second}: vllm:spec_decode_num_drafts_total with these "
             f"labels is also on line {_line_of(PROM, DRAFTS_0)}")


def test_vllm_counters_of_other_metrics_may_be_anything(spec: Path, tmp_path: Path) -> None:
    """NaN and +Inf are legal Prometheus values: only the counters read are held to counts."""
    prom = tmp_path / "other.prom"
    prom.write_text(PROM.rstrip("\n") + '\nvllm:gpu_cache_usage_perc{engine="0"} NaN\n'
                    'vllm:some_gauge{engine="0"} +Inf\n')
    r = invoke("import", "vllm-metrics", prom, spec, "--draft", DRAFT, "-d", "rpi5",
               "--quant", "Q4_K_M")
    assert r.exit_code == 0, r.stderr
    assert _table(spec)[1] == 0.8


# --------------------------------------------------------------------------- llama.cpp logs


@pytest.mark.parametrize(("line", "why"), [
    ("draft acceptance = 1.20000 (   60 accepted /    50 generated)",
     "60 accepted of 50 generated"),
    ("draft acceptance = -0.10000 (   -5 accepted /    50 generated)",
     "accepted = -5: not a count"),
    ("draft acceptance = 0.50000 (   25 accepted /    -50 generated)",
     "generated = -50: not a count"),
    (f"draft acceptance = 0.50000 (   {'9' * 5000} accepted /    50 generated)",
     "accepted = 999999999999...99999999: not a count"),
    ("draft acceptance = 0.90000 (   35 accepted /    48 generated)",
     "draft acceptance = 0.90000 but 35 accepted / 48 generated is 0.72917"),
])
def test_llama_server_lines_with_impossible_numbers_are_refused(spec: Path, tmp_path: Path,
                                                                line: str, why: str) -> None:
    before = spec.read_text()
    log = tmp_path / "server.log"
    text = SERVER_LOG.replace(ACCEPT_LINE, line, 1)
    assert text != SERVER_LOG
    log.write_text(text)
    r = invoke("import", "llama-spec", log, spec, "--draft", DRAFT, "--k", "4")
    _refused(r, spec, before, f"{log}:{_line_of(SERVER_LOG, ACCEPT_LINE)}: {why}")


@pytest.mark.parametrize(("old", "new", "needle", "why"), [
    ("n_accept  = 196", "n_accept  = 400", "n_accept", "n_accept = 400 is more than "
     "n_drafted = 360"),
    ("n_accept  = 196", "n_accept  = -196", "n_accept", "n_accept = -196: not a count"),
    ("n_drafted = 360", "n_drafted = 1" + "0" * 400, "n_drafted", "n_drafted = 100000000000"),
    ("n_draft   = 5", "n_draft   = 0", "n_draft", "n_draft = 0"),
    ("n_draft   = 5", "n_draft   = 100", "n_draft",
     "the imported acceptance[llama-3.1-70b] at K = 100 is not a value a spec holds"),
])
def test_llama_speculative_summaries_with_impossible_numbers_are_refused(
        spec: Path, tmp_path: Path, old: str, new: str, needle: str, why: str) -> None:
    before = spec.read_text()
    log = tmp_path / "spec.log"
    log.write_text(SUMMARY_LOG.replace(old, new, 1))
    r = invoke("import", "llama-spec", log, spec, "--draft", DRAFT)
    _refused(r, spec, before, f"{log}:{_line_of(SUMMARY_LOG, old)}: ", why)


def test_other_lines_of_a_log_are_still_skipped(spec: Path, tmp_path: Path) -> None:
    """llama.cpp prints `n_predict = -1` (its 'no limit') among its parameters."""
    log = tmp_path / "spec.log"
    log.write_text("main: n_predict = -1\nsampler: n_draft = default\n" + SUMMARY_LOG)
    r = invoke("import", "llama-spec", log, spec, "--draft", DRAFT, "-d", "rpi5",
               "--quant", "Q8_0")
    assert r.exit_code == 0, r.stderr
    assert _table(spec, quant="Q8_0")[5] == round(196 / 360, 4)


# --------------------------------------------------------------------------- mixed sources


def test_k_values_from_other_sources_are_recorded_and_warned_about(spec: Path) -> None:
    """The table starts typed by hand (K = 2..10); a log gives K = 5, then vLLM K = 1..5."""
    r = invoke("import", "llama-spec", DATA / "llama-speculative.log", spec, "--draft", DRAFT,
               "-d", "rpi5", "--quant", "Q8_0")
    assert r.exit_code == 0, r.stderr
    rec = _record(spec, quant="Q8_0")
    assert rec["k_values"] == [5]
    [hand] = rec["kept"]
    assert hand["source"] is None and hand["k_values"] == [2, 3, 4, 6, 7, 8, 9, 10]
    assert "acceptance K=2..4, 6..10 of llama-3.1-70b kept from no recorded source" in r.stdout

    prom = spec.parent / "k3.prom"  # vLLM drafting K = 3: positions 0..2
    prom.write_text("\n".join(line for line in PROM.splitlines()
                              if not re.search(r'position="[34]"', line)))
    r = invoke("import", "vllm-metrics", prom, spec, "--draft", DRAFT, "-d", "rpi5",
               "--quant", "Q8_0", "--json")
    assert r.exit_code == 0, r.stderr
    warnings = json.loads(r.stdout)["warnings"]
    rec = _record(spec, quant="Q8_0")
    assert rec["tool"] == "configspec import vllm-metrics" and rec["k_values"] == [1, 2, 3]
    assert rec["full_accept_k_values"] == [1, 2, 3]
    log, hand = rec["kept"]
    assert log["tool"] == "configspec import llama-spec" and log["k_values"] == [5]
    assert str(log["source"]).endswith("llama-speculative.log") and "kept" not in log
    assert hand["k_values"] == [4, 6, 7, 8, 9, 10]
    assert any("acceptance K=5 of llama-3.1-70b kept from configspec import llama-spec of "
               in w and w.endswith("(--replace drops them)") for w in warnings), warnings
    assert _table(spec, quant="Q8_0")[5] == round(196 / 360, 4)  # still the log's

    r = invoke("import", "vllm-metrics", prom, spec, "--draft", DRAFT, "-d", "rpi5",
               "--quant", "Q8_0", "--replace")
    assert r.exit_code == 0, r.stderr
    assert set(_table(spec, quant="Q8_0")) == {1, 2, 3}
    assert set(_table(spec, quant="Q8_0", name="full_accept")) == {1, 2, 3}
    rec = _record(spec, quant="Q8_0")
    assert "kept" not in rec and rec["k_values"] == [1, 2, 3]
    assert "K=4..10 dropped (--replace)" in r.stdout and "kept from" not in r.stdout


# --------------------------------------------------------------------------- plausibility

HIGH = "\n".join(  # every position accepted in 97 % of rounds: alpha(5) = 0.97
    re.sub(r'(position="\d"\}) \d+\.0', lambda m: f"{m.group(1)} 5820.0", line)
    if 'engine="0"' in line else
    re.sub(r'(position="\d"\}) \d+\.0', lambda m: f"{m.group(1)} 3880.0", line)
    for line in PROM.replace("15300.0", "29100.0").replace("10200.0", "19400.0").splitlines())


def test_an_import_that_makes_k_alpha_fall_is_warned_about(spec: Path) -> None:
    prom = spec.parent / "high.prom"
    prom.write_text(HIGH)
    r = invoke("import", "vllm-metrics", prom, spec, "--draft", DRAFT, "-d", "rpi5",
               "--quant", "Q4_K_M")
    assert r.exit_code == 0, r.stderr
    table = _table(spec)
    assert table[5] == 0.97 and table[6] == 0.52  # 4.85 expected at K = 5, 3.12 at K = 6
    text = spec.read_text()
    start = text.index("  - device: rpi5\n    draft: llama-3.2-1b-instruct\n    quant: Q4_K_M")
    line = text[:start].count("\n") + 1 + next(
        i for i, t in enumerate(text[start:].splitlines()) if t.strip().startswith(TARGET))
    warning = next(w for w in r.stdout.splitlines() if "K*alpha(K)" in w)
    assert warning.startswith(f"warning: {spec}:{line}:")
    assert "falls at K=6 (4.85 at K=5, 3.12 at K=6)" in warning
    r = invoke("import", "vllm-metrics", prom, spec, "--draft", DRAFT, "-d", "orin",
               "--quant", "Q4_K_M", "--dry-run")
    assert r.exit_code == 0
    assert "orin/llama-3.2-1b-instruct/Q4_K_M: acceptance[llama-3.1-70b]: K*alpha(K), the " \
        "expected accepted tokens per round, falls at K=6" in r.stdout


def test_validate_warns_at_the_table_where_k_alpha_falls(tmp_path: Path) -> None:
    spec = tmp_path / "fleet.yaml"
    text = EXAMPLE.read_text().replace("{2: 0.72, 3: 0.67, 4: 0.62, 5: 0.565,",
                                       "{2: 0.72, 3: 0.67, 4: 0.30, 5: 0.565,", 1)
    spec.write_text(text)
    line = _line_of(text, "4: 0.30")
    r = invoke("validate", spec)
    assert r.exit_code == 0, r.stderr
    [warning] = [w for w in r.stdout.splitlines() if "K*alpha(K)" in w]
    column = text.splitlines()[line - 1].index(TARGET) + 1  # the table's key
    assert warning.startswith(f"warning: {spec}:{line}:{column}: ")
    assert "rpi5/llama-3.2-1b-instruct/Q8_0: acceptance[llama-3.1-70b]" in warning
    assert "falls at K=4 (2.01 at K=3, 1.2 at K=4)" in warning
    r = invoke("validate", "--json", spec)
    [w] = [w for w in json.loads(r.stdout)["usability"] if w["kind"] == "falling_expectation"]
    assert w["scope"] == "profile" and w["device"] == "rpi5" and w["line"] == line
    assert invoke("validate", "--strict", spec).exit_code == 0  # a warning, not an error


def test_a_fall_the_written_digits_explain_is_not_warned_about() -> None:
    """0.44 and 0.39 may be 0.4449 and 0.3949 (3.559 and 3.554 tokens): no fall shown;
    with four digits written, the same numbers fall."""
    assert falling_expectation({8: 0.44, 9: 0.39}) == []
    assert falling_expectation({8: 0.4401, 9: 0.3901}) == [(8, 9)]
    assert falling_expectation({2: 0.7, 3: 0.65, 5: 0.3, 6: 0.26}) == [(3, 5)]
    assert written_precision(0.39) == pytest.approx(0.005)
    assert written_precision(0.5775) == pytest.approx(5e-5)


def test_counts_that_contradict_after_the_baseline_is_subtracted(spec: Path,
                                                                 tmp_path: Path) -> None:
    """Each scrape is possible alone; their difference counts 4,000 accepted first tokens in
    1,000 rounds: refused, naming both inputs."""
    before = spec.read_text()
    base = tmp_path / "before.prom"
    base.write_text(re.sub(r"\} (\d+)\.0$", lambda m: "} " + str(int(m.group(1)) // 2) + ".0",
                           PROM, flags=re.M)
                    .replace("drafts_total{engine=\"0\",model_name=\"meta-llama/Llama-3.1-70B-"
                             "Instruct\"} 3000.0", "drafts_total{engine=\"0\",model_name=\"meta-"
                             "llama/Llama-3.1-70B-Instruct\"} 5400.0")
                    .replace("drafts_total{engine=\"1\",model_name=\"meta-llama/Llama-3.1-70B-"
                             "Instruct\"} 2000.0", "drafts_total{engine=\"1\",model_name=\"meta-"
                             "llama/Llama-3.1-70B-Instruct\"} 3600.0"))
    after = tmp_path / "after.prom"
    after.write_text(PROM)
    r = invoke("import", "vllm-metrics", after, spec, "--draft", DRAFT, "--baseline", base)
    _refused(r, spec, before, f"{after} minus {base}: ", "counts 4,000 accepted tokens at "
             "position 0 in 1,000 draft rounds")
