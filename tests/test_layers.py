"""The package's layering, read from its imports with ``ast``.

Each module belongs to a layer, and imports only from its own layer or the
ones below it; no set of modules imports itself in a circle. Imports under
``if TYPE_CHECKING:`` are left out: they never run, and a type annotation
naming a higher layer's class is not a dependency on its code.
"""

from __future__ import annotations

import ast
from pathlib import Path

import llmreq_mongo

PACKAGE = "llmreq_mongo"
ROOT = Path(llmreq_mongo.__file__).parent

#: Lowest first. The key is the first name under the package.
LAYERS: dict[str, int] = {
    # leaves
    "errors": 0,
    "_time": 0,
    "_checks": 0,
    "_types": 0,
    "_local_store": 0,  # the embedded store's files: exists, in use (standard library only)
    # queries, then the documents on them
    "_queries": 1,
    "_sharding": 1,  # the shard key's shape and the shardCollection command
    # what came back from a call, read as it passes (uses the payload checks)
    "_capture": 1,
    "_documents": 2,
    # what is built on the documents
    "_reports": 3,
    "_recording": 3,
    "analytics": 3,
    # connecting, the engine, the test fixtures
    "_connection": 4,
    "_engine_process": 4,  # the embedded engine's server process and its fast stop
    "_head_start": 4,  # the engine spawned before the command line is imported
    "embedded": 4,
    "pytest_plugin": 4,
    # the faces
    "_cli": 5,
    "integrations": 5,
    "_launch": 5,  # the console script: the engine's head start, then the command line
    "__main__": 5,
    # the package's own __init__ exports from every layer
    "": 6,
}


def _module_name(path: Path) -> str:
    parts = [PACKAGE, *path.relative_to(ROOT).with_suffix("").parts]
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


MODULES = {_module_name(p): p for p in sorted(ROOT.rglob("*.py"))}


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _runtime_nodes(tree: ast.AST) -> list[ast.AST]:
    """Every node of ``tree`` except those under ``if TYPE_CHECKING:``."""
    found: list[ast.AST] = []
    stack: list[ast.AST] = [tree]
    while stack:
        node = stack.pop()
        found.append(node)
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and _is_type_checking(child):
                stack.extend(child.orelse)
                continue
            stack.append(child)
    return found


def _resolve(module: str, path: Path, node: ast.ImportFrom) -> str:
    if not node.level:
        return node.module or ""
    package = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
    base = package[: len(package) - (node.level - 1)]
    return ".".join([*base, node.module] if node.module else base)


def imports_of(module: str) -> set[str]:
    """The package's own modules that ``module`` imports when it runs."""
    path = MODULES[module]
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found: set[str] = set()
    for node in _runtime_nodes(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names if alias.name in MODULES)
        elif isinstance(node, ast.ImportFrom):
            target = _resolve(module, path, node)
            for alias in node.names:
                sub = f"{target}.{alias.name}"
                if sub in MODULES:
                    found.add(sub)
                elif target in MODULES:
                    found.add(target)
    found.discard(module)
    return found


def layer_of(module: str) -> int:
    head = module.split(".")[1] if "." in module else ""
    return LAYERS[head]


GRAPH = {module: imports_of(module) for module in MODULES}


def test_every_module_has_a_layer() -> None:
    unknown = sorted(m for m in MODULES if (m.split(".")[1] if "." in m else "") not in LAYERS)
    assert not unknown, f"add these to LAYERS: {unknown}"


def test_no_module_imports_a_higher_layer() -> None:
    upward = sorted(
        f"{module} (layer {layer_of(module)}) imports {target} (layer {layer_of(target)})"
        for module, targets in GRAPH.items()
        for target in targets
        if layer_of(target) > layer_of(module)
    )
    assert not upward, "\n".join(upward)


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph[node]):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_no_import_circle() -> None:
    assert _cycles(GRAPH) == []


def test_the_checker_sees_a_circle_and_an_upward_import() -> None:
    # The checks above must be able to fail: feed them a known circle.
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}) == [["a", "b", "c"]]
    assert f"{PACKAGE}._documents.models" in GRAPH
    assert f"{PACKAGE}._queries" in GRAPH[f"{PACKAGE}._documents.models"]
    assert layer_of(f"{PACKAGE}._cli._app") > layer_of(f"{PACKAGE}._documents.models")
