"""CUDA's mixed-precision behaviour reproduced on a CPU, so CPU CI catches GPU-only dtype bugs.

``torch.autocast("cpu", dtype=torch.bfloat16)`` and its CUDA twin agree on the ops that run in low
precision (linear, matmul, ...), but not on the ops that run in float32: CUDA autocast computes
softmax, log_softmax, layer_norm, exp, sum, norm, normalize and more in float32 (torch's "CUDA ops
that can autocast to float32" list), while CPU autocast leaves most of them in bf16. Code that mixes
their outputs (e.g. scattering a float32 softmax into a bf16 tensor) breaks only on a GPU.

``cuda_autocast(dtype)`` = CPU autocast + a TorchFunctionMode that applies CUDA's float32 policy to
those ops while CPU autocast is on: their floating inputs are cast to float32 first, as CUDA does.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
import torch.nn.functional as F
from torch.overrides import TorchFunctionMode
from torch.utils._pytree import tree_map

Tensor = torch.Tensor

# The ops of CUDA autocast's float32 list that CPU autocast does not promote (those this code base can reach).
CUDA_FLOAT32_OPS = {
    torch.softmax, F.softmax, Tensor.softmax, torch.log_softmax, F.log_softmax, Tensor.log_softmax,
    F.layer_norm, torch.layer_norm, F.group_norm, F.normalize, F.cosine_similarity, torch.cosine_similarity,
    torch.exp, Tensor.exp, torch.log, Tensor.log, torch.sum, Tensor.sum, torch.cumsum, Tensor.cumsum,
    torch.norm, Tensor.norm, torch.pow, Tensor.pow, Tensor.__pow__, torch.rsqrt, Tensor.rsqrt,
    torch.reciprocal, Tensor.reciprocal, F.softplus, torch.prod, Tensor.prod,
}
_LOW = (torch.bfloat16, torch.float16)


class _CudaFloat32Policy(TorchFunctionMode):
    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func in CUDA_FLOAT32_OPS and torch.is_autocast_enabled("cpu"):
            def widen(value):
                return value.float() if isinstance(value, Tensor) and value.dtype in _LOW else value
            args, kwargs = tree_map(widen, args), tree_map(widen, kwargs)
        return func(*args, **kwargs)


@contextlib.contextmanager
def cuda_float32_policy() -> Iterator[None]:
    """CUDA autocast's float32 ops wherever CPU autocast is switched on inside the block."""
    with _CudaFloat32Policy():
        yield


@contextlib.contextmanager
def cuda_autocast(dtype: torch.dtype = torch.bfloat16) -> Iterator[None]:
    """What ``torch.autocast("cuda", dtype)`` does to dtypes, on CPU tensors."""
    with cuda_float32_policy(), torch.autocast("cpu", dtype=dtype):
        yield
