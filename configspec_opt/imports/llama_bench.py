"""llama-bench's JSON (`-o json`, or `-o jsonl`): v_d from a text-generation test.

llama-bench writes one object per test with `n_prompt`, `n_gen`, `n_depth`,
`n_threads`, `model_filename` and the mean rate `avg_ts` (tokens/s, over
`samples_ts`).  A `tg` test (`n_prompt` 0, `n_gen` > 0) times one token per
step on a short context, which is what a draft does while it drafts; its
`avg_ts` is v_d.  Prompt-processing tests (`pp`) are ignored.

Types are strict, as llama-bench writes them: counts are JSON integers, `avg_ts` a
JSON number; `true` or `"54.0"` where a number belongs is refused, not converted,
and so are numbers no measurement has (NaN, 1e400, a 5,000-digit integer).  Every
refusal names the file and the line its result starts on.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import PurePath
from typing import Any

from configspec_opt.imports.source import ImportInputError, Input

REQUIRED = ("model_filename", "n_prompt", "n_gen", "avg_ts")
MAX_DIGITS = 30  # no count or rate llama-bench writes comes near this
MAX_TEXT = 4096  # a model path (PATH_MAX); longer strings are not kept in provenance
MAX_LISTED = 10  # results named in one message


@dataclass(frozen=True)
class BenchResult:
    """One test row of llama-bench's JSON output; `avg_ts` is tokens per second."""

    index: int  # position in the file
    line: int  # where its object starts
    model_filename: str
    n_prompt: int
    n_gen: int
    n_depth: int
    n_threads: int | None
    avg_ts: float
    raw: Mapping[str, Any]

    @property
    def test(self) -> str:
        """The test's name as llama-bench prints it (`tg128`, `pp512+tg128 @ d4096`)."""
        name = f"tg{self.n_gen}" if self.n_prompt == 0 else f"pp{self.n_prompt}+tg{self.n_gen}"
        return name + (f" @ d{self.n_depth}" if self.n_depth else "")

    @property
    def model_basename(self) -> str:
        """The model file's name without its directory, whichever OS wrote the path."""
        return PurePath(self.model_filename.replace("\\", "/")).name

    def describe(self) -> str:
        """One line naming the row, for messages that ask the user to choose between rows."""
        threads = f", {self.n_threads} threads" if self.n_threads is not None else ""
        name = self.model_basename
        name = name if len(name) <= 80 else name[:77] + "..."
        return f"#{self.index} {name} {self.test}{threads}: {self.avg_ts:.4g} tok/s"

    def provenance(self, src: Input) -> dict[str, Any]:
        """What the imported profile records about where its number came from.

        Only scalar fields of the raw row are kept, so the spec stays small and
        the row can be found again in the source (named by path and SHA-256).
        """
        keep = ("model_type", "n_threads", "n_gpu_layers", "backends", "build_commit",
                "build_number", "cpu_info", "gpu_info", "test_time", "stddev_ts")
        record: dict[str, Any] = {"tool": "configspec import llama-bench", "source": src.name,
                                  "sha256": src.sha256, "test": self.test,
                                  "model_filename": self.model_filename,
                                  "avg_ts": self.avg_ts}
        record.update({k: self.raw[k] for k in keep
                       if isinstance(self.raw.get(k), (int, float, bool))
                       or (isinstance(self.raw.get(k), str) and len(self.raw[k]) <= MAX_TEXT)})
        samples = self.raw.get("samples_ts")
        if isinstance(samples, list):
            record["samples"] = len(samples)
        return record


class _Refused(ValueError):
    """A number the decoder will not turn into a value; `text` is how the file wrote it."""

    def __init__(self, text: str, why: str) -> None:
        super().__init__(why)
        self.text = text


def _int(text: str) -> int:
    if len(text.lstrip("-")) > MAX_DIGITS:
        raise _Refused(text, f"an integer of {len(text.lstrip('-')):,} digits, not a "
                       "measurement")
    return int(text)


def _float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise _Refused(text, "too large for a float, not a measurement")
    return value


def _constant(text: str) -> Any:
    raise _Refused(text, "not a JSON number (llama-bench writes none)")


_DECODER = json.JSONDecoder(parse_int=_int, parse_float=_float, parse_constant=_constant)


def _line(text: str, offset: int) -> int:
    return text.count("\n", 0, offset) + 1


def _refusal(src: Input, exc: _Refused, base: int = 0) -> ImportInputError:
    at = src.text.find(exc.text, base)
    where = f"{src.name}:{_line(src.text, at)}" if at >= 0 else src.name
    shown = exc.text if len(exc.text) <= 24 else f"{exc.text[:12]}...{exc.text[-8:]}"
    return ImportInputError(f"{where}: {shown} is {exc}")


def _decode(src: Input, start: int, end: int) -> Any:
    """The JSON value in text[start:end] (a whole document or one JSONL line)."""
    piece = src.text[start:end] if end - start < len(src.text) else src.text
    try:
        value, stop = _DECODER.raw_decode(piece, len(piece) - len(piece.lstrip()))
    except _Refused as exc:
        raise _refusal(src, exc, start) from None
    except RecursionError:
        raise ImportInputError(f"{src.name}:{_line(src.text, start)}: JSON nested too "
                               "deeply (llama-bench writes a flat list of objects)") from None
    if piece[stop:].strip():
        raise json.JSONDecodeError("Extra data", piece, stop)
    return value


def _element_lines(text: str, first: int) -> list[int]:
    """The line each element of the top-level array at `first` starts on (text known valid)."""
    dec = json.JSONDecoder()
    pos, line, counted = first + 1, _line(text, first), first
    lines: list[int] = []
    while True:
        while text[pos] in " \t\r\n,":
            pos += 1
        if text[pos] == "]":
            return lines
        line += text.count("\n", counted, pos)
        lines.append(line)
        counted = pos
        _, pos = dec.raw_decode(text, pos)


def _objects(src: Input) -> list[tuple[Any, int]]:
    """Each result object with the line it starts on."""
    text = src.text
    first = len(text) - len(text.lstrip())
    if first == len(text):
        raise ImportInputError(f"{src.name} is empty")
    lines: list[int]
    try:
        data = _decode(src, first, len(text))
        lines = _element_lines(text, first) if isinstance(data, list) \
            else [_line(text, first)]
    except json.JSONDecodeError:
        try:  # JSONL: one object per line
            data, lines, offset = [], [], 0
            for no, line in enumerate(text.split("\n"), 1):
                if line.strip():
                    data.append(_decode(src, offset, offset + len(line)))
                    lines.append(no)
                offset += len(line) + 1
        except json.JSONDecodeError:
            raise ImportInputError(
                f"{src.name} is not llama-bench JSON: not JSON or JSON lines (run "
                "llama-bench with -o json or -o jsonl; the default markdown table is not "
                "read)") from None
    if isinstance(data, dict):
        data = [data]
    if not isinstance(data, list):
        raise ImportInputError(f"{src.name} is not llama-bench JSON: expected a list of "
                               "test results")
    return list(zip(data, lines))


def _count(obj: Mapping[str, Any], key: str, where: str,
           default: int | None = None) -> int | None:
    """A count as llama-bench writes it: a JSON integer >= 0 (null where it may be absent)."""
    v = obj.get(key, default)
    if v is None and default is None and key not in REQUIRED:
        return None
    if isinstance(v, bool) or not isinstance(v, int):
        raise ImportInputError(f"{where} has {key} {_shown(v)}: expected an integer "
                               "(llama-bench writes counts as JSON integers)")
    if v < 0:
        raise ImportInputError(f"{where} has {key} {v}: a count is not negative")
    return v


def _shown(v: Any) -> str:
    text = json.dumps(v) if isinstance(v, (str, bool, int, float)) or v is None \
        else f"a JSON {type(v).__name__.replace('dict', 'object').replace('list', 'array')}"
    return text if len(text) <= 40 else text[:37] + "..."


def parse(src: Input) -> list[BenchResult]:
    """Every test result in the file; an ImportInputError when it is not llama-bench's."""
    out = []
    for i, (obj, line) in enumerate(_objects(src)):
        where = f"{src.name}:{line}: result #{i}"
        missing = [k for k in REQUIRED if not isinstance(obj, dict) or k not in obj]
        if missing:
            raise ImportInputError(
                f"{src.name}:{line} is not llama-bench JSON: result #{i} lacks "
                f"{', '.join(missing)} (expected fields of `llama-bench -o json`: "
                f"{', '.join(REQUIRED)}, ...)")
        avg, model = obj["avg_ts"], obj["model_filename"]
        if isinstance(avg, bool) or not isinstance(avg, (int, float)):
            raise ImportInputError(f"{where} has avg_ts {_shown(avg)}: expected a number "
                                   "(tokens/s)")
        if not isinstance(model, str) or not model or len(model) > MAX_TEXT:
            raise ImportInputError(f"{where} has model_filename {_shown(model)}: expected "
                                   "the model's file name")
        result = BenchResult(i, line, model, _count(obj, "n_prompt", where) or 0,
                             _count(obj, "n_gen", where) or 0,
                             _count(obj, "n_depth", where, 0) or 0,
                             _count(obj, "n_threads", where), float(avg), obj)
        if not result.avg_ts > 0:
            raise ImportInputError(f"{where} has avg_ts {avg!r}, not a rate")
        out.append(result)
    if not out:
        raise ImportInputError(f"{src.name} holds no llama-bench results")
    return out


def listed(results: Sequence[BenchResult]) -> str:
    """Results named for a message, at most MAX_LISTED of them (a file may hold thousands)."""
    shown = "; ".join(r.describe() for r in results[:MAX_LISTED])
    more = len(results) - MAX_LISTED
    return shown + (f"; ... and {more:,} more" if more > 0 else "")


def generation_results(results: Sequence[BenchResult], *, model: str | None = None,
                       threads: int | None = None, n_gen: int | None = None,
                       depth: int | None = None) -> list[BenchResult]:
    """The `tg` results (no prompt, some generation) that pass the given filters."""
    tg = [r for r in results if r.n_prompt == 0 and r.n_gen > 0]
    if not tg:
        raise ImportInputError("no text-generation result (a test with n_prompt 0 and n_gen > 0;"
                               " run llama-bench with -n 128, the default, or -p 0 -n N)")
    if model is not None:
        tg = [r for r in tg if model in r.model_filename]
    if threads is not None:
        tg = [r for r in tg if r.n_threads == threads]
    if n_gen is not None:
        tg = [r for r in tg if r.n_gen == n_gen]
    if depth is not None:
        tg = [r for r in tg if r.n_depth == depth]
    return tg
