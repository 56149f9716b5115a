"""The house rules of docs/ARCHITECTURE.md, checked on the source: no import circle, no arrow
from a lower floor back up, package ``__init__`` files that only hand names on, and files a
reader can hold in their head."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent / "harness"

# Floors, top first: a module may import only from its own floor or below.
FLOORS = [
    {"harness.cli", "harness.cli_errors", "harness.cli_train"},
    {"harness.api", "harness"},
    {"harness.runner"},
    {"harness.stages"},
]
MAX_LINES = 450
LONGER: dict[str, str] = {}  # files allowed over MAX_LINES, with the reason (see docs/ARCHITECTURE.md)


def _modules() -> dict[str, Path]:
    out = {}
    for path in ROOT.rglob("*.py"):
        rel = path.relative_to(ROOT.parent).with_suffix("")
        parts = list(rel.parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


def _imports(name: str, path: Path, known: set[str]) -> set[str]:
    """Every harness module ``name`` imports, at module level or inside functions."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.split(".")
                parent = parent[:len(parent) - node.level + 1]
                base = ".".join(parent + ([base] if base else []))
            targets = [base] + [f"{base}.{a.name}" for a in node.names]
        else:
            continue
        for t in targets:
            if t in known and t not in (name, "harness"):  # `from harness import io` is an edge to io
                found.add(t)
    return found


def _graph() -> dict[str, set[str]]:
    mods = _modules()
    return {name: _imports(name, path, set(mods)) for name, path in mods.items()}


def _floor(module: str) -> int:
    for i, floor in enumerate(FLOORS):
        if any(module == f or module.startswith(f + ".") for f in floor if f != "harness") or module in floor:
            return i
    return len(FLOORS)


def test_no_import_circle():
    graph = _graph()
    # a package's __init__ handing on its own submodules is not a circle; a submodule importing its
    # own package (and so the __init__) would be
    edges = {m: {t for t in ts if not (t.startswith(m + ".") and _modules()[m].name == "__init__.py")}
             for m, ts in graph.items()}
    index, low, stack, on, cycles = {}, {}, [], set(), []

    def strong(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in edges.get(v, ()):
            if w not in index:
                strong(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                cycles.append(sorted(comp))

    for v in edges:
        if v not in index:
            strong(v)
    assert not cycles, f"import circles: {cycles}"


def test_no_arrow_from_a_lower_floor_back_up():
    bad = []
    for module, targets in _graph().items():
        if module == "harness":  # the package's lazy hand-on of the API verbs
            continue
        for t in targets:
            if _floor(t) < _floor(module):
                bad.append(f"{module} -> {t}")
    assert not bad, "lower floors import upper ones: " + ", ".join(sorted(bad))


def test_package_inits_only_hand_names_on():
    for path in ROOT.rglob("__init__.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in tree.body:
            if isinstance(node, (ast.Import, ast.ImportFrom, ast.Expr)):
                continue  # imports and the docstring
            if isinstance(node, ast.Assign) and all(isinstance(t, ast.Name) and t.id.startswith("__")
                                                    or isinstance(t, ast.Name) and t.id.isupper()
                                                    for t in node.targets):
                continue  # __all__, __version__, constant name lists
            if path == ROOT / "__init__.py" and isinstance(node, ast.FunctionDef) and node.name in ("__getattr__", "__dir__"):
                continue  # lazy hand-on of the API verbs (keeps `import harness` cheap)
            pytest.fail(f"{path.relative_to(ROOT.parent)}:{node.lineno}: logic in a package __init__")


def test_files_a_reader_holds_in_their_head():
    long = {}
    for path in ROOT.rglob("*.py"):
        rel = str(path.relative_to(ROOT.parent))
        n = len(path.read_text(encoding="utf-8").splitlines())
        if n > MAX_LINES and rel not in LONGER:
            long[rel] = n
    assert not long, f"over {MAX_LINES} lines (split them, or list them in LONGER with a reason): {long}"
