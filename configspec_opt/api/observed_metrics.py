"""The stored observation totals as Prometheus families, for /metrics (docs/drift.md).

One series per observed configuration (device, target, draft, quant, K):
counters of draft rounds, drafted and accepted tokens (what the reporters'
own counters added since the store began), reports, and per reading
(`draft_tok_s`, `rtt_s`, `verify_step_s`) how many were reported and their
sum, so `rate(sum) / rate(count)` is the mean over any range.  The number of
series is bounded by the store's limit on configurations.
"""

from __future__ import annotations

from collections.abc import Callable

from configspec_opt.api.telemetry import Gauge, Labels
from configspec_opt.drift.compare import Observed
from configspec_opt.drift.observations import READINGS, ConfigKey

KEY = ("device", "target", "draft", "quant", "k")


def _labels(key: ConfigKey) -> Labels:
    return tuple((name, str(v)) for name, v in zip(KEY, key, strict=True))


def observed_gauges(rows: list[tuple[ConfigKey, Observed]]) -> list[Gauge]:
    """The families of the module docstring (none when nothing was observed)."""
    if not rows:
        return []
    counters: tuple[tuple[str, str, Callable[[Observed], int]], ...] = (
        ("configspec_observed_draft_rounds_total", "Draft rounds reported (spec_decode "
         "num_drafts added since the store began).", lambda o: o.drafts),
        ("configspec_observed_draft_tokens_total", "Drafted tokens reported.",
         lambda o: o.draft_tokens),
        ("configspec_observed_accepted_tokens_total", "Accepted drafted tokens reported.",
         lambda o: o.accepted_tokens),
        ("configspec_observed_reports_total", "Observations stored.", lambda o: o.reports),
    )
    out = [Gauge(name, text, [(_labels(k), float(get(o))) for k, o in rows], kind="counter")
           for name, text, get in counters]
    out.append(Gauge("configspec_observed_readings_total", "Readings reported, by metric "
                     "(draft_tok_s, rtt_s, verify_step_s).",
                     [((*_labels(k), ("metric", m)), float(o.counts.get(m, 0)))
                      for k, o in rows for m in READINGS], kind="counter"))
    out.append(Gauge("configspec_observed_readings_sum", "Sum of the readings reported, by "
                     "metric: divided by configspec_observed_readings_total, their mean.",
                     [((*_labels(k), ("metric", m)), o.sums.get(m, 0.0))
                      for k, o in rows for m in READINGS], kind="counter"))
    return out
