"""`configspec export --format k-policy`: per pool, the runtime K policy as JSON.

One file per pool (`<pool>.k-policy.json`) holding a policy per configuration the
plan assigns there: rows of rtt, each with the load bands and the K to run in each
(`configspec_opt.k_policy`).  A device or serving layer reads it and switches K as
the verifier's load and the network move, without re-solving.
"""

from __future__ import annotations

import json
from typing import Any

from configspec_opt import k_policy
from configspec_opt.export import Decision, manifest_document, safe_names

FORMAT = "k-policy"


def render(decision: Decision) -> tuple[dict[str, str], list[dict[str, Any]]]:
    """{file name: text} per pool with an assignment, and the manifest's pool listing."""
    spec = decision.loaded.spec
    found = k_policy.policies(spec, decision.data)
    by_pool: dict[str, list[dict[str, Any]]] = {}
    for p in found:
        by_pool.setdefault(p.curve.pool, []).append(k_policy.document(p))
    stems = safe_names(list(by_pool))
    head = {"name": spec.name, "file": decision.data["spec"]["file"],
            "sha256": decision.data["spec"]["sha256"]}
    texts: dict[str, str] = {}
    listing: list[dict[str, Any]] = []
    for device in spec.devices:
        docs = by_pool.get(device.name)
        if not docs:
            continue
        name = f"{stems[device.name]}.{FORMAT}.json"
        doc = {"kind": k_policy.POLICY_KIND, "format_version": k_policy.POLICY_VERSION,
               "spec": head, "pool": device.name, "devices": device.count,
               "policies": docs}
        texts[name] = json.dumps(doc, indent=2, allow_nan=False) + "\n"
        listing.append({"pool": device.name, "devices": device.count,
                        "configurations": len(docs), "files": [name]})
    return texts, listing


def render_with_manifest(decision: Decision, manifest_file: str
                         ) -> tuple[dict[str, str], dict[str, Any]]:
    """The pool files and the format's manifest (`fleet.k-policy.json`)."""
    texts, listing = render(decision)
    manifest = manifest_document(decision, listing)
    manifest["format"] = FORMAT
    manifest["files"] = sorted(texts)
    texts[manifest_file] = json.dumps(manifest, indent=2, allow_nan=False) + "\n"
    return texts, manifest
