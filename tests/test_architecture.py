"""Import contracts between LifeVeil's packages (issue 10 item 6), checked on the source.

Every module under ``src/lifeveil`` is parsed with :mod:`ast` (nothing is imported), and each
``import`` statement is classified by when it runs: ``module`` (at import time, including
``if``/``try`` blocks at module level), ``function`` (inside a function or method, when it is
called) or ``type-checking`` (under ``if TYPE_CHECKING:``, never at run time). The contracts
below are data; ``docs/ARCHITECTURE.md`` shows the same table, and a test keeps the two equal.

Imports by computed name (``importlib.import_module(f"lifeveil.device.{name}")``, as in the
lazy ``__getattr__`` of ``lifeveil.device``) are invisible here; every such import in the code
today stays inside its own package. ``tests/test_device_extras.py`` checks the device side at
run time as well.
"""

from __future__ import annotations

import ast
import re
import warnings
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from functools import cache
from itertools import pairwise
from pathlib import Path
from typing import Literal

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src"
ARCHITECTURE_DOC = ROOT / "docs" / "ARCHITECTURE.md"

# --------------------------------------------------------------------------------------------
# The contracts
# --------------------------------------------------------------------------------------------

#: Units are the subpackages of ``lifeveil``; the top-level modules form one unit, ``core``,
#: that every unit may import and that imports nothing else.
CORE_MODULES = frozenset({"lifeveil", "errors", "paths", "io", "registry", "imaging", "mapping"})

#: Who may import whom (besides itself and ``core``), at module or function level or under
#: TYPE_CHECKING alike. Dependencies point one way: down the device pipeline, and from the
#: server only to the wire formats in ``transport``.
MAY_IMPORT: dict[str, frozenset[str]] = {
    "core": frozenset(),
    "ingest": frozenset(),
    # The wire formats and the uplink are shared by device and server: whatever transport
    # imported, the server would import too.
    "transport": frozenset(),
    "teachers": frozenset(),
    "data": frozenset({"ingest"}),
    "vault": frozenset({"ingest"}),
    "privatizer": frozenset({"ingest", "data", "teachers"}),
    "device": frozenset({"ingest", "data", "teachers", "privatizer", "vault", "transport"}),
    "server": frozenset({"transport"}),
    # "bench may import everything" (STYLE.md): it measures every other package.
    "bench": frozenset(
        {"ingest", "data", "teachers", "privatizer", "vault", "transport", "device", "server"}
    ),
    # The owner's local web console: it shows the device's vault, outbox and ledger; it is
    # not the z server and never imports it.
    "console": frozenset(
        {"ingest", "data", "teachers", "privatizer", "vault", "transport", "device"}
    ),
    # The app layer: a thin argv front end over all of the library.
    "cli": frozenset(
        {"ingest", "data", "teachers", "privatizer", "vault", "transport", "device"}
        | {"server", "bench", "console"}
    ),
}
UNITS = frozenset(MAY_IMPORT)

#: What `pip install lifeveil` (no extras) is for: everything a camera runs, training included.
DEVICE_SIDE = frozenset(
    {"core", "ingest", "data", "teachers", "privatizer", "vault", "transport", "device"}
)


@dataclass(frozen=True)
class Rule:
    """A headline contract: no unit in ``importers`` reaches ``forbidden``, even indirectly."""

    name: str
    importers: frozenset[str]
    forbidden: frozenset[str]
    why: str


#: Checked on the transitive closure of the measured imports, so a path through a third
#: package breaks them too. MAY_IMPORT must respect them as well.
NEVER: tuple[Rule, ...] = (
    Rule(
        "device side never imports server, bench or cli",
        DEVICE_SIDE,
        frozenset({"server", "bench", "cli"}),
        "a camera carries only what it needs to send z; `pip install lifeveil` has no server "
        "or bench extras",
    ),
    Rule(
        "server never imports device-side code, bench or cli",
        frozenset({"server"}),
        (DEVICE_SIDE - {"core", "transport"}) | {"bench", "cli"},
        "the server handles z only: it never decodes media, runs the privatizer or opens a "
        "vault, and shares only the wire formats (transport) with the device",
    ),
    Rule(
        "nothing but cli imports cli",
        UNITS - {"cli"},
        frozenset({"cli"}),
        "library != app: the CLI parses argv over a library usable from a notebook",
    ),
)

#: Known import cycles between modules (function-level imports included), each a strongly
#: connected component of the module graph. Empty: issue 10 removed the last two
#: (bench/methods/base <-> raw and bench/report <-> runner). Any cycle now fails the test; an
#: entry added here needs a comment saying why the cycle is right (the test warns when an
#: entry is stale).
KNOWN_MODULE_CYCLES: frozenset[frozenset[str]] = frozenset()

# --------------------------------------------------------------------------------------------
# Reading the imports
# --------------------------------------------------------------------------------------------

When = Literal["module", "function", "type-checking"]


@dataclass(frozen=True)
class Import:
    """One imported module as written in one module of ``lifeveil``.

    ``target`` is absolute (relative imports resolved); ``from pkg import name`` targets
    ``pkg.name`` when that is a module of lifeveil, else ``pkg``.
    """

    importer: str
    target: str
    when: When
    path: Path
    line: int

    def where(self) -> str:
        """``src/lifeveil/x.py:12 (function-level)`` for messages."""
        return f"{self.path.relative_to(ROOT)}:{self.line} ({self.when}-level)"


def module_name(path: Path) -> str:
    """``src/lifeveil/device/agent.py`` -> ``lifeveil.device.agent`` (packages lose __init__)."""
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


@cache
def lifeveil_modules() -> dict[str, Path]:
    """Every module of the lifeveil package: dotted name -> file."""
    files = sorted((SRC / "lifeveil").rglob("*.py"))
    return {module_name(p): p for p in files if "__pycache__" not in p.parts}


def unit_of(module: str) -> str:
    """The unit a lifeveil module belongs to: its subpackage, or ``core``."""
    parts = module.split(".")
    if len(parts) == 1 or parts[1] in CORE_MODULES:
        return "core"
    return parts[1]


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _statements(node: ast.AST, when: When) -> Iterator[tuple[ast.Import | ast.ImportFrom, When]]:
    """Import statements under ``node`` with when they run."""
    for child in ast.iter_child_nodes(node):
        if isinstance(child, ast.If) and _is_type_checking(child.test):
            for stmt in child.body:
                yield from _statements_of(stmt, "type-checking")
            for stmt in child.orelse:
                yield from _statements_of(stmt, when)
            continue
        yield from _statements_of(child, when)


def _statements_of(node: ast.AST, when: When) -> Iterator[tuple[ast.Import | ast.ImportFrom, When]]:
    if isinstance(node, ast.Import | ast.ImportFrom):
        yield node, when
        return
    inner: When = when
    if when == "module" and isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda):
        inner = "function"
    yield from _statements(node, inner)


def _targets(stmt: ast.Import | ast.ImportFrom, importer: str, is_package: bool) -> list[str]:
    if isinstance(stmt, ast.Import):
        return [alias.name for alias in stmt.names]
    base = stmt.module or ""
    if stmt.level:
        anchor = importer.split(".") if is_package else importer.split(".")[:-1]
        anchor = anchor[: len(anchor) - (stmt.level - 1)]
        base = ".".join(anchor + ([stmt.module] if stmt.module else []))
    known = lifeveil_modules()
    return [f"{base}.{a.name}" if f"{base}.{a.name}" in known else base for a in stmt.names]


def imports_in(source: str, importer: str, path: Path) -> list[Import]:
    """The imports of one module's ``source``, one row per imported module."""
    tree = ast.parse(source, filename=str(path))
    return [
        Import(importer, target, when, path, stmt.lineno)
        for stmt, when in _statements(tree, "module")
        for target in _targets(stmt, importer, path.name == "__init__.py")
    ]


@cache
def all_imports() -> tuple[Import, ...]:
    """Every import statement of every lifeveil module, one row per imported module."""
    return tuple(
        row
        for name, path in lifeveil_modules().items()
        for row in imports_in(path.read_text(encoding="utf-8"), name, path)
    )


def internal_imports(
    whens: Iterable[When] = ("module", "function", "type-checking"),
) -> list[Import]:
    """Imports of other lifeveil modules, at the given times."""
    wanted = set(whens)
    return [
        i
        for i in all_imports()
        if i.when in wanted and (i.target == "lifeveil" or i.target.startswith("lifeveil."))
    ]


def unit_graph(imports: Iterable[Import]) -> dict[str, dict[str, Import]]:
    """unit -> {imported unit: one import that makes the edge} (self-edges dropped)."""
    graph: dict[str, dict[str, Import]] = {u: {} for u in UNITS}
    for i in imports:
        src, dst = unit_of(i.importer), unit_of(i.target)
        if src != dst:
            graph.setdefault(src, {}).setdefault(dst, i)
    return graph


def path_between(graph: Mapping[str, Iterable[str]], start: str, goal: str) -> list[str] | None:
    """A shortest path ``start -> ... -> goal`` in ``graph`` (breadth first), or None."""
    previous: dict[str, str | None] = {start: None}
    frontier = [start]
    while frontier:
        nxt: list[str] = []
        for node in frontier:
            for succ in graph.get(node, ()):
                if succ in previous:
                    continue
                previous[succ] = node
                if succ == goal:
                    path = [succ]
                    while (back := previous[path[-1]]) is not None:
                        path.append(back)
                    return path[::-1]
                nxt.append(succ)
        frontier = nxt
    return None


def strongly_connected(graph: Mapping[str, Iterable[str]]) -> list[frozenset[str]]:
    """The strongly connected components with more than one node (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[frozenset[str]] = []
    for root in graph:
        if root in index:
            continue
        work: list[tuple[str, Iterator[str]]] = [(root, iter(graph.get(root, ())))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, successors = work[-1]
            succ = next(successors, None)
            if succ is not None:
                if succ not in index:
                    index[succ] = low[succ] = len(index)
                    stack.append(succ)
                    on_stack.add(succ)
                    work.append((succ, iter(graph.get(succ, ()))))
                elif succ in on_stack:
                    low[node] = min(low[node], index[succ])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = set()
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.add(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(frozenset(component))
    return found


# --------------------------------------------------------------------------------------------
# The tests
# --------------------------------------------------------------------------------------------


SCANNER_SAMPLE = """
import numpy as np
from lifeveil.errors import InputError
from . import agent
from ..vault import Vault
if TYPE_CHECKING:
    from lifeveil.server.config import ServerConfig
try:
    import fcntl
except ImportError:
    fcntl = None
class Runner:
    def run(self):
        import torch
        helper = lambda: __import__("x")
def later():
    if TYPE_CHECKING:
        from typing import Any
    from lifeveil.bench import report
"""


def test_the_scanner_classifies_imports() -> None:
    path = SRC / "lifeveil" / "device" / "sample.py"
    rows = [
        (i.target, i.when, i.line) for i in imports_in(SCANNER_SAMPLE, "lifeveil.device.x", path)
    ]
    assert rows == [
        ("numpy", "module", 2),
        ("lifeveil.errors", "module", 3),
        ("lifeveil.device.agent", "module", 4),
        ("lifeveil.vault", "module", 5),
        ("lifeveil.server.config", "type-checking", 7),
        ("fcntl", "module", 9),
        ("torch", "function", 14),
        ("typing", "type-checking", 18),
        ("lifeveil.bench.report", "function", 19),
    ]
    assert unit_of("lifeveil") == unit_of("lifeveil.errors") == "core"
    assert unit_of("lifeveil.bench.methods.raw") == "bench"
    assert len(all_imports()) > 500, "the scanner found almost no imports in src/lifeveil"


def test_every_package_has_a_contract() -> None:
    units = {unit_of(m) for m in lifeveil_modules()}
    missing = sorted(units - UNITS)
    assert not missing, (
        f"new package(s) {missing} have no import contract: add them to MAY_IMPORT in "
        f"{Path(__file__).name} and to the table in docs/ARCHITECTURE.md"
    )


def test_imports_follow_may_import() -> None:
    bad = [
        f"{i.where()}: {unit_of(i.importer)} imports {i.target}; {unit_of(i.importer)} may "
        f"import only {sorted(MAY_IMPORT[unit_of(i.importer)] | {'core'})}"
        for i in internal_imports()
        if unit_of(i.importer) in UNITS
        and unit_of(i.target) not in MAY_IMPORT[unit_of(i.importer)] | {"core", unit_of(i.importer)}
    ]
    assert not bad, "imports against the contracts (MAY_IMPORT):\n" + "\n".join(bad)


def test_never_rules_hold_transitively() -> None:
    graph = unit_graph(internal_imports())
    bad = []
    for rule in NEVER:
        for src in sorted(rule.importers):
            for dst in sorted(rule.forbidden - {src}):
                path = path_between(graph, src, dst)
                if path:
                    hops = [graph[a][b].where() for a, b in pairwise(path)]
                    bad.append(f"{rule.name}: {' -> '.join(path)} via {'; '.join(hops)}")
    assert not bad, "\n".join(bad)


def test_may_import_respects_never_rules() -> None:
    """Loosening MAY_IMPORT must not quietly allow what a NEVER rule forbids."""
    bad = [
        f"MAY_IMPORT lets {src} reach {dst} ({' -> '.join(path)}), but: {rule.name} ({rule.why})"
        for rule in NEVER
        for src in sorted(rule.importers)
        for dst in sorted(rule.forbidden - {src})
        if (path := path_between(MAY_IMPORT, src, dst))
    ]
    assert not bad, "\n".join(bad)


def test_no_cycle_between_packages_at_import_time() -> None:
    """Module-level imports only: what runs when a package is first imported."""
    graph = unit_graph(internal_imports(["module"]))
    cycles = strongly_connected(graph)
    detail = [
        f"{sorted(c)}: "
        + "; ".join(f"{a} -> {b} at {i.where()}" for a in c for b, i in graph[a].items() if b in c)
        for c in cycles
    ]
    assert not cycles, "import cycles between packages at import time:\n" + "\n".join(detail)


def test_module_cycles_are_only_the_known_ones() -> None:
    """Function-level imports included; KNOWN_MODULE_CYCLES is the commented allow-list."""
    graph: dict[str, set[str]] = {m: set() for m in lifeveil_modules()}
    sites: dict[tuple[str, str], Import] = {}
    for i in internal_imports(["module", "function"]):
        if i.target in graph and i.target != i.importer:
            graph[i.importer].add(i.target)
            sites.setdefault((i.importer, i.target), i)
    cycles = set(strongly_connected(graph))
    new = [
        f"{sorted(c)}: "
        + "; ".join(f"{a} -> {b} at {sites[a, b].where()}" for a in c for b in graph[a] if b in c)
        for c in cycles - KNOWN_MODULE_CYCLES
    ]
    assert not new, "new import cycle(s) between modules:\n" + "\n".join(new)
    for stale in KNOWN_MODULE_CYCLES - cycles:
        warnings.warn(
            f"import cycle {sorted(stale)} is gone: remove it from KNOWN_MODULE_CYCLES",
            stacklevel=1,
        )


def documented_contracts(text: str) -> dict[str, frozenset[str]]:
    """The MAY_IMPORT table of docs/ARCHITECTURE.md, between its contracts markers.

    A row is ``| `unit` ... | `a`, `b` (or —) | why |``: the first code span of the first cell
    names the unit, the code spans of the second cell are what it may import.
    """
    body = text.split("<!-- contracts:begin -->", 1)[1].split("<!-- contracts:end -->", 1)[0]
    table: dict[str, frozenset[str]] = {}
    for line in body.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        first = re.search(r"`([a-z_]+)`", cells[0]) if len(cells) >= 2 else None
        if first:
            table[first.group(1)] = frozenset(re.findall(r"`([a-z_]+)`", cells[1]))
    return table


def test_architecture_doc_shows_these_contracts() -> None:
    documented = documented_contracts(ARCHITECTURE_DOC.read_text(encoding="utf-8"))
    assert documented == MAY_IMPORT, (
        "docs/ARCHITECTURE.md's contracts table differs from MAY_IMPORT in "
        f"{Path(__file__).name}: update both together"
    )
