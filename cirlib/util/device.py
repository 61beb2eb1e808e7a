"""Device choice and numeric precision, the same on CPU and CUDA.

Two kinds of computation, two defaults:

- **Evaluation** (features, scores, rankings) runs in IEEE float32 on every device: ``exact_float32``
  switches TensorFloat-32 off for matmuls and cuDNN convolutions (cuDNN convolutions use TF32 by
  default) and any enclosing autocast, so a table computed on a GPU equals the one computed on a CPU.
  Reduced precision is an explicit choice (``precision="bfloat16"``), never a device default.
- **Training** defaults to ``precision="auto"``: bf16 autocast on CUDA (where it is faster) and float32
  on CPU (where autocast slows matmuls down). Any precision can be asked for on any device, so the
  reduced-precision paths run in CPU tests too.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch

from cirlib.util.config import PRECISIONS, check_precision
from cirlib.util.errors import CirlibError

AUTOCAST_DTYPES = {"bfloat16": torch.bfloat16, "float16": torch.float16}


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """``auto`` -> CUDA when available, else CPU; anything else is passed to torch.device. A device this machine
    does not have (``cuda`` without a GPU, ``cuda:3`` with two, a misspelt name) is one line listing those it has."""
    if str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    known = available_devices()
    try:
        resolved = torch.device(device)
    except (RuntimeError, TypeError):  # not a device name at all
        resolved = None
    if resolved is None or str(resolved) not in known + [name.split(":")[0] for name in known]:
        raise CirlibError(f"device {str(device)!r} is not available on this machine (it has: {', '.join(known)}). "
                          "Fix: pass --device auto (a GPU when there is one) or one of those")
    return resolved


def available_devices() -> list[str]:
    """The devices torch can use here: cpu, each CUDA GPU (cuda:0, ...) and Apple's mps."""
    cuda = [f"cuda:{index}" for index in range(torch.cuda.device_count())] if torch.cuda.is_available() else []
    return ["cpu", *cuda] + (["mps"] if torch.backends.mps.is_available() else [])


def resolve_precision(precision: str, device: torch.device) -> str:
    """``auto`` -> ``bfloat16`` on CUDA, ``float32`` elsewhere; an explicit precision is kept."""
    if check_precision(precision) == "auto":
        return "bfloat16" if device.type == "cuda" else "float32"
    return precision


@contextlib.contextmanager
def exact_float32() -> Iterator[None]:
    """IEEE float32 matmuls and convolutions inside the block: no TF32, no enclosing autocast (on CPU or
    CUDA); the caller's settings after it.

    Uses torch's ``fp32_precision`` flags only (torch refuses a mix of them and the older
    ``allow_tf32`` flags). They are process-wide: the block is not meant to run beside other threads.
    """
    matmul, conv = torch.backends.cuda.matmul, torch.backends.cudnn.conv
    saved = matmul.fp32_precision, conv.fp32_precision
    matmul.fp32_precision = conv.fp32_precision = "ieee"
    try:
        with torch.autocast("cpu", enabled=False), torch.autocast("cuda", enabled=False):
            yield
    finally:
        matmul.fp32_precision, conv.fp32_precision = saved


def compute_precision(device: torch.device, precision: str = "float32") -> contextlib.AbstractContextManager:
    """The context for model code at ``precision`` (see :func:`resolve_precision`): exact float32, or
    autocast to bf16/fp16 on ``device`` (CPU included, which is how tests reach the reduced paths)."""
    resolved = resolve_precision(precision, device)
    if resolved == "float32":
        return exact_float32()
    return torch.autocast(device.type, dtype=AUTOCAST_DTYPES[resolved])
