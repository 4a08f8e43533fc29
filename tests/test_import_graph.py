"""No import circle anywhere in ``wish_d2``, counting imports inside functions (a deferred import hides a circle, it
does not remove it) and the package ``__init__`` files an import runs on the way to its module."""
import ast
import os
from typing import Dict, List, Set

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PACKAGE = "wish_d2"


def _modules() -> Dict[str, str]:
    """Dotted module name -> file, for every ``.py`` file of the package (a package is its ``__init__``)."""
    out = {}
    for folder, _, files in os.walk(os.path.join(ROOT, PACKAGE)):
        for f in files:
            if f.endswith(".py"):
                path = os.path.join(folder, f)
                name = os.path.relpath(path, ROOT)[:-3].replace(os.sep, ".")
                out[name[:-len(".__init__")] if name.endswith(".__init__") else name] = path
    return out


def _targets(module: str, node, modules: Dict[str, str]) -> List[str]:
    """The package modules an import statement loads: each named module (``from pkg import submodule`` loads the
    submodule; ``from pkg import name`` loads ``pkg``), and every package above it, whose ``__init__`` runs first
    (except the importer's own packages, which are being initialised already)."""
    if isinstance(node, ast.Import):
        named = [a.name for a in node.names]
    else:
        if node.level:
            base = module.split(".")
            if not modules[module].endswith("__init__.py"):
                base = base[:-1]
            base = base[:len(base) - node.level + 1] + ([node.module] if node.module else [])
            base = ".".join(base)
        else:
            base = node.module or ""
        subs = [f"{base}.{a.name}" for a in node.names if f"{base}.{a.name}" in modules]
        named = subs + ([base] if len(subs) < len(node.names) else [])
    out = set()
    for name in named:
        while name not in modules and "." in name:  # a name inside a module: the module
            name = name.rsplit(".", 1)[0]
        if name not in modules:
            continue  # not ours
        parts = name.split(".")
        for k in range(1, len(parts) + 1):
            target = ".".join(parts[:k])
            if target in modules and target != module and not module.startswith(target + "."):
                out.add(target)
    return sorted(out)


def import_graph() -> Dict[str, Set[str]]:
    modules = _modules()
    graph = {}
    for module, path in modules.items():
        with open(path, encoding="utf-8") as f:
            tree = ast.parse(f.read(), path)
        graph[module] = {t for node in ast.walk(tree) if isinstance(node, (ast.Import, ast.ImportFrom))
                         for t in _targets(module, node, modules)}
    return graph


def cycles(graph: Dict[str, Set[str]]) -> List[List[str]]:
    """Strongly connected components with more than one module (Tarjan), each sorted."""
    index, low, stack, on_stack, out = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def test_the_graph_sees_function_level_and_package_imports():
    graph = import_graph()
    assert len(graph) > 100
    # a function-level import (build_cfg resolves the web-pretrained CLIP inside the function) and a package __init__
    assert "wish_d2.pretrain" in graph["wish_d2.engine.setup"]
    assert "wish_d2.engine.scoring" in graph["wish_d2.engine.pipeline"]
    assert "wish_d2.modeling" in graph["wish_d2.engine.scoring"]  # modeling/__init__ runs before meta_arch
    # and finds a circle when there is one
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_no_import_circle_in_the_package():
    graph = import_graph()
    found = cycles(graph)
    detail = ["; ".join(f"{m} -> {sorted(graph[m] & set(c))}" for m in c) for c in found]
    assert not found, "import circles:\n" + "\n".join(detail)


def test_the_engine_is_layered():
    """Scoring sits below everything that scores a split; nothing below the orchestrator imports it."""
    graph = import_graph()
    for module in ("wish_d2.engine.label_free", "wish_d2.engine.calibration", "wish_d2.engine.extra_objects",
                   "wish_d2.engine.table", "wish_d2.video.benchmark"):
        assert "wish_d2.engine.scoring" in graph[module], module
    for module in ("wish_d2.engine.scoring", "wish_d2.engine.label_free", "wish_d2.engine.calibration",
                   "wish_d2.engine.extra_objects"):
        assert "wish_d2.engine.pipeline" not in graph[module], module
