"""The drift logic without a server: intervals, counter increments, verdicts, the re-plan's
edits of the spec (configspec_opt.drift).

The example fleet's lock is the expectation (rpi5: alpha(6) 0.52, v_d 14.4, rtt 0.04 s;
orin: alpha(10) 0.38, v_d 92.6; verification 0.5 s), read from the repository as is.
"""

from __future__ import annotations

import math
import random

import pytest

from configspec_opt.drift.compare import Observed, Tolerances, check_lock, wilson
from configspec_opt.drift.observations import (
    CounterRefused,
    Observation,
    ObservationsError,
    parse_observations,
    tally,
)
from configspec_opt.drift.replan import per_token_for, propose, replanned_spec
from configspec_opt.drift.watch import Watched, load_watched
from configspec_opt.spec import PerTokenAcceptance
from tests.api.drift_data import EXAMPLE

RPI5 = ("rpi5", "llama-3.1-70b", "llama-3.2-1b-instruct", "Q4_K_M", 6)
ORIN = ("orin", "llama-3.1-70b", "llama-3.2-1b-instruct", "Q4_K_M", 10)


@pytest.fixture(scope="module")
def watched() -> Watched:
    return load_watched(EXAMPLE.with_name(EXAMPLE.name + ".lock"))


def counts(alpha: float, rounds: int, k: int) -> Observed:
    """Rounds whose accepted fraction is exactly `alpha` (rounded to whole tokens)."""
    return Observed(reports=1, drafts=rounds, draft_tokens=rounds * k,
                    accepted_tokens=round(alpha * rounds * k))


def readings(metric: str, *values: float) -> Observed:
    return Observed(reports=len(values), sums={metric: sum(values)},
                    counts={metric: len(values)})


def test_wilson_matches_the_textbook_and_covers_its_level() -> None:
    lo, hi = wilson(50, 100, 100, 1.959964)
    assert (round(lo, 4), round(hi, 4)) == (0.4038, 0.5962)  # Wilson (1927), n=100, p=0.5
    lo, hi = wilson(0, 20, 20, 1.959964)
    assert lo == 0.0 and round(hi, 4) == 0.1611
    rng = random.Random(3)  # coverage of the 95 % interval over 2,000 seeded binomials
    inside = 0
    for _ in range(2000):
        k = sum(rng.random() < 0.3 for _ in range(200))
        lo, hi = wilson(k, 200, 200, 1.959964)
        inside += lo <= 0.3 <= hi
    assert 0.93 <= inside / 2000 <= 0.97


def test_tally_counts_increments_per_reporter() -> None:
    def obs(source: str, drafts: int, accepted: int, reset: bool = False) -> Observation:
        return Observation.model_validate({
            "source": source, "device": "rpi5", "target": "t", "draft": "d", "quant": "q",
            "k": 4, "reset": reset, "spec_decode": {"num_drafts": drafts,
                                                    "num_draft_tokens": 4 * drafts,
                                                    "num_accepted_tokens": accepted}})
    key = ("a", "rpi5", "t", "d", "q", 4)
    tallies, latest = tally([obs("a", 10, 20), obs("b", 5, 5), obs("a", 12, 27)],
                            {key: (8, 32, 16)})
    t = tallies[("rpi5", "t", "d", "q", 4)]
    assert (t.drafts, t.draft_tokens, t.accepted_tokens, t.reports) == (4 + 5, 16 + 20,
                                                                        11 + 5, 3)
    assert latest[key] == (12, 48, 27)
    with pytest.raises(CounterRefused) as e:
        tally([obs("b", 5, 5), obs("a", 7, 16)], {key: (8, 32, 16)})
    assert e.value.index == 1 and e.value.counter == "num_drafts"
    tallies, _ = tally([obs("a", 7, 16, reset=True)], {key: (8, 32, 16)})
    assert tallies[("rpi5", "t", "d", "q", 4)].drafts == 7


def test_parse_refuses_with_locations() -> None:
    text = ('{"observations": [\n {"source": "a", "device": "rpi5", "target": "t",\n'
            '  "draft": "d", "quant": "q", "k": 4, "draft_tok_s": -3}]}')
    with pytest.raises(ObservationsError) as e:
        parse_observations(text, "obs.json")
    issue = e.value.issues[0]
    assert (issue.file, issue.line) == ("obs.json", 3)
    assert str(e.value).startswith("invalid observations (1 problem)")
    assert e.value.exit_code == 4


def test_acceptance_as_profiled_holds_and_a_drop_drifts(watched: Watched) -> None:
    same = check_lock(watched.lock, watched.loaded.spec, {RPI5: counts(0.52, 3000, 6)})
    assert same.drifted == [] and same.pools[0].status == "ok"
    drop = check_lock(watched.lock, watched.loaded.spec, {RPI5: counts(0.45, 3000, 6)})
    assert drop.drifted == ["rpi5"]
    assert drop.pools[0].check("acceptance").verdict == "lower"  # type: ignore[union-attr]
    few = check_lock(watched.lock, watched.loaded.spec, {RPI5: counts(0.45, 30, 6)})
    assert few.drifted == []  # 30 rounds cannot tell 0.45 from 0.52 at z = 3.29
    assert check_lock(watched.lock, watched.loaded.spec, {}).pools[0].status == "no data"


def test_a_profile_interval_widens_the_band(watched: Watched) -> None:
    spec = watched.loaded.spec
    profiles = [p.model_copy(update={"provenance": {"acceptance": {"llama-3.1-70b": {
        "per_k": {"6": {"ci95": [0.44, 0.60]}}}}}}) if (p.device, p.quant, p.draft) ==
        ("rpi5", "Q4_K_M", "llama-3.2-1b-instruct") else p for p in spec.profiles]
    wide = spec.model_copy(update={"profiles": profiles})
    seen = {RPI5: counts(0.45, 3000, 6)}
    assert check_lock(watched.lock, spec, seen).drifted == ["rpi5"]
    report = check_lock(watched.lock, wide, seen)
    assert report.drifted == []
    band = report.pools[0].check("acceptance").band  # type: ignore[union-attr]
    assert math.isclose(band[0], 0.44 * 0.95) and math.isclose(band[1], 0.60 * 1.05)


def test_speed_rtt_and_step_time(watched: Watched) -> None:
    spec, lock = watched.loaded.spec, watched.lock
    slow = check_lock(lock, spec, {RPI5: readings("draft_tok_s", 11.0, 11.5, 11.2)})
    assert slow.pools[0].check("draft_tok_s").verdict == "lower"  # type: ignore[union-attr]
    ok = check_lock(lock, spec, {RPI5: readings("draft_tok_s", 13.0, 15.5, 14.9)})
    assert ok.drifted == []
    few = check_lock(lock, spec, {RPI5: readings("draft_tok_s", 5.0, 5.0)})
    assert few.pools[0].check("draft_tok_s").verdict == "too few"  # type: ignore[union-attr]
    # orin's spec has no rtt (0): 5 ms is within the absolute slack, 50 ms is drift
    assert check_lock(lock, spec, {ORIN: readings("rtt_s", 0.004, 0.005, 0.003)}).drifted == []
    assert check_lock(lock, spec, {ORIN: readings("rtt_s", 0.05, 0.06, 0.05)}).drifted == \
        ["orin"]
    step = check_lock(lock, spec, {ORIN: readings("verify_step_s", 0.7, 0.72, 0.69)})
    assert step.pools[1].check("verify_step_s").verdict == "higher"  # type: ignore[union-attr]


def test_replanned_spec_replaces_only_what_drifted(watched: Watched) -> None:
    spec = watched.loaded.spec
    seen = {RPI5: Observed(reports=3, drafts=3000, draft_tokens=18000, accepted_tokens=7200,
                           sums={"draft_tok_s": 43.5}, counts={"draft_tok_s": 3}),
            ORIN: readings("verify_step_s", 0.75, 0.75, 0.75)}
    report = check_lock(watched.lock, spec, seen)
    assert report.drifted == ["rpi5", "orin"]
    new, changes = replanned_spec(spec, report)
    old_p = next(p for p in spec.profiles if (p.device, p.quant) == ("rpi5", "Q4_K_M")
                 and p.draft == "llama-3.2-1b-instruct")
    new_p = next(p for p in new.profiles if (p.device, p.quant) == ("rpi5", "Q4_K_M")
                 and p.draft == "llama-3.2-1b-instruct")
    table = new_p.acceptance["llama-3.1-70b"]
    assert isinstance(table, dict)
    assert math.isclose(table[6], 0.40, abs_tol=1e-4)  # 7200 / 18000, the observed rate
    assert math.isclose(table[2], round(0.70 * 0.40 / 0.52, 4))
    assert new_p.draft_tok_s == old_p.draft_tok_s  # 14.5 is within the band: kept
    assert new.targets[0].verify_latency_s == pytest.approx(0.75)
    assert [p.draft_tok_s for p in new.profiles if p is not new_p] == \
        [p.draft_tok_s for p in spec.profiles if p is not old_p]
    assert len(changes) == 2 and changes[0].startswith("rpi5: acceptance")


def test_per_token_acceptance_is_refitted() -> None:
    a = per_token_for(0.40, 6)
    assert PerTokenAcceptance(per_token=a).alpha(6) == pytest.approx(0.40, abs=1e-5)
    assert per_token_for(0.999999, 4) > 0.999


def test_the_proposal_diffs_against_the_lock(watched: Watched) -> None:
    report = check_lock(watched.lock, watched.loaded.spec, {RPI5: counts(0.30, 3000, 6)})
    proposal = propose(watched, report)
    assert proposal is not None
    pools = {p.device: p for p in proposal.diff.pools}
    assert pools["rpi5"].change != "unchanged"
    assert proposal.to_dict()["applied"] is False
    assert proposal.diff.old.data is watched.lock
    no_drift = check_lock(watched.lock, watched.loaded.spec, {RPI5: counts(0.52, 3000, 6)})
    assert propose(watched, no_drift) is None


def test_tolerances_are_checked() -> None:
    with pytest.raises(ValueError):
        Tolerances(z=0)
    with pytest.raises(ValueError):
        Tolerances(acceptance=1.5)
