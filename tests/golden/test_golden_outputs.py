"""Every example answers as recorded: `solve --json`, `report`, `export` and `POST /v1/solve`.

The golden files beside this test (one per example and output kind, written by
`tools/compare_solve_outputs.py record-golden` from the tree they describe) hold
what `configspec` answers for every spec under examples/ and specs/: the JSON
of `configspec solve --json`, the HTML of `configspec report -o - --points 4`,
the files and `--json` summary of `configspec export` (the spec in json; its
lock, where it has one, in every format: json, env, yaml, draft-client,
llama-server, vllm, compose, kubernetes), and the answer of `POST /v1/solve`
(`time_limit=60`), each with its exit code or HTTP status.  A refactor that
must not change behaviour keeps every one of them identical.

Normalised, because they vary from run to run and nothing else does:

* `time_s`, `build_s` (any depth; wall-clock seconds) -> 0, and the report's
  solver line "..., <time_s> s, N candidates";
* `generated_at` (export manifests and pool files, the env files'
  `CONFIGSPEC_DEPLOY_GENERATED_AT`) and the report's "generated ..." ->
  `<generated_at>`;
* any key containing `gap` whose value is below 1e-9 in magnitude, and the
  report's "gap X" below 1e-9 -> 0 (HiGHS's round-off, not a gap);
* absolute paths: the repository -> `<repo>`, the export's output directory ->
  `<out>`, the service's temporary database directory -> `<tmp>`.

Numbers are compared as printed, except that floats within 1e-9 (relative) are the
same answer (`only_round_off`): the solves are deterministic (HiGHS single-threaded,
fixed seed, the versions the test extra pins), but float round-off differs between
CPUs, and a test must hold on every machine.  A
change that is meant to alter answers re-records on purpose, and says why in
its commit: `python tools/compare_solve_outputs.py record-golden` (or
`CONFIGSPEC_RECORD_GOLDEN=1 python -m pytest tests/golden`).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tools"))

import compare_solve_outputs as golden  # noqa: E402

RECORD = os.environ.get(golden.RECORD_ENV) == "1"
CASES = golden.golden_cases()


@pytest.fixture(scope="module")
def producer() -> Iterator[golden.Producer]:
    """One CLI app and one HTTP service (one solver process) for the whole module."""
    with golden.producer() as p:
        yield p


def test_every_example_has_its_golden_files() -> None:
    """A new example gets golden files (recorded on purpose); a removed one loses them."""
    assert CASES, "no example specs found"
    missing = [golden.golden_name(e, k) for e, k in CASES
               if not (golden.GOLDEN_DIR / golden.golden_name(e, k)).is_file()]
    if RECORD:
        return
    assert not missing, (f"no golden file for {missing}: record them with `python "
                         "tools/compare_solve_outputs.py record-golden`")
    assert golden.orphans() == [], "golden files of no example: re-record to remove them"


@pytest.mark.parametrize(("example", "kind"), CASES,
                         ids=[golden.golden_name(e, k).removesuffix(".json") for e, k in CASES])
def test_answer_is_as_recorded(producer: golden.Producer, example: str, kind: str) -> None:
    message = golden.check(producer, example, kind, record=RECORD)
    assert message is None, message


def test_normalisation_touches_only_what_varies() -> None:
    """Timings, generation times, gaps below 1e-9 and paths change; neighbours do not."""
    data = {"solver": {"time_s": 1.5, "build_s": 0.2, "gap": 3e-12, "stages": [
        {"time_s": 0.1, "gap": 2e-9}]}, "round_time_s": 0.7, "generated_at": "x",
        "certified_gap": 1e-10, "verify_latency_s": 1e-12}
    assert golden.untimed(data) == {
        "solver": {"time_s": 0, "build_s": 0, "gap": 0.0, "stages": [
            {"time_s": 0, "gap": 2e-9}]}, "round_time_s": 0.7,
        "generated_at": "<generated_at>", "certified_gap": 0.0, "verify_latency_s": 1e-12}
    text = (f'"generated_at": "2026-01-02T03:04:05Z" CONFIGSPEC_DEPLOY_GENERATED_AT='
            f"2026-01-02T03:04:05Z generated 2026-01-02T03:04:05Z, gap 4.2e-12, gap 0.008, "
            f"proven optimal (gap \u2264 1e-06): yes, 0.628 s, 53 candidates {golden.ROOT}/x")
    assert golden.normalise_text(text) == (
        '"generated_at": "<generated_at>" CONFIGSPEC_DEPLOY_GENERATED_AT=<generated_at> '
        "generated <generated_at>, gap 0, gap 0.008, proven optimal (gap \u2264 1e-06): "
        "yes, <time_s> s, 53 candidates <repo>/x")


def test_a_changed_answer_fails_with_a_diff(producer: golden.Producer,
                                            tmp_path: Path) -> None:
    """The failure names the example and shows the changed line, numbers' change sized."""
    example, kind = "examples/paper/llama70b.yaml", "solve"
    name = golden.golden_name(example, kind)
    text = (golden.GOLDEN_DIR / name).read_text(encoding="utf-8")
    assert '\\"k\\": 3,' in text
    (tmp_path / name).write_text(text.replace('\\"k\\": 3,', '\\"k\\": 4,', 1),
                                 encoding="utf-8")
    message = golden.check(producer, example, kind, tmp_path)
    assert message is not None and example in message and "record-golden" in message
    lines = message.splitlines()
    assert any(x.startswith("-") and '\\"k\\": 4,' in x for x in lines), message
    assert any(x.startswith("+") and '\\"k\\": 3,' in x for x in lines), message
    assert "only numbers changed" not in message  # an integer K is not round-off


def test_a_last_digit_change_is_sized() -> None:
    """Round-off (a reordered sum) reads differently from a changed answer in the diff."""
    line = '  "      \\"tpot_p50_s\\": {},",'
    message = golden.difference(line.format("0.13106776389312205"),
                                line.format("0.13106776389312202"), "x.solve.json")
    assert "-" + line.format("0.13106776389312205") in message
    assert "largest relative change 2.12e-16" in message
    other = golden.difference(line.format("0.1"), line.format("0.1").replace("p50", "p95"),
                              "x.solve.json")
    assert "only numbers changed" not in other


def test_round_off_is_the_same_answer_and_more_is_not() -> None:
    """Floats within 1e-9 (relative) compare equal, so CPUs that round differently agree;
    a larger change, a changed integer or a changed word does not."""
    base = '{"goodput": 1019.2241, "k": 10, "gap": 0.0081}'
    assert golden.only_round_off(base, base.replace("1019.2241", "1019.2241000000001"))
    assert not golden.only_round_off(base, base.replace("1019.2241", "1019.2242"))
    assert not golden.only_round_off(base, base.replace('"k": 10', '"k": 9'))
    assert not golden.only_round_off(base, base.replace("goodput", "cost"))
    assert not golden.only_round_off(base, base + "\n{}")

