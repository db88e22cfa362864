"""Ready-to-run exports: the plan as commands and manifests that start its servers.

`configspec export --format F` for F in `RUNNABLE` ([docs/ship.md]):

- `draft-client`: per pool, the drafting client's command line pointed at the
  verifier, and an env file (device side of the split: draft here, target remote);
- `llama-server`: per pool, llama-server with the draft beside the target (one machine);
- `vllm`: per pool, vLLM's `--speculative-config` JSON and the `vllm serve` line;
- `compose`, `kubernetes`: the verifier replicas the plan decides;
- `k-policy`: per pool, the best K for each band of verifier load and rtt.

Each format keeps its own manifest, `fleet.<format>.json`, listing its files; a new
export in the same format removes the files the previous one listed and no longer writes
(other files, and other formats' files, are never touched).  The classic formats (json,
env, yaml) are `configspec_opt.export`'s; `write` takes any format.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from configspec_opt.export import (
    FLEET_KIND,
    Decision,
    ExportError,
    ExportFormat,
    ExportResult,
    manifest_document,
    prepare_directory,
    write_export,
    write_files,
)
from configspec_opt.exports import commands, replicas
from configspec_opt.exports.plan import (
    Resolver,
    configurations,
    default_resolver,
    verifier_targets,
)
from configspec_opt.spec_files import FileRefused, read_text_file

RUNNABLE = (ExportFormat.draft_client, ExportFormat.llama_server, ExportFormat.vllm,
            ExportFormat.compose, ExportFormat.kubernetes)
# Written like the runnable formats (a manifest fleet.<format>.json), but data, not commands.
POLICY = (ExportFormat.k_policy,)
_FIXED = {ExportFormat.compose: ("compose.yaml",)}


def manifest_name(fmt: ExportFormat) -> str:
    """`fleet.<format>.json`: one manifest per format, so formats share a directory."""
    return f"fleet.{fmt.value}.json"


def _ours(name: str, fmt: ExportFormat) -> bool:
    """Whether a file a manifest lists may be removed: a plain name of this format's."""
    plain = "/" not in name and "\\" not in name and not name.startswith(".")
    return plain and (f".{fmt.value}." in name or name in _FIXED.get(fmt, ()))


def render(decision: Decision, fmt: ExportFormat, resolve: Resolver
           ) -> tuple[dict[str, str], dict[str, Any]]:
    """{file name: text} of a runnable format, its manifest included, and the manifest."""
    if fmt is ExportFormat.k_policy:
        from configspec_opt.exports import k_policy

        return k_policy.render_with_manifest(decision, manifest_name(fmt))
    spec_file = decision.data["spec"]["file"]
    configs = configurations(decision, resolve)
    targets = verifier_targets(decision, configs, resolve)
    if fmt is ExportFormat.draft_client:
        done = commands.draft_client(configs, spec_file)
    elif fmt is ExportFormat.llama_server:
        done = commands.llama_server(configs, spec_file)
    elif fmt is ExportFormat.vllm:
        done = commands.vllm(configs, spec_file)
    elif fmt is ExportFormat.compose:
        done = replicas.compose(decision, targets, spec_file)
    elif fmt is ExportFormat.kubernetes:
        done = replicas.kubernetes(decision, targets, spec_file)
    else:
        raise ExportError(f"--format {fmt.value} is not a runnable format")
    if fmt in (ExportFormat.compose, ExportFormat.kubernetes):
        for v in targets:
            if v.model.local is None and v.model.declared is None:
                done.unresolved.add(f"verifier-{v.slug}", "model", v.model.why_unknown
                                    + f"; put it at {replicas.model_path(v)}")
    pools = [{"pool": c.pool, "devices": c.count, "configuration": c.index,
              "files": done.pool_files.get(c.stem, [])} for c in configs]
    manifest = manifest_document(decision, pools)
    manifest["format"] = fmt.value
    manifest["files"] = sorted(done.texts)
    manifest["verifiers"] = [
        {"target": v.target, "replicas": v.replicas, "decided_by_plan": v.decided,
         "slots_per_replica": replicas.slots(v), "max_k": v.k_max, "devices": v.devices,
         "service": f"verifier-{v.slug}"} for v in targets]
    manifest["unresolved"] = done.unresolved.items
    manifest.update(done.extra)
    texts = dict(done.texts)
    texts[manifest_name(fmt)] = json.dumps(manifest, indent=2, allow_nan=False) + "\n"
    return texts, manifest


def _previous(directory: Path, fmt: ExportFormat) -> set[str]:
    try:
        data = json.loads(read_text_file(directory / manifest_name(fmt)))
    except (FileRefused, ValueError):
        return set()
    if not (isinstance(data, dict) and data.get("kind") == FLEET_KIND
            and data.get("format") == fmt.value and isinstance(data.get("files"), list)):
        return set()  # not ours: leave everything alone
    return {f for f in data["files"] if isinstance(f, str) and _ours(f, fmt)}


def write(decision: Decision, fmt: ExportFormat, directory: Path,
          resolve: Resolver | None = None) -> ExportResult:
    """Write a format's files atomically, its manifest last; remove what the previous export
    in the same format listed and this one does not write."""
    if fmt not in RUNNABLE + POLICY:
        return write_export(decision, fmt, directory)
    prepare_directory(directory)
    base = Path(decision.loaded.sources[0].name).resolve().parent
    texts, manifest = render(decision, fmt, resolve or default_resolver(base))
    result = ExportResult(directory, directory / manifest_name(fmt), manifest_data=manifest)
    return write_files(result, texts, _previous(directory, fmt), executable=".sh")


__all__ = ["POLICY", "RUNNABLE", "manifest_name", "render", "write"]
