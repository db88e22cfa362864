"""The committed JSON Schema and the loader agree: on the repository's specs, and on mistakes.

Editors validate specs with schema/configspec.schema.json (yaml-language-server),
so a schema that refuses a correct spec underlines it, and one that takes what the
loader refuses hides a mistake until `configspec validate`.  Every spec under specs/
and examples/ must load AND validate with a real draft 2020-12 validator; every
mistake below that JSON Schema can express must be refused by both.

An editor sees YAML as JSON, where every key is a string (`2: 0.7` is the key "2"),
so documents are validated in that form.
"""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator
from pydantic import TypeAdapter, ValidationError

from configspec_opt.errors import SpecError
from configspec_opt.loader import Source, load_spec, parse_data, parse_spec
from configspec_opt.spec import AcceptanceTable, Profile, Target, int_range_pattern

ROOT = Path(__file__).resolve().parents[2]
SCHEMA: dict[str, Any] = json.loads((ROOT / "schema" / "configspec.schema.json").read_text())
VALIDATOR = Draft202012Validator(SCHEMA)
PROFILES_VALIDATOR = Draft202012Validator({
    "$schema": SCHEMA["$schema"], "$defs": SCHEMA["$defs"],
    "type": "array", "items": {"$ref": "#/$defs/Profile"}})


def as_editor_sees(data: Any) -> Any:
    """The JSON form of loaded YAML: mapping keys become strings."""
    return json.loads(json.dumps(data))


def schema_errors(validator: Draft202012Validator, data: Any) -> list[str]:
    return [f"{'/'.join(map(str, e.absolute_path)) or '<root>'}: {e.message}"
            for e in validator.iter_errors(as_editor_sees(data))]


def _documents() -> dict[str, list[Path]]:
    """Spec files and profile files (for `profiles_from`) under specs/ and examples/.

    Decided by content: a spec has `version` and `targets`; a profile file is a list
    of profiles or a mapping with `profiles` alone (what the loader takes there).
    Other YAML/JSON files (none today) are not configspec documents.
    """
    found: dict[str, list[Path]] = {"spec": [], "profiles": []}
    for top in ("specs", "examples"):
        for path in sorted((ROOT / top).rglob("*")):
            if path.suffix not in (".yaml", ".yml", ".json") or not path.is_file():
                continue
            data = parse_data(Source(str(path), path.read_text(encoding="utf-8")))
            if isinstance(data, dict) and {"version", "targets"} <= set(data):
                found["spec"].append(path)
            elif isinstance(data, list) or (isinstance(data, dict) and set(data) == {"profiles"}):
                found["profiles"].append(path)
    return found


DOCUMENTS = _documents()


def _rel(path: Path) -> str:
    return path.relative_to(ROOT).as_posix()


def test_the_committed_schema_is_a_valid_draft_2020_12_schema() -> None:
    assert SCHEMA["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    Draft202012Validator.check_schema(SCHEMA)


def test_the_specs_of_the_issue_are_among_those_checked() -> None:
    checked = {_rel(p) for p in DOCUMENTS["spec"]}
    assert {"examples/llama70b-edge.yaml", "specs/retail-fleet.yaml"} <= checked


@pytest.mark.parametrize("path", DOCUMENTS["spec"], ids=_rel)
def test_every_spec_loads_and_validates_against_the_schema(path: Path) -> None:
    load_spec(path)  # raises SpecError, located, if the loader refuses it
    data = parse_data(Source(str(path), path.read_text(encoding="utf-8")))
    assert schema_errors(VALIDATOR, data) == []


def test_every_profile_file_validates_against_the_profile_schema() -> None:
    for path in DOCUMENTS["profiles"]:
        data = parse_data(Source(str(path), path.read_text(encoding="utf-8")))
        profiles = data["profiles"] if isinstance(data, dict) else data
        TypeAdapter(list[Profile]).validate_python(profiles)
        assert schema_errors(PROFILES_VALIDATOR, profiles) == [], _rel(path)


# --- the loader and the schema on the same documents -------------------------

BASE: dict[str, Any] = {
    "version": 1,
    "name": "schema-check",
    "targets": [{"name": "big", "family": "llama", "price_usd_per_mtok": 0.9,
                 "verify_latency_s": 0.5}],
    "drafts": [{"name": "small", "family": "llama", "quants": {"Q4_K_M": {"size_gb": 0.8}}}],
    "devices": [{"name": "pi", "count": 20, "memory_gb": 8}],
    "profiles": [{"device": "pi", "draft": "small", "quant": "Q4_K_M", "draft_tok_s": 14.0,
                  "power_w": 8.0, "acceptance": {"big": {"2": 0.7, "3": 0.65}}}],
    "search": {"k": {"min": 2, "max": 3}},
    "objective": {"maximize": "goodput"},
}
ACCEPTANCE = ("profiles", 0, "acceptance", "big")
OBJECTIVE = ("objective",)


def edited(path: tuple[str | int, ...], value: Any) -> dict[str, Any]:
    spec = copy.deepcopy(BASE)
    node: Any = spec
    for part in path[:-1]:
        node = node[part]
    node[path[-1]] = value
    return spec


def loader_accepts(spec: dict[str, Any]) -> bool:
    try:
        parse_spec(json.dumps(spec), name="case.json")
    except SpecError:
        return False
    return True


REFUSED: dict[str, tuple[tuple[str | int, ...], Any]] = {
    "unknown top-level key": (("objectve",), {"maximize": "goodput"}),
    "unknown device key": (("devices", 0, "memroy_gb"), 8),
    "unknown quant key": (("drafts", 0, "quants", "Q4_K_M", "gguff"), "x.gguf"),
    "acceptance K key not an integer": (ACCEPTANCE, {"two": 0.7}),
    "acceptance K key a fraction": (ACCEPTANCE, {"2.5": 0.7}),
    "acceptance K key 0": (ACCEPTANCE, {"0": 0.7, "2": 0.7}),
    "acceptance K key 65": (ACCEPTANCE, {"2": 0.7, "65": 0.1}),
    "acceptance alpha above 1": (ACCEPTANCE, {"2": 1.2}),
    "acceptance alpha negative": (ACCEPTANCE, {"2": -0.1}),
    "acceptance alpha not a number": (ACCEPTANCE, {"2": "high"}),
    "per_token above 1": (ACCEPTANCE, {"per_token": 1.5}),
    "per_token mixed with a table key": (ACCEPTANCE, {"per_token": 0.8, "2": 0.7}),
    "per_token with an unknown key": (ACCEPTANCE, {"per_token": 0.8, "decay": 0.1}),
    "acceptance neither form": (ACCEPTANCE, 0.8),
    "full_accept K key not an integer": (("profiles", 0, "full_accept"), {"big": {"k2": 0.1}}),
    "full_accept above 1": (("profiles", 0, "full_accept"), {"big": {"2": 1.5}}),
    "negative count": (("devices", 0, "count"), -3),
    "zero count": (("devices", 0, "count"), 0),
    "fractional count": (("devices", 0, "count"), 2.5),
    "zero draft_tok_s": (("profiles", 0, "draft_tok_s"), 0),
    "negative memory": (("devices", 0, "memory_gb"), -8),
    "negative rtt": (("devices", 0, "rtt_s"), -0.01),
    "k above 64": (("search", "k", "max"), 65),
    "version 2": (("version",), 2),
    "empty name": (("name",), ""),
    "no targets": (("targets",), []),
    "no quants": (("drafts", 0, "quants"), {}),
    "unknown metric": (OBJECTIVE, {"maximize": "speed"}),
    "two objectives": (OBJECTIVE, {"maximize": "goodput", "minimize": "energy"}),
    "no objective": (OBJECTIVE, {}),
    "only a null objective": (OBJECTIVE, {"maximize": None}),
    "empty weighted objective": (OBJECTIVE, {"weighted": []}),
    "term with both directions": (OBJECTIVE, {"weighted": [{"maximize": "goodput",
                                                            "minimize": "cost"}]}),
    "term with no direction": (OBJECTIVE, {"lexicographic": [{"tolerance": 0.1}]}),
    "term tolerance above 1": (OBJECTIVE, {"lexicographic": [{"maximize": "goodput",
                                                               "tolerance": 2}]}),
    "pin with an unknown key": (("constraints",), {"pinned": [{"device": "pi", "K": 2}]}),
    "fleet variants 0": (("constraints",), {"fleet": {"max_distinct_variants": 0}}),
}


@pytest.mark.parametrize("case", sorted(REFUSED))
def test_what_the_loader_refuses_the_schema_refuses(case: str) -> None:
    spec = edited(*REFUSED[case])
    assert not loader_accepts(spec)
    assert schema_errors(VALIDATOR, spec) != []


ACCEPTED: dict[str, tuple[tuple[str | int, ...], Any]] = {
    "the base spec": (("name",), "schema-check"),
    "per_token acceptance": (ACCEPTANCE, {"per_token": 0.86}),
    "per_token 1": (ACCEPTANCE, {"per_token": 1}),
    "acceptance at K 1 and 64": (ACCEPTANCE, {"1": 0.9, "2": 0.7, "3": 0.6, "64": 0.1}),
    "empty acceptance table": (ACCEPTANCE, {}),
    "full_accept table": (("profiles", 0, "full_accept"), {"big": {"2": 0.4, "3": 0.3}}),
    "objective with a null alternative": (OBJECTIVE, {"maximize": "goodput", "minimize": None}),
    "weighted objective": (OBJECTIVE, {"weighted": [{"maximize": "goodput", "weight": 2},
                                                    {"minimize": "cost", "weight": 1}]}),
    "lexicographic objective": (OBJECTIVE, {"lexicographic": [
        {"maximize": "goodput", "tolerance": 0.05}, {"minimize": "energy"}]}),
}


@pytest.mark.parametrize("case", sorted(ACCEPTED))
def test_what_the_loader_accepts_the_schema_accepts(case: str) -> None:
    spec = edited(*ACCEPTED[case])
    assert loader_accepts(spec)
    assert schema_errors(VALIDATOR, spec) == []


def test_a_verifier_latency_table_is_keyed_by_integers() -> None:
    if "verifier" not in Target.model_fields:
        pytest.skip("no self-hosted verifier in this version of the spec")
    verifier = {"replicas": {"min": 1, "max": 2}, "price_usd_per_replica_hour": 3.0,
                "max_batch": 8, "latency_s": {"1": {"2": 0.1}, "many": {"2": 0.2}}}
    spec = edited(("targets", 0, "verifier"), verifier)
    assert not loader_accepts(spec)
    assert schema_errors(VALIDATOR, spec) != []
    verifier["latency_s"] = {"1": {"2": 0.1}, "8": {"two": 0.2}}
    assert not loader_accepts(spec)
    assert schema_errors(VALIDATOR, spec) != []


def test_k_keys_the_schema_takes_are_exactly_those_the_loader_takes() -> None:
    """Canonical spellings 0..200: the table's key pattern and pydantic agree."""
    table = SCHEMA["$defs"]["Profile"]["properties"]["acceptance"]["additionalProperties"]
    [table_branch] = [b for b in table["oneOf"] if "$ref" not in b]
    pattern = re.compile(table_branch["propertyNames"]["pattern"])
    adapter: TypeAdapter[Any] = TypeAdapter(AcceptanceTable)
    for n in range(201):
        try:
            adapter.validate_python({str(n): 0.5})
            loader = True
        except ValidationError:
            loader = False
        assert bool(pattern.search(str(n))) == loader, n
    for key in ("per_token", "two", "2.5", "-1", "", " "):
        assert not pattern.search(key), key


@pytest.mark.parametrize("lo, hi", [(0, 0), (0, 9), (1, 64), (1, 4096), (7, 7), (13, 987),
                                    (99, 101), (0, 100_000)])
def test_int_range_pattern_matches_exactly_the_range(lo: int, hi: int) -> None:
    pattern = re.compile(int_range_pattern(lo, hi))
    for n in range(min(10 * hi + 100, 200_000)):
        assert bool(pattern.fullmatch(str(n))) == (lo <= n <= hi), n
    assert not pattern.fullmatch(f"0{lo}") and not pattern.fullmatch(f"+{lo}")
