"""vLLM's `--speculative-config` for a pool, held to the fields of a pinned vLLM.

vLLM cannot run here, so the JSON an export writes is checked against the names, types
and bounds of `SpeculativeConfig` as vLLM's source declares them, copied into `FIELDS`
(only the fields this project writes, plus the few an operator is likely to add):

    vllm-project/vllm, vllm/config/speculative.py at commit
    002e77c1f0ef9b19cff8b9e21cfbd6feb3d6b443 (main, 2026), read through the source index;
    the same names and types as in v0.11.0, where the class moved to that file
    (docs.vllm.ai/en/v0.11.0/api/vllm/config/speculative.html).

`SpeculativeConfig` is a pydantic config that refuses unknown fields, so a misspelt
field would stop `vllm serve`; `check` refuses it here first.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

VLLM_SOURCE = ("vllm-project/vllm vllm/config/speculative.py at "
               "002e77c1f0ef9b19cff8b9e21cfbd6feb3d6b443")

# SpeculativeMethod's values at that commit, less the model-specific *_mtp names
METHODS = ("ngram", "medusa", "mlp_speculator", "draft_model", "suffix", "custom_class",
           "eagle", "eagle3", "mtp", "ngram_gpu", "dflash", "dspark")


@dataclass(frozen=True)
class Field:
    """One field: the JSON types it takes, whether null is allowed, bounds and choices."""

    types: tuple[type, ...]
    nullable: bool = True
    gt: int | None = None
    ge: int | None = None
    choices: tuple[str, ...] | None = None


FIELDS: dict[str, Field] = {
    "model": Field((str,)),                                   # str | None
    "num_speculative_tokens": Field((int,), nullable=False, gt=0),  # int, gt=0
    "method": Field((str,), choices=METHODS),                 # SpeculativeMethod | None
    "quantization": Field((str,)),                            # QuantizationMethods | str | None
    "draft_tensor_parallel_size": Field((int,), ge=1),        # int | None, ge=1
    "max_model_len": Field((int,), ge=1),                     # int | None, ge=1
    "revision": Field((str,)),                                # str | None
    "enforce_eager": Field((bool,)),                          # bool | None
    "draft_sample_method": Field((str,), nullable=False,
                                 choices=("greedy", "probabilistic")),
}


def check(config: dict[str, Any]) -> list[str]:
    """What `SpeculativeConfig` would refuse in `config`: unknown fields, wrong types,
    values out of bounds (empty: none)."""
    problems: list[str] = []
    for key, value in config.items():
        rule = FIELDS.get(key)
        if rule is None:
            problems.append(f"{key}: not a field of SpeculativeConfig ({VLLM_SOURCE})")
            continue
        if value is None:
            if not rule.nullable:
                problems.append(f"{key}: may not be null")
            continue
        ok = isinstance(value, rule.types) and not (
            isinstance(value, bool) and bool not in rule.types)
        if not ok:
            problems.append(f"{key}: {type(value).__name__}, expected "
                            f"{' or '.join(t.__name__ for t in rule.types)}")
            continue
        if rule.gt is not None and value <= rule.gt:
            problems.append(f"{key}: {value} is not above {rule.gt}")
        if rule.ge is not None and value < rule.ge:
            problems.append(f"{key}: {value} is below {rule.ge}")
        if rule.choices is not None and value not in rule.choices:
            problems.append(f"{key}: {value!r} is not one of {', '.join(rule.choices)}")
    if "num_speculative_tokens" not in config:
        problems.append("num_speculative_tokens: missing (a draft model needs it)")
    return problems


def speculative_config(draft_model: str, k: int) -> dict[str, Any]:
    """The config for a draft model and K; a GGUF draft is loaded with vLLM's gguf
    quantisation (other checkpoints carry their own quantisation config)."""
    config: dict[str, Any] = {"model": draft_model, "num_speculative_tokens": k,
                              "method": "draft_model"}
    if draft_model.lower().endswith(".gguf"):
        config["quantization"] = "gguf"
    return config
