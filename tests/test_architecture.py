"""The package's shape: no import cycles, an engine that stands alone, no private names shared.

Every ``import`` statement in ``mmbook/`` is read with ``ast``, at module level and inside
functions alike (a lazy import is still a dependency), and the rules below are checked on
the resulting graph of modules.
"""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1] / "mmbook"


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _resolve(module: str, is_package: bool, node: ast.ImportFrom) -> str:
    if node.level == 0:
        return node.module or ""
    base = module.split(".")
    if not is_package:
        base = base[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def _imports():
    """(importer, imported module, imported names) for every import statement under mmbook/."""
    modules = {_module_name(p): p for p in ROOT.rglob("*.py")}
    out = []
    for mod, path in modules.items():
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                for a in node.names:
                    out.append((mod, a.name, []))
            elif isinstance(node, ast.ImportFrom):
                target = _resolve(mod, path.name == "__init__.py", node)
                names = [a.name for a in node.names]
                # "from package import module" imports the module
                subs = [n for n in names if f"{target}.{n}" in modules]
                for n in subs:
                    out.append((mod, f"{target}.{n}", []))
                out.append((mod, target, [n for n in names if n not in subs]))
    return modules, out


MODULES, IMPORTS = _imports()


def _internal(name: str) -> str | None:
    """The mmbook module an import refers to (None for third-party modules)."""
    while name and name not in MODULES:
        name = name.rpartition(".")[0]
    return name or None


def test_no_import_cycles():
    graph = {m: set() for m in MODULES}
    for src, dst, _ in IMPORTS:
        d = _internal(dst)
        # a package's __init__ re-exporting its own modules is not a dependency of those modules
        if d and d != src and not (src == "mmbook" or d == "mmbook"):
            graph[src].add(d)
    state, stack, cycles = {}, [], []

    def visit(m):
        state[m] = 1
        stack.append(m)
        for n in sorted(graph[m]):
            if state.get(n) == 1:
                cycles.append(stack[stack.index(n):] + [n])
            elif n not in state:
                visit(n)
        stack.pop()
        state[m] = 2

    for m in sorted(graph):
        if m not in state:
            visit(m)
    assert not cycles, "import cycles: " + "; ".join(" -> ".join(c) for c in cycles)


@pytest.mark.parametrize("forbidden", ["statsmodels", "matplotlib", "mmbook.forms", "mmbook.crosscheck", "mmbook.inference",
                                       "mmbook.plots", "IPython"])
def test_engine_imports_no_outer_layer(forbidden):
    """The fitting engine never imports statsmodels, matplotlib, the book's forms or the cross-check."""
    bad = [(s, d) for s, d, _ in IMPORTS
           if s.startswith("mmbook.engine") and (d == forbidden or d.startswith(forbidden + "."))]
    # the progress bar in a notebook is the one allowed IPython use: it is optional and guarded
    if forbidden == "IPython":
        bad = [(s, d) for s, d in bad if s != "mmbook.engine.bootstrap"]
    assert not bad, bad


def test_no_private_names_across_modules():
    """A module uses another's public names only (a leading underscore means "this module's own")."""
    bad = []
    for src, dst, names in IMPORTS:
        d = _internal(dst)
        if d and d != src:
            bad += [f"{src} imports {d}.{n}" for n in names if n.startswith("_") and n != "__version__"]
    assert not bad, bad
