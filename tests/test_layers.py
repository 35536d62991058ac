"""The package's import graph: no cycle between modules, and no module imports from a layer above it.

Every module of ``renal_nnunet`` is parsed with ``ast``; its imports of ``renal_nnunet.*``, at
module level and inside functions alike (a function-level import is a dependency all the same),
are the graph's edges. Imports by name in strings (``importlib.import_module`` in ``cli``, the lazy
exports of the packages' ``__init__``) are not edges.

Layers, top to bottom. A module may import from its own layer (without a cycle) and from any layer
below it, never from one above:

==  ===================  ==========================================================================
 1  cli                  ``renal_nnunet`` (lazily re-exports ``pipeline.predict``), ``cli``, and
                         each stage's ``cli`` module (``renal_nnunet.<stage>.cli``)
 2  cli_options          the flags every subcommand spells the same way
 3  pipeline             orchestration: predict, the models folder, training, demo, compare
 4  classification       the ResNet-10, its training, calibration and prediction
 5  dataset_conversion   KiTS / manifest -> nnU-Net raw datasets
 6  inference            the U-Nets on a CT, the cascade, map-back
    synthetic            the phantoms of the demo and the tests
 7  evaluation           metrics, detection, the paper's tables
 8  outputs              the file formats a prediction writes, and ``LesionRecord``
    runtime              backend resolution, OpenVINO conversion and cache, network clock,
                         a child process's wall time and peak memory (the benchmarks')
 9  nnunet               nnU-Net's commands, splits and model layout (``nnunet.layout``)
10  trainers             the trainer classes and their registration
    anatomy              what every stage shares about a CT and its labels
11  io                   image IO, atomic writes, the case-id and part rules
    nnunet.environment   nnU-Net's environment variables and folders (imported by
                         ``trainers.registration``, so below ``trainers``)
12  settings             the paper's settings
13  anatomy.labels       the label conventions
    _lazy                the lazy exports of the packages' ``__init__``
==  ===================  ==========================================================================

A module's layer is that of the longest entry naming it or a package above it. ``runtime`` and
``nnunet.layout`` are listed before they exist, so the table holds when they arrive.
"""

from __future__ import annotations

import ast
import fnmatch
from pathlib import Path

import renal_nnunet

PACKAGE_DIR = Path(renal_nnunet.__file__).resolve().parent

LAYERS: tuple[tuple[str, ...], ...] = (
    ("renal_nnunet", "renal_nnunet.cli", "renal_nnunet.*.cli"),
    ("renal_nnunet.cli_options",),
    ("renal_nnunet.pipeline",),
    ("renal_nnunet.classification",),
    ("renal_nnunet.dataset_conversion",),
    ("renal_nnunet.inference", "renal_nnunet.synthetic"),
    ("renal_nnunet.evaluation",),
    ("renal_nnunet.outputs", "renal_nnunet.runtime"),
    ("renal_nnunet.nephrometry",),
    ("renal_nnunet.nnunet", "renal_nnunet.nnunet.layout"),
    ("renal_nnunet.trainers", "renal_nnunet.anatomy"),
    ("renal_nnunet.io", "renal_nnunet.nnunet.environment"),
    ("renal_nnunet.settings",),
    ("renal_nnunet.anatomy.labels", "renal_nnunet._lazy"),
)
"""Module entries by layer, top (0) to bottom (``*`` as in :mod:`fnmatch`)."""


def package_modules(package_dir: Path = PACKAGE_DIR) -> dict[str, Path]:
    """Dotted name -> file of every module of the package (a package is its ``__init__``)."""
    modules = {}
    for path in sorted(package_dir.rglob("*.py")):
        parts = path.relative_to(package_dir.parent).with_suffix("").parts
        modules[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return modules


def _resolve(name: str, modules: dict[str, Path]) -> str:
    """The package module ``name`` is, or lies in (``renal_nnunet.io.write_json`` -> ``renal_nnunet.io``)."""
    while name not in modules:
        name = name.rpartition(".")[0]
    return name


def _imported(node: ast.Import | ast.ImportFrom, module: str, is_package: bool, modules: dict[str, Path]) -> set[str]:
    """Package modules an import statement imports (``from a import b``: ``a.b`` if it is a module, else ``a``)."""
    if isinstance(node, ast.Import):
        names = [alias.name for alias in node.names]
    else:
        base = node.module or ""
        if node.level:  # relative: `from . import x` in a module is its package's x
            parts = module.split(".")
            base = ".".join(parts[: len(parts) - node.level + int(is_package)] + ([base] if base else []))
        names = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base for alias in node.names]
    return {_resolve(name, modules) for name in names if name.split(".")[0] == "renal_nnunet"}


def import_graph(package_dir: Path = PACKAGE_DIR) -> dict[str, dict[str, int]]:
    """Module -> {imported package module: line of its first import}, self-imports left out."""
    modules = package_modules(package_dir)
    graph: dict[str, dict[str, int]] = {}
    for module, path in modules.items():
        edges: dict[str, int] = {}
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                for target in _imported(node, module, path.name == "__init__.py", modules) - {module}:
                    edges[target] = min(edges.get(target, node.lineno), node.lineno)
        graph[module] = edges
    return graph


def layer_of(module: str) -> int:
    """Index (0 = top) of the most specific :data:`LAYERS` entry naming ``module`` or a package above it.

    Raises:
        LookupError: no entry names it (add it to :data:`LAYERS`).
    """
    best: tuple[int, int] | None = None
    for index, entries in enumerate(LAYERS):
        for entry in entries:
            depth = entry.count(".") + 1
            named = module == entry or fnmatch.fnmatchcase(module, entry)
            below = depth > 1 and module.startswith(entry + ".")
            if (named or below) and (best is None or depth > best[0]):
                best = (depth, index)
    if best is None:
        raise LookupError(f"{module} is in no layer of LAYERS in {__file__}: add it")
    return best[1]


def find_cycle(graph: dict[str, dict[str, int]]) -> list[str]:
    """One import cycle as ``[a, b, ..., a]``, or ``[]`` when the graph has none."""
    state: dict[str, str] = {}  # "open" while on the current path, "done" once explored

    def visit(module: str, path: list[str]) -> list[str]:
        state[module] = "open"
        for target in sorted(graph.get(module, {})):
            if state.get(target) == "open":
                return path[path.index(target):] + [module, target]
            if target not in state:
                cycle = visit(target, path + [module])
                if cycle:
                    return cycle
        state[module] = "done"
        return []

    for start in sorted(graph):
        if start not in state:
            cycle = visit(start, [])
            if cycle:
                return cycle
    return []


def test_the_graph_sees_every_kind_of_import(tmp_path):
    files = {
        "__init__.py": "",
        "low.py": "X = 1\n",
        "top.py": "import os\nfrom renal_nnunet.low import X\n\n\ndef f():\n    from renal_nnunet import stage\n",
        "stage/__init__.py": "from . import part\n",
        "stage/part.py": "from ..low import X\nimport renal_nnunet.stage.part\n",
    }
    for name, text in files.items():
        (tmp_path / "renal_nnunet" / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / "renal_nnunet" / name).write_text(text)
    assert import_graph(tmp_path / "renal_nnunet") == {
        "renal_nnunet": {}, "renal_nnunet.low": {},
        "renal_nnunet.top": {"renal_nnunet.low": 2, "renal_nnunet.stage": 6},  # module and function level
        "renal_nnunet.stage": {"renal_nnunet.stage.part": 1},  # relative, from a package
        "renal_nnunet.stage.part": {"renal_nnunet.low": 1},  # relative, two levels; self-import left out
    }


def test_no_import_cycle_between_modules():
    graph = import_graph()
    cycle = find_cycle(graph)
    steps = [f"{a} (line {graph[a][b]})" for a, b in zip(cycle, cycle[1:])]
    assert not cycle, "import cycle: " + " -> ".join(steps + cycle[-1:])


def test_every_module_has_a_layer():
    for module in package_modules():
        layer_of(module)


def test_no_module_imports_from_a_layer_above_it():
    graph = import_graph()
    upward = [f"{module}:{line} imports {target} (layer {layer_of(target) + 1} above {layer_of(module) + 1})"
              for module, edges in sorted(graph.items()) for target, line in sorted(edges.items())
              if layer_of(target) < layer_of(module)]
    assert not upward, "imports from a higher layer:\n" + "\n".join(upward)


def test_the_layer_table_catches_an_upward_import_and_a_cycle():
    assert layer_of("renal_nnunet.outputs.records") > layer_of("renal_nnunet.pipeline.predict")
    assert layer_of("renal_nnunet.nnunet.environment") > layer_of("renal_nnunet.trainers.registration")
    assert layer_of("renal_nnunet.inference.cli") == layer_of("renal_nnunet.cli") == 0
    assert find_cycle({"a": {"b": 1}, "b": {"c": 2}, "c": {"a": 3}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b": 1}, "b": {}}) == []
