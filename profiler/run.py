"""One profiling session on one device: every planned variant against every target.

Order of work per variant: load the draft, check it shares the target's
tokenizer, warm up, read idle power, then the draft passes over the
target's sequences (computed once per target and reused by every draft)
with the power sampler running; alpha(K) comes from the first pass per
target, v_d from every repeat.  Each finished variant is handed to
`on_profile` at once, so an interrupted session keeps what it measured.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import platform
import statistics
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import metadata
from typing import Any, Protocol

from profiler.acceptance import KEstimate, greedy_alpha, sampled_alpha
from profiler.chat import render
from profiler.draft_pass import PassResult, draft_pass
from profiler.engine import Engine, EngineSettings
from profiler.http import HttpPolicy
from profiler.paths import file_sha256, require_model_file
from profiler.plan import TargetRef, Variant
from profiler.power import PowerSampler, PowerSource
from profiler.prompts import Prompt
from profiler.targets import LocalTarget, RemoteTarget, Sampling, Target, TargetSequence
from profiler.throughput import DEFAULT_MAX_SPREAD, Throughput
from profiler.verify_latency import local_verify_latency, record, remote_verify_latency


class Reporter(Protocol):
    """Where progress and warnings go (a rich progress bar in the CLI)."""

    def start(self, description: str, total: int) -> None:
        """Begin a step of `total` units (a new progress bar)."""

    def advance(self, n: int = 1) -> None:
        """`n` more units of the current step are done."""

    def finish(self) -> None:
        """The current step is over."""

    def warn(self, message: str) -> None:
        """Something the user should know about the measurement; it must not be lost."""


class QuietReporter:
    """A `Reporter` that shows nothing but keeps the warnings, for callers without a terminal."""

    def __init__(self) -> None:
        self.warnings: list[str] = []

    def start(self, description: str, total: int) -> None:
        """Nothing is shown."""
        pass

    def advance(self, n: int = 1) -> None:
        """Nothing is shown."""
        pass

    def finish(self) -> None:
        """Nothing is shown."""
        pass

    def warn(self, message: str) -> None:
        """Keep the warning for the caller to report."""
        self.warnings.append(message)


@dataclass(frozen=True)
class RunOptions:
    """How a profiling run measures; its measurement settings go into each provenance.

    `repeats` timed passes (the first also estimates alpha); `warmup_tokens`
    decoded untimed first; `idle_s` seconds of idle power measured before
    each variant (0: none); `verify` also measures the target's verification
    latency per K; `max_spread` is the relative spread of draft speed between
    repeats above which the result is flagged unstable.
    """

    ks: list[int]
    prompts: list[Prompt]
    prompts_source: str = "bundled"
    max_new_tokens: int = 64
    repeats: int = 3
    warmup_tokens: int = 16
    sampling: Sampling = field(default_factory=Sampling)
    settings: EngineSettings = field(default_factory=EngineSettings)
    chat: bool | None = None
    idle_s: float = 2.0
    verify: bool = False
    max_spread: float = DEFAULT_MAX_SPREAD
    http: HttpPolicy = field(default_factory=HttpPolicy)


@dataclass
class _TargetState:
    ref: TargetRef
    backend: Target
    sequences: list[TargetSequence] = field(default_factory=list)
    verify: dict[str, Any] | None = None


def llama_cpp_version() -> str:
    """The installed llama-cpp-python's version for provenance ("unknown" when absent)."""
    try:
        return metadata.version("llama_cpp_python")
    except metadata.PackageNotFoundError:
        return "unknown"


class ProfileSession:
    """Profiles the variants of one device; each target is run once and reused across variants.

    A target's model and its continuations stay loaded for the session, so
    call `close` when done: local targets hold their model.
    """

    def __init__(self, device: str, options: RunOptions, reporter: Reporter,
                 power: PowerSource | None, power_note: dict[str, Any]) -> None:
        self.device = device
        self.opt = options
        self.reporter = reporter
        self.power = power
        self.power_note = power_note
        self._targets: dict[str, _TargetState] = {}

    def close(self) -> None:
        """Free the local targets' models; the session cannot measure afterwards."""
        for st in self._targets.values():
            if isinstance(st.backend, LocalTarget):
                st.backend.engine.close()
        self._targets.clear()

    # --- targets -------------------------------------------------------------

    def _target(self, ref: TargetRef) -> _TargetState:
        st = self._targets.get(ref.target.name)
        if st is None:
            backend: Target
            if ref.path is not None:
                what = f"target '{ref.target.name}'"
                path = require_model_file(ref.path, what)
                backend = LocalTarget(ref.target.name, Engine(path, self.opt.settings, what=what),
                                      file_sha256(path))
            else:
                assert ref.target.endpoint is not None
                backend = RemoteTarget(ref.target.name, ref.target.endpoint, self.opt.http)
            st = _TargetState(ref, backend)
            self._targets[ref.target.name] = st
        return st

    def _sequences(self, st: _TargetState, draft: Engine) -> list[TargetSequence]:
        if st.sequences:
            return st.sequences
        fmt = st.backend.engine if isinstance(st.backend, LocalTarget) else draft
        self.reporter.start(f"target {st.ref.target.name}: greedy continuations"
                            if self.opt.sampling.greedy else
                            f"target {st.ref.target.name}: sampled continuations",
                            len(self.opt.prompts))
        for p in self.opt.prompts:
            text = render(fmt, p.text, chat=self.opt.chat)
            seq = st.backend.continuation(draft, text, self.opt.max_new_tokens, self.opt.sampling)
            for note in seq.notes:
                self.reporter.warn(f"target {st.ref.target.name}: {note}")
            st.sequences.append(seq)
            self.reporter.advance()
        self.reporter.finish()
        if self.opt.verify:
            st.verify = self._verify_latency(st, draft)
        return st.sequences

    def _verify_latency(self, st: _TargetState, draft: Engine) -> dict[str, Any]:
        seq = st.sequences[0]
        if isinstance(st.backend, LocalTarget):
            return record(local_verify_latency(st.backend.engine, seq, self.opt.ks))
        assert isinstance(st.backend, RemoteTarget)
        lat, rtt = remote_verify_latency(st.backend, draft, seq, self.opt.ks)
        return record(lat, rtt)

    # --- one variant ------------------------------------------------------------

    def measure(self, v: Variant, targets: list[TargetRef]) -> dict[str, Any]:
        """Measure one (draft, quant) and return its profile entry (plain data)."""
        what = f"draft '{v.draft}' quant '{v.quant}'"
        path = require_model_file(v.path, what)
        sha = file_sha256(path)
        pairs = [t for t in targets if t.target.family == v.family]
        if not pairs:
            raise_no_pair(v, targets)
        warnings: list[str] = []
        with Engine(path, self.opt.settings, what=what) as draft:
            states = [self._target(ref) for ref in pairs]
            tok_checks = {st.ref.target.name: st.backend.check_tokenizer(draft) for st in states}
            for st in states:
                self._sequences(st, draft)
            self._warm_up(draft, states[0].sequences[0])
            idle = self._idle_power()
            passes, timing, power = self._passes(v, draft, states)
        estimates = {name: self._alpha(res) for name, res in passes.items()}
        by_class = self._alpha_by_class(passes)
        thr = Throughput([t[0] for t in timing], [t[1] for t in timing], timing[0][2],
                         self.opt.max_spread)
        w = thr.warning(v.label)
        if w:
            warnings.append(w)
            self.reporter.warn(w)
        entry = self._entry(v, sha, thr, estimates, power, idle, tok_checks, states, warnings)
        if by_class:
            entry["acceptance_by_class"] = {
                cls: {name: {k: round(e.alpha, 4) for k, e in est.items()}
                      for name, est in per_target.items()}
                for cls, per_target in by_class.items()}
            entry["provenance"]["acceptance_by_class"] = {
                cls: {name: {"prompts": next(iter(est.values())).prompts if est else 0,
                             "per_k": {k: e.record() for k, e in est.items()}}
                      for name, est in per_target.items()}
                for cls, per_target in by_class.items()}
        return entry

    def _alpha_by_class(self, passes: dict[str, list[PassResult]]
                        ) -> dict[str, dict[str, dict[int, KEstimate]]]:
        """alpha per prompt class and target, from the same passes split by prompt (none
        unless the prompts span two or more classes)."""
        classes = [p.prompt_class for p in self.opt.prompts]
        names = list(dict.fromkeys(c for c in classes if c is not None))
        if len(names) < 2:
            return {}
        return {cls: {target: self._alpha([r for r, c in zip(results, classes, strict=True)
                                           if c == cls])
                      for target, results in passes.items()}
                for cls in names}

    def _warm_up(self, draft: Engine, seq: TargetSequence) -> None:
        """Page the weights in and spin the thread pool up before anything is timed."""
        tokens = (seq.prompt_tokens + seq.tokens)[: self.opt.warmup_tokens + 1]
        draft.reset()
        draft.feed(tokens[:1])
        for t in tokens[1:]:
            draft.step(t)

    def _idle_power(self) -> Any:
        if self.power is None or self.opt.idle_s <= 0:
            return None
        import time

        with PowerSampler(self.power) as s:
            time.sleep(self.opt.idle_s)
        return s.summary

    def _passes(self, v: Variant, draft: Engine, states: list[_TargetState]
                ) -> tuple[dict[str, list[PassResult]], list[tuple[float, float, int]], Any]:
        """First pass per target (alpha), extra repeats on the first target (v_d spread)."""
        first = states[0]
        total = sum(len(st.sequences) for st in states) + \
            (self.opt.repeats - 1) * len(first.sequences)
        self.reporter.start(f"{v.label}: drafting", total)
        passes: dict[str, list[PassResult]] = {}
        timing: list[tuple[float, float, int]] = []
        sampler = PowerSampler(self.power) if self.power is not None else None
        if sampler is not None:
            sampler.__enter__()
        try:
            for st in states:
                passes[st.ref.target.name] = self._one_repeat(draft, st.sequences)
            timing.append(_rate(passes[first.ref.target.name]))
            for _ in range(self.opt.repeats - 1):
                again = self._one_repeat(draft, first.sequences)
                if [r.matches for r in again] != [r.matches for r in passes[first.ref.target.name]]:
                    self.reporter.warn(f"{v.label}: draft argmax changed between repeats "
                                       "(non-deterministic kernels?); alpha uses the first pass")
                timing.append(_rate(again))
        finally:
            if sampler is not None:
                sampler.__exit__(None, None, None)
            self.reporter.finish()
        return passes, timing, sampler.summary if sampler is not None else None

    def _one_repeat(self, draft: Engine, seqs: list[TargetSequence]) -> list[PassResult]:
        out = []
        for seq in seqs:
            out.append(draft_pass(draft, seq, self.opt.sampling))
            self.reporter.advance()
        return out

    def _alpha(self, results: list[PassResult]) -> dict[int, KEstimate]:
        if self.opt.sampling.greedy:
            return greedy_alpha(self.opt.ks, [r.matches for r in results])
        return sampled_alpha(self.opt.ks, [r.betas or [] for r in results])

    # --- the entry --------------------------------------------------------------

    def _entry(self, v: Variant, sha: str, thr: Throughput,
               estimates: dict[str, dict[int, KEstimate]], power: Any, idle: Any,
               tok_checks: dict[str, Any], states: list[_TargetState],
               warnings: list[str]) -> dict[str, Any]:
        entry: dict[str, Any] = {"device": self.device, "draft": v.draft, "quant": v.quant,
                                 "draft_tok_s": round(thr.median, 2)}
        if power is not None:
            entry["power_w"] = round(power.mean_w, 3)
            if idle is not None:
                entry["idle_power_w"] = round(idle.mean_w, 3)
        entry["acceptance"] = {name: {k: round(e.alpha, 4) for k, e in est.items()}
                               for name, est in estimates.items()}
        entry["full_accept"] = {name: {k: round(e.full / e.rounds, 4) if e.rounds else 0.0
                                       for k, e in est.items()}
                                for name, est in estimates.items()}
        o = self.opt
        prompt_hash = hashlib.sha256("\0".join(p.text for p in o.prompts).encode()).hexdigest()
        rounds = {name: min((e.rounds for e in est.values()), default=0)
                  for name, est in estimates.items()}
        entry["provenance"] = {
            "tool": "configspec profile",
            "measured_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
            "host": platform.node(),
            "machine": f"{platform.system()} {platform.machine()}, {os.cpu_count()} cpus",
            "load_avg_1m": round(os.getloadavg()[0], 2) if hasattr(os, "getloadavg") else None,
            "llama_cpp_python": llama_cpp_version(),
            "gguf": {"file": v.gguf_ref, "sha256": sha},
            "settings": {**o.settings.record(), "max_new_tokens": o.max_new_tokens,
                         "repeats": o.repeats, "warmup_tokens": o.warmup_tokens,
                         "chat_template": o.chat, "temperature": o.sampling.temperature,
                         "seed": o.sampling.seed},
            "prompts": {"source": o.prompts_source, "count": len(o.prompts),
                        "sha256": prompt_hash},
            "draft_tok_s": thr.record(),
            "acceptance": {
                st.ref.target.name: {
                    "target": st.backend.describe(),
                    "mode": "greedy" if o.sampling.greedy else "sampled (sum min(p, q))",
                    "tokenizer": tok_checks[st.ref.target.name],
                    "target_tokens": sum(len(s.tokens) for s in st.sequences),
                    "min_rounds": rounds[st.ref.target.name],
                    "per_k": {k: e.record() for k, e in estimates[st.ref.target.name].items()},
                } for st in states},
            "power": self._power_record(power, idle),
            "warnings": warnings,
        }
        verify = {st.ref.target.name: st.verify for st in states if st.verify}
        if verify:
            entry["provenance"]["verify"] = verify
        return entry

    def _power_record(self, power: Any, idle: Any) -> dict[str, Any]:
        if self.power is None:
            return dict(self.power_note)
        rec: dict[str, Any] = {**self.power.describe()}
        if power is not None:
            rec["drafting"] = power.record()
        if idle is not None:
            rec["idle"] = idle.record()
        return rec


def _rate(results: list[PassResult]) -> tuple[float, float, int]:
    """(tok/s by llama.cpp's counters, tok/s by wall clock, tokens) of one repeat."""
    n_eval = sum(r.perf.n_eval for r in results)
    eval_s = sum(r.perf.eval_s for r in results)
    steps = sum(r.steps for r in results)
    wall = sum(r.wall_s for r in results)
    return (n_eval / eval_s if eval_s > 0 else 0.0, steps / wall if wall > 0 else 0.0, steps)


def raise_no_pair(v: Variant, targets: list[TargetRef]) -> None:
    """Raise the UsageError for a draft whose family no selected target shares."""
    from configspec_opt.errors import UsageError

    fams = ", ".join(sorted({f"{t.target.name} ({t.target.family})" for t in targets}))
    raise UsageError(f"{v.label} is of family '{v.family}' but no selected target is "
                     f"(targets: {fams})")


def summarize_entry(entry: dict[str, Any]) -> dict[str, Any]:
    """The short form printed by the CLI and in --json."""
    prov = entry.get("provenance") or {}
    return {
        "draft": entry["draft"], "quant": entry["quant"],
        "draft_tok_s": entry["draft_tok_s"],
        "draft_tok_s_spread": (prov.get("draft_tok_s") or {}).get("spread"),
        "power_w": entry.get("power_w"), "idle_power_w": entry.get("idle_power_w"),
        "acceptance": entry["acceptance"],
        "mean_alpha": {t: round(statistics.fmean(a.values()), 4)
                       for t, a in entry["acceptance"].items() if a},
        "acceptance_by_class": entry.get("acceptance_by_class") or {},
        "mean_alpha_by_class": {
            cls: {t: round(statistics.fmean(a.values()), 4) for t, a in per.items() if a}
            for cls, per in (entry.get("acceptance_by_class") or {}).items()},
        "warnings": prov.get("warnings", []),
        "verify": {t: v["fit"] | ({"rtt_s": v["rtt_s"]} if "rtt_s" in v else {})
                   for t, v in (prov.get("verify") or {}).items()},
    }


OnProfile = Callable[[dict[str, Any]], None]
