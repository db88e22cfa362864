"""Imports point one way: from the front ends down to the spec, never back up.

The flow is spec -> candidates -> problem (plain data) -> solvers -> results
-> CLI/HTTP.  Every module of configspec_opt, solvers and profiler is read
with `ast` (imports at module level and inside functions alike; only `if
TYPE_CHECKING:` blocks are left out, they never run) and each import must go
to its own layer or a lower one.  A new module fails `test_every_module_has_a_layer`
until it is placed here: where it goes is a design decision, made once.

The measuring side (profiler, and configspec_opt.imports, which writes what
other tools measured through the profiler's writer) may use the spec and the
problem but is used only by the front ends: the core runs where llama.cpp is
not installed.  The whole graph has no cycle, so no function-local import is
there to dodge one; the local imports that remain keep start-up light.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("configspec_opt", "solvers", "profiler")

LAYERS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("base", ("configspec_opt.errors", "configspec_opt.metrics", "configspec_opt.spec",
              "configspec_opt.spec_changes",
              "configspec_opt.metric_registry", "configspec_opt.yaml_data",
              "configspec_opt.files", "configspec_opt.spec_files", "configspec_opt.consistency",
              "configspec_opt.limits", "configspec_opt.safe_text",
              "configspec_opt.loader", "configspec_opt.plain_data",
              "configspec_opt.tail_model", "configspec_opt.tails",
              "configspec_opt.results")),  # the JSON answers' types: plain declarations
    ("candidates", ("configspec_opt.candidates", "configspec_opt.verifier_load",
                    "configspec_opt.robust",
                    "configspec_opt.verifier_sim", "configspec_opt.verifier_check",
                    "configspec_opt.verifiers", "configspec_opt.rows",
                    "configspec_opt.constraint_families", "configspec_opt.usability",
                    "configspec_opt.device_profiles", "configspec_opt.grouping")),
    ("problem", ("configspec_opt.problem", "configspec_opt.fleet")),
    ("solvers", ("solvers",)),
    ("results", ("configspec_opt.explain", "configspec_opt.report", "configspec_opt.report_html",
                 "configspec_opt.export", "configspec_opt.exports", "configspec_opt.plots",
                 "configspec_opt.vcs",
                 "configspec_opt.operations", "configspec_opt.python_api",
                 "configspec_opt.group_bound", "configspec_opt.drift",
                 "configspec_opt.k_policy", "configspec_opt.what_if",
                 "configspec_opt.what_if_report")),
    ("front ends", ("configspec_opt.cli", "configspec_opt.api", "configspec_opt.store",
                    "configspec_opt.__main__")),
)
FRONT = len(LAYERS) - 1
PROBLEM = 2
MEASURING = ("profiler", "configspec_opt.imports")
ROOT_PACKAGES = {"configspec_opt": FRONT}  # the package itself re-exports the Python API
NEEDS_LLAMA = "llama_cpp"


@dataclass(frozen=True)
class Import:
    module: str  # the importing module
    target: str  # the module imported (the longest known prefix of what was named)
    line: int
    local: bool  # inside a function


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _named(node: ast.Import | ast.ImportFrom, package: str) -> Iterator[str]:
    """Every dotted name an import statement asks for (`from a import b` may be module a.b)."""
    if isinstance(node, ast.Import):
        yield from (alias.name for alias in node.names)
        return
    base = node.module or ""
    if node.level:
        parts = package.split(".")[:len(package.split(".")) - node.level + 1]
        base = ".".join(parts + ([node.module] if node.module else []))
    for alias in node.names:
        yield base if alias.name == "*" else f"{base}.{alias.name}"


def _imports_in(path: Path) -> Iterator[tuple[str, int, bool]]:
    module = _module_name(path)
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]

    def visit(node: ast.AST, local: bool) -> Iterator[tuple[str, int, bool]]:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and _is_type_checking(child):
                for other in child.orelse:
                    yield from visit_one(other, local)
            else:
                yield from visit_one(child, local)

    def visit_one(node: ast.AST, local: bool) -> Iterator[tuple[str, int, bool]]:
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield from ((name, node.lineno, local) for name in _named(node, package))
        inner = local or isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
        if isinstance(node, ast.If) and _is_type_checking(node):
            for other in node.orelse:
                yield from visit_one(other, inner)
        else:
            yield from visit(node, inner)

    yield from visit(ast.parse(path.read_text(encoding="utf-8"), str(path)), False)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for pkg in PACKAGES for p in sorted((ROOT / pkg).rglob("*.py"))}


MODULES = _modules()


def _resolve(name: str) -> str | None:
    while name and name not in MODULES:
        name = name.rpartition(".")[0]
    return name or None


def _graph() -> list[Import]:
    """Imports between our own modules, and of llama_cpp (target `llama_cpp`)."""
    out = []
    for module, path in MODULES.items():
        for name, line, local in _imports_in(path):
            if name.partition(".")[0] == NEEDS_LLAMA:
                out.append(Import(module, NEEDS_LLAMA, line, local))
                continue
            target = _resolve(name) if name.partition(".")[0] in PACKAGES else None
            if target is not None and target != module:
                out.append(Import(module, target, line, local))
    return out


GRAPH = _graph()


def _under(module: str, prefix: str) -> bool:
    return module == prefix or module.startswith(prefix + ".")


def measuring(module: str) -> bool:
    return any(_under(module, p) for p in MEASURING)


def layer(module: str) -> int | None:
    """The rank of the module's layer (0: base), None for the measuring side or unplaced."""
    if module in ROOT_PACKAGES:
        return ROOT_PACKAGES[module]
    for rank, (_, prefixes) in enumerate(LAYERS):
        if any(_under(module, p) for p in prefixes):
            return rank
    return None


def _where(imp: Import) -> str:
    path = MODULES[imp.module].relative_to(ROOT)
    where = " (in a function)" if imp.local else ""
    return f"{path}:{imp.line} {imp.module} -> {imp.target}{where}"


def _name(module: str) -> str:
    rank = layer(module)
    if rank is not None:
        return f"layer {rank} ({LAYERS[rank][0]})"
    return "the measuring side" if measuring(module) else "a module with no layer"


def test_the_parser_sees_every_kind_of_import() -> None:
    """The reader itself: module level, in functions, relative, and TYPE_CHECKING left out."""
    found = {(i.module, i.target, i.local) for i in GRAPH}
    assert ("configspec_opt.loader", "configspec_opt.consistency", False) in found
    assert ("configspec_opt.api.tasks", "solvers.solve", True) in found
    assert ("profiler.engine", NEEDS_LLAMA, True) in found
    assert ("configspec_opt.cli.profile", "profiler.power", False) not in found  # TYPE_CHECKING
    assert len(GRAPH) > 300


def test_every_module_has_a_layer() -> None:
    unplaced = sorted(m for m in MODULES if layer(m) is None and not measuring(m))
    assert not unplaced, ("place these modules in a layer of tests/test_layers.py "
                          f"(LAYERS or MEASURING): {', '.join(unplaced)}")


def test_imports_point_down() -> None:
    wrong = []
    for imp in GRAPH:
        if imp.target == NEEDS_LLAMA:
            continue
        src, dst = layer(imp.module), layer(imp.target)
        if measuring(imp.module):
            ok = measuring(imp.target) or (dst is not None and dst <= PROBLEM)
        elif measuring(imp.target):
            ok = src == FRONT
        else:
            ok = src is not None and dst is not None and dst <= src
        if not ok:
            wrong.append(f"{_where(imp)}: {_name(imp.module)} may not import "
                         f"{_name(imp.target)}")
    assert not wrong, "imports that point up:\n" + "\n".join(wrong)


def test_only_the_profiler_imports_llama_cpp() -> None:
    """The core, the solvers and the HTTP service run where llama.cpp is not installed."""
    users = [_where(i) for i in GRAPH if i.target == NEEDS_LLAMA and not _under(i.module,
                                                                                 "profiler")]
    assert not users, "\n".join(users)


@pytest.mark.parametrize("front", ["configspec_opt.api", "configspec_opt.store"])
def test_the_service_does_not_use_the_profiler(front: str) -> None:
    users = [_where(i) for i in GRAPH if _under(i.module, front) and measuring(i.target)]
    assert not users, "\n".join(users)


def test_no_import_cycle() -> None:
    """No cycle even through function-local imports: none of them hides one."""
    edges: dict[str, set[str]] = {}
    for imp in GRAPH:
        if imp.target != NEEDS_LLAMA:
            edges.setdefault(imp.module, set()).add(imp.target)
    state: dict[str, int] = {}  # 1: on the path, 2: done
    path: list[str] = []

    def cycle_from(module: str) -> list[str] | None:
        state[module] = 1
        path.append(module)
        for nxt in sorted(edges.get(module, ())):
            if state.get(nxt) == 1:
                return [*path[path.index(nxt):], nxt]
            if nxt not in state and (found := cycle_from(nxt)) is not None:
                return found
        path.pop()
        state[module] = 2
        return None

    for module in sorted(edges):
        if module not in state:
            found = cycle_from(module)
            assert found is None, "import cycle: " + " -> ".join(found)
