"""llama-bench's JSON (`-o json`, or `-o jsonl`): v_d from a text-generation test.

llama-bench writes one object per test with `n_prompt`, `n_gen`, `n_depth`,
`n_threads`, `model_filename` and the mean rate `avg_ts` (tokens/s, over
`samples_ts`).  A `tg` test (`n_prompt` 0, `n_gen` > 0) times one token per
step on a short context, which is what a draft does while it drafts; its
`avg_ts` is v_d.  Prompt-processing tests (`pp`) are ignored.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import PurePath
from typing import Any

from configspec_opt.imports.source import ImportInputError, Input

REQUIRED = ("model_filename", "n_prompt", "n_gen", "avg_ts")


@dataclass(frozen=True)
class BenchResult:
    """One test row of llama-bench's JSON output; `avg_ts` is tokens per second."""

    index: int  # position in the file
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
        return f"#{self.index} {self.model_basename} {self.test}{threads}: {self.avg_ts:.4g} tok/s"

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
                       if isinstance(self.raw.get(k), (str, int, float, bool))})
        samples = self.raw.get("samples_ts")
        if isinstance(samples, list):
            record["samples"] = len(samples)
        return record


def _objects(src: Input) -> list[Any]:
    text = src.text.strip()
    if not text:
        raise ImportInputError(f"{src.name} is empty")
    try:
        data = json.loads(text)
    except json.JSONDecodeError:
        data = None
        try:  # JSONL: one object per line
            data = [json.loads(line) for line in text.splitlines() if line.strip()]
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
    return data


def _int(obj: Mapping[str, Any], key: str, default: int | None = None) -> int | None:
    v = obj.get(key, default)
    if v is None:
        return None
    if isinstance(v, bool) or not isinstance(v, (int, float, str)):
        raise ValueError(key)
    return int(v)


def parse(src: Input) -> list[BenchResult]:
    """Every test result in the file; an ImportInputError when it is not llama-bench's."""
    out = []
    for i, obj in enumerate(_objects(src)):
        missing = [k for k in REQUIRED if not isinstance(obj, dict) or k not in obj]
        if missing:
            raise ImportInputError(
                f"{src.name} is not llama-bench JSON: result #{i} lacks "
                f"{', '.join(missing)} (expected fields of `llama-bench -o json`: "
                f"{', '.join(REQUIRED)}, ...)")
        try:
            avg = float(obj["avg_ts"])
            n_prompt, n_gen = _int(obj, "n_prompt"), _int(obj, "n_gen")
            result = BenchResult(i, str(obj["model_filename"]), n_prompt or 0, n_gen or 0,
                                 _int(obj, "n_depth", 0) or 0, _int(obj, "n_threads"), avg, obj)
        except (TypeError, ValueError) as exc:
            raise ImportInputError(f"{src.name}: result #{i} has a non-numeric {exc}") from None
        if not avg > 0 or avg == float("inf"):
            raise ImportInputError(f"{src.name}: result #{i} has avg_ts {avg!r}, not a rate")
        out.append(result)
    if not out:
        raise ImportInputError(f"{src.name} holds no llama-bench results")
    return out


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
