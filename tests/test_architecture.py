"""The layout's promises, checked on the source: no module imports another that imports it back
(lazy imports inside functions count: a circle is a circle even when Python tolerates it)."""

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("harness", "stackgan", "baselines", "reports")


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph() -> dict[str, set[str]]:
    modules = {_module_name(p): p for pkg in PACKAGES for p in (ROOT / pkg).rglob("*.py")}
    graph: dict[str, set[str]] = {m: set() for m in modules}
    for name, path in modules.items():
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                targets = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
            elif isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            else:
                continue
            graph[name] |= {t for t in targets if t in modules and t != name}
    return graph


def circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_circles_are_found_when_there_are_some():
    assert circles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_no_module_imports_itself_back():
    graph = import_graph()
    assert len(graph) > 100 and graph["harness.runner.build"]  # the walk saw the code
    assert circles(graph) == []


# A lower layer never imports a higher one (data flows dataset -> train step -> checkpoint ->
# sampler -> metrics -> MLflow -> report; the CLI is on top). Module prefix -> what it must not
# import.
LAYERS = {
    "harness.core": ("harness.data", "harness.text", "harness.runner", "harness.eval", "harness.config",
                     "harness.families", "harness.experiments", "harness.reproduce", "harness.cli",
                     "harness.human", "harness.tracking", "reports", "stackgan", "baselines"),
    "stackgan": ("harness.data", "harness.text", "harness.runner", "harness.eval", "harness.config",
                 "harness.families", "harness.experiments", "harness.reproduce", "harness.cli",
                 "harness.human", "harness.tracking", "reports", "baselines"),
    "baselines": ("harness.data", "harness.text", "harness.runner", "harness.eval", "harness.config",
                  "harness.families", "harness.experiments", "harness.reproduce", "harness.cli",
                  "harness.human", "harness.tracking", "reports"),
    "harness.families": ("harness.runner", "harness.eval", "harness.experiments", "harness.reproduce",
                         "harness.cli", "harness.human", "reports"),
    "harness.config": ("harness.runner", "harness.eval", "harness.experiments", "harness.reproduce",
                       "harness.cli", "harness.human", "reports"),
    "harness.data": ("harness.runner", "harness.eval", "harness.experiments", "harness.reproduce",
                     "harness.cli", "harness.human", "reports"),
    "harness.text": ("harness.runner", "harness.eval", "harness.experiments", "harness.reproduce",
                     "harness.cli", "harness.human", "reports"),
    "harness.runner": ("harness.experiments", "harness.reproduce", "harness.cli", "harness.human",
                       "reports"),
    "harness.eval": ("harness.experiments", "harness.reproduce", "harness.cli", "reports"),
    "harness.experiments": ("harness.reproduce", "harness.cli"),
    "harness.reproduce": ("harness.cli",),
    "reports": ("harness.reproduce", "harness.cli"),
}


def _within(name: str, prefix: str) -> bool:
    return name == prefix or name.startswith(prefix + ".")


def upward_imports(graph: dict[str, set[str]]) -> list[str]:
    return sorted(f"{module} -> {target}" for module, targets in graph.items() for target in targets
                  for layer, banned in LAYERS.items() if _within(module, layer)
                  for higher in banned if _within(target, higher))


def test_an_upward_import_is_found():
    assert upward_imports({"harness.data.sources": {"harness.cli.main"}}) == [
        "harness.data.sources -> harness.cli.main"]


def test_no_lower_layer_imports_a_higher_one():
    assert upward_imports(import_graph()) == []
