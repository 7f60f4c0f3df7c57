"""No import cycles among veil's modules: data flows one way, so no module may need its own user.

Read from the source with `ast` (nothing is imported), counting imports made inside functions
too: a lazy import hides a cycle from Python's import machinery but not from the reader, and it
is how faces.py and quantize.py once came to depend on each other.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"
PACKAGE = SRC / "veil"


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def _imports(name: str, path: Path, known: set[str]) -> set[str]:
    """The veil modules that module `name` imports, anywhere in its body.

    `from package import name` counts as importing the submodule when there is one, else the
    package; the parent packages Python initialises on the way are not counted (every
    submodule would otherwise "import" its package's __init__).
    """
    is_package = path.name == "__init__.py"
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names if alias.name in known}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = name.split(".") if is_package else name.split(".")[:-1]
                base = base[:len(base) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            for alias in node.names:
                sub = f"{target}.{alias.name}"
                if sub in known:
                    found.add(sub)
                elif target in known:
                    found.add(target)
    found.discard(name)
    return found


def import_graph() -> dict[str, set[str]]:
    modules = _modules()
    known = set(modules)
    return {name: _imports(name, path, known) for name, path in modules.items()}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle as a list of modules (first == last), or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: finished
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return path[path.index(nxt):] + [nxt]
            if nxt not in state:
                cycle = visit(nxt)
                if cycle:
                    return cycle
        path.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state:
            cycle = visit(node)
            if cycle:
                return cycle
    return None


def test_the_graph_sees_veils_imports() -> None:
    graph = import_graph()
    # Module-level, relative, lazy (inside a function) and from-package imports are all seen.
    assert "veil.geometry" in graph["veil.track"]
    assert "veil.detect.quantize" in graph["veil.detect.faces"]
    assert "veil.audit.pixels" in graph["veil.audit.frame"]
    assert "veil.pipeline" in graph["veil.audit.frame"]
    assert "veil.audit.files" in graph["veil.audit"]


@pytest.mark.parametrize(("graph", "expected"), [
    ({"a": {"b"}, "b": {"c"}, "c": set()}, None),
    ({"a": {"b"}, "b": {"c"}, "c": {"a"}}, ["a", "b", "c", "a"]),
    ({"a": {"b"}, "b": {"b2"}, "b2": {"b"}}, ["b", "b2", "b"]),
])
def test_cycle_finder(graph: dict[str, set[str]], expected: list[str] | None) -> None:
    assert find_cycle(graph) == expected


def test_no_import_cycles_among_veil_modules() -> None:
    cycle = find_cycle(import_graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


def test_geometry_sits_at_the_bottom() -> None:
    # Every stage, _types included, measures boxes with it; it needs none of them.
    assert import_graph()["veil.geometry"] == set()


# The data flow's layers, bottom-up (docs/design.md): a module may import its own layer and those
# before it, never one after it.
LAYERS: list[tuple[str, ...]] = [
    ("veil._errors", "veil._types", "veil.geometry", "veil._models", "veil._atomic", "veil.scrub"),
    ("veil.media", "veil.motion", "veil.segments"),  # decode / encode; where long videos are cut
    ("veil.detect",),
    ("veil.track",),
    ("veil.regions", "veil.edits", "veil.paint", "veil.report", "veil.presets"),
    ("veil.stages", "veil.runner"),
    ("veil.pipeline",),
    ("veil.audit", "veil.evaluate", "veil.live"),  # reading outputs back; live streams
    ("veil.batch", "veil.cli", "veil.web", "veil.__main__", "veil"),  # front-ends
]


def _layer(module: str) -> int:
    best = -1, -1
    for index, prefixes in enumerate(LAYERS):
        for prefix in prefixes:
            if (module == prefix or module.startswith(prefix + ".")) and len(prefix) > best[1]:
                best = index, len(prefix)
    assert best[0] >= 0, f"{module} is in no layer: add it to LAYERS and docs/design.md"
    return best[0]


def test_no_module_imports_one_above_it_in_the_data_flow() -> None:
    upward = sorted(f"{name} -> {imported}" for name, imports in import_graph().items()
                    for imported in imports if _layer(imported) > _layer(name))
    assert upward == []


def test_the_layer_check_can_fail() -> None:
    assert _layer("veil.pipeline") > _layer("veil.stages") > _layer("veil.detect.faces")
    assert _layer("veil.audit.frame") > _layer("veil.pipeline")
