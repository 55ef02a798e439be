"""Data flows one way: no import cycle among edgecompress's modules (lazy imports inside functions count too),
and io stays a leaf that imports nothing of ours but the errors."""
import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "edgecompress"


def module_files() -> dict[str, Path]:
    files = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        files[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return files


def imports_of(name: str, path: Path, known: set[str]) -> set[str]:
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(parts + ([node.module] if node.module else []))
            targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in known else base for a in node.names]
        else:
            continue
        for target in targets:
            while target not in known and "." in target:
                target = target.rsplit(".", 1)[0]
            if target in known and target not in (name, "edgecompress"):
                found.add(target)
    return found


def import_graph() -> dict[str, set[str]]:
    files = module_files()
    return {name: imports_of(name, path, set(files)) for name, path in files.items()}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index, low, stack, on_stack, found = {}, {}, [], set(), []

    def visit(node):
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for other in graph[node]:
            if other not in index:
                visit(other)
                low[node] = min(low[node], low[other])
            elif other in on_stack:
                low[node] = min(low[node], index[other])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in graph:
        if node not in index:
            visit(node)
    return found


def test_no_import_cycle():
    assert cycles(import_graph()) == []


def test_the_cycle_finder_finds_a_cycle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_io_is_a_leaf():
    assert import_graph()["edgecompress.io"] <= {"edgecompress.errors"}


def test_the_runner_is_a_leaf():
    """It is copied alone to boards; lower and bench share its runtime lookup."""
    graph = import_graph()
    assert graph["edgecompress.ondevice.runner"] == set()
    assert "edgecompress.ondevice.runner" in graph["edgecompress.lower.runtime"]


def stage_imports(module: str) -> set[str]:
    return {target.split(".")[1] for target in import_graph()[module] if target.count(".") >= 1}


def test_compress_does_not_reach_into_bench():
    """The cost table reaches compress through its config (CompressConfig.cost_table), not an import."""
    assert "bench" not in stage_imports("edgecompress.compress")
