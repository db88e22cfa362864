"""Imported numbers merged into a spec's profiles, with the profiler's round-trip writer.

A profile is updated where it lives (the spec itself or a `profiles_from`
file).  The entry handed to `profiler.writeback` is the file's own entry with
only the imported values changed, so keys nobody imported stay as written and
`git diff` shows the new numbers and their provenance.  Acceptance tables are
merged per K (K values not imported keep their values); a compact
`{per_token: a}` is replaced by the measured table, and the result says so.
After writing, the spec is loaded again; if it no longer validates, every file
is put back as it was.
"""

from __future__ import annotations

import copy
import difflib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML

from configspec_opt.errors import OutputError, SpecError, UsageError
from configspec_opt.files import atomic_write_text
from configspec_opt.loader import LoadedSpec, Source, load_spec, parse_data
from configspec_opt.spec import Spec

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

    @property
    def key(self) -> tuple[str, str, str]:
        """The (device, draft, quant) key a profile entry is found by."""
        return (self.device, self.draft, self.quant)


@dataclass
class Written:
    """What `apply` did: files written (none on a dry run), the diff, notes, merged entries.

    On a failed write or a spec that no longer loads, every file written is
    restored, so `files` lists only what now holds the import.
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


def merge(entry: Mapping[str, Any] | None, up: ProfileUpdate, notes: list[str]) -> dict[str, Any]:
    """The entry as it should be written: `entry` (raw, from the file) with `up` applied."""
    where = f"{up.device}/{up.draft}/{up.quant}"
    out: dict[str, Any] = copy.deepcopy(dict(entry)) if entry is not None else {
        "device": up.device, "draft": up.draft, "quant": up.quant}
    if up.draft_tok_s is not None:
        out["draft_tok_s"] = up.draft_tok_s
    for name, new_tables in (("acceptance", up.acceptance), ("full_accept", up.full_accept)):
        if not new_tables:
            continue
        tables = dict(out.get(name) or {})
        for target, values in new_tables.items():
            old = tables.get(target)
            table = _table(old)
            if table is None:
                table = {}
                if old is not None:
                    notes.append(f"{where}: {name}[{target}] was {dict(old)}; replaced by the "
                                 "measured table")
            table.update(values)
            tables[target] = table
        out[name] = tables
    if up.provenance:
        prov = dict(out.get("provenance") or {})
        for key, value in up.provenance.items():
            if isinstance(value, Mapping) and isinstance(prov.get(key), Mapping) \
                    and key == "acceptance":
                prov[key] = {**prov[key], **value}
            else:
                prov[key] = value
        out["provenance"] = prov
    return out


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
    if dry_run or not new_texts:
        return result
    written: list[Path] = []
    try:
        for path, new in new_texts.items():
            atomic_write_text(path, new)
            written.append(path)
        load_spec(spec_path)
    except (SpecError, OSError) as exc:
        for path in written:
            atomic_write_text(path, texts[path])
        if isinstance(exc, OSError):
            raise OutputError(f"cannot write {exc.filename or spec_path}: "
                              f"{exc.strerror or exc}") from None
        raise
    result.files = written
    return result
