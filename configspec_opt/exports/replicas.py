"""The verifier replicas the plan decides, as a Compose file and as Kubernetes manifests.

One service per target the fleet uses: llama.cpp's llama-server serving the target's
GGUF, with the replica count the plan chose for a batched verifier (`fleet.verifiers`
of the decision) and one replica for a target the plan does not size (said so in an
annotation and in the manifest).  Slots per replica: a drafting client verifies a round
of K drafts with K + 1 one-token prompts on llama-server (`profiler.draft_client`), so a
replica that serves `max_batch` verifications at once needs max_batch x (K + 1) slots,
K the largest K of the pools on it; without a `max_batch`, up to 16 devices at once.

The spec declares no CPU, memory or GPU for a target, so no resource requests are
written: a Kubernetes pod without them is scheduled best-effort, and the manifest says
what to add.  Models come from a volume at /models: in Compose the directory
$CONFIGSPEC_MODELS_DIR (default ./models), in Kubernetes the PersistentVolumeClaim
`configspec-models`, which the operator provides.
"""

from __future__ import annotations

from pathlib import PurePosixPath
from typing import Any

from configspec_opt.export import Decision
from configspec_opt.exports import llama_flags
from configspec_opt.exports.commands import Rendered
from configspec_opt.exports.plan import VerifierTarget, env_name
from configspec_opt.vcs.yamldump import dump_yaml

IMAGE = "ghcr.io/ggml-org/llama.cpp:server"
MODELS = "/models"
MODELS_CLAIM = "configspec-models"
CTX_PER_SLOT = 4096
UNSIZED_DEVICES = 16
NO_RESOURCES = ("the spec declares no CPU, memory or GPU for this target: add "
                "resources.requests for your hardware")


def slots(v: VerifierTarget) -> int:
    """llama-server slots per replica (module doc)."""
    together = v.max_batch if v.max_batch is not None else min(v.devices, UNSIZED_DEVICES)
    return max(1, together) * (v.k_max + 1)


def model_path(v: VerifierTarget) -> str:
    """The target's GGUF inside the container (by its file name; `<slug>.gguf` if unknown)."""
    known = v.model.local or v.model.declared
    name = PurePosixPath(known).name if known and "://" not in known else f"{v.slug}.gguf"
    if known and known.startswith("pkg:"):
        name = known.rpartition("/")[2]
    return f"{MODELS}/{name}"


def _note(v: VerifierTarget) -> str:
    if v.decided:
        return (f"{v.replicas} replicas decided by the plan (in flight per replica "
                f"{v.in_flight_per_replica:.3g})" if v.in_flight_per_replica is not None
                else f"{v.replicas} replicas decided by the plan")
    return "1 replica: the spec has no verifier block for this target, so the plan does " \
        "not size it"


def compose(decision: Decision, targets: list[VerifierTarget], spec_file: str) -> Rendered:
    """One Compose file: a service per target, replicas and host port range from the plan."""
    out = Rendered()
    services: dict[str, Any] = {}
    port = llama_flags.DEFAULT_PORT
    for v in targets:
        n = v.replicas
        services[f"verifier-{v.slug}"] = {
            "image": f"${{{env_name('VERIFIER_IMAGE')}:-{IMAGE}}}",
            "command": llama_flags.verifier_args(model_path(v), slots(v), CTX_PER_SLOT),
            "volumes": [f"${{{env_name('MODELS_DIR')}:-./models}}:{MODELS}:ro"],
            "ports": [f"{port}-{port + n - 1}:{llama_flags.DEFAULT_PORT}" if n > 1
                      else f"{port}:{llama_flags.DEFAULT_PORT}"],
            "deploy": {"replicas": n},
            "healthcheck": {"test": ["CMD", "curl", "-f",
                                     f"http://localhost:{llama_flags.DEFAULT_PORT}/health"],
                            "interval": "10s", "timeout": "5s", "retries": 30},
            "labels": {"configspec-opt.target": v.target, "configspec-opt.replicas": _note(v),
                       "configspec-opt.spec-sha256": decision.data["spec"]["sha256"]},
            "restart": "unless-stopped",
        }
        port += n
    name = "compose.yaml"
    header = (f"configspec-opt compose: the verifier replicas the plan decides, from {spec_file}."
              "\nModels: $CONFIGSPEC_DEPLOY_MODELS_DIR (default ./models) mounted at /models."
              "\nGenerated; do not edit (re-run `configspec export --format compose`).")
    out.texts[name] = dump_yaml({"name": "configspec-verifiers", "services": services}, header)
    out.pool_files["*"] = [name]
    return out


def _labels(v: VerifierTarget) -> dict[str, str]:
    return {"app.kubernetes.io/name": "llama-server",
            "app.kubernetes.io/instance": f"verifier-{v.slug}",
            "app.kubernetes.io/component": "verifier",
            "app.kubernetes.io/managed-by": "configspec-opt"}


def kubernetes(decision: Decision, targets: list[VerifierTarget], spec_file: str) -> Rendered:
    """Per target a Deployment (replicas from the plan) and a Service, one YAML file."""
    out = Rendered()
    for v in targets:
        labels = _labels(v)
        annotations = {"configspec-opt/target": v.target, "configspec-opt/replicas": _note(v),
                       "configspec-opt/spec-sha256": decision.data["spec"]["sha256"],
                       "configspec-opt/resources": NO_RESOURCES}
        probe = {"httpGet": {"path": "/health", "port": "http"}, "periodSeconds": 10}
        deployment = {
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": f"verifier-{v.slug}", "labels": labels,
                         "annotations": annotations},
            "spec": {
                "replicas": v.replicas,
                "selector": {"matchLabels": {"app.kubernetes.io/instance":
                                             labels["app.kubernetes.io/instance"]}},
                "template": {
                    "metadata": {"labels": labels},
                    "spec": {
                        "containers": [{
                            "name": "llama-server", "image": IMAGE,
                            "args": llama_flags.verifier_args(model_path(v), slots(v),
                                                              CTX_PER_SLOT),
                            "ports": [{"name": "http",
                                       "containerPort": llama_flags.DEFAULT_PORT}],
                            "readinessProbe": probe,
                            "startupProbe": {**probe, "failureThreshold": 60},
                            "volumeMounts": [{"name": "models", "mountPath": MODELS,
                                              "readOnly": True}],
                        }],
                        "volumes": [{"name": "models", "persistentVolumeClaim": {
                            "claimName": MODELS_CLAIM, "readOnly": True}}],
                    },
                },
            },
        }
        service = {
            "apiVersion": "v1", "kind": "Service",
            "metadata": {"name": f"verifier-{v.slug}", "labels": labels,
                         "annotations": {"configspec-opt/target": v.target}},
            "spec": {"selector": {"app.kubernetes.io/instance":
                                  labels["app.kubernetes.io/instance"]},
                     "ports": [{"name": "http", "port": llama_flags.DEFAULT_PORT,
                                "targetPort": "http"}]},
        }
        name = f"{v.slug}.kubernetes.yaml"
        header = (f"configspec-opt kubernetes: verifier for target {v.target}, from "
                  f"{spec_file}.\n{_note(v)}.\nGenerated; do not edit (re-run `configspec "
                  "export --format kubernetes`).")
        out.texts[name] = dump_yaml(deployment, header) + "---\n" + dump_yaml(service, "")
        out.pool_files.setdefault("*", []).append(name)
    return out
