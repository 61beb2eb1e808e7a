"""cirlib never unpickles: every file it reads is JSON, YAML (safe_load), safetensors, an image or a faiss index.
A static scan of the package, so that no later change slips a pickle in."""

from __future__ import annotations

import ast
from pathlib import Path

import cirlib

UNSAFE_MODULES = {"pickle", "cPickle", "dill", "cloudpickle", "joblib", "shelve", "marshal"}
UNSAFE_CALLS = {("torch", "load"), ("yaml", "load"), ("yaml", "unsafe_load"), ("yaml", "full_load"),
                ("pd", "read_pickle"), ("pandas", "read_pickle")}


def unsafe_uses(source: str) -> list[str]:
    """What in ``source`` could unpickle or run code from a file: imports, calls, np.load(allow_pickle=True)."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [a.name for a in node.names if a.name.split(".")[0] in UNSAFE_MODULES]
        elif isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] in UNSAFE_MODULES:
            found.append(node.module)
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) \
                and isinstance(node.func.value, ast.Name):
            call = (node.func.value.id, node.func.attr)
            if call in UNSAFE_CALLS:
                found.append(".".join(call))
            if any(k.arg == "allow_pickle" and not (isinstance(k.value, ast.Constant) and k.value.value is False)
                   for k in node.keywords):
                found.append(f"{'.'.join(call)}(allow_pickle=...)")
    return found


def test_the_scan_finds_each_kind_of_unpickling():
    source = ("import pickle\nfrom joblib import load\nimport yaml, torch, numpy as np\n"
              "torch.load('x')\nyaml.load(s)\nnp.load('a', allow_pickle=True)\nyaml.safe_load(s)\n")
    assert unsafe_uses(source) == ["pickle", "joblib", "torch.load", "yaml.load", "np.load(allow_pickle=...)"]


def test_no_module_of_cirlib_can_unpickle():
    package = Path(cirlib.__file__).parent
    found = {str(path.relative_to(package)): uses for path in sorted(package.rglob("*.py"))
             if (uses := unsafe_uses(path.read_text(encoding="utf-8")))}
    assert found == {}
