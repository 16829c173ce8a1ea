"""The shape of the package, read from its source with ``ast``: no module over 400 lines
(migrations aside), no class over 300, no function over 60, and no import cycle between its
modules (imports under TYPE_CHECKING and inside functions count too)."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "sioless"
MAX_MODULE_LINES = 400
MAX_CLASS_LINES = 300
MAX_FUNCTION_LINES = 60


def modules() -> dict[str, Path]:
    """Every module of the package but migrations, by dotted name."""
    found = {}
    for path in PACKAGE.rglob("*.py"):
        if "migrations" in path.parts:
            continue
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


MODULES = modules()


def imported(name: str, path: Path) -> set[str]:
    """The package's modules that module ``name`` imports (the package itself left out: it is
    imported before any of its modules anyway)."""
    targets: set[str] = set()
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            targets.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join([*anchor, *([node.module] if node.module else [])])
            targets.add(base)
            targets.update(f"{base}.{alias.name}" for alias in node.names)
    return {target for target in targets if target in MODULES and target not in (name, PACKAGE.name)}


def cycle_from(start: str, graph: dict[str, set[str]]) -> list[str] | None:
    """An import cycle through ``start``, if there is one (depth first)."""
    stack: list[tuple[str, Iterator[str]]] = [(start, iter(sorted(graph[start])))]
    path = [start]
    seen = {start}
    while stack:
        _, following = stack[-1]
        for module in following:
            if module == start:
                return [*path, start]
            if module not in seen:
                seen.add(module)
                path.append(module)
                stack.append((module, iter(sorted(graph[module]))))
                break
        else:
            stack.pop()
            path.pop()
    return None


@pytest.mark.parametrize("name", sorted(MODULES))
def test_a_module_classes_and_functions_fit_their_rooms(name: str) -> None:
    source = MODULES[name].read_text()
    assert len(source.splitlines()) <= MAX_MODULE_LINES, f"{name}: over {MAX_MODULE_LINES} lines"
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, (ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            assert node.end_lineno is not None
            size = node.end_lineno - node.lineno + 1
            limit = MAX_CLASS_LINES if isinstance(node, ast.ClassDef) else MAX_FUNCTION_LINES
            assert size <= limit, f"{name}.{node.name}: {size} lines (room for {limit})"


def test_no_module_imports_itself_through_others() -> None:
    graph = {name: imported(name, path) for name, path in MODULES.items()}
    cycles = [cycle for name in sorted(graph) if (cycle := cycle_from(name, graph))]
    assert not cycles, "import cycles: " + "; ".join(" -> ".join(cycle) for cycle in cycles)


def test_the_cycle_check_finds_a_cycle() -> None:
    assert cycle_from("a", {"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert cycle_from("a", {"a": {"b"}, "b": set()}) is None
