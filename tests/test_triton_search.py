"""The fused Triton search kernel (cirlib.index.fused) against brute force: on CPU through Triton's interpreter,
compiled on CUDA when there is a GPU.

``TRITON_INTERPRET=1`` only takes effect when set before triton is imported, so on CPU the kernel tests run in
a child pytest of this module with it set (``test_kernel_tests_pass_under_the_triton_interpreter``); in the
parent process their "cpu" cases are skipped, and their "cuda" cases run wherever CUDA is.
Integer-valued features make every float32 sum exact in any order, so there the kernel must equal
``topk_first(q.float() @ g.float().T, k)`` exactly, ties included.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

pytest.importorskip("triton")

from cirlib.index import (  # noqa: E402  (after the skip: triton is optional)
    ExactIndex,
    fused,  # noqa: E402
    topk_first,
)

INTERPRETED = os.environ.get("TRITON_INTERPRET") == "1"
CUDA = not INTERPRETED and torch.cuda.is_available()
DEVICES = [pytest.param("cpu", marks=pytest.mark.skipif(not INTERPRETED, reason="runs in the interpreter child")),
           pytest.param("cuda", marks=pytest.mark.skipif(not CUDA, reason="needs CUDA (compiled kernel)"))]
SMALL = fused.KernelConfig(block_m=16, block_n=64, block_k=16)  # small tiles: many partial ones on tiny data
CHILD_TIMEOUT_S = 240


def integers(shape: tuple[int, int], seed: int, dtype: torch.dtype, device: str, low: int = -3) -> torch.Tensor:
    """Small integers in ``dtype``: every product and float32 sum of them is exact."""
    generator = torch.Generator().manual_seed(seed)
    return torch.randint(low, -low + 1, shape, generator=generator).to(device, dtype)


def brute_force(queries: torch.Tensor, gallery: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Exact top k in float32 (products of float16/bfloat16 values are exact there), ties to the lower column."""
    return topk_first(queries.float() @ gallery.float().T, k)


def assert_equal_results(found: tuple[torch.Tensor, torch.Tensor], expected: tuple[torch.Tensor, torch.Tensor]):
    assert found[0].dtype == torch.float32 and found[1].dtype == torch.int64
    assert torch.equal(found[1].cpu(), expected[1].cpu()) and torch.equal(found[0].cpu(), expected[0].cpu())


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
@pytest.mark.parametrize(("m", "n", "dim", "k"), [
    (37, 300, 40, 5),     # partial query and gallery tiles, n not a multiple of 32, dim not a multiple of BLOCK_K
    (9, 50, 16, 100),     # k > n, fewer blocks than k
    (16, 3500, 16, 100),  # k = 100 with more blocks than k: the threshold path
    (3, 1, 24, 4),        # one gallery row
])
def test_integer_features_equal_brute_force(device, dtype, m, n, dim, k):
    queries, gallery = integers((m, dim), 0, dtype, device), integers((n, dim), 1, dtype, device)
    assert_equal_results(fused.fused_topk(queries, gallery, k, SMALL), brute_force(queries, gallery, k))


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_ties_go_to_the_lower_column_even_past_the_candidate_lists(device, dtype, monkeypatch):
    """151 copies of one row (more than a 32·k list holds: the overflow retry, in groups of one query) and a
    repeated block (equal block maxima); queries equal to the copied row rank its first copies first."""
    groups, split = [], fused._groups

    def recording_groups(rows, sizes, budget):
        found = split(rows, sizes, budget)
        groups.extend(len(group) for group in found)
        return found

    monkeypatch.setattr(fused, "_groups", recording_groups)
    queries, gallery = integers((20, 40), 2, dtype, device), integers((300, 40), 3, dtype, device)
    gallery[100:250] = gallery[7]
    gallery[256:288] = gallery[0:32]
    queries[[3, 5, 9]] = gallery[7]
    config = fused.KernelConfig(block_m=16, block_n=64, block_k=16, retry_entries=200)
    values, columns = fused.fused_topk(queries, gallery, 2, config)
    assert_equal_results((values, columns), brute_force(queries, gallery, 2))
    assert columns[[3, 5, 9]].tolist() == [[7, 100]] * 3
    assert groups[:3] == [1, 1, 1]  # the three queries overflowed, each retried alone within the budget


@pytest.mark.parametrize("device", DEVICES)
def test_random_floats_select_the_brute_force_top_k_up_to_float32_rounding(device):
    """Random float16 features: sums round, in an order that differs from torch's float32 matmul by at most
    ``tolerance``. The scores agree within it, the order is the kernel's own (by score, ties to the lower
    column), and every item clearly inside (outside) the brute-force top k is in (out of) the result."""
    generator, k = torch.Generator().manual_seed(4), 20
    queries = torch.randn(24, 48, generator=generator).to(device, torch.float16)
    gallery = torch.randn(700, 48, generator=generator).to(device, torch.float16)
    values, columns = (found.cpu() for found in fused.fused_topk(queries, gallery, k, SMALL))
    queries, gallery = queries.cpu(), gallery.cpu()
    reference = queries.float() @ gallery.float().T
    tolerance = 2 * 48 * torch.finfo(torch.float32).eps * (queries.float().abs() @ gallery.float().abs().T).amax(1)
    assert ((values - reference.gather(1, columns)).abs() <= tolerance[:, None]).all()
    assert (values[:, :-1] >= values[:, 1:]).all()
    tied = values[:, :-1] == values[:, 1:]
    assert (columns[:, :-1][tied] < columns[:, 1:][tied]).all()
    kth = topk_first(reference, k)[0][:, -1:]
    inside, outside = reference > kth + 2 * tolerance[:, None], reference < kth - 2 * tolerance[:, None]
    chosen = torch.zeros_like(reference, dtype=torch.bool).scatter_(1, columns, True)
    assert (chosen | ~inside).all() and not (chosen & outside).any()
    assert inside.sum(1).min() >= k - 3  # the clear cases are most of the top k: the check has teeth


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("k", [60, 400])
def test_exact_index_on_the_fused_path_ranks_like_brute_force_across_chunks(device, k):
    """ExactIndex with fused=True: chunks and query batches merge, ids other than positions, exclusions, and
    {-1, 0, 1} features (dot products tie everywhere; k=400 reaches zero and negative scores)."""
    queries, gallery = integers((50, 8), 5, torch.float32, "cpu", -1), integers((700, 8), 6, torch.float32, "cpu", -1)
    index = ExactIndex(8, device=device, dtype="float16", fused=True, chunk_size=96, query_batch=13)
    assert index.fused
    index.add(gallery, ids=np.arange(700) * 3 + 5)
    exclude = [[row % 7 * 3 + 5] for row in range(50)]
    scores, ids = index.search(queries, k, exclude=exclude)
    reference = queries @ gallery.T
    reference[torch.arange(50), torch.arange(50) % 7] = float("-inf")
    expected_scores, expected_columns = topk_first(reference, k)
    assert np.array_equal(ids, expected_columns.numpy() * 3 + 5) and np.array_equal(scores, expected_scores.numpy())


@pytest.mark.skipif(INTERPRETED, reason="checks the compiled kernel's refusals")
def test_fused_true_where_the_kernel_cannot_run_is_one_line_naming_the_fix():
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match=r"^fused=True cannot run here: it runs on CUDA .* not on cpu\. Fix: "):
            ExactIndex(8, device="cpu", dtype="float16", fused=True)
    with pytest.raises(ValueError, match="it scores float16 or bfloat16 features, not float32. Fix: pass fused=None"):
        ExactIndex(8, device="cpu", dtype="float32", fused=True)
    assert not ExactIndex(8, device="cpu", dtype="float16").fused  # automatic: the torch path on CPU
    assert not ExactIndex(8, device="cpu", dtype="float16", fused=False).fused


def test_retry_groups_keep_order_and_budget():
    rows, sizes = torch.tensor([4, 8, 9, 20, 31]), torch.tensor([150, 60, 300, 10, 90])
    groups = fused._groups(rows, sizes, 200)
    assert [group.tolist() for group in groups] == [[4], [8], [9], [20, 31]]  # 150+60 > 200; 300 alone
    assert fused._groups(rows[:0], sizes[:0], 200) == []


@pytest.mark.skipif(INTERPRETED, reason="this is the parent run")
def test_kernel_tests_pass_under_the_triton_interpreter():
    """The "cpu" cases above, in a child pytest with TRITON_INTERPRET=1 (the kernel on CPU tensors)."""
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(Path(__file__))],
                          env={**os.environ, "TRITON_INTERPRET": "1"}, capture_output=True, text=True,
                          timeout=CHILD_TIMEOUT_S, cwd=Path(__file__).resolve().parents[1])
    summary = done.stdout.strip().splitlines()[-1] if done.stdout.strip() else done.stderr[-2000:]
    assert done.returncode == 0, done.stdout[-6000:] + done.stderr[-2000:]
    assert " passed" in summary and "failed" not in summary and "error" not in summary, summary
