"""The same fleet, started in different states: how much the cohorts it settles in matter.

    python benchmarks/bench_fleet_cohorts.py [--n 16] [--k 2] [--passes 3] [--seeds 0,1,2]

Why: at N = 16 the optimiser's mean-value model reads 5-19 % under the measured goodput,
and the step simulation says why (devices whose drafting time hardly varies fall into
cohorts that alternate on the server; docs/trial.md, finding 6).  A cohort split depends
on how the fleet started, not on the configuration, so this benchmark replays one fleet
(one recording, one K, one server) from chosen start phases (`fleet_trial.replay(phases=)`):
random ones, as in the trial, and phases that place the devices in two given cohorts.  For
each start it prints the measured goodput, the steps the server really ran (rebuilt from
the requests, `fleet_trial.fleet_steps`), how widely they spread over the server's slots
against the table's steps (`fleet_trial.step_span`), the simulation of that same start, and the
mean-value model, which knows nothing of the start.  The table T(n, K) is measured right
before and after the runs; the predictions read the mean (`fleet_trial.bracketed`).
"""

from __future__ import annotations

import argparse
import collections
import statistics
import subprocess
import tempfile
from collections.abc import Sequence
from pathlib import Path

from configspec_opt.verifier_load import latency_at
from configspec_opt.verifier_sim import run_once
from profiler import fleet_trial as ft
from profiler.llama_server import LlamaServer
from profiler.prompts import bundled_prompts

SIM_SEEDS = 16


def _sh(cmd: str) -> str:
    return subprocess.run(cmd, shell=True, capture_output=True, text=True).stdout.strip()


Start = tuple[str, list[float] | None, int]


def starts(plan: str, n: int, table: dict[int, dict[int, float]], k: int) -> list[Start]:
    """(name, phases or None for random, seed) per entry of `plan`, in its order.

    Entries: `random:S` (random phases, seed S); `cohorts:A`: devices 0..A-1 start at
    0, the other N - A half a step of A later, so they arrive while the first cohort's
    step runs (device i sits on slot i of N = 16 slots, so each cohort holds neighbouring
    slots); `spread:A`: the same with the first cohort's A devices spread evenly over the
    devices (and so over the slots); `all`: every device at 0.
    """
    out: list[Start] = []
    for item in plan.split(","):
        kind, _, arg = item.partition(":")
        if kind == "random":
            out.append((f"random (seed {arg})", None, int(arg)))
        elif kind in ("cohorts", "spread"):
            a = int(arg)
            if not 0 < a < n:
                raise SystemExit(f"{kind}:{a} needs 0 < A < N = {n}")
            half = 0.5 * latency_at(table, float(a), k)
            first = (set(range(a)) if kind == "cohorts"
                     else {(j * n) // a for j in range(a)})
            out.append((f"{kind} {a}/{n - a}",
                        [0.0 if i in first else half for i in range(n)], 0))
        elif kind == "all":
            out.append(("all at once", [0.0] * n, 0))
        else:
            raise SystemExit(f"unknown start {item!r}: random:S, cohorts:A or all")
    return out


def hist(steps: Sequence[tuple[int, float]]) -> str:
    """The step sizes most requests ran in: 'n: share of requests' for the top three."""
    reqs = collections.Counter[int]()
    for n, _ in steps:
        reqs[n] += n
    total = sum(reqs.values()) or 1
    return ", ".join(f"{n}: {c / total:.0%}" for n, c in reqs.most_common(3))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=16)
    ap.add_argument("--k", type=int, default=2)
    ap.add_argument("--v-d", type=float, default=20.0)
    ap.add_argument("--passes", type=int, default=3,
                    help="replay each prompt this many times (longer runs settle)")
    ap.add_argument("--starts", default="random:0,random:1,random:2,cohorts:5,cohorts:8,all",
                    help="start states, run in this order (random:S, cohorts:A, all)")
    ap.add_argument("--jitter", type=float, default=ft.JITTER)
    ap.add_argument("--recording", type=Path, default=None)
    a = ap.parse_args()
    tgt = ft.smollm2_target()
    work = Path(tempfile.mkdtemp(prefix="cohorts-"))
    rec_path = a.recording or work / "recording.json"
    if rec_path.is_file():
        rec = next(r for r in ft.load_recordings(rec_path) if r.k == a.k)
    else:
        drf = ft.requantised_draft(tgt, work)
        texts = [p.text for p in bundled_prompts()[:4]]
        rec = ft.record(drf, tgt, texts, [a.k], 48)[0]
        ft.save_recordings(rec_path, [rec])
    bs = sorted({1, 2, 4, 6, 8, 11, a.n})
    ctx = round(statistics.fmean(len(p.prompt) + len(p.tokens) / 2 for p in rec.prompts))
    print(f"nproc: {_sh('nproc')}; before: {_sh('uptime')}")
    print(f"N = {a.n}, K = {a.k}, drafting EMULATED at v_d = {a.v_d:g} tok/s "
          f"(jitter +-{a.jitter:g}), {a.passes} passes; recording {rec_path}")
    with LlamaServer(tgt, parallel=a.n, ctx=512 * a.n, threads=1) as srv:
        print("server:", " ".join(srv.command()))
        before, _ = ft.measure_table(srv.url, bs, [a.k], ctx)
        ov = ft.measure_overhead(srv.url, rec, before[1][a.k], a.v_d)
        plan = starts(a.starts, a.n, before, a.k)
        runs = [(name, ph, ft.replay(srv.url, rec, a.n, a.v_d, passes=a.passes,
                                     jitter=a.jitter, seed=seed, phases=ph))
                for name, ph, seed in plan]
        after, _ = ft.measure_table(srv.url, bs, [a.k], ctx)
        ov = 0.5 * (ov + ft.measure_overhead(srv.url, rec, after[1][a.k], a.v_d))
    print(f"after: {_sh('uptime')}")
    table, drift = ft.bracketed(before, after)
    print("T(n, K) ms, mean of before/after (drift): " + ", ".join(
        f"{b}: {table[b][a.k] * 1e3:.1f} ({drift[b]:.0%})" for b in bs)
        + f"; round overhead {ov * 1e3:.1f} ms")
    print("| start | G meas | round ms | steps the server ran (share of requests) | server busy "
          "| step span / table's | run's steps / table | G sim, same start | err "
          "| G sim, random starts (range) | G mean-value model | err |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for name, ph, run in runs:
        drafts = [d.drawn_draft_s / d.rounds for d in run.devices]
        prompts = [d.prompt for d in run.devices]
        pr = ft.predict(table, rec, a.n, a.v_d, overhead_s=ov, prompts=prompts,
                        passes=a.passes, jitter=a.jitter, draft_s=drafts)
        devs = [ft.sim_device(rec, p, d, 0.0, ov, a.jitter, a.passes)
                for p, d in zip(prompts, drafts, strict=True)]
        g = run.goodput
        same = "- | -"
        if ph is not None:
            g_same = statistics.fmean(run_once(table, devs, None, s, ph).mean_goodput
                                      for s in range(SIM_SEEDS))
            same = f"{g_same:.2f} | {(g_same - g) / g:+.1%}"
        rand = [run_once(table, devs, None, s).mean_goodput for s in range(SIM_SEEDS)]
        aware = "-" if pr.g_aware is None else f"{pr.g_aware:.2f}"
        err_aware = "-" if pr.g_aware is None else f"{(pr.g_aware - g) / g:+.1%}"
        steps = ft.fleet_steps(run.devices)
        wall = statistics.fmean(d.wall_s for d in run.devices)
        rnd = statistics.fmean(d.wall_s / d.rounds for d in run.devices)
        scale = ft.step_scale(run.devices, table, a.k)
        span = ft.step_span(run.devices, a.n)
        print(f"| {name} | {g:.2f} | {rnd * 1e3:.0f} | {hist(steps)} | "
              f"{sum(t for _, t in steps) / wall:.0%} | "
              f"{'-' if span is None else format(span, '.2f')} | "
              f"{'-' if scale is None else format(scale, '.2f')} | {same} | "
              f"{statistics.fmean(rand):.2f} ({min(rand):.2f}-{max(rand):.2f}) | "
              f"{aware} | {err_aware} |")


if __name__ == "__main__":
    main()
