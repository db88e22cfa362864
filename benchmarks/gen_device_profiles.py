"""Synthetic per-device profiles, as a fleet of devices that each pushed their own (issue 27).

Every device measures its draft speed v_d, power and alpha(K) for each (draft, quant)
its kind ships, and its own network round trip.  The structure follows what makes
real devices of one model differ:

  * kinds (rpi4, rpi5, phone, laptop, orin-nano, orin-agx) with their memory, speed
    and power, in fixed proportions; a phone ships only the qwen drafts, an rpi4 only
    Q4_K_M;
  * per device a clock/thermal factor, lognormal (sigma 0.04), that scales every
    variant's speed, and power with it (exponent 0.8, plus sigma 0.01 of its own);
  * per device a workload (chat or code: acceptance x1.0 or x0.94) and a network
    round trip, lognormal around 30 ms (sigma 0.4, 5 ms to 1 s);
  * per measurement +-0.5 % of noise (speed, power) and +-0.4 % (each alpha(K));
  * 3 % of the devices lack one of their kind's variants (a failed measurement).

Values are rounded to 4 significant digits, as a profiler's output would be.
Writes DEVICES.jsonl (one device per line, the format `configspec group` reads;
`--format csv` for one row per (device, draft, quant, target)) and, with
`--spec-out`, the base spec: the targets, drafts and constraints of the fleet.

Run:  python benchmarks/gen_device_profiles.py --devices 100000 --seed 27 \\
          --out benchmarks/out/devices-100000-27.jsonl \\
          --spec-out benchmarks/out/devices-base.yaml
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import random
from pathlib import Path
from typing import Any

DRAFTS: dict[str, tuple[str, float, dict[str, float]]] = {
    # name: (family, v_d on an rpi5 at Q4_K_M, per_token acceptance by family target)
    "llama-3.2-1b": ("llama", 14.0, {"llama-3.1-70b": 0.72}),
    "llama-3.2-3b": ("llama", 5.5, {"llama-3.1-70b": 0.80}),
    "qwen2.5-0.5b": ("qwen", 28.0, {"qwen2.5-72b": 0.66}),
    "qwen2.5-1.5b": ("qwen", 10.0, {"qwen2.5-72b": 0.75}),
}
SIZES = {"llama-3.2-1b": 0.81, "llama-3.2-3b": 2.02, "qwen2.5-0.5b": 0.40, "qwen2.5-1.5b": 1.07}
QUANTS = {"Q4_K_M": (1.0, 1.0, 0.97), "Q5_K_M": (1.15, 0.9, 0.985),
          "Q8_0": (1.65, 0.75, 1.0)}  # (size x, speed x, acceptance x)
KINDS: dict[str, tuple[float, float, float, float]] = {
    # name: (share, memory_gb, speed x, power_w)
    "rpi5": (0.35, 8, 1.0, 8.0),
    "rpi4": (0.15, 4, 0.5, 6.0),
    "phone": (0.25, 12, 2.0, 5.0),
    "laptop": (0.10, 16, 4.0, 35.0),
    "orin-nano": (0.10, 8, 2.5, 12.0),
    "orin-agx": (0.05, 32, 5.0, 40.0),
}
TARGETS = {"llama-3.1-70b": ("llama", 0.90, 0.20, 0.010),
           "qwen2.5-72b": ("qwen", 0.80, 0.18, 0.012)}  # family, $/Mtok, T0, per token
K_VALUES = range(2, 11)


def sig4(x: float) -> float:
    """x to 4 significant digits."""
    return float(f"{x:.4g}")


def variants_of(kind: str) -> list[tuple[str, str]]:
    """The (draft, quant) pairs a device of `kind` measures."""
    out = []
    for draft in DRAFTS:
        for quant in QUANTS:
            if kind == "phone" and not draft.startswith("qwen"):
                continue
            if kind == "rpi4" and quant != "Q4_K_M":
                continue
            out.append((draft, quant))
    return out


def alpha(a: float, k: int) -> float:
    return 1.0 if a >= 1.0 else a * (1.0 - a**k) / (k * (1.0 - a))


def make_device(i: int, rng: random.Random) -> dict[str, Any]:
    kind = rng.choices(list(KINDS), weights=[v[0] for v in KINDS.values()])[0]
    _, memory, speed_x, power_base = KINDS[kind]
    clock = math.exp(rng.gauss(0.0, 0.04))
    power_x = clock**0.8 * math.exp(rng.gauss(0.0, 0.01))
    workload = rng.choice((1.0, 0.94))
    rtt = min(1.0, max(0.005, 0.03 * math.exp(rng.gauss(0.0, 0.4))))
    variants = variants_of(kind)
    if rng.random() < 0.03:
        variants.pop(rng.randrange(len(variants)))
    profiles = []
    for draft, quant in variants:
        _, v_rpi5, per_token = DRAFTS[draft]
        size_x, quant_speed, quant_acc = QUANTS[quant]
        v = v_rpi5 * speed_x * quant_speed * clock * rng.uniform(0.995, 1.005)
        power = power_base * (1 + 0.1 * SIZES[draft] * size_x / 3.4) * power_x
        power *= rng.uniform(0.995, 1.005)
        acceptance = {}
        for target, a in per_token.items():
            base = a * quant_acc
            acceptance[target] = {str(k): sig4(min(1.0, alpha(base, k) * workload
                                                   * rng.uniform(0.996, 1.004)))
                                  for k in K_VALUES}
        profiles.append({"draft": draft, "quant": quant, "draft_tok_s": sig4(v),
                         "power_w": sig4(power), "acceptance": acceptance})
    return {"device": f"d{i:06d}", "kind": kind, "memory_gb": memory,
            "rtt_s": round(rtt, 4), "profiles": profiles}


def base_spec(devices: int) -> str:
    """The base spec: targets, drafts, one device entry per kind, constraints.

    The $/hour cap binds: $0.018 per device and hour, where the goodput-optimal fleet
    spends $0.024 and the cheapest plan meeting the SLO $0.012 (measured on the first
    2,000 devices of seed 27)."""
    lines = ["# Base spec for `configspec group` (benchmarks/gen_device_profiles.py):",
             "# targets, drafts and constraints; the devices come from the pushed profiles.",
             "version: 1", "name: pushed-fleet", "targets:"]
    for name, (family, price, t0, per_tok) in TARGETS.items():
        lines.append(f"  - {{name: {name}, family: {family}, price_usd_per_mtok: {price}, "
                     f"verify_latency_s: {t0}, verify_latency_per_token_s: {per_tok}}}")
    lines.append("drafts:")
    for draft, (family, _, _) in DRAFTS.items():
        quants = ", ".join(f"{q}: {{size_gb: {round(SIZES[draft] * QUANTS[q][0], 2)}}}"
                           for q in QUANTS)
        lines.append(f"  - {{name: {draft}, family: {family}, quants: {{{quants}}}}}")
    lines.append("devices:  # one entry per kind: memory, SLO; `group` makes the pools")
    for kind, (_, memory, _, power) in KINDS.items():
        lines.append(f"  - {{name: {kind}, count: 1, memory_gb: {memory}, power_w: {power}}}")
    cap = round(devices * 0.018, 2)
    lines += ["search:", "  k: {min: 2, max: 10}", "objective:", "  maximize: goodput",
              "constraints:", "  per_device: {min_goodput_tok_s: 2.0}",
              f"  fleet: {{max_cost_usd_per_hour: {cap}}}", ""]
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--devices", type=int, default=100_000)
    ap.add_argument("--seed", type=int, default=27)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--format", choices=("jsonl", "csv"), default="jsonl")
    ap.add_argument("--spec-out", type=Path)
    args = ap.parse_args()
    rng = random.Random(args.seed)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with args.out.open("w", newline="") as f:
        if args.format == "jsonl":
            for i in range(args.devices):
                f.write(json.dumps(make_device(i, rng), separators=(",", ":")) + "\n")
        else:
            ks = [f"k{k}" for k in K_VALUES]
            w = csv.writer(f, lineterminator="\n")
            w.writerow(["device", "kind", "memory_gb", "rtt_s", "draft", "quant",
                        "draft_tok_s", "power_w", "target", *ks])
            for i in range(args.devices):
                d = make_device(i, rng)
                for p in d["profiles"]:
                    for target, table in p["acceptance"].items():
                        w.writerow([d["device"], d["kind"], d["memory_gb"], d["rtt_s"],
                                    p["draft"], p["quant"], p["draft_tok_s"], p["power_w"],
                                    target, *(table[str(k)] for k in K_VALUES)])
    if args.spec_out is not None:
        args.spec_out.parent.mkdir(parents=True, exist_ok=True)
        args.spec_out.write_text(base_spec(args.devices))


if __name__ == "__main__":
    main()
