"""The layering of the package (DESIGN.md sections 2-3, issue 14), checked from the source:

- ``import evospike`` and ``import evospike.ir`` load no torch, brian2 or lava (run in a fresh
  interpreter, so nothing another test imported counts);
- no import cycle between files among the imports that run when a module is imported;
- nothing under ``backends/torch`` imports the Lava backend, at any level: the Loihi model both
  use lives in ``evospike.hardware.loihi``;
- the IR (``evospike/ir``) imports only the standard library, NumPy, h5py (its serializer) and
  the plain-data parts of the package, and reaches no framework even through its lazy imports.

Imports are read with `ast`, never by importing: a module-level import (also one inside a
module-level ``if``/``try`` or class body) runs when its module is imported; one inside a
function runs when that function is called (a lazy import, allowed to break a cycle and listed
apart); one under ``if TYPE_CHECKING:`` never runs.
"""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FRAMEWORKS = ("torch", "brian2", "lava")
#: the folders whose files the graph covers (each one a subpackage of evospike, pyproject.toml)
SCANNED = ("evospike", "backends", "datasets", "models", "hardware")


def package_dirs() -> dict[str, str]:
    """Package -> folder, from pyproject.toml's ``[tool.setuptools] package-dir`` (one inline
    table; read with a pattern so the test needs no TOML reader on Python 3.10)."""
    text = (ROOT / "pyproject.toml").read_text()
    line = re.search(r"^package-dir\s*=\s*\{(.*)\}\s*$", text, re.M)
    assert line, "pyproject.toml: no one-line package-dir table under [tool.setuptools]"
    return dict(re.findall(r'"([\w.]+)"\s*=\s*"([\w./]+)"', line.group(1)))


@dataclass
class ModuleImports:
    """What one file imports: modules of the package (by dotted name) and the top-level names
    of everything else, split by when the import runs."""

    name: str
    path: Path
    is_package: bool
    eager: set[str] = field(default_factory=set)  # package modules, run at import
    lazy: set[str] = field(default_factory=set)  # package modules, inside functions
    eager_external: set[str] = field(default_factory=set)
    lazy_external: set[str] = field(default_factory=set)


def module_files() -> dict[str, Path]:
    """Dotted module name -> file, for every .py file under the scanned folders."""
    out: dict[str, Path] = {}
    for package, folder in package_dirs().items():
        if folder not in SCANNED:
            continue
        base = ROOT / folder
        for path in sorted(base.rglob("*.py")):
            rel = path.relative_to(base).with_suffix("").parts
            parts = rel[:-1] if rel[-1] == "__init__" else rel
            out[".".join((package, *parts))] = path
    return out


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _imports(tree: ast.Module):
    """(import node, runs at import time) for every import of a module that ever runs."""

    def walk(node: ast.AST, eager: bool):
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.Import, ast.ImportFrom)):
                yield child, eager
            elif isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
                yield from walk(child, False)
            elif isinstance(child, ast.If) and _is_type_checking(child.test):
                for sub in child.orelse:  # the body never runs; the else branch does
                    yield from walk(ast.Module(body=[sub], type_ignores=[]), eager)
            else:
                yield from walk(child, eager)

    yield from walk(tree, True)


def scan() -> dict[str, ModuleImports]:
    """Module name -> its imports, for every file of the scanned folders."""
    files = module_files()
    out: dict[str, ModuleImports] = {}
    for name, path in files.items():
        mod = ModuleImports(name, path, path.name == "__init__.py")
        package = name if mod.is_package else name.rpartition(".")[0]
        tree = ast.parse(path.read_text(), filename=str(path))
        for node, eager in _imports(tree):
            targets: list[str] = []
            external: list[str] = []
            if isinstance(node, ast.Import):
                for alias in node.names:
                    (targets if alias.name.split(".")[0] == "evospike" else external).append(
                        alias.name)
            else:
                if node.level:
                    base = package.split(".")
                    base = base[:len(base) - (node.level - 1)]
                    where = ".".join(base + ([node.module] if node.module else []))
                else:
                    where = node.module or ""
                if where.split(".")[0] != "evospike":
                    external.append(where)
                else:
                    # ``from pkg import name``: the submodule ``pkg.name`` if there is one,
                    # else an attribute of ``pkg`` itself
                    for alias in node.names:
                        sub = f"{where}.{alias.name}"
                        targets.append(sub if sub in files else where)
            for target in targets:
                # the longest known module the dotted name starts with (a missing one stays
                # as written, and fails `test_every_package_import_resolves`)
                while target not in files and "." in target:
                    target = target.rpartition(".")[0]
                (mod.eager if eager else mod.lazy).add(target)
            for ext in external:
                top = ext.split(".")[0]
                if top and top != "__future__":
                    (mod.eager_external if eager else mod.lazy_external).add(top)
        mod.eager.discard(name)
        mod.lazy.discard(name)
        out[name] = mod
    return out


def find_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Every strongly connected component of more than one file, each as one cycle through
    it (``a -> b -> ... -> a``), found by Tarjan's algorithm and a search inside it."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []
    counter = [0]

    def strongconnect(v: str) -> None:  # iterative would be longer; the graph is small
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                strongconnect(w)
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
                components.append(sorted(comp))

    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(max(limit, 10 * len(graph) + 100))
    try:
        for v in sorted(graph):
            if v not in index:
                strongconnect(v)
    finally:
        sys.setrecursionlimit(limit)
    cycles = []
    for comp in components:
        members = set(comp)
        start = comp[0]
        # breadth-first from start back to start, inside the component: a shortest cycle
        prev: dict[str, str] = {}
        queue = [start]
        found = None
        while queue and found is None:
            nxt = []
            for v in queue:
                for w in sorted(graph[v] & members):
                    if w == start:
                        found = v
                        break
                    if w not in prev:
                        prev[w] = v
                        nxt.append(w)
                if found is not None:
                    break
            queue = nxt
        path = [found]
        while path[-1] != start:
            path.append(prev[path[-1]])
        cycles.append(list(reversed(path)) + [start])
    return cycles


def _rel(name: str, mods: dict[str, ModuleImports]) -> str:
    return str(mods[name].path.relative_to(ROOT)) if name in mods else name


# --------------------------------------------------------------------------- the scanner
def test_scanner_tells_eager_lazy_and_type_only_imports_apart():
    tree = ast.parse(
        "import numpy\n"
        "from typing import TYPE_CHECKING\n"
        "try:\n    import h5py\nexcept ImportError:\n    h5py = None\n"
        "if TYPE_CHECKING:\n    import torch\nelse:\n    import json\n"
        "class A:\n    import zlib\n"
        "    def f(self):\n        import lava\n"
        "g = lambda: __import__('x')\n"
        "def h():\n    import brian2\n")
    seen = {(node.module if isinstance(node, ast.ImportFrom) else node.names[0].name, eager)
            for node, eager in _imports(tree)}
    assert seen == {("numpy", True), ("typing", True), ("h5py", True), ("json", True),
                    ("zlib", True), ("lava", False), ("brian2", False)}


def test_find_cycles_reports_each_cycle_as_a_path():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a", "d"}, "d": set(), "e": {"a"}, "f": {"g"},
             "g": {"f"}}
    assert find_cycles(graph) == [["a", "b", "c", "a"], ["f", "g", "f"]]
    assert find_cycles({"a": {"b"}, "b": set()}) == []


def test_every_package_import_resolves():
    """Each ``evospike.*`` import names a file of the package (a stale import fails here, and
    the graph below is only as good as this)."""
    mods = scan()
    missing = sorted(f"{_rel(k, mods)} imports {t}" for k, m in mods.items()
                     for t in m.eager | m.lazy if t not in mods)
    assert not missing, "\n".join(missing)


def test_every_package_folder_is_installed():
    """pyproject.toml's ``packages`` lists every folder with an ``__init__.py`` (an editable
    install finds a missing one; a wheel would not contain it)."""
    text = (ROOT / "pyproject.toml").read_text()
    listed = set(re.findall(r'"(evospike[\w.]*)"', text[text.index("packages = ["):]))
    packages = {k for k, m in scan().items() if m.is_package}
    assert packages - listed == set(), f"not in pyproject.toml's packages: {packages - listed}"


# --------------------------------------------------------------------------- (a)
#: the modules that must load without torch, brian2 or lava: the package and its IR, and the
#: framework-free cores of the modules that also have a torch side
FRAMEWORK_FREE = ("evospike", "evospike.ir", "evospike.energy", "evospike.pruning",
                  "evospike.ir.pruning", "evospike.fixed_point", "evospike.hardware",
                  "evospike.hardware.loihi.learning", "evospike.hardware.loihi.three_factor",
                  "evospike.native_build", "evospike.cli", "evospike.run_loop")


def test_import_evospike_loads_no_framework():
    """A fresh interpreter imports ``evospike``, ``evospike.ir`` and the framework-free cores
    one after the other; none may pull in torch, brian2 or lava."""
    code = ("import importlib, sys\n"
            f"for name in {FRAMEWORK_FREE!r}:\n"
            "    importlib.import_module(name)\n"
            "    loaded = sorted({m.split('.')[0] for m in sys.modules} & "
            f"set({FRAMEWORKS!r}))\n"
            "    if loaded:\n"
            "        print(name, ','.join(loaded))\n"
            "        break\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd=ROOT, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "", f"import {proc.stdout.strip()} (name, frameworks)"


# --------------------------------------------------------------------------- (b)
#: import cycles that exist and are not ours to untangle here, each with why it is there.
#: The test fails on any other cycle, and on one of these that grew or is gone (then remove
#: it from this list).
KNOWN_CYCLES: dict[frozenset[str], str] = {}


def _reachable(graph: dict[str, set[str]], v: str) -> set[str]:
    seen: set[str] = set()
    todo = [v]
    while todo:
        for w in graph[todo.pop()]:
            if w not in seen:
                seen.add(w)
                todo.append(w)
    return seen


def _components(mods: dict[str, ModuleImports]) -> list[tuple[frozenset[str], list[str]]]:
    """(the files of a component, as paths; one cycle through it) for each module-level
    cycle."""
    graph = {k: m.eager for k, m in mods.items()}
    out = []
    for cycle in find_cycles(graph):
        start = cycle[0]  # the whole component: every file on a cycle with the first one
        comp = {v for v in _reachable(graph, start) if start in _reachable(graph, v)}
        out.append((frozenset(_rel(v, mods) for v in comp), cycle))
    return out


def test_no_import_cycles_between_files():
    """Module-level imports (those that run on import) form no cycle between files, apart
    from `KNOWN_CYCLES`. A lazy import (inside a function) may close a cycle: it runs only
    once both modules are loaded."""
    mods = scan()
    new = []
    for comp, cycle in _components(mods):
        if comp not in KNOWN_CYCLES:
            new.append(f"{len(comp)} files: " + " -> ".join(_rel(v, mods) for v in cycle)
                       + ("" if len(comp) == len(cycle) - 1 else
                          f" (and on other cycles through them: {sorted(comp)})"))
    assert not new, "import cycles between files (module-level imports):\n" + "\n".join(new)


def test_known_cycles_are_still_there():
    """`KNOWN_CYCLES` only lists cycles that exist: one that is gone comes off the list."""
    found = {comp for comp, _ in _components(scan())}
    gone = [sorted(c) for c in KNOWN_CYCLES if c not in found]
    assert not gone, f"these import cycles are gone; remove them from KNOWN_CYCLES: {gone}"


# --------------------------------------------------------------------------- (c)
def test_torch_backend_never_imports_lava():
    """Nothing under backends/torch imports the Lava backend or lava itself, at any level:
    the Loihi model both run is `evospike.hardware.loihi`."""
    mods = scan()
    torch_side = {k: m for k, m in mods.items()
                  if k == "evospike.backends.torch" or k.startswith("evospike.backends.torch.")}
    assert "evospike.backends.torch.fixed" in torch_side  # the scan sees the backend
    # ... and sees what the fixed-point mode really imports, lazily or not
    fixed = torch_side["evospike.backends.torch.fixed"]
    assert "evospike.hardware.loihi.learning" in fixed.eager | fixed.lazy
    bad = sorted(f"{_rel(k, mods)} imports {t}" for k, m in torch_side.items()
                 for t in (m.eager | m.lazy) if t.startswith("evospike.backends.lava"))
    bad += sorted(f"{_rel(k, mods)} imports lava" for k, m in torch_side.items()
                  if "lava" in m.eager_external | m.lazy_external)
    assert not bad, "\n".join(bad)


# --------------------------------------------------------------------------- (d)
#: what the IR may import besides itself, the standard library and NumPy, and why each is
#: plain data (none of them reaches a framework: `test_ir_reaches_no_framework` checks that)
IR_MAY_IMPORT = {
    "evospike.errors": "the typed errors every node raises",
    "evospike.units": "unit conversions of node fields",
    "evospike.connectors": "the DSL's connectivity rules (NumPy), which Network.connect calls",
    "evospike.memory_estimate": "the memory check Network.connect makes before drawing "
                                "synapses (NumPy)",
    "evospike.atomic": "atomic HDF5 writes of the serializer",
    "evospike.hardware.energy_costs": "the energy cost table an EnergyBudget node names",
    "evospike.pruning": "the NumPy pruner a TerminalAttractorPruning node builds for a backend "
                        "(make_pruner, a lazy import)",
}
#: third-party modules the IR may import: NumPy for its arrays, h5py for its file format
IR_MAY_IMPORT_EXTERNAL = {"numpy": "arrays", "h5py": "the serializer's HDF5 files"}


def _is_ir(name: str) -> bool:
    return name == "evospike.ir" or name.startswith("evospike.ir.")


def test_ir_imports_only_plain_data():
    mods = scan()
    ir = {k: m for k, m in mods.items() if _is_ir(k)}
    assert "evospike.ir.network" in ir
    bad = []
    for k, m in sorted(ir.items()):
        for t in sorted(m.eager | m.lazy):
            if not _is_ir(t) and t not in IR_MAY_IMPORT:
                bad.append(f"{_rel(k, mods)} imports {t}")
        for ext in sorted(m.eager_external | m.lazy_external):
            if ext not in sys.stdlib_module_names and ext not in IR_MAY_IMPORT_EXTERNAL:
                bad.append(f"{_rel(k, mods)} imports {ext}")
    assert not bad, "the IR imports beyond plain data:\n" + "\n".join(bad)


def test_ir_reaches_no_framework():
    """Following every import of the IR (module-level and lazy, and the ``__init__`` of each
    package on the way, which Python runs too) reaches no module that imports torch, brian2
    or lava."""
    mods = scan()

    def parents(name: str) -> list[str]:
        parts = name.split(".")
        return [".".join(parts[:i]) for i in range(1, len(parts))]

    via: dict[str, str | None] = {k: None for k in mods if _is_ir(k)}
    todo = list(via)
    while todo:  # breadth first: the path reported is a shortest one
        k = todo.pop(0)
        for t in sorted(mods[k].eager | mods[k].lazy | set(parents(k))):
            if t in mods and t not in via:
                via[t] = k
                todo.append(t)
    bad = []
    for k in sorted(via):
        hit = (mods[k].eager_external | mods[k].lazy_external) & set(FRAMEWORKS)
        if hit:
            path = [k]
            while via[path[-1]] is not None:
                path.append(via[path[-1]])
            bad.append(f"{sorted(hit)} via " + " <- ".join(_rel(v, mods) for v in path))
    assert not bad, "the IR reaches a framework:\n" + "\n".join(bad)


# --------------------------------------------------------------------------- Loihi's numbers
def test_loihi_constants_module_needs_only_the_standard_library():
    """The Lava worker loads ``hardware/loihi/constants.py`` by path in an interpreter without
    EvoSpike: it may import nothing else."""
    m = scan()["evospike.hardware.loihi.constants"]
    assert not (m.eager | m.lazy)
    assert all(e in sys.stdlib_module_names for e in m.eager_external | m.lazy_external)


def test_loihi_numbers_have_one_source():
    """The quantizer's profile, the chip's limits and the Lava worker's copy all read
    `evospike.hardware.loihi.constants`."""
    from evospike.backends.lava import worker
    from evospike.fixed_point import LOIHI2
    from evospike.hardware import LOIHI2 as LIMITS
    from evospike.hardware.loihi import constants as C

    assert (LOIHI2.state_bits, LOIHI2.decay_bits, LOIHI2.du_offset, LOIHI2.dv_offset,
            LOIHI2.act_shift, LOIHI2.vth_shift, LOIHI2.vth_max, LOIHI2.bias_mant_min,
            LOIHI2.bias_mant_max, LOIHI2.bias_exp_min, LOIHI2.bias_exp_max, LOIHI2.weight_bits,
            LOIHI2.weight_exp_min, LOIHI2.weight_exp_max, LOIHI2.max_delay_steps) == (
        C.STATE_BITS, C.DECAY_BITS, C.DU_OFFSET, C.DV_OFFSET, C.ACT_SHIFT, C.VTH_SHIFT,
        C.VTH_MAX, C.BIAS_MANT_MIN, C.BIAS_MANT_MAX, C.BIAS_EXP_MIN, C.BIAS_EXP_MAX,
        C.WEIGHT_BITS, C.WEIGHT_EXP_MIN, C.WEIGHT_EXP_MAX, C.MAX_DELAY_STEPS)
    assert (LIMITS.value("state_bits"), LIMITS.value("decay_bits"),
            LIMITS.value("threshold_bits"), LIMITS.value("weight_bits"),
            LIMITS.value("max_delay_steps")) == (
        C.STATE_BITS, C.DECAY_BITS, C.VTH_BITS, C.WEIGHT_BITS, C.MAX_DELAY_STEPS)
    loaded = worker.loihi_constants()  # by path, as under the Lava interpreter
    assert Path(loaded.__file__).resolve() == Path(C.__file__).resolve()
    assert {k: getattr(loaded, k) for k in C.__all__} == {k: getattr(C, k) for k in C.__all__}


if __name__ == "__main__":  # a look at the graph: python tests/test_architecture.py
    mods = scan()
    print("module-level cycles:")
    for comp, cycle in _components(mods):
        print(f"  {len(comp)} files: " + " -> ".join(_rel(n, mods) for n in cycle))
    print("cycles closed only by lazy imports (inside functions):")
    eager = {c for comp, _ in _components(mods) for c in comp}
    both = {k: m.eager | m.lazy for k, m in mods.items()}
    for cycle in find_cycles(both):
        if _rel(cycle[0], mods) not in eager:
            print("  " + " -> ".join(_rel(n, mods) for n in cycle))
    print("lazy imports of the package:")
    for k, m in sorted(mods.items()):
        if m.lazy:
            print(f"  {_rel(k, mods)}: {', '.join(sorted(m.lazy))}")
