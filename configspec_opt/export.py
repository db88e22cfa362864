"""Deployment files: what every device of a pool must run, written from a solve or a lock.

`configspec export` turns the decision into files an edge runtime (or an
operator's provisioning) reads: one file per pool naming the draft's GGUF and
quantisation as the spec declares them, K, the target and its endpoint, and
the numbers to monitor the device against (expected goodput, round time,
energy per token; an unknown number is null in JSON/YAML and `n/a` in env
files, never 0), plus a fleet manifest (spec hash, solver status, objective,
when and by which version it was generated).

Both inputs go through one path: a spec is solved for its own objective into
the data `configspec lock` would write, a lock is read as written, and every
float is rounded as a lock rounds it.  So exporting a spec and exporting its
up-to-date lock give byte-identical pool files (only the manifest's
`generated_at` and `from` differ), and a lock exports without the solver.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import json
import os
import re
import shlex
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML

from configspec_opt.errors import ConfigspecError, OutputError
from configspec_opt.files import write_output
from configspec_opt.loader import LoadedSpec, echo, load_spec
from configspec_opt.safe_text import NOT_IN_NAMES, one_line
from configspec_opt.spec import Device, Spec
from configspec_opt.spec_files import FileRefused, read_text_file
from configspec_opt.vcs.lock import (
    LOCK_SUFFIX,
    changed_sources,
    lock_data,
    parse_lock,
    read_lock_text,
    spec_path_of,
    tool_version,
)
from configspec_opt.vcs.yamldump import dump_yaml, round_float, rounded

FORMAT_VERSION = 1
MANIFEST_STEM = "fleet"
POOL_KIND = "configspec-pool"
FLEET_KIND = "configspec-fleet"
ENV_PREFIX = "CONFIGSPEC_DEPLOY_"
_SAFE = re.compile(r"[^A-Za-z0-9._-]+")
_ENV_BARE = re.compile(r"^[A-Za-z0-9._:/@+,=-]*$")


class ExportFormat(str, Enum):
    """The file format `configspec export` writes; each format keeps its own manifest."""

    json = "json"
    env = "env"
    yaml = "yaml"
    # ready-to-run formats: configspec_opt.exports writes them
    draft_client = "draft-client"
    llama_server = "llama-server"
    vllm = "vllm"
    compose = "compose"
    kubernetes = "kubernetes"
    k_policy = "k-policy"  # the runtime K policy per pool (configspec_opt.k_policy)


class ExportError(ConfigspecError):
    """A decision that cannot be exported (stale lock, missing spec, a file in the way)."""

    exit_code = 2


class NothingToDeployError(ExportError):
    """The spec has no feasible assignment: exit 1 as `solve` does."""

    exit_code = 1


@dataclass
class Decision:
    """Lock-shaped data (rounded as a lock is) and the spec that declares the files."""

    data: dict[str, Any]
    loaded: LoadedSpec
    source_kind: str  # "spec" or "lock"
    source_file: str


@dataclass
class ExportResult:
    """What an export wrote: pool files, the manifest, and stale files it removed.

    `removed` lists files an earlier export in the same format listed and this
    one no longer writes; other files in the directory are never touched.
    """

    directory: Path
    manifest: Path
    files: list[Path] = field(default_factory=list)
    removed: list[Path] = field(default_factory=list)
    manifest_data: dict[str, Any] = field(default_factory=dict)


def is_lock(path: Path) -> bool:
    """Whether `path` is a lock file (decided by its suffix, not its content)."""
    return path.name.endswith(LOCK_SUFFIX)


def decision_from_spec(path: Path) -> Decision:
    """Solve the spec for its own objective, exactly as `configspec lock` would."""
    from solvers.adapter import require_solver  # lazy: start-up

    require_solver()
    loaded = load_spec(path)
    return Decision(rounded(lock_data(loaded, path.name)), loaded, "spec", path.name)


def decision_from_lock(path: Path) -> Decision:
    """Read a lock (no solve); its spec must sit beside it and match its hashes, and every
    pool, name and K the lock assigns must be the spec's (a lock is edited by hand too)."""
    text = read_lock_text(path)
    data = parse_lock(text, str(path))
    spec_path = spec_path_of(path)
    if not spec_path.is_file():
        raise ExportError(f"{path}: its spec {spec_path} is missing; the deployment files "
                          "name each draft's GGUF and each target's endpoint as the spec "
                          "declares them")
    loaded = load_spec(spec_path)
    changed = changed_sources(data, loaded, spec_path.name)
    if changed:
        raise ExportError(f"{path} is out of date: {', '.join(changed)} changed since it was "
                          f"written (run `configspec lock {spec_path}`, or export the spec)")
    parse_lock(text, str(path), spec=loaded.spec)
    return Decision(rounded(data), loaded, "lock", path.name)


def load_decision(path: Path) -> Decision:
    """The decision to export from a spec (solved) or a lock (read as written).

    Raises
    ------
    ExportError
        The lock is stale or its spec is missing.
    NothingToDeployError
        The spec has no feasible assignment (exit 1, as `solve`).
    """
    decision = decision_from_lock(path) if is_lock(path) else decision_from_spec(path)
    status = decision.data.get("status")
    if status not in ("optimal", "feasible"):
        raise NothingToDeployError(f"{path}: {status}, nothing to deploy "
                                   f"(`configspec solve {decision.loaded.sources[0].name}` "
                                   "says why)")
    return decision


# --------------------------------------------------------------------------- documents


def trial_command(spec_file: str, device: str, row: Mapping[str, Any]) -> str:
    """The `configspec trial` that measures this configuration on a device of the pool,
    against the prediction in the same file (the pool file's check of itself)."""
    args = ["configspec", "trial", spec_file, "--device", device, "--draft", row["draft"],
            "--quant", row["quant"], "--k", str(row["k"]), "--target", row["target"]]
    return " ".join(shlex.quote(str(a)) for a in args)


def _configuration(row: Mapping[str, Any], spec: Spec, spec_file: str) -> dict[str, Any]:
    draft = next(d for d in spec.drafts if d.name == row["draft"])
    quant = draft.quants[row["quant"]]
    target = next(t for t in spec.targets if t.name == row["target"])
    k = int(row["k"])
    verify = row.get("verify_latency_s")
    if verify is None:
        verify = round_float(target.verify_latency(k))
    return {
        "count": row["count"],
        "draft": {"name": draft.name, "quant": row["quant"], "gguf": quant.gguf,
                  "size_gb": quant.size_gb},
        "k": k,
        "target": {"name": target.name, "endpoint": target.endpoint},
        "expected": {
            "goodput_tok_s": row.get("goodput_tok_s"),
            "round_time_s": row.get("round_time_s"),
            "energy_j_per_tok": row.get("energy_j_per_tok"),
            "alpha": row.get("alpha"),
            "mean_acceptance_length": row.get("mean_acceptance_length"),
            "draft_tok_s": row.get("draft_tok_s"),
            "power_w": row.get("power_w"),
            "verify_latency_s": verify,
        },
        "trial_command": trial_command(spec_file, row["device"], row),
    }


def pool_documents(decision: Decision) -> list[tuple[Device, dict[str, Any]]]:
    """One document per pool that has devices assigned, in the spec's pool order."""
    spec = decision.loaded.spec
    rows: dict[str, list[Mapping[str, Any]]] = {}
    for row in decision.data.get("assignments") or []:
        rows.setdefault(str(row["device"]), []).append(row)
    head = {"name": spec.name, "file": decision.data["spec"]["file"],
            "sha256": decision.data["spec"]["sha256"]}
    out = []
    for device in spec.devices:
        mine = rows.get(device.name)
        if not mine:
            continue
        out.append((device, {
            "kind": POOL_KIND, "format_version": FORMAT_VERSION, "spec": head,
            "pool": device.name, "platform": device.platform, "devices": device.count,
            "split": len(mine) > 1,
            "configurations": [_configuration(r, spec, head["file"]) for r in mine],
        }))
    return out


def generated_at() -> str:
    """Now, in UTC; SOURCE_DATE_EPOCH (reproducible builds) fixes it."""
    epoch = os.environ.get("SOURCE_DATE_EPOCH")
    if epoch and epoch.strip().isdigit():
        when = dt.datetime.fromtimestamp(int(epoch), dt.timezone.utc)
    else:
        when = dt.datetime.now(dt.timezone.utc)
    return when.isoformat(timespec="seconds").replace("+00:00", "Z")


def manifest_document(decision: Decision, pools: list[dict[str, Any]]) -> dict[str, Any]:
    """The fleet manifest: where the decision came from, its status and objective, and
    which files each pool got (`pools`, as `render` lists them).
    """
    data = decision.data
    return {
        "kind": FLEET_KIND, "format_version": FORMAT_VERSION,
        "tool": f"configspec-opt {tool_version()}",
        "generated_at": generated_at(),
        "from": {"kind": decision.source_kind, "file": decision.source_file},
        "spec": {"name": decision.loaded.spec.name, "file": data["spec"]["file"],
                 "sha256": data["spec"]["sha256"]},
        "status": data["status"],
        "proven_optimal": (data.get("solver") or {}).get("proven_optimal"),
        "objective": data.get("objective"),
        "fleet": data.get("fleet"),
        "pools": pools,
    }


# --------------------------------------------------------------------------- rendering


def _env_value(key: str, value: Any, missing: str) -> str:
    if value is None:
        return missing
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return repr(value)
    text = str(value)
    if NOT_IN_NAMES.search(text):
        raise ExportError(f"{ENV_PREFIX}{key} would be {echo(text)}: an env file holds one "
                          "line per value and no control characters (rename what it names, "
                          "or export --format json or yaml)")
    return text if _ENV_BARE.match(text) else shlex.quote(text)


def render_env(pairs: list[tuple[str, Any, str]], header: str) -> str:
    """KEY=value lines a POSIX shell sources (`set -a; . FILE; set +a`); values are bare
    wherever possible so that `docker --env-file` and systemd read them the same way.

    Every line is one line: a value with a control character or line break is refused
    (names cannot hold one; a file name can), the header's text is escaped (`one_line`).
    """
    lines = [f"# {one_line(ln)}".rstrip() for ln in header.removesuffix("\n").split("\n")
             if header]
    for key, value, missing in pairs:
        lines.append(f"{ENV_PREFIX}{key}={_env_value(key, value, missing)}")
    return "\n".join(lines) + "\n"


def _pool_env(doc: Mapping[str, Any], config: Mapping[str, Any], index: int) -> str:
    e = config["expected"]
    header = (f"configspec-opt deployment file: pool {doc['pool']}, configuration {index + 1} "
              f"of {len(doc['configurations'])}\nspec {doc['spec']['file']} sha256 "
              f"{doc['spec']['sha256']}\nunknown numbers are n/a (never 0); an undeclared "
              "path or endpoint is empty")
    pairs: list[tuple[str, Any, str]] = [
        ("FORMAT_VERSION", FORMAT_VERSION, ""), ("POOL", doc["pool"], ""),
        ("PLATFORM", doc["platform"], ""), ("POOL_DEVICES", doc["devices"], ""),
        ("CONFIGURATION", index + 1, ""), ("CONFIGURATIONS", len(doc["configurations"]), ""),
        ("DEVICES", config["count"], ""),
        ("DRAFT", config["draft"]["name"], ""), ("QUANT", config["draft"]["quant"], ""),
        ("DRAFT_GGUF", config["draft"]["gguf"], ""), ("K", config["k"], ""),
        ("TARGET", config["target"]["name"], ""),
        ("TARGET_ENDPOINT", config["target"]["endpoint"], ""),
        ("EXPECTED_GOODPUT_TOK_S", e["goodput_tok_s"], "n/a"),
        ("EXPECTED_ROUND_TIME_S", e["round_time_s"], "n/a"),
        ("EXPECTED_ENERGY_J_PER_TOK", e["energy_j_per_tok"], "n/a"),
        ("EXPECTED_ALPHA", e["alpha"], "n/a"),
        ("EXPECTED_MEAN_ACCEPTANCE_LENGTH", e["mean_acceptance_length"], "n/a"),
        ("EXPECTED_DRAFT_TOK_S", e["draft_tok_s"], "n/a"),
        ("EXPECTED_POWER_W", e["power_w"], "n/a"),
        ("EXPECTED_VERIFY_LATENCY_S", e["verify_latency_s"], "n/a"),
        ("SPEC", doc["spec"]["file"], ""), ("SPEC_SHA256", doc["spec"]["sha256"], ""),
        ("TRIAL_COMMAND", config["trial_command"], ""),
    ]
    return render_env(pairs, header)


def _manifest_env(m: Mapping[str, Any]) -> str:
    obj = m.get("objective") or {}
    fleet = m.get("fleet") or {}
    files = [f for p in m["pools"] for f in p["files"]]
    pairs: list[tuple[str, Any, str]] = [
        ("FORMAT_VERSION", FORMAT_VERSION, ""), ("TOOL", m["tool"], ""),
        ("GENERATED_AT", m["generated_at"], ""), ("FROM", m["from"]["file"], ""),
        ("SPEC", m["spec"]["file"], ""), ("SPEC_NAME", m["spec"]["name"], ""),
        ("SPEC_SHA256", m["spec"]["sha256"], ""), ("STATUS", m["status"], ""),
        ("PROVEN_OPTIMAL", m["proven_optimal"], "n/a"),
        ("OBJECTIVE", f"{obj.get('sense')} {obj.get('metric')}", ""),
        ("OBJECTIVE_VALUE", obj.get("value"), "n/a"),
        ("FLEET_GOODPUT_TOK_S", fleet.get("goodput_tok_s"), "n/a"),
        ("FLEET_COST_USD_PER_HOUR", fleet.get("cost_usd_per_hour"), "n/a"),
        ("FLEET_POWER_W", fleet.get("power_w"), "n/a"),
        ("FLEET_ENERGY_J_PER_TOK", fleet.get("energy_j_per_tok"), "n/a"),
        ("FILES", " ".join(files), ""),
    ]
    return render_env(pairs, "configspec-opt fleet manifest")


def _dump(doc: Any, fmt: ExportFormat, header: str) -> str:
    if fmt is ExportFormat.json:
        return json.dumps(doc, indent=2, allow_nan=False) + "\n"
    return dump_yaml(doc, header)


def safe_names(pools: list[str]) -> dict[str, str]:
    """A file stem per pool: its name where that is a safe file name, else a slug and a
    short hash; never the manifest's stem, never two equal up to case."""
    out: dict[str, str] = {}
    taken = {MANIFEST_STEM}
    for name in pools:
        stem = _SAFE.sub("_", name).lstrip(".") or "pool"
        if stem != name or stem.lower() in taken:
            stem = f"{stem[:60]}-{hashlib.sha256(name.encode()).hexdigest()[:8]}"
        taken.add(stem.lower())
        out[name] = stem
    return out


def render(decision: Decision, fmt: ExportFormat) -> tuple[dict[str, str], dict[str, Any]]:
    """{file name: text} for every pool file and the manifest, and the manifest's data."""
    docs = pool_documents(decision)
    stems = safe_names([d.name for d, _ in docs])
    texts: dict[str, str] = {}
    listing: list[dict[str, Any]] = []
    for device, doc in docs:
        stem = stems[device.name]
        header = (f"configspec-opt deployment file for pool {device.name}: what its devices "
                  "run.\nGenerated; do not edit (re-run `configspec export`).")
        if fmt is ExportFormat.env:
            cfgs = doc["configurations"]
            names = [f"{stem}.env"] if len(cfgs) == 1 else \
                [f"{stem}.{i + 1}.env" for i in range(len(cfgs))]
            for i, (name, cfg) in enumerate(zip(names, cfgs)):
                texts[name] = _pool_env(doc, cfg, i)
        else:
            names = [f"{stem}.{fmt.value}"]
            texts[names[0]] = _dump(doc, fmt, header)
        listing.append({"pool": device.name, "devices": device.count,
                        "configurations": len(doc["configurations"]), "files": names})
    manifest = manifest_document(decision, listing)
    name = f"{MANIFEST_STEM}.{fmt.value}"
    if fmt is ExportFormat.env:
        texts[name] = _manifest_env(manifest)
    else:
        texts[name] = _dump(manifest, fmt, "configspec-opt fleet manifest. Generated; do not "
                            "edit (re-run `configspec export`).")
    return texts, manifest


# --------------------------------------------------------------------------- writing


def _previous_files(directory: Path, fmt: ExportFormat) -> set[str]:
    """Files an earlier export in the same format listed in its manifest here (another
    format's files are left alone: a directory may hold both)."""
    path = directory / f"{MANIFEST_STEM}.{fmt.value}"
    try:
        text = read_text_file(path)
    except FileRefused:
        return set()
    found: set[str] = set()
    if fmt is ExportFormat.env:
        for line in text.splitlines():
            if line.startswith(f"{ENV_PREFIX}FILES="):
                with contextlib.suppress(ValueError, IndexError):
                    found.update(shlex.split(line.split("=", 1)[1])[0].split())
    else:
        try:
            data = YAML(typ="safe", pure=True).load(text)
        except Exception:  # not ours: leave everything alone
            return set()
        if not (isinstance(data, dict) and data.get("kind") == FLEET_KIND):
            return set()
        for p in data.get("pools") or []:
            if isinstance(p, dict):
                found.update(str(f) for f in p.get("files") or [])
    return {f for f in found if f.endswith(f".{fmt.value}") and "/" not in f
            and "\\" not in f and not f.startswith(".")}


def prepare_directory(directory: Path) -> None:
    """The export's directory, created if missing; refused if it is something else."""
    if directory.exists() and not directory.is_dir():
        raise ExportError(f"{directory} exists and is not a directory")
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"cannot create {directory}: {exc.strerror or exc}") from None


def write_files(result: ExportResult, texts: dict[str, str], previous: set[str],
                executable: str | None = None) -> ExportResult:
    """Every file atomically (temp + rename), the manifest last; then remove the files a
    previous export listed here that this one no longer writes.  Files ending in
    `executable` are made executable."""
    directory, manifest_name = result.directory, result.manifest.name
    for name, text in texts.items():
        if name == manifest_name:
            continue
        path = directory / name
        if path.is_dir():
            raise ExportError(f"{path} is a directory; cannot write a pool file there")
        write_output(path, text)
        if executable is not None and name.endswith(executable):
            with contextlib.suppress(OSError):
                path.chmod(0o755)
        result.files.append(path)
    write_output(result.manifest, texts[manifest_name])
    for name in sorted(previous - set(texts)):
        stale = directory / name
        with contextlib.suppress(OSError):
            if stale.is_file():
                stale.unlink()
                result.removed.append(stale)
    return result


def write_export(decision: Decision, fmt: ExportFormat, directory: Path) -> ExportResult:
    """Write every file atomically, the manifest last (`write_files`)."""
    prepare_directory(directory)
    texts, manifest = render(decision, fmt)
    manifest_name = f"{MANIFEST_STEM}.{fmt.value}"
    result = ExportResult(directory, directory / manifest_name, manifest_data=manifest)
    return write_files(result, texts, _previous_files(directory, fmt))


def read_pool_file(path: Path) -> dict[str, Any]:
    """A pool file written by `export` (JSON or YAML) as data, or an ExportError."""
    try:
        text = read_text_file(path)
    except FileRefused as exc:
        raise ExportError(f"cannot read {path}: {exc}") from None
    try:
        if path.suffix == ".json":
            data = json.loads(text)
        else:
            data = YAML(typ="safe", pure=True).load(text)
    except Exception as exc:
        raise ExportError(f"{path}: not JSON or YAML ({str(exc).splitlines()[0]})") from None
    if not isinstance(data, dict) or data.get("kind") != POOL_KIND:
        raise ExportError(f"{path} is not a configspec pool file (kind: {POOL_KIND})")
    if data.get("format_version") != FORMAT_VERSION:
        raise ExportError(f"{path} has format_version {data.get('format_version')!r}; this "
                          f"configspec reads {FORMAT_VERSION}")
    return data
