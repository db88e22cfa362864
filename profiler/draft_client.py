"""The device side of a split deployment: draft K tokens here, verify them on a remote server.

`configspec draft-client` runs this loop (the `draft-client` export writes its command line
per pool).  The draft GGUF runs here with llama-cpp-python; the target runs on a server;
decoding is greedy and lossless token for token (the output is the target's own).

Two ways to ask a server for the target's choice at every drafted position:

- **llama** (llama.cpp's `llama-server`): its API returns nothing about the tokens of a
  prompt, and its OpenAI endpoint refuses `echo`.  So a round is one `/completion`
  request carrying K + 1 prompts, the context followed by the first i drafts
  (i = 0..K), each asking for one greedy token: the server runs them as K + 1
  sequences in one batch (one slot each; the prompt cache keeps every slot's context,
  so a slot decodes only what changed), and answer i is the target's choice after
  i drafts.  Token ids travel as ids, so no re-tokenisation can disagree.  The cost:
  a round occupies K + 1 slots, not the one a verification table was measured with.
- **openai**: an OpenAI-compatible completions endpoint that echoes the prompt with
  logprobs (vLLM, llama-cpp-python's server): one request per round
  (`profiler.speculative.generate_remote`).

The counters (drafted, accepted, verification rounds) are what llama.cpp's server exposes
for its own speculation, under the same names (`prometheus`), so one scraper reads both.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from profiler.draft_pass import prefill_but_last
from profiler.engine import Engine
from profiler.errors import EndpointError, TokenizerMismatchError
from profiler.http import HttpPolicy, request_json
from profiler.speculative import Round, SpecResult, _draft_k, _extend, generate_remote
from profiler.targets import PROBE_TEXTS, RemoteTarget, Sampling
from profiler.trial import Measured

APIS = ("auto", "llama", "openai")


def server_root(url: str) -> str:
    """The server's base URL: an OpenAI-style `.../v1` suffix and trailing slashes removed."""
    root = url.rstrip("/")
    return root[: -len("/v1")] if root.endswith("/v1") else root


def detect_api(url: str, timeout_s: float) -> str:
    """`llama` when the server answers llama-server's `/props`, else `openai`.

    Raises EndpointError when nothing answers at all (wrong URL, server down).
    """
    probe = server_root(url) + "/props"
    try:
        with urllib.request.urlopen(probe, timeout=timeout_s) as resp:
            data = json.loads(resp.read() or b"null")
    except urllib.error.HTTPError:
        return "openai"  # something answers, and it is not llama-server
    except (urllib.error.URLError, TimeoutError, ConnectionError, OSError) as exc:
        raise EndpointError(f"cannot reach {url}: {getattr(exc, 'reason', exc)} (is the "
                            "verifier running and the URL right?)") from None
    except ValueError:
        return "openai"
    is_llama = isinstance(data, dict) and "default_generation_settings" in data
    return "llama" if is_llama else "openai"


class LlamaServerVerifier:
    """llama.cpp's llama-server as the verifier: K + 1 one-token prompts per round."""

    def __init__(self, url: str, policy: HttpPolicy | None = None) -> None:
        self.root = server_root(url)
        self.policy = policy or HttpPolicy()

    def check_tokenizer(self, draft: Engine) -> None:
        """The server must tokenize a probe as the draft does; ids are sent as ids."""
        for text in PROBE_TEXTS:
            data = request_json("POST", self.root + "/tokenize",
                                {"content": text, "add_special": False}, self.policy)
            theirs = data.get("tokens") if isinstance(data, dict) else None
            ours = draft.tokenize(text, add_bos=False)
            if theirs != ours:
                raise TokenizerMismatchError(
                    f"{self.root} tokenizes {text[:30]!r}... as {str(theirs)[:60]}, the draft "
                    f"{draft.path.name} as {str(ours)[:60]}: they do not share a tokenizer")

    def choices(self, context: list[int], drafted: list[int]) -> list[int]:
        """The target's greedy token after the context and each prefix of the drafts (K + 1)."""
        prompts = [context + drafted[:i] for i in range(len(drafted) + 1)]
        body = {"prompt": prompts, "n_predict": 1, "temperature": 0.0, "top_k": 1,
                "cache_prompt": True, "return_tokens": True, "stream": False}
        data = request_json("POST", self.root + "/completion", body, self.policy)
        results = data if isinstance(data, list) else [data]
        if len(results) != len(prompts):
            raise EndpointError(f"{self.root}/completion answered {len(results)} results for "
                                f"{len(prompts)} prompts")
        out: list[int | None] = [None] * len(prompts)
        for pos, r in enumerate(results):
            index = r.get("index", pos) if isinstance(r, dict) else None
            tokens = r.get("tokens") if isinstance(r, dict) else None
            if not isinstance(index, int) or not 0 <= index < len(prompts) or \
                    not isinstance(tokens, list) or len(tokens) != 1 or \
                    not isinstance(tokens[0], int):
                raise EndpointError(f"{self.root}/completion answered without one token per "
                                    f"prompt: {json.dumps(r)[:200]}")
            out[index] = tokens[0]
        if any(t is None for t in out):
            raise EndpointError(f"{self.root}/completion left a prompt unanswered")
        return [int(t) for t in out if t is not None]


def generate_llama(draft: Engine, verifier: LlamaServerVerifier, prompt_text: str, k: int,
                   max_new: int) -> SpecResult:
    """Greedy speculative decoding of up to `max_new` tokens, verified by llama-server.

    The draft's state follows `profiler.speculative.generate` exactly (rollback to the
    accepted prefix; after a fully accepted round the draft still owes d_K a step).
    """
    prompt = draft.tokenize(prompt_text)
    res = SpecResult(k, list(prompt), [])
    t_start = time.perf_counter()
    x = prefill_but_last(draft, prompt)
    context = list(prompt)
    backlog: list[int] = []
    rng = np.random.default_rng(0)
    while len(res.tokens) < max_new:
        t0 = time.perf_counter()
        d0 = draft.n_past
        drafted, _, steps = _draft_k(draft, backlog, x, k, Sampling(), rng)
        res.draft_steps += steps
        t1 = time.perf_counter()
        target = verifier.choices(context, drafted)
        t2 = time.perf_counter()
        a = 0
        while a < k and drafted[a] == target[a]:
            a += 1
        if a < k:
            draft.rollback(d0 + len(backlog) + 1 + a)
            backlog = []
        else:
            backlog = [drafted[-1]]
        emitted = [*drafted[:a], target[a]]
        context += emitted
        res.rounds.append(Round(len(res.tokens), a, len(emitted), t1 - t0, t2 - t1,
                                time.perf_counter() - t0))
        x = target[a]
        if _extend(res.tokens, emitted, max_new, draft):
            break
    shown = [t for t in res.tokens if not draft.is_end(t)]
    res.text = draft.detokenize(shown).decode("utf-8", "replace")
    res.wall_s = time.perf_counter() - t_start
    return res


@dataclass
class ClientRun:
    """What one run of the drafting client did: the answers and the summed counters."""

    api: str
    server: str
    k: int
    texts: list[str] = field(default_factory=list)
    measured: Measured = field(default_factory=Measured)
    labels: dict[str, str] = field(default_factory=dict)

    def record(self) -> dict[str, Any]:
        """The run as JSON data: counters, rates and the answers."""
        m = self.measured
        return {
            "api": self.api, "server": self.server, "k": self.k, "labels": self.labels,
            "prompts": len(self.texts),
            "counters": {"drafted": m.drafted, "accepted": m.accepted, "rounds": m.rounds,
                         "tokens": m.tokens, "draft_s": round(m.draft_s, 6),
                         "verify_s": round(m.verify_s, 6), "round_s": round(m.round_s, 6)},
            "alpha": round(m.alpha, 4),
            "mean_acceptance_length": round(1 + m.accepted / m.rounds, 4) if m.rounds else None,
            "goodput_tok_s": round(m.goodput, 3),
            "draft_tok_s": round(m.draft_steps / m.draft_s, 3) if m.draft_s else None,
            "texts": self.texts,
        }

    def prometheus(self) -> str:
        """The counters in Prometheus text form, named as llama-server names its own."""
        m = self.measured
        rows = [
            ("llamacpp:spec_decode_num_draft_tokens_total", "counter",
             "Speculative: total draft tokens generated (on the device)", m.drafted),
            ("llamacpp:spec_decode_num_accepted_tokens_total", "counter",
             "Speculative: total draft tokens accepted by the target model", m.accepted),
            ("llamacpp:spec_decode_num_drafts_total", "counter",
             "Speculative: total speculative decoding verification steps", m.rounds),
            ("configspec_draft_client_tokens_total", "counter",
             "Tokens emitted (accepted drafts and the target's own)", m.tokens),
            ("configspec_draft_client_draft_seconds_total", "counter",
             "Seconds spent drafting", m.draft_s),
            ("configspec_draft_client_verify_seconds_total", "counter",
             "Seconds spent waiting for verification (network included)", m.verify_s),
            ("configspec_draft_client_round_seconds_total", "counter",
             "Seconds of speculative rounds (prompt prefill excluded)", m.round_s),
        ]
        lines: list[str] = []
        for name, kind, help_text, value in rows:
            lines += [f"# HELP {name} {help_text}", f"# TYPE {name} {kind}",
                      f"{name} {value:.9g}" if isinstance(value, float) else f"{name} {value}"]
        labels = {**self.labels, "k": str(self.k), "api": self.api}
        shown = ",".join(f'{key}="{_label(v)}"' for key, v in sorted(labels.items()))
        lines += ["# HELP configspec_draft_client_info What this client runs",
                  "# TYPE configspec_draft_client_info gauge",
                  f"configspec_draft_client_info{{{shown}}} 1"]
        return "\n".join(lines) + "\n"


def _label(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def run_client(draft: Engine, server: str, k: int, prompts: list[str], max_new: int,
               api: str = "auto", policy: HttpPolicy | None = None,
               labels: dict[str, str] | None = None) -> ClientRun:
    """Decode every prompt speculatively against `server`; the tokenizer is checked first."""
    policy = policy or HttpPolicy()
    chosen = detect_api(server, policy.timeout_s) if api == "auto" else api
    run = ClientRun(chosen, server, k, labels=dict(labels or {}))
    if chosen == "llama":
        verifier = LlamaServerVerifier(server, policy)
        verifier.check_tokenizer(draft)
        for text in prompts:
            res = generate_llama(draft, verifier, text, k, max_new)
            run.measured.add(res)
            run.texts.append(res.text or "")
        return run
    remote = RemoteTarget("target", server, policy)
    remote.check_tokenizer(draft)
    for text in prompts:
        res = generate_remote(draft, remote, text, k, max_new)
        run.measured.add(res)
        run.texts.append(res.text or "")
    return run
