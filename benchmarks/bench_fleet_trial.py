"""Reproduce docs/trial.md's fleet-trial table: N emulated devices, one real llama-server.

    python benchmarks/bench_fleet_trial.py [--n 1,2,4,8] [--k 2,4,8] [--threads 1]

Records real speculative decoding (SmolLM2 Q4_1 target, its Q4_0 re-quantisation as draft,
4 bundled prompts x 48 tokens, greedy), then replays it from N devices with drafting
emulated at v_d = 20 tok/s, and prints the markdown table with the machine and load.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import tempfile
from pathlib import Path

from profiler import fleet_trial as ft
from profiler.llama_server import LlamaServer
from profiler.prompts import bundled_prompts


def _sh(cmd: str) -> str:
    return subprocess.run(cmd, shell=True, capture_output=True, text=True).stdout.strip()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", default="1,2,4,8")
    ap.add_argument("--k", default="2,4,8")
    ap.add_argument("--v-d", type=float, default=20.0)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--jitter", type=float, default=ft.JITTER,
                    help="drafting time drawn from K/v_d x [1 - j, 1 + j] (default 0.2)")
    ap.add_argument("--recording", type=Path, default=None)
    ap.add_argument("--draft-type", default="Q4_0",
                    help="re-quantisation of the target used as the draft (Q4_0, Q8_0)")
    a = ap.parse_args()
    ns = [int(x) for x in a.n.split(",")]
    ks = [int(x) for x in a.k.split(",")]
    tgt = ft.smollm2_target()
    work = Path(tempfile.mkdtemp(prefix="fleet-"))
    rec_path = a.recording or work / "recording.json"
    if rec_path.is_file():
        recs = [r for r in ft.load_recordings(rec_path) if r.k in ks]
    else:
        drf = ft.requantised_draft(tgt, work, ftype=a.draft_type)
        texts = [p.text for p in bundled_prompts()[:4]]
        recs = ft.record(drf, tgt, texts, ks, 48, threads=os.cpu_count() or 1)
        ft.save_recordings(rec_path, recs)
    print(f"nproc: {_sh('nproc')}\n{_sh('lscpu | head -16')}")
    print(f"before: {_sh('uptime')}")
    print(f"drafting EMULATED at v_d = {a.v_d:g} tok/s (jitter +-{a.jitter:g}); "
          f"recording {rec_path}")
    with LlamaServer(tgt, parallel=max(ns), ctx=512 * max(ns), threads=a.threads) as srv:
        print("server:", " ".join(srv.command()))
        rows, info = ft.run_fleet(srv.url, recs, ns, a.v_d, log=print, jitter=a.jitter)
    print(f"after: {_sh('uptime')}")
    print(f"context_tokens {info['context_tokens']}; {info['table_note']}")
    print(ft.markdown(rows))


if __name__ == "__main__":
    main()
