"""The import graph of coterie runs one way, with no cycle.

The graph is read from the source with :mod:`ast`: every ``import`` and
``from ... import`` of a coterie module, at module level and inside
functions, relative ones resolved. Imports under ``if TYPE_CHECKING:`` never
run, so the layer check leaves them out; the cycle check counts them too: a
circle hidden from the interpreter is still one for a reader and for mypy.

The layers, lowest first (a module may import its own layer and those
below, never one above):

====  ==========================================================
0     ``coterie._version``, ``coterie.errors``, ``coterie._native`` (which
      chooses the compiled or pure-Python modules and imports none itself)
1     ``coterie.protocol``
2     ``coterie.observe``, ``coterie.metrics``, ``coterie.tracing``,
      ``coterie.tls``, ``coterie.settings``, ``coterie.typed``,
      ``coterie._logbudget`` (over the protocol's token bucket)
3     ``coterie.transport``
4     ``coterie.discovery``
5     ``coterie.components``
6     ``coterie.gateways``, ``coterie.sync``, ``coterie.serving``
7     ``coterie.web``
8     ``coterie.cli``
9     ``coterie.testing``
10    ``coterie`` itself (the public API) and ``coterie.__main__``
====  ==========================================================

Metrics and tracing, besides, depend only on the observer module, the
protocol, the errors and the version.
"""

from __future__ import annotations

import ast
import graphlib
from pathlib import Path

import pytest

import coterie

#: Module (or package) -> its layer; a module's layer is its longest prefix's.
LAYERS: dict[str, int] = {
    "coterie._version": 0,
    "coterie._logbudget": 2,
    "coterie.errors": 0,
    "coterie._native": 0,
    "coterie.protocol": 1,
    "coterie.observe": 2,
    "coterie.metrics": 2,
    "coterie.tracing": 2,
    "coterie.tls": 2,
    "coterie.settings": 2,
    "coterie.typed": 2,
    "coterie.transport": 3,
    "coterie.discovery": 4,
    "coterie.components": 5,
    "coterie.gateways": 6,
    "coterie.sync": 6,
    "coterie.serving": 6,
    "coterie.web": 7,
    "coterie.cli": 8,
    "coterie.testing": 9,
    "coterie": 10,
    "coterie.__main__": 10,
}

#: What the observers may import (besides their own package).
OBSERVER_DEPENDENCIES = (
    "coterie.observe",
    "coterie.protocol",
    "coterie.errors",
    "coterie._version",
)

Graph = dict[str, set[str]]


def modules(root: Path) -> dict[str, Path]:
    """Every module under the package directory ``root``, by dotted name."""
    found: dict[str, Path] = {}
    for path in sorted(root.rglob("*.py")):
        parts = list(path.relative_to(root.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = path
    return found


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def imported(module: str, path: Path, known: set[str], *, typing: bool = False) -> set[str]:
    """The known modules ``module`` imports (module level or in functions).

    Args:
        typing: Count the imports under ``if TYPE_CHECKING:`` too.
    """
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    names: set[str] = set()

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and _is_type_checking(node.test) and not typing:
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                source = ".".join([*base, *([node.module] if node.module else [])])
            else:
                source = node.module or ""
            for alias in node.names:
                # ``from a import b``: the module a.b if there is one, else a.
                submodule = f"{source}.{alias.name}"
                names.add(submodule if submodule in known else source)
        for inner in ast.iter_child_nodes(node):
            visit(inner)

    visit(ast.parse(path.read_text(), str(path)))
    found: set[str] = set()
    for name in names:
        # ``import a.b.c`` of a name in a.b (a function, a class): a.b.
        while name and name not in known:
            name = name.rpartition(".")[0]
        if name and name != module:
            found.add(name)
    return found


def graph(root: Path, *, typing: bool = False) -> Graph:
    """Module -> the modules it imports, for the package at ``root``.

    Args:
        typing: Count the imports under ``if TYPE_CHECKING:`` too.
    """
    found = modules(root)
    known = set(found)
    return {module: imported(module, path, known, typing=typing) for module, path in found.items()}


def layer(module: str) -> int | None:
    """The layer of ``module`` (its longest listed prefix), or ``None`` if unlisted."""
    name = module
    while name:
        if name in LAYERS:
            return LAYERS[name]
        name = name.rpartition(".")[0]
    return None


def cycle(edges: Graph) -> list[str]:
    """One import cycle (``[a, b, ..., a]``), or ``[]`` when there is none."""
    try:
        graphlib.TopologicalSorter(edges).prepare()
    except graphlib.CycleError as error:
        return list(error.args[1])
    return []


def upward(edges: Graph) -> list[tuple[str, str]]:
    """Every import of a module in a higher layer than the importer's."""
    found = []
    for module, targets in sorted(edges.items()):
        mine = layer(module)
        for target in sorted(targets):
            theirs = layer(target)
            if mine is not None and theirs is not None and theirs > mine:
                found.append((module, target))
    return found


def _package_root(module: str) -> str:
    return ".".join(module.split(".")[:2])


def observer_leaks(edges: Graph) -> list[tuple[str, str]]:
    """Imports of metrics and tracing beyond :data:`OBSERVER_DEPENDENCIES`."""
    found = []
    for module, targets in sorted(edges.items()):
        if _package_root(module) not in ("coterie.metrics", "coterie.tracing"):
            continue
        for target in sorted(targets):
            if _package_root(target) == _package_root(module):
                continue
            if not any(target == d or target.startswith(d + ".") for d in OBSERVER_DEPENDENCIES):
                found.append((module, target))
    return found


CODE = Path(coterie.__file__).parent


def test_every_module_has_a_layer() -> None:
    assert [m for m in graph(CODE) if layer(m) is None] == []


def test_the_import_graph_has_no_cycle() -> None:
    edges = graph(CODE)
    assert len(edges) > 50 and "coterie.observe" in edges["coterie.components.base"]
    assert cycle(edges) == []


def test_no_cycle_even_counting_type_checking_imports() -> None:
    edges = graph(CODE, typing=True)
    assert "coterie.discovery.medium" in edges["coterie.discovery.etcd"]
    assert cycle(edges) == []


def test_no_module_imports_a_higher_layer() -> None:
    assert upward(graph(CODE)) == []


def test_metrics_and_tracing_depend_only_on_the_observer_and_the_protocol() -> None:
    edges = graph(CODE)
    assert "coterie.observe" in edges["coterie.tracing"]
    assert observer_leaks(edges) == []


def _write(root: Path, files: dict[str, str]) -> Path:
    package = root / "coterie"
    for name, text in files.items():
        path = package / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return package


@pytest.fixture
def bad_package(tmp_path: Path) -> Path:
    """A small coterie-like package with one cycle and two upward imports."""
    return _write(
        tmp_path,
        {
            "__init__.py": "",
            "errors.py": "",
            "protocol/__init__.py": "",
            "protocol/a.py": "from . import b\n",
            "protocol/b.py": "from coterie.protocol.a import thing\n",  # a -> b -> a
            "transport/__init__.py": "",
            "transport/link.py": (
                "from typing import TYPE_CHECKING\n"
                "if TYPE_CHECKING:\n"
                "    from coterie.components.base import Component\n"  # types only: fine
                "def later():\n"
                "    import coterie.components.other\n"  # at run time: upward
            ),
            "components/__init__.py": "",
            "components/other.py": "",
            "components/base.py": "from ..transport import link\nfrom coterie.errors import X\n",
            "metrics/__init__.py": "from coterie.transport.link import Link\n",
        },
    )


def test_the_checks_catch_a_cycle_an_upward_import_and_an_observer_leak(
    bad_package: Path,
) -> None:
    edges = graph(bad_package)
    assert edges["coterie.components.base"] == {"coterie.transport.link", "coterie.errors"}
    assert edges["coterie.transport.link"] == {"coterie.components.other"}
    # Counting the types-only import closes a circle: link -> base -> link.
    typed = graph(bad_package, typing=True)
    assert typed["coterie.transport.link"] == {
        "coterie.components.other",
        "coterie.components.base",
    }
    assert set(cycle(typed)) >= {"coterie.transport.link", "coterie.components.base"}
    assert set(cycle(edges)) == {"coterie.protocol.a", "coterie.protocol.b"}
    assert upward(edges) == [
        ("coterie.metrics", "coterie.transport.link"),
        ("coterie.transport.link", "coterie.components.other"),
    ]
    assert observer_leaks(edges) == [("coterie.metrics", "coterie.transport.link")]


def test_the_protocol_packages_table_names_every_module() -> None:
    import coterie.protocol

    modules = sorted(p.stem for p in (CODE / "protocol").glob("*.py") if p.stem != "__init__")
    table = coterie.protocol.__doc__ or ""
    assert [m for m in modules if f":mod:`~coterie.protocol.{m}`" not in table] == []
