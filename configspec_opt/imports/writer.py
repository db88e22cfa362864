"""Imported numbers merged into a spec's profiles, with the profiler's round-trip writer.

A profile is updated where it lives (the spec itself or a `profiles_from`
file).  The entry handed to `profiler.writeback` is the file's own entry with
only the imported values changed, so keys nobody imported stay as written and
`git diff` shows the new numbers and their provenance.  Acceptance tables are
merged per K (K values not imported keep their values); a compact
`{per_token: a}` is replaced by the measured table, and the result says so.
The new texts of every file are validated together, in memory, before anything
is written; then each file is replaced atomically by the one writer
(`files.write_output`: temporary file, fsync, rename), the `profiles_from` files
first and the spec last.  A kill between two renames leaves the profiles files
new and the spec old: they hold the same profiles (an import adds new ones to
the spec only), so that state loads too; a Ctrl-C or a failed write puts back
the files already written.

Imported values are first checked against the spec's own rules for them (the
`Profile` model's fields), so that a value out of range is blamed on the input it
came from (exit 4), not on the spec (`check_imported`).  A table that keeps K values
from another source says so in its provenance: the target's record lists the K
values it wrote (`k_values`, `full_accept_k_values`) and, under `kept`, every
earlier source still behind a K of the table, with those K; `kept_warnings` turns
that into what the command prints, and `ProfileUpdate.replace` drops them instead.
"""

from __future__ import annotations

import contextlib
import copy
import difflib
import functools
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

from pydantic import TypeAdapter, ValidationError
from ruamel.yaml import YAML

from configspec_opt.errors import OutputError, UsageError
from configspec_opt.files import write_output
from configspec_opt.imports.source import ImportInputError
from configspec_opt.loader import LoadedSpec, Source, load_spec, parse_data, parse_spec
from configspec_opt.spec import Profile, Spec

KEY = ("device", "draft", "quant")


@dataclass
class ProfileUpdate:
    """What one import changes in one (device, draft, quant) profile."""

    device: str
    draft: str
    quant: str
    draft_tok_s: float | None = None
    acceptance: dict[str, dict[int, float]] = field(default_factory=dict)
    full_accept: dict[str, dict[int, float]] = field(default_factory=dict)
    provenance: dict[str, Any] = field(default_factory=dict)  # merged one level deep
    replace: bool = False  # the imported targets' tables hold only the imported K values

    @property
    def key(self) -> tuple[str, str, str]:
        """The (device, draft, quant) key a profile entry is found by."""
        return (self.device, self.draft, self.quant)


@dataclass
class Written:
    """What `apply` did: files written (none on a dry run), the diff, notes, merged entries.

    A spec that would no longer load is refused before anything is written; on a
    failed write (or a Ctrl-C) between files, every file written is restored, so
    `files` lists only what now holds the import.
    """

    files: list[Path] = field(default_factory=list)
    diff: str = ""
    notes: list[str] = field(default_factory=list)
    entries: list[dict[str, Any]] = field(default_factory=list)


def _is_json(path: Path, text: str) -> bool:
    return path.suffix.lower() == ".json" or text.lstrip()[:1] in ("{", "[")


def _profiles_of(data: Any) -> list[Any]:
    if isinstance(data, list):
        return data
    if isinstance(data, dict) and isinstance(data.get("profiles"), list):
        return list(data["profiles"])
    return []


def _table(value: Any) -> dict[int, float] | None:
    """An acceptance table with int keys; None for the compact form or anything else."""
    if not isinstance(value, Mapping) or "per_token" in value:
        return None
    try:
        return {int(k): v for k, v in value.items()}
    except (TypeError, ValueError):
        return None


@functools.cache
def _rule(name: str) -> TypeAdapter[Any]:
    """The spec's validation of Profile field `name`, on its own."""
    info = Profile.model_fields[name]
    rule: Any = Annotated[(info.annotation, *info.metadata)] if info.metadata \
        else info.annotation
    return TypeAdapter(rule)


def check_imported(up: ProfileUpdate, source: str, line: int | None = None) -> None:
    """Refuse imported values the spec would refuse, naming the input (`source`, at `line`
    when known) rather than the spec: the numbers are wrong where they were measured."""
    where = f"{source}:{line}" if line else source
    values: list[tuple[str, Any]] = [("acceptance", up.acceptance),
                                     ("full_accept", up.full_accept)]
    if up.draft_tok_s is not None:
        values.insert(0, ("draft_tok_s", up.draft_tok_s))
    for name, value in values:
        try:
            _rule(name).validate_python(value)
        except ValidationError as exc:
            first = exc.errors()[0]
            loc = [part for part in first["loc"] if part not in ("table", "per_token")]
            if name == "draft_tok_s":
                what = f"draft_tok_s {value!r}"
            elif loc and loc[-1] == "[key]":
                what = f"{name}[{loc[0]}] at K = {loc[1]!r}"
            else:
                what = f"{name}[{loc[0]}][{loc[1]}] = {value[loc[0]][loc[1]]!r}"
            raise ImportInputError(f"{where}: the imported {what} is not a value a spec "
                                   f"holds: {first['msg'].lower()}") from None


def _ks(values: Any) -> set[int]:
    """K values of a provenance list or table (anything else: none)."""
    if isinstance(values, Mapping):
        values = list(values)
    if not isinstance(values, list):
        return set()
    return {int(v) for v in values if (isinstance(v, int) and not isinstance(v, bool))
            or (isinstance(v, str) and v.isdigit())}


def _earlier(prov: Mapping[str, Any], target: str, old_acc: set[int],
             old_full: set[int]) -> list[dict[str, Any]]:
    """The sources behind a target's tables before this import, each with the K values it
    supplied (`k_values`, `full_accept_k_values`); K values no record claims go to one
    entry without a source (typed by hand, or written before imports recorded them)."""
    acc = prov.get("acceptance")
    rec = acc.get(target) if isinstance(acc, Mapping) else None
    out: list[dict[str, Any]] = []
    if isinstance(rec, Mapping):
        own = {k: v for k, v in rec.items()
               if k not in ("kept", "k_values", "full_accept_k_values")}
        if "k_values" in rec:  # written by this module
            a, f = _ks(rec["k_values"]), _ks(rec.get("full_accept_k_values"))
        elif "per_k" in rec:  # `configspec profile`: one record for every K it measured
            a = f = _ks(rec["per_k"])
            own = {"tool": prov.get("tool", "configspec profile"),
                   **({"measured_at": prov["measured_at"]} if "measured_at" in prov else {}),
                   **own}
        elif isinstance(rec.get("k"), int) and rec.get("tool") == "configspec import llama-spec":
            a, f = {rec["k"]}, set()
        elif isinstance(rec.get("k"), int):  # vllm-metrics before k_values: 1..k
            a = f = set(range(1, rec["k"] + 1))
        else:
            a, f = set(old_acc), set(old_full)
        out.append({**own, "k_values": sorted(a), "full_accept_k_values": sorted(f)})
        for kept in rec.get("kept") or []:
            if isinstance(kept, Mapping):
                out.append({**kept, "k_values": sorted(_ks(kept.get("k_values"))),
                            "full_accept_k_values":
                                sorted(_ks(kept.get("full_accept_k_values")))})
    claimed_a = {k for e in out for k in e["k_values"]}
    claimed_f = {k for e in out for k in e["full_accept_k_values"]}
    if old_acc - claimed_a or old_full - claimed_f:
        out.append({"source": None, "note": "no recorded source (written by hand?)",
                    "k_values": sorted(old_acc - claimed_a),
                    "full_accept_k_values": sorted(old_full - claimed_f)})
    return out


def _kept(earlier: Iterable[Mapping[str, Any]], acc: set[int],
          full: set[int]) -> list[dict[str, Any]]:
    """Each earlier source cut to the K values still in the tables (`acc`, `full`);
    sources left with none are dropped, empty K lists left out."""
    out = []
    for e in earlier:
        a = [k for k in e["k_values"] if k in acc]
        f = [k for k in e["full_accept_k_values"] if k in full]
        acc -= set(a)
        full -= set(f)
        if not a and not f:
            continue
        rec = {k: v for k, v in e.items() if k not in ("k_values", "full_accept_k_values")}
        if isinstance(rec.get("per_k"), Mapping):
            rec["per_k"] = {k: v for k, v in rec["per_k"].items() if str(k) in map(str, a)}
        out.append({**rec, **({"k_values": a} if a else {}),
                    **({"full_accept_k_values": f} if f else {})})
    return out


def merge(entry: Mapping[str, Any] | None, up: ProfileUpdate, notes: list[str]) -> dict[str, Any]:
    """The entry as it should be written: `entry` (raw, from the file) with `up` applied."""
    where = f"{up.device}/{up.draft}/{up.quant}"
    out: dict[str, Any] = copy.deepcopy(dict(entry)) if entry is not None else {
        "device": up.device, "draft": up.draft, "quant": up.quant}
    if up.draft_tok_s is not None:
        out["draft_tok_s"] = up.draft_tok_s
    before: dict[str, dict[str, set[int]]] = {}  # table name -> target -> K values before
    for name, new_tables in (("acceptance", up.acceptance), ("full_accept", up.full_accept)):
        tables = dict(out.get(name) or {})
        for target in dict.fromkeys([*up.acceptance, *up.full_accept]):
            old = tables.get(target)
            table = _table(old)
            before.setdefault(name, {})[target] = set(table or {})
            if target not in new_tables and not (up.replace and table is not None):
                continue
            if table is None:
                table = {}
                if old is not None:
                    notes.append(f"{where}: {name}[{target}] was {dict(old)}; replaced by the "
                                 "measured table")
            elif up.replace:
                dropped = sorted(set(table) - set(new_tables.get(target, {})))
                if dropped:
                    notes.append(f"{where}: {name}[{target}] K={_ranges(dropped)} dropped "
                                 "(--replace)")
                table = {}
            table.update(new_tables.get(target, {}))
            if table:
                tables[target] = table
            else:
                tables.pop(target, None)
        if tables or name in out:
            out[name] = tables
    prov = dict(out.get("provenance") or {})
    for key, value in up.provenance.items():
        if key == "acceptance" and isinstance(value, Mapping):
            records = dict(prov.get(key) or {}) if isinstance(prov.get(key), Mapping) else {}
            for target, record in value.items():
                records[target] = _attributed(prov, target, record, up, before)
            prov[key] = records
        else:
            prov[key] = value
    if prov:
        out["provenance"] = prov
    return out


def _attributed(prov: Mapping[str, Any], target: str, record: Mapping[str, Any],
                up: ProfileUpdate, before: Mapping[str, Mapping[str, set[int]]]) -> dict[str, Any]:
    """This import's provenance record for `target`: the K values it wrote and, under
    `kept`, the earlier sources of the K values it left in the tables."""
    new_acc = set(up.acceptance.get(target, {}))
    new_full = set(up.full_accept.get(target, {}))
    old_acc = before.get("acceptance", {}).get(target, set())
    old_full = before.get("full_accept", {}).get(target, set())
    rec = {k: v for k, v in record.items() if k != "kept"}
    rec["k_values"] = sorted(new_acc)
    if new_full:
        rec["full_accept_k_values"] = sorted(new_full)
    if not up.replace:
        kept = _kept(_earlier(prov, target, old_acc, old_full), old_acc - new_acc,
                     old_full - new_full)
        if kept:
            rec["kept"] = kept
    return rec


def _ranges(ks: Iterable[int]) -> str:
    """K values as `1..5, 8`."""
    out: list[str] = []
    for k in sorted(ks):
        if out and out[-1].split("..")[-1] == str(k - 1):
            out[-1] = out[-1].split("..")[0] + f"..{k}"
        else:
            out.append(str(k))
    return ", ".join(out)


def _origin(rec: Mapping[str, Any]) -> str:
    tool, source, when = rec.get("tool"), rec.get("source"), rec.get("measured_at")
    if tool and source:
        return f"{tool} of {source}"
    if tool:
        return f"{tool}" + (f" ({when})" if when else "")
    return str(rec.get("note") or "an earlier source")


def kept_warnings(entries: Sequence[Mapping[str, Any]], target: str) -> list[str]:
    """What the command warns about: K values of `target`'s tables that this import left
    from other sources (recorded under the record's `kept`), one line per source and K
    values, naming every profile it applies to."""
    found: dict[str, list[str]] = {}
    for e in entries:
        prov = e.get("provenance")
        acc = prov.get("acceptance") if isinstance(prov, Mapping) else None
        rec = acc.get(target) if isinstance(acc, Mapping) else None
        if not isinstance(rec, Mapping):
            continue
        for kept in rec.get("kept") or []:
            parts = [f"{name} K={_ranges(kept[key])}"
                     for name, key in (("acceptance", "k_values"),
                                       ("full_accept", "full_accept_k_values")) if kept.get(key)]
            line = f"{' and '.join(parts)} of {target} kept from {_origin(kept)}"
            found.setdefault(line, []).append("/".join(str(e.get(k)) for k in KEY))
    return [f"{line}, in {', '.join(profiles)}: this import did not measure them "
            "(--replace drops them)" for line, profiles in found.items()]


def _raw(path: Path, text: str) -> Any:
    """A file's data; YAML through ruamel's round-trip loader, so that values nobody
    imported keep their exact type (0.70 stays 0.70) and the writer leaves them alone."""
    if _is_json(path, text):
        return parse_data(Source(str(path), text))
    return YAML(typ="rt").load(text)


def _files(spec_path: Path, spec: Spec) -> list[Path]:
    return [spec_path, *(spec_path.parent / rel for rel in spec.profiles_from)]


def apply(spec_path: Path, updates: Sequence[ProfileUpdate], *, dry_run: bool = False,
          loaded: LoadedSpec | None = None) -> Written:
    """Merge `updates` into the files that hold their profiles (new ones into the spec)."""
    from profiler.writeback import upsert_profile_file_text, upsert_spec_text

    loaded = loaded or load_spec(spec_path)
    files = _files(spec_path, loaded.spec)
    texts = {p: s.text for p, s in zip(files, loaded.sources)}
    raw = {p: _profiles_of(_raw(p, texts[p])) for p in files}
    pending: dict[Path, list[dict[str, Any]]] = {}
    result = Written()
    for up in updates:
        home, entry = spec_path, None
        for p in files:
            found = next((e for e in raw[p] if isinstance(e, Mapping)
                          and tuple(e.get(k) for k in KEY) == up.key), None)
            if found is not None:
                home, entry = p, found
                break
        if entry is None and up.draft_tok_s is None:
            raise UsageError(f"no profile for device {up.device}, draft {up.draft}, quant "
                             f"{up.quant}: a profile needs draft_tok_s first (`configspec "
                             "import llama-bench` or `configspec profile`)")
        merged = merge(entry, up, result.notes)
        pending.setdefault(home, []).append(merged)
        result.entries.append(merged)
    new_texts: dict[Path, str] = {}
    for path, entries in pending.items():
        if _is_json(path, texts[path]):
            raise UsageError(f"{path} is JSON: imports write YAML with the round-trip writer "
                             "(comments kept); convert it, or edit the JSON by hand")
        new = upsert_spec_text(texts[path], entries) if path == spec_path \
            else upsert_profile_file_text(texts[path], entries)
        if new != texts[path]:
            new_texts[path] = new
    result.diff = "".join(
        line for path, new in new_texts.items()
        for line in difflib.unified_diff(texts[path].splitlines(keepends=True),
                                         new.splitlines(keepends=True),
                                         f"{path} (before)", f"{path} (imported)"))
    if not new_texts:
        return result
    final = {p: new_texts.get(p, texts[p]) for p in files}
    parse_spec(final[spec_path], name=str(spec_path), base_dir=spec_path.parent,
               files={p: final[p] for p in files[1:]})  # a dry run says what a run would
    if dry_run:
        return result
    written: list[Path] = []
    try:
        for path in sorted(new_texts, key=lambda p: p == spec_path):
            write_output(path, new_texts[path])
            written.append(path)
    except BaseException:
        for path in written:
            with contextlib.suppress(OutputError):
                write_output(path, texts[path])
        raise
    result.files = written
    return result
