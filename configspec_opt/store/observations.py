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
went backwards), then the reporters' rows, the totals and the bucket are
written with one multi-row upsert each (`_upsert` says why as SQL text).
Size is bounded twice: `prune` forgets buckets past the window and
reporters and configurations silent for `keep_days`, and a batch that would
create configurations or reporters beyond the limits is refused (`Full`).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import BigInteger, DateTime, Float, Integer, delete, func, select
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
CHUNK = 1000  # names per IN (...) list: SQLite's parameter limit is 32,766


class Full(Exception):
    """The batch would create more configurations or reporters than the store keeps."""


@dataclass(frozen=True)
class Ingested:
    """What one batch did: reports read, configurations and reporters it moved."""

    observations: int
    configurations: int
    series: int


SERIES = ObservedSeries.__table__
TOTALS = ObservedTotal.__table__
WINDOW = ObservedWindow.__table__


def _array_type(column: Any) -> str:
    kind = column.type
    if isinstance(kind, BigInteger):
        return "bigint[]"
    if isinstance(kind, Integer):
        return "integer[]"
    if isinstance(kind, Float):
        return "double precision[]"
    if isinstance(kind, DateTime):
        return "timestamptz[]"
    return "text[]"


def _upsert(s: Session, table: Any, rows: list[dict[str, Any]], conflict: tuple[str, ...],
            assignments: dict[str, str] | None) -> None:
    """INSERT ... ON CONFLICT (...) DO UPDATE SET / DO NOTHING of the whole batch in one
    statement, in the syntax SQLite and PostgreSQL share.

    Written as SQL text with bound parameters, not with SQLAlchemy's expression
    language: compiling a statement of 1,600 parameters cost more than running it,
    and an executemany is one statement per row on psycopg.  PostgreSQL gets one array
    per column (`SELECT * FROM unnest(...)`): a short text psycopg parses and prepares
    once, where a VALUES list as long as the batch is parsed again in Python every
    time; SQLite gets the VALUES list.  Values pass through the columns' own bind
    processors, so SQLite stores datetimes as SQLAlchemy reads them.
    """
    dialect = s.get_bind().dialect
    quote = dialect.identifier_preparer.quote
    cols = list(rows[0])
    action = "NOTHING" if not assignments else "UPDATE SET " + ", ".join(
        f"{quote(c)} = {expr}" for c, expr in assignments.items())
    head = f"INSERT INTO {quote(table.name)} ({', '.join(map(quote, cols))}) "
    tail = f" ON CONFLICT ({', '.join(map(quote, conflict))}) DO {action}"
    if dialect.name == "postgresql":
        arrays = ", ".join(f"%s::{_array_type(table.c[c])}" for c in cols)
        s.connection().exec_driver_sql(f"{head}SELECT * FROM unnest({arrays}){tail}",
                                       tuple([r[c] for r in rows] for c in cols))
        return
    if dialect.name != "sqlite":
        raise RuntimeError(f"observations need SQLite or PostgreSQL, not {dialect.name}")
    procs = [table.c[c].type.dialect_impl(dialect).bind_processor(dialect) for c in cols]
    params: list[Any] = []
    for r in rows:
        params.extend(p(r[c]) if p is not None else r[c] for c, p in zip(cols, procs,
                                                                           strict=True))
    one = "(" + ", ".join(["?"] * len(cols)) + ")"
    s.connection().exec_driver_sql(f"{head}VALUES {', '.join([one] * len(rows))}{tail}",
                                   tuple(params))


def _chunks(keys: list[Any]) -> list[list[Any]]:
    return [keys[i:i + CHUNK] for i in range(0, len(keys), CHUNK)]


def _previous(s: Session, keys: list[SeriesKey]) -> dict[SeriesKey, Counts]:
    """The stored counters of these reporters, their rows locked until the commit.

    Looked up by source alone (one short IN list; a reporter has few configurations)
    and matched here.  On PostgreSQL every row is inserted first (zeros, where none
    was), so that two first reports of one reporter queue on its row lock.
    """
    if not keys:
        return {}
    postgres = s.get_bind().dialect.name == "postgresql"
    if postgres:
        now = utcnow()
        _upsert(s, SERIES, [dict(zip(SERIES_KEY, k, strict=True)) | {
            "drafts": 0, "draft_tokens": 0, "accepted_tokens": 0, "updated_at": now}
            for k in keys], SERIES_KEY, None)
    wanted = set(keys)
    out: dict[SeriesKey, Counts] = {}
    for r in _by_name(s, SERIES, "source", sorted({k[0] for k in keys}),
                      (*SERIES_KEY, "drafts", "draft_tokens", "accepted_tokens"),
                      lock=postgres):
        key = (r[0], r[1], r[2], r[3], r[4], int(r[5]))
        if key in wanted and (r[6], r[7], r[8]) != ZERO:
            out[key] = (int(r[6]), int(r[7]), int(r[8]))
    return out


def _by_name(s: Session, table: Any, name: str, values: list[str], columns: tuple[str, ...],
             *, lock: bool = False) -> list[Any]:
    """Rows whose `name` is one of `values`; with `lock` (PostgreSQL), locked in key order.

    PostgreSQL reads `= ANY(array)`: one short text, parsed and prepared once, whatever
    the number of values; SQLite an IN list.
    """
    if s.get_bind().dialect.name == "postgresql":
        q = s.get_bind().dialect.identifier_preparer.quote
        order = f" ORDER BY {', '.join(map(q, table.primary_key.columns.keys()))} FOR UPDATE" \
            if lock else ""
        return list(s.connection().exec_driver_sql(
            f"SELECT {', '.join(map(q, columns))} FROM {q(table.name)} "
            f"WHERE {q(name)} = ANY(%s::text[]){order}", (values,)))
    c = table.c
    return [r for part in _chunks(values) for r in s.execute(
        select(*(c[n] for n in columns)).where(c[name].in_(part)))]


def _new_configs(s: Session, configs: list[ConfigKey]) -> int:
    found = {(r[0], r[1], r[2], r[3], int(r[4])) for r in _by_name(
        s, TOTALS, "device", sorted({k[0] for k in configs}), KEY)}
    return len(set(configs) - found)


def _check_room(s: Session, configs: list[ConfigKey], new_series: int,
                max_configs: int, max_series: int) -> None:
    """Count the tables only when the batch adds rows to them (a count scans)."""
    new = _new_configs(s, configs) if configs else 0
    if new and (s.scalar(select(func.count()).select_from(TOTALS)) or 0) + new \
            > max_configs:
        raise Full(f"the store keeps at most {max_configs:,} observed configurations; "
                   "configurations silent for --keep-days are forgotten")
    if new_series and (s.scalar(select(func.count()).select_from(SERIES)) or 0) \
            + new_series > max_series:
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


def _add(s: Session, table: Any, rows: list[dict[str, Any]], conflict: tuple[str, ...],
         extra: dict[str, Any]) -> None:
    """Insert each row, or add its sums to the row already there."""
    q = s.get_bind().dialect.identifier_preparer.quote
    update = {c: f"{q(table.name)}.{q(c)} + excluded.{q(c)}" for c in SUMMED}
    update.update({c: f"excluded.{q(c)}" for c in extra})
    _upsert(s, table, [r | extra for r in rows], conflict, update)


def ingest(s: Session, observations: list[Observation], *, bucket_s: int,
           now: float | None = None, max_configs: int = MAX_CONFIGURATIONS,
           max_series: int = MAX_SERIES) -> Ingested:
    """Add a validated batch (module docstring); CounterRefused or Full leave nothing behind
    once the caller's transaction rolls back."""
    series = sorted({o.series for o in observations if o.spec_decode is not None})
    previous = _previous(s, series)
    tallies, latest = tally(observations, previous)
    configs = sorted(tallies)
    _check_room(s, configs, len(series) - len(previous), max_configs, max_series)
    stamp = utcnow()
    if latest:
        _upsert(s, SERIES, [dict(zip(SERIES_KEY, k, strict=True)) | {
            "drafts": n[0], "draft_tokens": n[1], "accepted_tokens": n[2],
            "updated_at": stamp} for k, n in sorted(latest.items())], SERIES_KEY,
            {c: f"excluded.{c}" for c in ("drafts", "draft_tokens", "accepted_tokens",
                                          "updated_at")})
    rows = [_row(k, tallies[k]) for k in configs]
    _add(s, TOTALS, rows, KEY, {"updated_at": stamp})
    bucket = int((now if now is not None else time.time()) // bucket_s * bucket_s)
    _add(s, WINDOW, rows, (*KEY, "bucket"), {"bucket": bucket})
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
