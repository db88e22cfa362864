"""Ready-to-run exports (`configspec export --format draft-client|llama-server|vllm|compose|
kubernetes`) of every example, validated as their tools read them: Compose against the
Compose Specification's JSON schema, Kubernetes against the API's schemas
(kubernetes-validate, offline), vLLM's config against its pinned field table, the shell
scripts by a real shell.  tests/ship/test_export_run.py starts the commands for real.
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from ruamel.yaml import YAML

from configspec_opt.export import Decision, ExportFormat, NothingToDeployError, load_decision
from configspec_opt.exports import RUNNABLE, llama_flags, manifest_name, vllm_config, write
from tests.cli_helpers import EXAMPLE, ROOT, invoke

EXAMPLES = sorted([*ROOT.glob("examples/**/*.yaml"), *ROOT.glob("specs/*.yaml")])
COMPOSE_SCHEMA = ROOT / "tests" / "data" / "compose-spec" / "compose-spec.json"
FORMATS = [f.value for f in RUNNABLE]


@cache
def _decision(path: Path) -> Decision | None:
    try:
        return load_decision(path)
    except NothingToDeployError:
        return None


def _yaml_docs(text: str) -> list[Any]:
    return [d for d in YAML(typ="safe", pure=True).load_all(text) if d is not None]


def _validate_compose(doc: Any) -> None:
    schema = json.loads(COMPOSE_SCHEMA.read_text())
    jsonschema.Draft7Validator(schema).validate(doc)


def _validate_kubernetes(doc: Any) -> None:
    import kubernetes_validate

    kubernetes_validate.validate(doc, kubernetes_validate.latest_version(), strict=True)


def test_every_example_is_an_example() -> None:
    assert len(EXAMPLES) >= 8 and all(p.suffix == ".yaml" for p in EXAMPLES)


@pytest.mark.parametrize("spec", EXAMPLES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_example_exports_in_every_runnable_format(spec: Path, tmp_path: Path) -> None:
    """Solved examples write every format, each read back by its tool's rules; an example
    with no feasible assignment is refused as `export --format json` refuses it (exit 1)."""
    decision = _decision(spec)
    if decision is None:
        r = invoke("export", spec, "--format", "draft-client", "-o", tmp_path / "x")
        assert r.exit_code == 1 and "nothing to deploy" in r.stderr, r.stderr
        assert not (tmp_path / "x").exists()
        return
    pools = {a["device"] for a in decision.data["assignments"]}
    for fmt in RUNNABLE:
        out = tmp_path / fmt.value
        result = write(decision, fmt, out)
        manifest = json.loads((out / manifest_name(fmt)).read_text())
        assert manifest["format"] == fmt.value and manifest["status"] == decision.data["status"]
        assert sorted(manifest["files"]) == sorted(p.name for p in result.files)
        assert {p["pool"] for p in manifest["pools"]} == pools
        for name in manifest["files"]:
            text = (out / name).read_text()
            if name.endswith(".sh"):
                subprocess.run(["sh", "-n", str(out / name)], check=True)  # it parses
                assert os.access(out / name, os.X_OK)
            elif name == "compose.yaml":
                (doc,) = _yaml_docs(text)
                _validate_compose(doc)
            elif name.endswith(".kubernetes.yaml"):
                docs = _yaml_docs(text)
                assert [d["kind"] for d in docs] == ["Deployment", "Service"]
                for d in docs:
                    _validate_kubernetes(d)
            elif name.endswith(".vllm.json"):
                assert vllm_config.check(json.loads(text)) == []
        # every replica count is the plan's where the plan decides one
        planned = {v["target"]: v["replicas"]
                   for v in (decision.data.get("fleet") or {}).get("verifiers") or []}
        for v in manifest["verifiers"]:
            assert v["decided_by_plan"] == (v["target"] in planned)
            assert v["replicas"] == planned.get(v["target"], 1)


def _fleet_spec(tmp_path: Path) -> Path:
    """The edge example with one draft file and a verifier endpoint declared, and its lock."""
    models = tmp_path / "models"
    models.mkdir()
    spec = tmp_path / "fleet.yaml"
    spec.write_text(EXAMPLE.read_text()
                    .replace("Q4_K_M: {size_gb: 0.81}", "Q4_K_M: {size_gb: 0.81, gguf: "
                             "models/llama-1b-q4_k_m.gguf}")
                    .replace("verify_latency_s: 0.5 ", "verify_latency_s: 0.5\n"
                             "    endpoint: http://verifier.internal:8080/v1 "))
    r = invoke("lock", spec)
    assert r.exit_code == 0, r.stderr
    return spec


def _export(src: Path, out: Path, fmt: str) -> dict[str, Any]:
    r = invoke("export", src, "--format", fmt, "-o", out, "--json")
    assert r.exit_code == 0, r.stderr
    return json.loads(r.stdout)  # type: ignore[no-any-return]


def test_the_draft_client_line_names_the_plan(tmp_path: Path) -> None:
    spec = _fleet_spec(tmp_path)
    out = tmp_path / "d"
    _export(spec, out, "draft-client")
    solved = json.loads(invoke("solve", spec, "--json").stdout)
    for a in solved["assignments"]:
        argv = shlex.split((out / f"{a['device']}.draft-client.sh").read_text()
                           .split("exec ", 1)[1].replace("\\\n", " "))
        assert argv[:2] == ["configspec", "draft-client"] and argv[-1] == "$@"
        opts = dict(zip(argv[2:-1:2], argv[3:-1:2], strict=True))
        assert opts["--server"] == "http://verifier.internal:8080/v1"
        assert opts["--draft"] == str((tmp_path / "models" / "llama-1b-q4_k_m.gguf").resolve())
        assert (opts["--k"], opts["--pool"], opts["--quant"]) == \
            (str(a["k"]), a["device"], a["quant"])
        env_file = out / f"{a['device']}.draft-client.env"
        shown = subprocess.run(["sh", "-c", f'set -a; . "{env_file}"; env'],
                               capture_output=True, text=True, check=True, env={}).stdout
        env = dict(line.split("=", 1) for line in shown.splitlines() if "=" in line)
        assert env["CONFIGSPEC_DEPLOY_K"] == str(a["k"])
        assert env["CONFIGSPEC_DEPLOY_DRAFT_GGUF"] == opts["--draft"]
        assert shlex.split(env["CONFIGSPEC_DEPLOY_COMMAND"])[:2] == ["configspec",
                                                                     "draft-client"]
    # the CLI parses every option the line passes (it then stops at the missing file)
    r = invoke(*argv[1:-1], "--prompt", "hi")
    assert "No such option" not in r.stderr and r.exit_code == 4, r.stderr
    assert "GGUF file not found" in r.stderr


def test_an_unknown_value_stops_the_command_by_name(tmp_path: Path) -> None:
    """The target has no GGUF in the spec: the llama-server line says which variable to set
    and runs nothing; the manifest lists the same variable."""
    spec = _fleet_spec(tmp_path)
    out = tmp_path / "d"
    _export(spec, out, "llama-server")
    manifest = json.loads((out / "fleet.llama-server.json").read_text())
    assert {u["variable"] for u in manifest["unresolved"]} == {"CONFIGSPEC_DEPLOY_TARGET_GGUF"}
    assert "declares no gguf for target" in manifest["unresolved"][0]["why"]
    marker = tmp_path / "ran"
    r = subprocess.run(["sh", str(out / "orin.llama-server.sh")], capture_output=True,
                       text=True, env={"PATH": os.environ["PATH"],
                                       "LLAMA_SERVER": f"touch {marker}"}, check=False)
    assert r.returncode != 0 and "CONFIGSPEC_DEPLOY_TARGET_GGUF" in r.stderr
    assert not marker.exists()


def test_every_llama_flag_written_is_in_the_checked_table(tmp_path: Path) -> None:
    spec = _fleet_spec(tmp_path)
    seen: set[str] = set()
    for fmt in ("llama-server", "compose", "kubernetes"):
        out = tmp_path / fmt
        _export(spec, out, fmt)
        for p in out.iterdir():
            if p.name.endswith(".sh"):
                body = p.read_text().split("exec ", 1)[1]
                seen.update(f for f in llama_flags.flags_in(body.split()) if f != "--")
            elif p.name.endswith(".yaml"):
                for doc in _yaml_docs(p.read_text()):
                    for svc in (doc.get("services") or {}).values():
                        seen.update(llama_flags.flags_in(svc["command"]))
                    if doc.get("kind") == "Deployment":
                        for c in doc["spec"]["template"]["spec"]["containers"]:
                            seen.update(llama_flags.flags_in(c["args"]))
    assert seen and seen <= set(llama_flags.FLAGS), seen - set(llama_flags.FLAGS)
    assert {"--spec-type", "--spec-draft-model", "--spec-draft-n-max", "--parallel"} <= seen


def test_vllm_config_is_held_to_the_pinned_fields() -> None:
    good = vllm_config.speculative_config("/m/draft.gguf", 4)
    assert good == {"model": "/m/draft.gguf", "num_speculative_tokens": 4,
                    "method": "draft_model", "quantization": "gguf"}
    assert vllm_config.check(good) == []
    assert vllm_config.check({**good, "num_speculative_tokens": 0}) == \
        ["num_speculative_tokens: 0 is not above 0"]
    assert vllm_config.check({**good, "num_speculative_tokens": True})[0].startswith(
        "num_speculative_tokens: bool")
    assert vllm_config.check({**good, "draft_model": "x"})[0].startswith(
        "draft_model: not a field of SpeculativeConfig")
    assert vllm_config.check({**good, "method": "draft"})[0].startswith(
        "method: 'draft' is not one of")
    assert vllm_config.check({"model": "x"}) == \
        ["num_speculative_tokens: missing (a draft model needs it)"]


def test_the_schemas_refuse_what_their_tools_refuse() -> None:
    """The validators are real: a Deployment without a selector, a Compose service with a
    misspelt key fail, so a pass above means something."""
    with pytest.raises(Exception, match="selector"):
        _validate_kubernetes({"apiVersion": "apps/v1", "kind": "Deployment",
                              "metadata": {"name": "x"},
                              "spec": {"template": {"spec": {"containers": []}}}})
    with pytest.raises(jsonschema.ValidationError):
        _validate_compose({"services": {"x": {"image": "a", "replica": 2}}})


def test_lock_and_spec_export_the_same_commands(tmp_path: Path) -> None:
    spec = _fleet_spec(tmp_path)
    for fmt in FORMATS:
        a, b = tmp_path / f"s-{fmt}", tmp_path / f"l-{fmt}"
        _export(spec, a, fmt)
        _export(spec.with_name("fleet.yaml.lock"), b, fmt)
        names = sorted(p.name for p in a.iterdir())
        assert names == sorted(p.name for p in b.iterdir())
        for name in names:
            if not name.startswith("fleet."):
                assert (a / name).read_text() == (b / name).read_text(), name


def test_a_new_export_removes_only_its_own_stale_files(tmp_path: Path) -> None:
    spec = _fleet_spec(tmp_path)
    out = tmp_path / "d"
    _export(spec, out, "draft-client")
    _export(spec, out, "json")
    (out / "notes.sh").write_text("mine")
    spec.write_text(spec.read_text().replace("rpi5", "pi5"))
    summary = _export(spec, out, "draft-client")
    assert sorted(Path(p).name for p in summary["removed"]) == ["rpi5.draft-client.env",
                                                                "rpi5.draft-client.sh"]
    names = {p.name for p in out.iterdir()}
    assert {"notes.sh", "rpi5.json", "pi5.draft-client.sh", "fleet.json"} <= names
    # a manifest not written by this format lists nothing that may go
    (out / "fleet.vllm.json").write_text(json.dumps({"kind": "configspec-fleet", "format":
                                                     "vllm", "files": ["notes.sh"]}))
    _export(spec, out, "vllm")
    assert (out / "notes.sh").read_text() == "mine"


def test_compose_and_kubernetes_replicas_come_from_the_plan(tmp_path: Path) -> None:
    spec = ROOT / "examples" / "fleet-verifier" / "shared-verifier.yaml"
    plan = json.loads(invoke("solve", spec, "--json").stdout)
    (state,) = plan["fleet"]["verifiers"]
    out = tmp_path / "d"
    _export(spec, out, "compose")
    _export(spec, out, "kubernetes")
    (compose,) = _yaml_docs((out / "compose.yaml").read_text())
    (svc,) = compose["services"].values()
    assert svc["deploy"]["replicas"] == state["replicas"] > 1
    slots = int(svc["command"][svc["command"].index("--parallel") + 1])
    assert slots == 16 * (max(a["k"] for a in plan["assignments"]) + 1)  # max_batch x (K+1)
    (k8s,) = out.glob("*.kubernetes.yaml")
    deployment, service = _yaml_docs(k8s.read_text())
    assert deployment["spec"]["replicas"] == state["replicas"]
    assert service["spec"]["selector"] == deployment["spec"]["selector"]["matchLabels"]
    assert "resources" not in deployment["spec"]["template"]["spec"]["containers"][0]
    assert "declares no CPU" in deployment["metadata"]["annotations"][
        "configspec-opt/resources"]


def test_format_names_are_the_enum() -> None:
    assert set(FORMATS) == {"draft-client", "llama-server", "vllm", "compose", "kubernetes"}
    assert all(ExportFormat(f) in RUNNABLE for f in FORMATS)
