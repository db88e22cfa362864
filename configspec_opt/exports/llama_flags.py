"""Every llama-server flag an export writes, as the llama.cpp it was checked against names it.

llama.cpp renames flags between versions: the `--draft-max`/`--draft-min` of older
releases answer "the argument has been removed" in the version checked here, where
`--spec-draft-n-max`/`--spec-draft-n-min` replace them, and a draft model alone no longer
turns speculation on (`--spec-type draft-simple` does).  So each flag is listed once, here,
and tests/ship/test_export_run.py holds the list against the real binary's `--help`
(present, not removed) and starts the exported commands.
"""

from __future__ import annotations

LLAMA_CPP_CHECKED = "llama.cpp as vendored by llama-cpp-python 0.3.36 (its `llama-server`)"
DEFAULT_PORT = 8080

FLAGS: dict[str, str] = {
    "--model": "the target GGUF",
    "--host": "the address to listen on",
    "--port": "the port to listen on",
    "--parallel": "slots: sequences decoded together",
    "--ctx-size": "context size, shared by the slots",
    "--cont-batching": "continuous batching across slots",
    "--metrics": "Prometheus counters on /metrics (speculation's included)",
    "--no-webui": "no browser UI",
    "--spec-type": "speculation method; draft-simple: a draft model drafts",
    "--spec-draft-model": "the draft GGUF",
    "--spec-draft-n-max": "tokens drafted per round (K)",
    "--spec-draft-n-min": "fewest drafted tokens a round uses",
    "--spec-draft-p-min": "stop drafting below this probability (0: always draft K)",
}


def speculative_server(target: str, draft: str, k: int) -> list[str]:
    """llama-server with the draft beside the target: K tokens a round, always K.

    `target` and `draft` are shell words already (quoted paths or placeholders).
    """
    return [f"--model {target}", "--spec-type draft-simple", f"--spec-draft-model {draft}",
            f"--spec-draft-n-max {k}", "--spec-draft-n-min 0", "--spec-draft-p-min 0",
            f"--host 127.0.0.1 --port {DEFAULT_PORT}", "--metrics"]


def verifier_args(model: str, slots: int, ctx_per_slot: int) -> list[str]:
    """llama-server as a remote verifier (container form: one argument per item)."""
    return ["--model", model, "--host", "0.0.0.0", "--port", str(DEFAULT_PORT),
            "--parallel", str(slots), "--ctx-size", str(slots * ctx_per_slot),
            "--cont-batching", "--metrics", "--no-webui"]


def flags_in(words: list[str]) -> list[str]:
    """The `--flags` among shell words or argv items (values and placeholders skipped)."""
    return [w for chunk in words for w in chunk.split() if w.startswith("--")]
