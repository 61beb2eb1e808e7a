"""cirlib never unpickles: every file it reads is JSON, YAML (safe_load), safetensors, an image, a faiss index, or a
PyTorch weights file read with ``torch.load(..., weights_only=True)`` (PyTorch's restricted loader: tensors and plain
containers only). A static scan of the package, so that no later change slips a pickle in."""

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
            if call in UNSAFE_CALLS and not (call == ("torch", "load") and restricted(node)):
                found.append(".".join(call))
            if any(k.arg == "allow_pickle" and not (isinstance(k.value, ast.Constant) and k.value.value is False)
                   for k in node.keywords):
                found.append(f"{'.'.join(call)}(allow_pickle=...)")
    return found


def restricted(call: ast.Call) -> bool:
    """Whether the call passes ``weights_only=True`` (a literal: a variable could be False)."""
    return any(k.arg == "weights_only" and isinstance(k.value, ast.Constant) and k.value.value is True
               for k in call.keywords)


def test_the_scan_finds_each_kind_of_unpickling():
    source = ("import pickle\nfrom joblib import load\nimport yaml, torch, numpy as np\n"
              "torch.load('x')\nyaml.load(s)\nnp.load('a', allow_pickle=True)\nyaml.safe_load(s)\n")
    assert unsafe_uses(source) == ["pickle", "joblib", "torch.load", "yaml.load", "np.load(allow_pickle=...)"]


def test_no_module_of_cirlib_can_unpickle():
    package = Path(cirlib.__file__).parent
    found = {str(path.relative_to(package)): uses for path in sorted(package.rglob("*.py"))
             if (uses := unsafe_uses(path.read_text(encoding="utf-8")))}
    assert found == {}


def test_the_scan_allows_torch_load_only_with_weights_only_true():
    source = ("torch.load(p, map_location='cpu', weights_only=True)\ntorch.load(p)\ntorch.load(p, weights_only=False)\n"
              "torch.load(p, weights_only=flag)\n")
    assert unsafe_uses(source) == ["torch.load", "torch.load", "torch.load"]
