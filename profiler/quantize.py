"""Make draft variants from one GGUF with llama.cpp's own quantiser (no download, no tools).

`llama_model_quantize` as exposed by llama-cpp-python; re-quantising an
already quantised file (SmolLM2 ships as Q4_1) needs `allow_requantize`,
which costs some fidelity: that is what makes these useful, measurably
different drafts for the example.
"""

from __future__ import annotations

from pathlib import Path

from configspec_opt.errors import ProfilerUnavailableError, UsageError
from profiler.errors import ModelFileError
from profiler.paths import require_model_file

FTYPES = ("Q4_0", "Q4_1", "Q5_0", "Q5_1", "Q8_0", "Q2_K", "Q3_K_S", "Q3_K_M", "Q4_K_S",
          "Q4_K_M", "Q5_K_S", "Q5_K_M", "Q6_K", "F16")


def quantize(src: Path, dst: Path, ftype: str, threads: int = 0) -> Path:
    """Write `src` re-quantised to `ftype` at `dst` (atomically: no half-written file).

    Raises UsageError for a type this llama-cpp-python lacks, ModelFileError
    when llama.cpp fails, ProfilerUnavailableError without llama-cpp-python.
    """
    try:
        import llama_cpp
    except ImportError as exc:
        raise ProfilerUnavailableError(f"quantising needs the 'profiler' extra ({exc.name} "
                                       "is not installed)") from None

    name = ftype.upper()
    if name not in FTYPES:
        raise UsageError(f"unknown quantisation '{ftype}' (one of: {', '.join(FTYPES)})")
    const = getattr(llama_cpp, f"LLAMA_FTYPE_MOSTLY_{name}", None)
    if const is None:
        raise UsageError(f"this llama-cpp-python has no {name}")
    require_model_file(src, "quantize source")
    dst.parent.mkdir(parents=True, exist_ok=True)
    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = const
    params.nthread = threads
    params.allow_requantize = True
    tmp = dst.with_name(f".{dst.name}.part")
    rc = llama_cpp.llama_model_quantize(str(src).encode(), str(tmp).encode(), params)
    if rc != 0 or not tmp.exists():
        tmp.unlink(missing_ok=True)
        raise ModelFileError(f"llama_model_quantize {src.name} -> {name} failed (code {rc})")
    tmp.replace(dst)
    return dst
