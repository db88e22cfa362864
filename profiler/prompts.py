"""Prompts to profile on: the bundled set, or a user's file in a common format.

The bundled 32 instructions were written for this project and cover the
categories of the Dolly 15K set the paper used (open and closed QA,
brainstorming, classification, extraction, summarization, creative
writing).  `--prompts FILE` reads plain text (one prompt a line), JSONL with
a `prompt`/`text` field, or Dolly's published JSONL (`instruction` +
`context`), so users can profile on the paper's own prompts.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from configspec_opt.errors import SpecError, UsageError
from configspec_opt.limits import IMPORT_BYTES
from configspec_opt.loader import Source, echo, parse_json
from configspec_opt.spec_files import FileRefused, read_text_file

BUNDLED = "prompts.jsonl"


@dataclass(frozen=True)
class Prompt:
    """One profiling prompt; `category` (code, chat, ...) lets a summary split alpha by kind."""

    text: str
    category: str | None = None


def bundled_prompts() -> list[Prompt]:
    """The prompt set shipped with the package, used when no --prompts file is given."""
    # beside this module (works in wheels, editable and namespace installs alike)
    text = (Path(__file__).parent / "data" / BUNDLED).read_text(encoding="utf-8")
    return _parse_jsonl(text, f"bundled {BUNDLED}")


def load_prompts(path: Path | None, limit: int | None = None) -> list[Prompt]:
    """Prompts from `path` (or the bundled set), the first `limit` of them."""
    if path is None:
        prompts = bundled_prompts()
    else:
        try:
            text = read_text_file(path, limit=IMPORT_BYTES)
        except FileRefused as exc:
            raise UsageError(f"--prompts {path}: {exc}") from None
        is_jsonl = path.suffix in (".jsonl", ".json") or text.lstrip().startswith("{")
        prompts = _parse_jsonl(text, str(path)) if is_jsonl else [
            Prompt(line.strip()) for line in text.splitlines() if line.strip()]
    if not prompts:
        raise UsageError(f"no prompts in {path or BUNDLED}")
    return prompts[:limit] if limit else prompts


def _parse_jsonl(text: str, name: str) -> list[Prompt]:
    out: list[Prompt] = []
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            row: Any = parse_json(Source(name, line))
        except SpecError as exc:
            issue = exc.issues[0]
            raise UsageError(f"{name}:{n}:{issue.column or 1}: {issue.message}") from None
        out.append(_prompt_from(row, f"{name}:{n}"))
    return out


def _prompt_from(row: Any, where: str) -> Prompt:
    if isinstance(row, str):
        return Prompt(row)
    if not isinstance(row, dict):
        raise UsageError(f"{where}: expected an object or a string")
    if "instruction" in row:  # Dolly 15K as published
        text = str(row["instruction"]).strip()
        context = str(row.get("context") or "").strip()
        if context:
            text = f"{text}\n\n{context}"
        return Prompt(text, row.get("category"))
    for key in ("prompt", "text"):
        if key in row:
            return Prompt(str(row[key]), row.get("category"))
    keys = [echo(k, quote=False) for k in list(row)[:10]] + (["..."] if len(row) > 10 else [])
    raise UsageError(f"{where}: no 'prompt', 'text' or 'instruction' field "
                     f"(has: {', '.join(keys) or 'nothing'})")
