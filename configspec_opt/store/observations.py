"""Observations in the store: what a batch adds, the window drift is judged on, retention.

Three tables (models.py), each bounded:

* `observed_series`: per reporter and configuration, the last cumulative
  counters, so the next report adds only its increase (one row per reporter);
* `observed_totals`: per configuration, everything added since the store
  began: counters and sums of readings, read by /metrics;
* `observed_window`: the same per time bucket (`bucket_s`), on which drift is
  judged; buckets older than the window are pruned.

A batch is one transaction: the reporters' rows are locked (PostgreSQL: `FOR
UPDATE`, in key order; SQLite: the write lock every transaction takes), the
increments computed (`drift.observations.tally`, which refuses counters that
went backwards), then totals and the bucket are added to with one upsert per
table.  Size is bounded twice: `prune` forgets buckets past the window and
reporters and configurations silent for `keep_days`, and a batch that would
create configurations or reporters beyond the limits is refused (`Full`).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, func, select, tuple_, update
from sqlalchemy.orm import Session

from configspec_opt.drift.compare import Observed
from configspec_opt.drift.observations import (
    READINGS,
    ZERO,
    ConfigKey,
    Counts,
    Observation,
    SeriesKey,
    Tally,
    tally,
)
from configspec_opt.store.models import (
    ObservedSeries,
    ObservedTotal,
    ObservedWindow,
    utcnow,
)

KEY = ("device", "target", "draft", "quant", "k")
SERIES_KEY = ("source", *KEY)
MAX_CONFIGURATIONS = 100_000
MAX_SERIES = 1_000_000
CHUNK = 400  # keys per IN (...) list: SQLite's parameter limit is 32,766


class Full(Exception):
    """The batch would create more configurations or reporters than the store keeps."""


@dataclass(frozen=True)
class Ingested:
    """What one batch did: reports read, configurations and reporters it moved."""

    observations: int
    configurations: int
    series: int


def _insert(s: Session, model: Any) -> Any:
    dialect = s.get_bind().dialect.name
    if dialect == "sqlite":
        from sqlalchemy.dialects import sqlite

        return sqlite.insert(model)
    if dialect == "postgresql":
        from sqlalchemy.dialects import postgresql

        return postgresql.insert(model)
    raise RuntimeError(f"observations need SQLite or PostgreSQL, not {dialect}")


def _chunks(keys: list[Any]) -> list[list[Any]]:
    return [keys[i:i + CHUNK] for i in range(0, len(keys), CHUNK)]


def _previous(s: Session, keys: list[SeriesKey]) -> dict[SeriesKey, Counts]:
    """The stored counters of these reporters, their rows locked until the commit."""
    if not keys:
        return {}
    now = utcnow()
    zero = [dict(zip(SERIES_KEY, k, strict=True)) | {
        "drafts": 0, "draft_tokens": 0, "accepted_tokens": 0, "updated_at": now} for k in keys]
    # every row exists before it is locked, so two first reports of one reporter queue
    s.execute(_insert(s, ObservedSeries).on_conflict_do_nothing(), zero)
    cols = [getattr(ObservedSeries, c) for c in SERIES_KEY]
    out: dict[SeriesKey, Counts] = {}
    for part in _chunks(keys):
        stmt = select(ObservedSeries).where(tuple_(*cols).in_(part)).order_by(*cols)
        for r in s.scalars(stmt.with_for_update()):
            out[(r.source, r.device, r.target, r.draft, r.quant, r.k)] = (
                r.drafts, r.draft_tokens, r.accepted_tokens)
    return {k: v for k, v in out.items() if v != ZERO}


def _existing(s: Session, model: Any, names: tuple[str, ...], keys: list[Any]) -> set[Any]:
    cols = [getattr(model, c) for c in names]
    found: set[Any] = set()
    for part in _chunks(keys):
        found.update(tuple(r) for r in s.execute(select(*cols).where(tuple_(*cols).in_(part))))
    return found


def _check_room(s: Session, configs: list[ConfigKey], series: list[SeriesKey],
                max_configs: int, max_series: int) -> None:
    new = len(configs) - len(_existing(s, ObservedTotal, KEY, configs)) if configs else 0
    if new and (s.scalar(select(func.count()).select_from(ObservedTotal)) or 0) + new \
            > max_configs:
        raise Full(f"the store keeps at most {max_configs:,} observed configurations; "
                   "configurations silent for --keep-days are forgotten")
    if series and (s.scalar(select(func.count()).select_from(ObservedSeries)) or 0) \
            > max_series:
        raise Full(f"the store keeps at most {max_series:,} reporters' counters; "
                   "reporters silent for --keep-days are forgotten")


def _row(key: ConfigKey, t: Tally) -> dict[str, Any]:
    row: dict[str, Any] = dict(zip(KEY, key, strict=True))
    row.update(reports=t.reports, drafts=t.drafts, draft_tokens=t.draft_tokens,
               accepted_tokens=t.accepted_tokens)
    for m in READINGS:
        row[f"{m}_sum"] = t.sums.get(m, 0.0)
        row[f"{m}_n"] = t.counts.get(m, 0)
    return row


SUMMED = ("reports", "drafts", "draft_tokens", "accepted_tokens",
          *(f"{m}_{part}" for m in READINGS for part in ("sum", "n")))


def _add(s: Session, model: Any, rows: list[dict[str, Any]], conflict: tuple[str, ...],
         extra: dict[str, Any]) -> None:
    """Insert each row, or add its sums to the row already there (one statement, many rows)."""
    stmt = _insert(s, model)
    update = {c: getattr(model, c) + getattr(stmt.excluded, c) for c in SUMMED}
    update.update({c: getattr(stmt.excluded, c) for c in extra})
    s.execute(stmt.on_conflict_do_update(index_elements=list(conflict), set_=update),
              [r | extra for r in rows])


def ingest(s: Session, observations: list[Observation], *, bucket_s: int,
           now: float | None = None, max_configs: int = MAX_CONFIGURATIONS,
           max_series: int = MAX_SERIES) -> Ingested:
    """Add a validated batch (module docstring); CounterRefused or Full leave nothing behind
    once the caller's transaction rolls back."""
    series = sorted({o.series for o in observations if o.spec_decode is not None})
    previous = _previous(s, series)
    tallies, latest = tally(observations, previous)
    configs = sorted(tallies)
    _check_room(s, configs, series, max_configs, max_series)
    stamp = utcnow()
    if latest:  # ORM bulk UPDATE by primary key: one executemany
        s.execute(update(ObservedSeries), [
            dict(zip(SERIES_KEY, k, strict=True)) | {
                "drafts": n[0], "draft_tokens": n[1], "accepted_tokens": n[2],
                "updated_at": stamp} for k, n in sorted(latest.items())])
    rows = [_row(k, tallies[k]) for k in configs]
    _add(s, ObservedTotal, rows, KEY, {"updated_at": stamp})
    bucket = int((now if now is not None else time.time()) // bucket_s * bucket_s)
    _add(s, ObservedWindow, rows, (*KEY, "bucket"), {"bucket": bucket})
    return Ingested(len(observations), len(configs), len(latest))


def _observed(r: Any) -> Observed:
    return Observed(int(r.reports), int(r.drafts), int(r.draft_tokens), int(r.accepted_tokens),
                    {m: float(getattr(r, f"{m}_sum")) for m in READINGS},
                    {m: int(getattr(r, f"{m}_n")) for m in READINGS})


def window(s: Session, *, window_s: float, now: float | None = None
           ) -> dict[ConfigKey, Observed]:
    """Per configuration, what the buckets of the last `window_s` seconds add up to."""
    since = int((now if now is not None else time.time()) - window_s)
    cols = [getattr(ObservedWindow, c) for c in KEY]
    sums = [func.sum(getattr(ObservedWindow, c)).label(c) for c in SUMMED]
    stmt = select(*cols, *sums).where(ObservedWindow.bucket >= since).group_by(*cols)
    return {(r.device, r.target, r.draft, r.quant, int(r.k)): _observed(r)
            for r in s.execute(stmt)}


def totals(s: Session) -> list[tuple[ConfigKey, Observed]]:
    """Every configuration's totals since the store began, in key order (for /metrics)."""
    rows = s.scalars(select(ObservedTotal).order_by(*(getattr(ObservedTotal, c) for c in KEY)))
    return [((r.device, r.target, r.draft, r.quant, r.k), _observed(r)) for r in rows]


@dataclass(frozen=True)
class PrunedObservations:
    """Rows one prune removed: window buckets, reporters and configurations."""

    buckets: int
    series: int
    configurations: int


def prune(s: Session, *, window_s: float, keep_days: float | None,
          now: datetime | None = None) -> PrunedObservations:
    """Forget buckets older than the window, and reporters and configurations silent for
    `keep_days` (None: kept; their totals are what /metrics counts)."""
    at = now or utcnow()
    oldest = int(at.timestamp() - window_s)
    gone = s.execute(delete(ObservedWindow).where(ObservedWindow.bucket < oldest)
                     .execution_options(synchronize_session=False))
    series = configs = 0
    if keep_days is not None:
        cutoff = at - timedelta(days=keep_days)
        series = _rowcount(s.execute(delete(ObservedSeries).where(
            ObservedSeries.updated_at < cutoff).execution_options(synchronize_session=False)))
        configs = _rowcount(s.execute(delete(ObservedTotal).where(
            ObservedTotal.updated_at < cutoff).execution_options(synchronize_session=False)))
    return PrunedObservations(_rowcount(gone), series, configs)


def _rowcount(result: Any) -> int:
    return int(getattr(result, "rowcount", 0) or 0)
