"""The runtime K policy (configspec_opt.k_policy): each band's K is the brute-force
argmax inside it, the thresholds are where the argmax changes, the plan's K is the
policy's at the plan's own load and rtt, and the exported JSON holds together."""

from __future__ import annotations

import json
import random
from functools import cache
from pathlib import Path

import pytest

from configspec_opt import k_policy as kp
from configspec_opt.loader import load_spec
from configspec_opt.vcs.lock import parse_lock, read_lock_text
from tests.cli_helpers import ROOT, invoke

SHARED = ROOT / "examples" / "fleet-verifier" / "shared-verifier.yaml"
SMOLLM = ROOT / "examples" / "fleet-verifier" / "draft-choice-smollm2-cpu.yaml"
FIXED = ROOT / "examples" / "llama70b-edge.yaml"
REL = 1e-9


@cache
def _policies(spec_path: Path) -> tuple[kp.Policy, ...]:
    spec = load_spec(spec_path).spec
    lock = Path(f"{spec_path}.lock")
    return tuple(kp.policies(spec, parse_lock(read_lock_text(lock), str(lock))))


def _brute(curve: kp.Curve, load: float, rtt: float) -> float:
    """The best goodput over every K, scalar path (`Curve.goodput`)."""
    return max(g for k in curve.ks if (g := curve.goodput(k, load, rtt)) is not None)


def _is_best(curve: kp.Curve, k: int, load: float, rtt: float) -> bool:
    g = curve.goodput(k, load, rtt)
    best = _brute(curve, load, rtt)
    return g is not None and g >= best * (1.0 - REL)


@pytest.mark.parametrize("spec_path", [SHARED, SMOLLM], ids=["shared", "smollm2"])
def test_band_k_is_the_argmax_at_random_points_inside(spec_path: Path) -> None:
    rng = random.Random(29)
    found = _policies(spec_path)
    assert found and all(p.curve.batched for p in found)
    for p in found:
        for row in p.rows:
            for band in row.bands:
                assert band.load_to is not None and band.load_to >= band.load_from
                margin = 1e-6 * max(1.0, band.load_to)
                for _ in range(6):
                    b = rng.uniform(band.load_from + margin, max(band.load_from + margin,
                                                                 band.load_to - margin))
                    assert _is_best(p.curve, band.k, b, row.rtt_s), (p.curve.pool, row, b)


@pytest.mark.parametrize("spec_path", [SHARED, SMOLLM], ids=["shared", "smollm2"])
def test_thresholds_are_where_the_argmax_changes(spec_path: Path) -> None:
    for p in _policies(spec_path):
        for row in p.rows:
            assert row.bands[0].load_from == 0.0
            assert row.bands[-1].load_to == pytest.approx(p.load_max)
            for before, after in zip(row.bands, row.bands[1:]):
                assert before.k != after.k
                assert before.load_to == after.load_from
                x, d = after.load_from, 1e-6 * max(1.0, after.load_from)
                assert _is_best(p.curve, before.k, x - d, row.rtt_s)
                assert _is_best(p.curve, after.k, x + d, row.rtt_s)
                assert not _is_best(p.curve, before.k, x + 10 * d, row.rtt_s) or \
                    not _is_best(p.curve, after.k, x - 10 * d, row.rtt_s)


def test_no_switch_is_missed_on_a_fine_grid() -> None:
    for p in _policies(SHARED):
        for row in p.rows[::3]:
            for i in range(401):
                b = p.load_max * i / 400
                assert _is_best(p.curve, p.k_at(b, row.rtt_s), b, row.rtt_s), (row, b)


def test_between_rows_the_policy_loses_little() -> None:
    """Off its rows the policy is the nearest row's: within 1 % of the best here."""
    rng = random.Random(7)
    worst = 0.0
    for p in _policies(SHARED):
        for _ in range(150):
            rtt = rng.uniform(0.5, 3.0) * p.curve.rtt_s
            b = rng.uniform(0.0, p.load_max)
            g = p.curve.goodput(p.k_at(b, rtt), b, rtt)
            assert g is not None
            worst = max(worst, 1.0 - g / _brute(p.curve, b, rtt))
    assert worst < 0.01


@pytest.mark.parametrize("spec_path", [SHARED, SMOLLM], ids=["shared", "smollm2"])
def test_plan_k_is_the_policy_k_at_the_plans_own_load_and_rtt(spec_path: Path) -> None:
    for p in _policies(spec_path):
        c = p.curve
        assert c.plan_load is not None and 0.0 < c.plan_load < p.load_max
        k = p.k_at(c.plan_load, c.rtt_s)
        g_plan, g_policy = c.goodput(c.plan_k, c.plan_load, c.rtt_s), \
            c.goodput(k, c.plan_load, c.rtt_s)
        assert g_plan is not None and g_policy is not None
        assert k == c.plan_k or g_plan >= g_policy * (1.0 - REL)
        assert kp.document(p)["plan_k_at_plan_load"]["agrees"] is True


def test_a_fixed_latency_target_has_exact_rtt_bands() -> None:
    found = _policies(FIXED)
    assert found and not any(p.curve.batched for p in found)
    for p in found:
        assert p.rows[0].rtt_from == 0.0 and p.rows[-1].rtt_to is None
        for row in p.rows:
            assert len(row.bands) == 1 and row.bands[0].load_to is None
            hi = row.rtt_to if row.rtt_to is not None else 3.0 * max(p.curve.rtt_s, 0.04)
            for r in (row.rtt_from + 1e-9, 0.5 * (row.rtt_from + hi)):
                assert _is_best(p.curve, row.bands[0].k, 0.0, r)
        assert p.k_at(0.0, p.curve.rtt_s) == p.curve.plan_k


def test_switches_finds_every_change_of_a_step_function() -> None:
    steps = [(0.3, 2), (0.55, 5), (0.9, 3)]  # K from x on, after K=4 below 0.3

    def best(x: float) -> int:
        return next((k for at, k in reversed(steps) if x > at), 4)

    def goodput(k: int, x: float) -> float:
        return 1.0 if best(x) == k else 0.0

    found = kp.switches(goodput, lambda xs: [best(x) for x in xs], 0.0, 1.0, 8)
    assert [k for _, k in found] == [4, 2, 5, 3]
    for (x, _), (at, _) in zip(found[1:], steps):
        assert x == pytest.approx(at, abs=1e-8)


def test_export_k_policy_writes_json_that_holds_together(tmp_path: Path) -> None:
    out = tmp_path / "policy"
    run = invoke("export", f"{SHARED}.lock", "-o", out, "--format", "k-policy")
    assert run.exit_code == 0, run.stdout + run.stderr
    manifest = json.loads((out / "fleet.k-policy.json").read_text())
    assert manifest["format"] == "k-policy" and manifest["kind"] == "configspec-fleet"
    assert sorted(manifest["files"]) == sorted(f.name for f in out.iterdir()
                                               if f.name != "fleet.k-policy.json")
    lock = parse_lock(read_lock_text(Path(f"{SHARED}.lock")), "lock")
    plan = {a["device"]: a["k"] for a in lock["assignments"]}
    for name in manifest["files"]:
        doc = json.loads((out / name).read_text())
        assert doc["kind"] == kp.POLICY_KIND and doc["format_version"] == kp.POLICY_VERSION
        for pol in doc["policies"]:
            assert pol["plan_k"] == plan[doc["pool"]]
            assert pol["load"]["plan"] < pol["load"]["max"]
            prev_to = 0.0
            for row in pol["rows"]:
                assert row["rtt_from"] == prev_to
                prev_to = row["rtt_to"]
                assert row["bands"][0]["load_from"] == 0.0
                assert row["bands"][-1]["load_to"] == pol["load"]["max"]
                for a, b in zip(row["bands"], row["bands"][1:]):
                    assert a["load_to"] == b["load_from"] and a["k"] != b["k"]
                assert all(b["k"] in pol["ks"] for b in row["bands"])
            assert prev_to is None
    again = invoke("k-policy", f"{SHARED}.lock", "--json")
    assert again.exit_code == 0
    assert [p["pool"] for p in json.loads(again.stdout)["policies"]] == list(plan)


def test_k_policy_command_prints_a_table_and_refuses_a_missing_file(tmp_path: Path) -> None:
    run = invoke("k-policy", f"{SHARED}.lock")
    assert run.exit_code == 0
    assert "rpi5:" in run.stdout and "K=3 @ load" in run.stdout
    missing = invoke("k-policy", tmp_path / "none.yaml.lock")
    assert missing.exit_code in (2, 4) and "Traceback" not in missing.stdout + missing.stderr


def test_k_policy_plot_writes_an_image_and_refuses_an_unknown_format(tmp_path: Path) -> None:
    png = tmp_path / "policy.png"
    run = invoke("k-policy", f"{SHARED}.lock", "--plot", png)
    assert run.exit_code == 0, run.stdout + run.stderr
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    bad = invoke("k-policy", f"{SHARED}.lock", "--plot", tmp_path / "policy.gif")
    assert bad.exit_code == 2 and "unknown image format" in bad.stdout + bad.stderr
    assert not (tmp_path / "policy.gif").exists()


LOCKS = sorted(ROOT.glob("examples/**/*.yaml.lock")) + sorted(ROOT.glob("specs/*.yaml.lock"))


@pytest.mark.parametrize("lock", LOCKS, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_example_lock_exports_a_policy_per_assigned_pool(lock: Path,
                                                              tmp_path: Path) -> None:
    run = invoke("export", lock, "-o", tmp_path, "--format", "k-policy")
    assert run.exit_code == 0, run.stdout + run.stderr
    data = parse_lock(read_lock_text(lock), str(lock))
    manifest = json.loads((tmp_path / "fleet.k-policy.json").read_text())
    assert {p["pool"] for p in manifest["pools"]} == {a["device"] for a in data["assignments"]}
    for name in manifest["files"]:
        for pol in json.loads((tmp_path / name).read_text())["policies"]:
            assert pol["plan_k"] in pol["ks"] and pol["rows"]
