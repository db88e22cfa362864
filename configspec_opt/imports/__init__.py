"""Numbers users already have, imported into a spec instead of typed by hand.

Each importer reads one tool's own output and nothing else: llama-bench's JSON
(v_d, the drafting throughput), vLLM's Prometheus speculative-decoding counters
(acceptance per position, hence alpha(K) for every K the server drafted) and
llama.cpp's speculative statistics (the example's `n_drafted`/`n_accept` summary
or llama-server's per-request acceptance lines).  `writer` merges the numbers
into the profiles with the profiler's round-trip writer, so comments survive and
`git diff` shows only what was imported, and records where each number came
from in the profile's `provenance`.
"""
