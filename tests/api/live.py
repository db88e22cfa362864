"""`configspec serve` as a real process on 127.0.0.1, for end-to-end tests."""

from __future__ import annotations

import functools
import json
import os
import random
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from types import TracebackType

import httpx

STARTUP_S = 60.0


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class LiveServer:
    """One server process (its own process group, so its solver processes go with it)."""

    def __init__(self, db: Path | str, log: Path, *args: str, env: dict[str, str] | None = None,
                 port: int | None = None) -> None:
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        cmd = [str(Path(sys.executable).with_name("configspec")), "serve", "--host", "127.0.0.1",
               "--port", str(self.port), "--db", str(db), "--workers", "1",
               "--log-level", "warning", *args]
        self._log = log.open("ab")
        self.proc = subprocess.Popen(cmd, stdout=self._log, stderr=subprocess.STDOUT,
                                     env={**os.environ, **(env or {})},
                                     start_new_session=True)
        self._wait_ready()

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + STARTUP_S
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited with {self.proc.returncode}")
            try:
                if httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        self.kill()
        raise RuntimeError("server did not become ready")

    def kill(self) -> None:
        """SIGKILL the server and its solver processes: no shutdown code runs."""
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=10)
        self._log.close()

    def stop(self) -> None:
        """SIGTERM to the server, which stops its solver processes itself; SIGKILL if stuck."""
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=10)
        self._log.close()

    def __enter__(self) -> LiveServer:
        return self

    def __exit__(self, *exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        if self.proc.poll() is None:
            self.kill()
        elif not self._log.closed:
            self._log.close()


@functools.cache
def fleet_spec_json(pools: int, k_max: int, seed: int = 7) -> str:
    """A synthetic fleet as JSON (the shape of benchmarks/bench_solve.py), feasible and
    unconstrained, so solves and Pareto fronts of it take long enough to be watched:
    20 pools, K 1-10: a whole Pareto front is about 40 s of MILPs on 2 cores;
    1000 pools, K 1-64: 1.7 MB and about 10 s to build the candidates alone."""
    rng = random.Random(seed)
    drafts = [("llama-1b", 0.8), ("llama-3b", 2.0), ("llama-8b", 4.9), ("llama-13b", 7.5)]
    quants = [("Q4_K_M", 1.0), ("Q6_K", 1.35), ("Q8_0", 1.7)]
    platforms = [(4, 6.0, 1.0), (8, 8.0, 1.5), (16, 25.0, 3.0), (64, 45.0, 9.0)]
    devices, profiles = [], []
    for i in range(pools):
        mem, power, speed = rng.choice(platforms)
        name = f"pool-{i:04d}"
        devices.append({"name": name, "count": rng.randint(1, 40), "memory_gb": mem,
                        "rtt_s": round(rng.uniform(0.0, 0.08), 3)})
        for d, (draft, size) in enumerate(drafts):
            for quant, qmul in quants:
                a = min(0.95, 0.72 + 0.05 * d + 0.02 * qmul + rng.uniform(-0.03, 0.03))
                v = speed * 40.0 / (size * qmul) * rng.uniform(0.8, 1.2)
                profiles.append({
                    "device": name, "draft": draft, "quant": quant,
                    "draft_tok_s": round(v, 3), "power_w": round(power * rng.uniform(0.9, 1.1), 2),
                    "acceptance": {"llama-70b": {"per_token": round(a, 4)}}})
    return json.dumps({
        "version": 1, "name": f"fleet-{pools}",
        "targets": [{"name": "llama-70b", "family": "llama", "price_usd_per_mtok": 0.9,
                     "verify_latency_s": 0.5}],
        "drafts": [{"name": d, "family": "llama",
                    "quants": {q: {"size_gb": round(size * m, 2)} for q, m in quants}}
                   for d, size in drafts],
        "devices": devices, "profiles": profiles,
        "search": {"k": {"min": 1, "max": k_max}},
        "objective": {"maximize": "goodput"},
    })
