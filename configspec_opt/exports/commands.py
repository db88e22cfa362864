"""Per-pool command lines: the drafting client, llama-server with its draft, vLLM.

Each renderer returns `Rendered`: file name -> text, the files of each pool, and the
values it could not fill in (placeholders that stop the command with a message).
"""

from __future__ import annotations

import json
import shlex
from dataclasses import dataclass, field
from typing import Any

from configspec_opt.export import ExportError, render_env
from configspec_opt.exports import llama_flags, vllm_config
from configspec_opt.exports.plan import Configuration, Unresolved, env_name, script, sh_value


@dataclass
class Rendered:
    """What a format writes besides its manifest."""

    texts: dict[str, str] = field(default_factory=dict)
    pool_files: dict[str, list[str]] = field(default_factory=dict)  # by configuration stem
    unresolved: Unresolved = field(default_factory=Unresolved)
    extra: dict[str, Any] = field(default_factory=dict)

    def add(self, stem: str, name: str, text: str) -> None:
        """One file of the configuration whose file stem is `stem`."""
        self.texts[name] = text
        self.pool_files.setdefault(stem, []).append(name)


def _about(c: Configuration, spec_file: str, fmt: str, what: str) -> str:
    split = f" (configuration {c.index} of {c.of}, {c.count} devices)" if c.of > 1 else ""
    return (f"configspec-opt {fmt}: {what} for pool {c.pool}{split}\n"
            f"draft {c.draft} {c.quant}, K={c.k}, target {c.target}; from {spec_file}\n"
            f"Generated; do not edit (re-run `configspec export --format {fmt}`).")


def draft_client(configs: list[Configuration], spec_file: str) -> Rendered:
    """Per configuration: the `configspec draft-client` line pointed at the verifier, and an
    env file with the same values (for systemd or `docker --env-file`)."""
    out = Rendered()
    for c in configs:
        where = f"{c.stem}.draft-client.sh"
        server = sh_value(c.endpoint, env_name("TARGET_ENDPOINT"),
                          f"the spec declares no endpoint for target {c.target}",
                          out.unresolved, where)
        ref = c.draft_model.local or (c.draft_model.declared
                                      if (c.draft_model.declared or "").startswith("pkg:")
                                      else None)
        draft = sh_value(ref, env_name("DRAFT_GGUF"), c.draft_model.why_unknown,
                         out.unresolved, where)
        argv = ["configspec draft-client", f"--server {server}", f"--draft {draft}",
                f"--k {c.k}", f"--pool {shlex.quote(c.pool)}",
                f"--quant {shlex.quote(c.quant)}"]
        out.add(c.stem, where, script(_about(c, spec_file, "draft-client",
                                             "the drafting client"), argv))
        pairs: list[tuple[str, Any, str]] = [
            ("POOL", c.pool, ""), ("CONFIGURATION", c.index, ""), ("DEVICES", c.count, ""),
            ("DRAFT", c.draft, ""), ("QUANT", c.quant, ""), ("DRAFT_GGUF", ref, ""),
            ("K", c.k, ""), ("TARGET", c.target, ""), ("TARGET_ENDPOINT", c.endpoint, ""),
            ("EXPECTED_GOODPUT_TOK_S", c.expected.get("goodput_tok_s"), "n/a"),
            ("EXPECTED_ALPHA", c.expected.get("alpha"), "n/a"),
            ("COMMAND", " ".join(argv), "")]
        out.add(c.stem, f"{c.stem}.draft-client.env",
                render_env(pairs, _about(c, spec_file, "draft-client", "the drafting client")
                           + "\nan unknown path or endpoint is empty"))
    return out


def llama_server(configs: list[Configuration], spec_file: str) -> Rendered:
    """Per configuration: llama-server serving the target with the pool's draft beside it
    (draft and target on one machine), K tokens a round."""
    out = Rendered()
    for c in configs:
        where = f"{c.stem}.llama-server.sh"
        target = sh_value(c.target_model.local, env_name("TARGET_GGUF"),
                          c.target_model.why_unknown, out.unresolved, where)
        draft = sh_value(c.draft_model.local, env_name("DRAFT_GGUF"),
                         c.draft_model.why_unknown, out.unresolved, where)
        argv = ['"${LLAMA_SERVER:-llama-server}"',
                *llama_flags.speculative_server(target, draft, c.k)]
        out.add(c.stem, where, script(
            _about(c, spec_file, "llama-server", "llama-server with the draft beside the "
                   "target") + "\nLLAMA_SERVER names the binary; options after the script's "
            "name are appended (a later --port wins).", argv))
    out.extra["llama_cpp"] = llama_flags.LLAMA_CPP_CHECKED
    return out


def vllm(configs: list[Configuration], spec_file: str) -> Rendered:
    """Per configuration: the `--speculative-config` JSON, and the `vllm serve` line that
    reads it.  A draft without a local file is named by its spec name, to be replaced."""
    out = Rendered()
    for c in configs:
        name = f"{c.stem}.vllm.json"
        model = c.draft_model.local
        if model is None:
            out.unresolved.add(name, "model", c.draft_model.why_unknown
                               + f"; the draft's name {c.draft!r} stands in for it")
            model = c.draft
        config = vllm_config.speculative_config(model, c.k)
        problems = vllm_config.check(config)
        if problems:  # a bug here, not the user's: the config is ours
            raise ExportError(f"{name}: " + "; ".join(problems))
        out.add(c.stem, name, json.dumps(config, indent=2) + "\n")
        where = f"{c.stem}.vllm.sh"
        target = sh_value(c.target_model.local, env_name("TARGET_MODEL"),
                          c.target_model.why_unknown + " (a path or a Hugging Face id)",
                          out.unresolved, where)
        argv = ["vllm serve", target,
                f'--speculative-config "$(cat "$(dirname "$0")"/{shlex.quote(name)})"']
        out.add(c.stem, where, script(_about(c, spec_file, "vllm", "vLLM with the draft "
                                             "beside the target"), argv))
    out.extra["vllm"] = {"checked_against": vllm_config.VLLM_SOURCE,
                         "fields": sorted(vllm_config.FIELDS)}
    return out
