"""The package layout, checked statically: nothing from ``cirlib`` is imported, every file is parsed with ``ast``.

The rules: each import inside ``cirlib`` (module level, inside functions, and the module names of the lazy export
maps) goes to the same or a lower layer and forms no cycle; every package has a one-line
docstring summary; no module is over 300 lines; notebooks import ``cirlib`` or its packages, never a module inside
one; a package's exported names are defined where its export map says and never hide one of its submodules; and every
``cirlib`` module, path or import named in the README, docs, configs and the Makefile exists.
"""

from __future__ import annotations

import ast
import graphlib
import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "cirlib"
# Lowest first; cirlib/__init__.py, cli.py and __main__.py sit on top. cirlib/models holds data, no code.
LAYERS = ("util", "data", "metrics", "encoders", "features", "fusion", "index", "train", "evaluation", "weimocir",
          "inversion", "analysis", "viz", "experiments", "apps", "assignment")
TOP_MODULES = ("cli", "__main__")
DATA_FOLDERS = ("models",)
MAX_LINES = 300
DOCUMENTS = ("README.md", "docs/*.md", "notebooks/README.md", "configs/**/*.yaml", "Makefile")


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


@cache
def modules() -> dict[str, Path]:
    """Every module and package of cirlib by dotted name (a package by its ``__init__.py``)."""
    return {module_name(path): path for path in sorted(PACKAGE.rglob("*.py")) if "__pycache__" not in path.parts}


def is_package(name: str) -> bool:
    return modules().get(name, Path()).name == "__init__.py"


@cache
def tree(path: Path) -> ast.Module:
    return ast.parse(path.read_text(), filename=str(path))


def where(path: Path, line: int) -> str:
    return f"{path.relative_to(ROOT)}:{line}"


def layer(name: str) -> int:
    """The layer index of a cirlib module (len(LAYERS) for the top: cirlib, cirlib.cli, cirlib.__main__)."""
    parts = name.split(".")
    if len(parts) == 1 or parts[1] in TOP_MODULES:
        return len(LAYERS)
    return LAYERS.index(parts[1])


@dataclass(frozen=True)
class Import:
    """One module's dependence on another: an import statement or an entry of a lazy export map."""

    source: str
    target: str
    place: str  # file:line
    text: str  # as written, for messages


def lazy_export_maps(path: Path) -> list[tuple[ast.Call, dict[str, list[str]]]]:
    """Each ``lazy_exports(__name__, {module: [names]})`` call in the file, with its map."""
    found = []
    for node in ast.walk(tree(path)):
        if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "lazy_exports" and len(node.args) == 2:
            found.append((node, ast.literal_eval(node.args[1])))
    return found


def resolve(module: str, name: str | None) -> str:
    """The module ``from module import name`` (or ``import module``) depends on: the submodule when ``name`` is one."""
    return f"{module}.{name}" if name and f"{module}.{name}" in modules() else module


@cache
def imports() -> list[Import]:
    """Every cirlib-internal import of every cirlib module; relative imports fail the layout on their own."""
    found = []
    for source, path in modules().items():
        for node in ast.walk(tree(path)):
            place = where(path, getattr(node, "lineno", 0))
            if isinstance(node, ast.Import):
                found += [Import(source, alias.name, place, f"import {alias.name}")
                          for alias in node.names if alias.name.split(".")[0] == "cirlib"]
            elif isinstance(node, ast.ImportFrom):
                assert node.level == 0, f"{place}: relative import (rule: absolute imports only)"
                if (node.module or "").split(".")[0] == "cirlib":
                    text = f"from {node.module} import {', '.join(alias.name for alias in node.names)}"
                    targets = dict.fromkeys(resolve(node.module, alias.name) for alias in node.names)
                    found += [Import(source, target, place, text) for target in targets]
        for call, exports in lazy_export_maps(path):
            found += [Import(source, target, where(path, call.lineno), f"lazy export from {target!r}")
                      for target in exports]
    return found


def test_every_top_level_entry_of_cirlib_is_a_known_layer():
    known = {*LAYERS, *(f"{name}.py" for name in TOP_MODULES), "__init__.py", *DATA_FOLDERS}
    unknown = [entry.name for entry in PACKAGE.iterdir() if entry.name not in known and entry.name != "__pycache__"]
    assert not unknown, f"cirlib/{unknown}: not in the layer order {LAYERS} (rule: every package is a known layer)"
    assert not [path for path in PACKAGE.glob("models/**/*.py")], "cirlib/models holds data, no code"


def test_imports_go_to_the_same_or_a_lower_layer():
    problems = []
    for item in imports():
        if item.target not in modules():
            problems.append(f"{item.place}: {item.text}: no module {item.target} (rule: imports resolve)")
        elif layer(item.target) > layer(item.source):
            problems.append(f"{item.place}: {item.text}: {item.source.split('.')[1]} imports "
                            f"{item.target.split('.')[1]}, a higher layer (rule: same or lower layer; "
                            f"order {', '.join(LAYERS)}, then cli)")
    assert not problems, "\n".join(problems)


def test_no_import_cycles():
    """All imports, deferred ones too (inside functions, lazy exports): deferring an import only hides a cycle from
    the import system, the two modules still depend on each other; the tree has none, so the strict rule is free."""
    graph = {name: set() for name in modules()}
    texts = {}
    for item in imports():
        if item.target in modules() and item.target != item.source:
            graph[item.source].add(item.target)
            texts[item.source, item.target] = f"{item.place}: {item.text}"
    try:
        graphlib.TopologicalSorter(graph).prepare()
    except graphlib.CycleError as error:
        cycle = error.args[1]
        steps = [texts[cycle[i + 1], cycle[i]] for i in range(len(cycle) - 1)]
        raise AssertionError("import cycle (rule: no cycles):\n" + "\n".join(steps)) from None


def test_every_package_has_a_one_line_docstring_summary():
    problems = []
    for name, path in modules().items():
        if is_package(name):
            doc = ast.get_docstring(tree(path)) or ""
            lines = doc.splitlines()
            if not lines or not lines[0].strip() or (len(lines) > 1 and lines[1].strip()):
                problems.append(f"{path.relative_to(ROOT)}: docstring {lines[:2]} (rule: a package's docstring "
                                "starts with a one-line summary of its job, then a blank line if more follows)")
    assert not problems, "\n".join(problems)


def test_no_module_is_over_300_lines():
    long = [f"{path.relative_to(ROOT)}: {lines} lines (rule: at most {MAX_LINES})" for path in modules().values()
            if (lines := len(path.read_text().splitlines())) > MAX_LINES]
    assert not long, "\n".join(long)


def test_notebooks_import_cirlib_or_its_packages_only():
    problems = []
    for script in sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.py")):
        for node in ast.walk(tree(script)):
            names = ([alias.name for alias in node.names] if isinstance(node, ast.Import)
                     else [node.module] if isinstance(node, ast.ImportFrom) else [])
            for name in names:
                if name and name.split(".")[0] == "cirlib" and name != "cirlib" and not is_package(name):
                    problems.append(f"{where(script, node.lineno)}: imports {name} (rule: notebooks import cirlib "
                                    "or cirlib.<package>; export the name from the package)")
    assert not problems, "\n".join(problems)


def class_names(node: ast.ClassDef) -> set[str]:
    """The names a class body defines (methods, attributes, fields)."""
    return {name for child in node.body for name in bound_names(child)}


def bound_names(node: ast.AST) -> list[str]:
    """The names a statement binds in its namespace."""
    if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
        return [node.name]
    if isinstance(node, (ast.Import, ast.ImportFrom)):
        return [alias.asname or alias.name.split(".")[0] for alias in node.names]
    targets = node.targets if isinstance(node, ast.Assign) else [node.target] if isinstance(node, ast.AnnAssign) else []
    return [name.id for target in targets for name in ast.walk(target) if isinstance(name, ast.Name)]


@cache
def top_level_names(name: str) -> dict[str, ast.AST]:
    """What ``module.attribute`` can name: the module's top-level bindings (inside if/try too), its lazy exports
    and, for a package, its submodules."""
    path = modules()[name]
    found: dict[str, ast.AST] = {}
    stack = list(tree(path).body)
    while stack:
        node = stack.pop()
        found.update(dict.fromkeys(bound_names(node), node))
        if isinstance(node, (ast.If, ast.Try)):
            stack += [*node.body, *node.orelse, *getattr(node, "handlers", []), *getattr(node, "finalbody", [])]
        elif isinstance(node, ast.ExceptHandler):
            stack += node.body
    for _, exports in lazy_export_maps(path):
        found.update({export: ast.Pass() for names in exports.values() for export in names})
    found.update({child.rsplit(".", 1)[1]: ast.Pass() for child in modules() if child.rsplit(".", 1)[0] == name
                  and child != name})
    return found


def test_lazy_exports_exist_and_never_hide_a_submodule():
    problems = []
    for name, path in modules().items():
        submodules = {child.rsplit(".", 1)[1] for child in modules() if child.rsplit(".", 1)[0] == name != child}
        for call, exports in lazy_export_maps(path):
            for target, names in exports.items():
                place = where(path, call.lineno)
                if target not in modules():
                    problems.append(f"{place}: lazy export map names {target!r}: no such module (rule: export "
                                    "from existing modules)")
                    continue
                problems += [f"{place}: {export!r} from {target}: not defined there (rule: exported names exist)"
                             for export in names if export not in top_level_names(target)]
                problems += [f"{place}: exports {export!r}, the name of its submodule {name}.{export} (rule: an "
                             "exported name never equals a submodule's)" for export in names if export in submodules]
    assert not problems, "\n".join(problems)


DOTTED = re.compile(r"(?<![\w./-])cirlib(?:\.[A-Za-z_]\w*)+(?![\w-])")
PATH = re.compile(r"(?<![\w./-])cirlib/[\w/.]*\w(?![\w<*{])")  # not a pattern such as exercises_<topic>.py
FROM_IMPORT = re.compile(r"(?<![\w.])from (cirlib[\w.]*) import (\([^)]*\)|[\w, ]+)")


def dotted_problem(dotted: str) -> str | None:
    """Why ``dotted`` names nothing (None when it resolves to a module, a package or an attribute of one)."""
    parts = dotted.split(".")
    known = max(i for i in range(1, len(parts) + 1) if ".".join(parts[:i]) in modules())
    module, rest = ".".join(parts[:known]), parts[known:]
    if not rest:
        return None
    node = top_level_names(module).get(rest[0])
    if node is None:
        return f"neither a module nor a name defined in {module}"
    if isinstance(node, ast.ClassDef) and len(rest) > 1 and rest[1] not in class_names(node):
        return f"{module}.{rest[0]} has no attribute {rest[1]}"
    return None


def imported_names(text: str) -> list[str]:
    """The names of ``import a, b`` or ``import (a,  # comment\n b)``."""
    return re.sub(r"#[^\n]*", "", text).strip("()").split(",")


def documents() -> list[Path]:
    return sorted(path for pattern in DOCUMENTS for path in ROOT.glob(pattern))


def test_every_cirlib_name_in_the_docs_exists():
    problems = []
    for document in documents():
        text = document.read_text()
        for match in DOTTED.finditer(text):
            line = text.count("\n", 0, match.start()) + 1
            if why := dotted_problem(match.group().rstrip(".")):
                problems.append(f"{where(document, line)}: {match.group()}: {why} (rule: named modules exist)")
        for match in PATH.finditer(text):
            if not (ROOT / match.group()).exists():
                line = text.count("\n", 0, match.start()) + 1
                problems.append(f"{where(document, line)}: {match.group()}: no such file (rule: named paths exist)")
        for match in FROM_IMPORT.finditer(text):
            line = text.count("\n", 0, match.start()) + 1
            for name in filter(None, (part.strip() for part in imported_names(match.group(2)))):
                if why := dotted_problem(f"{match.group(1)}.{name}"):
                    problems.append(f"{where(document, line)}: from {match.group(1)} import {name}: {why} "
                                    "(rule: documented imports work)")
    assert not problems, "\n".join(problems)


def test_the_docs_check_finds_stale_names():
    """The check above on names that exist, and on the kinds of stale name the regrouping left behind."""
    assert [dotted_problem(name) for name in ("cirlib.cli", "cirlib.metrics.circo.circo_map", "cirlib.data.synth",
                                              "cirlib.features.cache.FeatureCache.text_features", "cirlib.fusion.moe")] == [None] * 5
    assert dotted_problem("cirlib.sweep_report") == "neither a module nor a name defined in cirlib"
    assert dotted_problem("cirlib.encoders.cache") == "neither a module nor a name defined in cirlib.encoders"
    assert dotted_problem("cirlib.metrics.circo.no_such_function") is not None
    found = [(m.group(1), [n.strip() for n in imported_names(m.group(2))]) for m in FROM_IMPORT.finditer(
        "x\nfrom cirlib.encoders import FeatureCache\n`python -c \"from cirlib import (a,  # one\n  b)\"`")]
    assert found == [("cirlib.encoders", ["FeatureCache"]), ("cirlib", ["a", "b"])]
    assert DOTTED.findall("`.cirlib.lock`, cirlib.egg-info, `cirlib.index.build_index`.") == ["cirlib.index.build_index"]
