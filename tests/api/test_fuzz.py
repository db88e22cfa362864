"""Hostile specs, generated: the loader and the service answer them, never crash on them.

Hypothesis builds specs from the example by swapping in what broke servers
before: extreme but finite floats (1e-320, 5e-324, 1e308, -0.0), booleans
and huge integers where numbers go, huge and control-character strings,
nesting far past the loader's depth limit, YAML aliases that expand a lot,
NaN and infinities written as YAML.  Each goes, as YAML or as JSON:

* to the loader and the in-process validate/evaluate reports: the only
  exception allowed is a user error (`ConfigspecError`), and every report
  is strict JSON (no NaN, no inf);
* to `POST /v1/validate` and `POST /v1/solve` of a real app with real
  solver processes: 2xx or 4xx, never 5xx, and a 4xx is a problem document.

Time and memory are bounded generously (a hostile input must not cost
minutes or gigabytes): every call is timed, the test process's peak RSS
(`ru_maxrss`) and each solver process's (`VmHWM`) must stay under a cap.
`FUZZ_EXAMPLES` scales the example counts.
"""

from __future__ import annotations

import copy
import json
import os
import re
import resource
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from ruamel.yaml import YAML

from configspec_opt import operations as ops
from configspec_opt.errors import ConfigspecError, UsageError
from configspec_opt.loader import parse_spec
from tests.api.conftest import EXAMPLE

SCALE = float(os.environ.get("FUZZ_EXAMPLES", "1"))
SLOW_S = 60.0  # one call; generous on a loaded 2-core machine
RSS_GROWTH_CAP_MIB = 1024
WORKER_PEAK_CAP_MIB = 2048
NAN, INF, NINF = "__nan__", "__inf__", "__ninf__"

EXAMPLE_DATA: dict[str, Any] = YAML(typ="safe").load(EXAMPLE.read_text())

EXTREME_NUMBERS: list[Any] = [
    1e-320, 5e-324, 2.2250738585072014e-308, 1e-300, 1e308, 1.7976931348623157e308,
    -1e308, -0.0, 0.0, -1.0, 1e-9, 1e9, 2**53 + 1, 2**64, 10**40, 10**400,
    True, False, None, "1e308", NAN, INF, NINF,
]


def _leaves(data: Any, path: tuple[Any, ...] = ()) -> Iterator[tuple[tuple[Any, ...], Any]]:
    if isinstance(data, dict):
        for k, v in data.items():
            yield from _leaves(v, (*path, k))
    elif isinstance(data, list):
        for i, v in enumerate(data):
            yield from _leaves(v, (*path, i))
    else:
        yield path, data


NUMBER_PATHS = [p for p, v in _leaves(EXAMPLE_DATA)
                if isinstance(v, (int, float)) and not isinstance(v, bool)]
STRING_PATHS = [p for p, v in _leaves(EXAMPLE_DATA) if isinstance(v, str)]
ANY_PATHS = NUMBER_PATHS + STRING_PATHS


def _set(data: Any, path: tuple[Any, ...], value: Any) -> None:
    for part in path[:-1]:
        data = data[part]
    data[path[-1]] = value


def _nested(depth: int, kind: str) -> Any:
    value: Any = 1
    for _ in range(depth):
        value = [value] if kind == "list" else {"a": value}
    return value


numbers = st.one_of(st.sampled_from(EXTREME_NUMBERS),
                    st.floats(allow_nan=False, allow_infinity=False))
strings = st.one_of(
    st.text(max_size=40),
    st.builds(lambda n, c: c * n, st.integers(10_000, 300_000), st.sampled_from("x\u00e9\u202e")),
    st.sampled_from(["", " ", "\x00", "\ud7ff", "\u2028", "*", "&a", "!!python/object:os.system",
                     "${HOME}", "../../etc/passwd", "<script>", ":x:", "[red]x[/red]"]),
)

def _key(path: tuple[Any, ...]) -> str:
    return next(str(p) for p in reversed(path) if isinstance(p, str))


NUMBER_KEYS = sorted({_key(p) for p in NUMBER_PATHS})
replacements = st.lists(st.one_of(
    st.tuples(st.sampled_from(NUMBER_PATHS), numbers),
    st.tuples(st.sampled_from(STRING_PATHS), strings),
    st.tuples(st.sampled_from(ANY_PATHS), st.one_of(numbers, strings)),
), max_size=8)
WORST_NUMBERS: list[Any] = [1e-320, 5e-324, 1e308, 1.7976931348623157e308, -0.0, True,
                            10**400]
sweeps = st.lists(st.tuples(st.sampled_from(NUMBER_KEYS), st.sampled_from(WORST_NUMBERS)),
                  max_size=2)


def swept(key: str, value: Any) -> dict[str, Any]:
    """The example with one numeric field set to `value` wherever it occurs."""
    data = copy.deepcopy(EXAMPLE_DATA)
    for path in NUMBER_PATHS:
        if _key(path) == key:
            _set(data, path, value)
    return data
nesting = st.tuples(st.integers(1, 400), st.sampled_from(["list", "dict"]))


@st.composite
def hostile_specs(draw: st.DrawFn) -> tuple[str, str]:
    """(text, media type) of a spec with some hostile parts."""
    data = copy.deepcopy(EXAMPLE_DATA)
    for key, value in draw(sweeps):  # one field everywhere: every profile, every target
        for path in NUMBER_PATHS:
            if _key(path) == key:
                _set(data, path, value)
    for path, value in draw(replacements):
        _set(data, path, value)
    if draw(st.booleans()):
        depth, kind = draw(nesting)
        where = draw(st.sampled_from([("description",), ("devices", 0, "platform"),
                                      ("profiles", 0, "acceptance", "llama-3.1-70b"),
                                      ("unknown_key",)]))
        _set(data, where, _nested(depth, kind))
    as_json = draw(st.booleans())
    if as_json:
        text = json.dumps(data, allow_nan=True, ensure_ascii=draw(st.booleans()))
        text = text.replace(f'"{NAN}"', "NaN").replace(f'"{INF}"', "Infinity") \
            .replace(f'"{NINF}"', "-Infinity")
        return text, "application/json"
    import io

    buf = io.StringIO()
    yaml = YAML(typ="safe")
    yaml.width = 10**9
    yaml.dump(data, buf)
    text = buf.getvalue().replace(NAN, ".nan").replace(INF, ".inf").replace(NINF, "-.inf")
    if draw(st.booleans()):
        text = _with_aliases(text, draw(st.integers(2, 9)), draw(st.integers(2, 12)),
                             draw(st.integers(1, 2_000)))
    return text, "application/yaml"


def _with_aliases(text: str, levels: int, fan: int, width: int) -> str:
    """A 'billion laughs' ladder under an unknown key: fan**levels copies of a string."""
    lines = [f"laugh0: &l0 \"{'lol' * width}\""]
    for i in range(1, levels + 1):
        lines.append(f"laugh{i}: &l{i} [{', '.join([f'*l{i - 1}'] * fan)}]")
    return "\n".join(lines) + "\n" + text


def _peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def _children(pid: int) -> list[int]:
    out: list[int] = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            out += [int(c) for c in (task / "children").read_text().split()]
        except OSError:
            continue
    return out


def _worker_peaks_mib() -> dict[int, float]:
    """VmHWM (peak RSS) of every process this test process started (the solver pool)."""
    peaks: dict[int, float] = {}
    for pid in _children(os.getpid()):
        try:
            status = Path(f"/proc/{pid}/status").read_text()
        except OSError:
            continue
        m = re.search(r"^VmHWM:\s+(\d+) kB", status, re.M)
        if m:
            peaks[pid] = int(m.group(1)) / 1024
    return peaks


def _strict_json(data: Any) -> None:
    json.dumps(data, allow_nan=False)


# --- the loader and the reports, in process -------------------------------------------


RSS_AT_START = _peak_rss_mib()
TRIED: dict[str, int] = {"loader": 0, "service": 0}
WORST: dict[str, float] = {"loader_s": 0.0, "service_s": 0.0}


@given(spec=hostile_specs())
@settings(max_examples=int(150 * SCALE), deadline=None, database=None,
          suppress_health_check=list(HealthCheck))
def test_loader_and_reports_take_hostile_specs(spec: tuple[str, str]) -> None:
    text, _media = spec
    started = time.monotonic()
    try:
        loaded = parse_spec(text, name="<fuzz>", base_dir=None)
        _strict_json(ops.validate_report(loaded))
        _strict_json(ops.evaluate_report(loaded, top=3))
    except ConfigspecError as exc:
        assert str(exc)
        assert len(str(exc)) < 100_000, "an error message must stay small"
    took = time.monotonic() - started
    TRIED["loader"] += 1
    WORST["loader_s"] = max(WORST["loader_s"], took)
    assert took < SLOW_S, f"{took:.1f} s for one spec"
    grown = _peak_rss_mib() - RSS_AT_START
    assert grown < RSS_GROWTH_CAP_MIB, f"peak RSS grew {grown:.0f} MiB"


# --- the service ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def fuzz_client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    from configspec_opt.api import create_app
    from tests.api.conftest import settings_for

    db = tmp_path_factory.mktemp("fuzz") / "fuzz.sqlite3"
    app = create_app(settings_for(db, workers=1, backlog=2, default_time_limit=2.0))
    with TestClient(app, raise_server_exceptions=False) as client:
        yield client


@pytest.mark.parametrize("endpoint", ["/v1/validate", "/v1/solve?time_limit=2"])
def test_service_answers_hostile_specs_with_2xx_or_4xx(fuzz_client: TestClient,
                                                       endpoint: str) -> None:
    @given(spec=hostile_specs())
    @settings(max_examples=int((80 if "validate" in endpoint else 30) * SCALE),
              deadline=None, database=None, suppress_health_check=list(HealthCheck))
    def check(spec: tuple[str, str]) -> None:
        text, media = spec
        started = time.monotonic()
        r = fuzz_client.post(endpoint, content=text.encode(),
                             headers={"Content-Type": media})
        took = time.monotonic() - started
        TRIED["service"] += 1
        WORST["service_s"] = max(WORST["service_s"], took)
        assert r.status_code < 500, (r.status_code, r.text[:2000], text[:2000])
        if r.status_code >= 400:
            assert r.headers["content-type"].startswith("application/problem+json")
            assert r.json()["status"] == r.status_code
            assert len(r.content) < 200_000, "an error answer must stay small"
        else:
            _strict_json(r.json())
        assert took < SLOW_S, f"{took:.1f} s for one request"

    check()
    peaks = _worker_peaks_mib()
    assert all(p < WORKER_PEAK_CAP_MIB for p in peaks.values()), peaks


# --- every numeric field, every worst value: not left to chance --------------------------


GRID = [(key, value) for key in NUMBER_KEYS for value in WORST_NUMBERS]


def _loader_answers(text: str) -> None:
    try:
        loaded = parse_spec(text, name="<grid>", base_dir=None)
        _strict_json(ops.validate_report(loaded))
        _strict_json(ops.evaluate_report(loaded, top=3))
    except ConfigspecError:
        pass


def test_every_field_with_every_worst_value(fuzz_client: TestClient) -> None:
    """Each numeric field of the example set, everywhere it occurs, to each of
    1e-320, 5e-324, 1e308, max float, -0.0, true and 10**400: the loader, validate and
    (for the two that broke the metrics) solve answer with a user error or a result."""
    failures: list[str] = []
    for key, value in GRID:
        text = json.dumps(swept(key, value))
        started = time.monotonic()
        try:
            _loader_answers(text)
        except Exception as exc:  # collected, so one run shows every broken field
            failures.append(f"loader {key}={value!r}: {type(exc).__name__}: {exc}"[:300])
        endpoints = ["/v1/validate"] + (["/v1/solve?time_limit=2"]
                                        if value in (1e-320, 1e308) else [])
        for endpoint in endpoints:
            r = fuzz_client.post(endpoint, content=text,
                                 headers={"Content-Type": "application/json"})
            TRIED["service"] += 1
            if r.status_code >= 500:
                failures.append(f"{endpoint} {key}={value!r}: {r.status_code} {r.text[:200]}")
        took = time.monotonic() - started
        WORST["service_s"] = max(WORST["service_s"], took)
        assert took < SLOW_S, f"{key}={value!r}: {took:.1f} s"
    assert not failures, "\n".join(failures)


# --- the OpenAPI term grammar is the parser's -------------------------------------------


@given(text=st.one_of(
    st.text(max_size=30),
    st.builds(lambda a, s, b, m, c: f"{a}{s}{b}:{m}{c}",
              st.sampled_from(["", " ", "\t", "\u3000", "\x1c"]),
              st.sampled_from(["max", "MAX", "Min", "maximise", "minimize", "", " ", "x"]),
              st.sampled_from(["", " ", "\u2028"]),
              st.sampled_from(["goodput", "cost", "cost_efficiency", "energy", "power",
                               "min_goodput", "verifier_load", "Goodput", "watts"]),
              st.sampled_from(["", " ", "\n", "\x85"])),
))
@settings(max_examples=int(300 * SCALE), deadline=None, database=None)
def test_openapi_term_pattern_is_what_the_parser_accepts(text: str) -> None:
    """The schema states `objective`, `x` and `y` exactly: no valid term refused by it,
    none it allows refused by the server (schemathesis relies on both)."""
    from configspec_opt.api.openapi import term_pattern

    try:
        ops.parse_term(text)
        accepted = True
    except UsageError:
        accepted = False
    assert bool(re.match(term_pattern(), text)) == accepted, repr(text)


def test_fuzz_figures() -> None:
    """The figures of this module's run (`-s` shows them): inputs, worst time, peak memory."""
    if not any(TRIED.values()):
        pytest.skip("run with the fuzz tests above to see their figures")
    peaks = _worker_peaks_mib()
    print(f"\nfuzz: {TRIED} inputs, worst {WORST}, test process peak "
          f"{_peak_rss_mib():.0f} MiB (+{_peak_rss_mib() - RSS_AT_START:.0f}), solver "
          f"processes peak {max(peaks.values(), default=0):.0f} MiB")
    assert max(WORST.values()) < SLOW_S
