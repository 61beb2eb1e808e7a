"""cirlib.index: every backend against brute force, the tie rule, precision, exclusion, save/load, refusals."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from cirlib.index import ExactIndex, FaissIndex, IndexMismatchError, block_topk, build_index, load_index, topk_first
from cirlib.index.topk import merge_topk, order_keys
from cirlib.metrics import top_k_indices
from cirlib.util.errors import FileError
from cirlib.util.tensor_io import save_tensors

DIM = 32


def random_unit(n: int, seed: int, dim: int = DIM) -> torch.Tensor:
    return F.normalize(torch.randn(n, dim, generator=torch.Generator().manual_seed(seed)), dim=1)


def clustered(n: int, seed: int, dim: int = DIM, clusters: int = 16) -> torch.Tensor:
    """Unit vectors around shared cluster centres: the structure approximate indexes rely on (as real features)."""
    centres = torch.randn(clusters, dim, generator=torch.Generator().manual_seed(123))
    generator = torch.Generator().manual_seed(seed)
    points = centres[torch.randint(0, clusters, (n,), generator=generator)]
    return F.normalize(points + 0.5 * torch.randn(n, dim, generator=generator), dim=1)


def brute_force(queries: torch.Tensor, gallery: torch.Tensor, k: int, excluded=None,
                dtype: torch.dtype = torch.float32) -> tuple[np.ndarray, np.ndarray]:
    """The plain reference: full score matrix in ``dtype``, excluded columns set to -inf, stable descending sort."""
    scores = (queries.to(dtype) @ gallery.to(dtype).T).float().numpy()  # float32 holds every float16/bfloat16 exactly
    for row, columns in enumerate(excluded or []):
        scores[row, list(columns)] = -np.inf
    top = top_k_indices(scores, k)
    return np.take_along_axis(scores, top, axis=1), top


def recall(found: np.ndarray, truth: np.ndarray) -> float:
    return float(np.mean([len(set(a) & set(b)) / len(b) for a, b in zip(found, truth)]))


@pytest.fixture(scope="module")
def data():
    return random_unit(3000, 0), random_unit(200, 1)


# -- top-k primitives ------------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
def test_topk_first_breaks_ties_by_lower_column_also_at_the_kth_place(dtype):
    values = torch.randint(-3, 4, (40, 300), generator=torch.Generator().manual_seed(0)).to(dtype) / 4
    values[0, :5] = -0.0  # -0.0 and +0.0 are equal scores
    scores, columns = topk_first(values, 12)
    expected = top_k_indices(values.float().numpy(), 12)
    assert np.array_equal(columns.numpy(), expected)
    assert torch.equal(scores, values.gather(1, columns))


def test_block_topk_equals_plain_topk_with_ties_and_padding():
    generator = torch.Generator().manual_seed(1)
    for n, k, block in [(1000, 7, 8), (997, 5, 16), (64, 50, 32), (5000, 1, 32)]:
        values = torch.randint(-20, 21, (30, n), generator=generator).float()
        expected_scores, expected_columns = topk_first(values, k)
        scores, columns = block_topk(values, k, block=block)
        assert torch.equal(columns, expected_columns) and torch.equal(scores, expected_scores)


def test_block_topk_fast_path_keeps_the_tie_rule_inside_non_maximal_blocks_and_the_partial_block():
    """Each row: four blocks with maxima 10 > 9 > 8 > 7 in DEScending block order (the highest maximum in the
    highest block), each also holding a 5; the top 6 are the four maxima and the two 5s of the LOWEST columns.
    Every other row also puts an 11 in the last, partial block, which has no block maximum of its own."""
    k, block, n_blocks, rows = 6, 8, 60, 20  # 60 blocks >= 10 * k: the two-stage path, not topk_first
    generator = torch.Generator().manual_seed(4)
    values = torch.rand(rows, n_blocks * block + 3, generator=generator) - 5.0  # background far below 5
    expected = []
    for row in range(rows):
        blocks = torch.randperm(n_blocks, generator=generator)[:4].sort(descending=True).values
        columns = blocks * block + torch.randint(block, (4,), generator=generator)
        values[row, columns] = torch.tensor([10.0, 9.0, 8.0, 7.0])
        fives = blocks * block + (columns - blocks * block + 1) % block
        values[row, fives] = 5.0
        top = [*columns.tolist(), *sorted(fives.tolist())[:2]]
        if row % 2:
            values[row, -2] = 11.0
            top = [values.shape[1] - 2, *top[:5]]
        expected.append(top)
    scores, columns = block_topk(values, k, block=block)
    assert columns.tolist() == expected
    assert torch.equal(scores, values.gather(1, columns))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
def test_order_keys_sort_like_a_plain_sort(dtype):
    """Negative scores, -0.0 beside +0.0, infinities, extremes and subnormals, columns up to 2**32 - 1."""
    generator, info = torch.Generator().manual_seed(3), torch.finfo(dtype)
    scores = (torch.randint(-6, 7, (8, 300), generator=generator) / 4).to(dtype)
    specials = torch.tensor([-0.0, -0.0, -float("inf"), float("inf"), info.max, -info.max, info.tiny, -info.tiny,
                             info.tiny / 4, -info.tiny / 4], dtype=dtype)  # tiny / 4: a subnormal
    scores[:, torch.randperm(300, generator=generator)[:len(specials)]] = specials
    columns = torch.stack([torch.randperm(1 << 20, generator=generator)[:300] for _ in range(8)]) << 12
    columns[:, :2] = torch.tensor([0, (1 << 32) - 1])
    order = order_keys(scores, columns).argsort(dim=-1, descending=True)
    expected = np.lexsort((columns.numpy(), -scores.float().numpy()))  # -0.0 == 0.0: those tie, lower column first
    assert np.array_equal(order.numpy(), expected)


def test_merge_topk_refuses_scores_of_two_dtypes():
    values, positions = torch.zeros(2, 3), torch.zeros(2, 3, dtype=torch.long)
    with pytest.raises(TypeError, match="cannot merge torch.float32 with torch.float16"):
        merge_topk(values, positions, values.half(), positions + 3, 3)


# -- every backend against brute force ----------------------------------------------------------------

@pytest.mark.parametrize("options", [{}, {"chunk_size": 250, "query_batch": 17}, {"chunk_size": 64, "stream": True}])
def test_exact_index_equals_brute_force(data, options):
    gallery, queries = data
    index = ExactIndex(DIM, **options)
    index.add(gallery[:1000])
    index.add(gallery[1000:])  # two additions: positions continue
    scores, ids = index.search(queries, 25)
    expected_scores, expected_ids = brute_force(queries, gallery, 25)
    assert np.array_equal(ids, expected_ids)
    np.testing.assert_allclose(scores, expected_scores, atol=1e-5)


def test_chunked_exact_search_equals_unchunked(data):
    gallery, queries = data
    results = []
    for chunk_size, query_batch in [(len(gallery), len(queries)), (96, 7), (1000, 64)]:
        index = ExactIndex(DIM, chunk_size=chunk_size, query_batch=query_batch)
        index.add(gallery)
        results.append(index.search(queries, 40))
    for scores, ids in results[1:]:
        assert np.array_equal(ids, results[0][1])
        np.testing.assert_allclose(scores, results[0][0], atol=1e-6)


@pytest.mark.parametrize("k", [60, 400])
@pytest.mark.parametrize("dtype", ["float32", "float16", "bfloat16"])
def test_exact_ties_rank_by_insertion_order_across_chunks(dtype, k):
    """Integer features give dot products exact in every dtype and many equal scores, across chunk and
    block borders; k=400 reaches the zero and negative scores."""
    generator = torch.Generator().manual_seed(2)
    gallery = torch.randint(-1, 2, (700, 8), generator=generator).float()
    queries = torch.randint(-1, 2, (50, 8), generator=generator).float()
    index = ExactIndex(8, dtype=dtype, chunk_size=96, query_batch=13)
    index.add(gallery, ids=np.arange(700) * 3 + 5)  # ids other than positions
    scores, ids = index.search(queries, k)
    expected_scores, expected_columns = brute_force(queries, gallery, k)
    assert (expected_scores < 0).any() == (k == 400)
    assert np.array_equal(ids, expected_columns * 3 + 5)
    assert np.array_equal(scores, expected_scores)


def test_faiss_flat_equals_brute_force(data):
    gallery, queries = data
    index = build_index("Flat", DIM)
    index.add(gallery)
    scores, ids = index.search(queries, 25)
    expected_scores, expected_ids = brute_force(queries, gallery, 25)
    assert np.array_equal(ids, expected_ids)
    np.testing.assert_allclose(scores, expected_scores, atol=1e-5)


@pytest.mark.parametrize(("spec", "least"), [("HNSW32", 0.95), ("IVF32,Flat", 0.95), ("IVF32,PQ16x4", 0.4)])
def test_approximate_faiss_indexes_reach_a_stated_recall(spec, least):
    """Recall@10 against brute force on clustered data (4,000 x 32-d, 16 clusters), default parameters.

    Measured: HNSW32 and IVF32,Flat 1.00; IVF32,PQ16x4 0.47 (4-bit product codes are lossy).
    """
    gallery, queries = clustered(4000, 0), clustered(200, 1)
    index = build_index(spec, DIM)
    index.add(gallery)
    _, ids = index.search(queries, 10)
    assert recall(ids, brute_force(queries, gallery, 10)[1]) >= least


@pytest.mark.parametrize("options", [{"chunk_size": 64, "query_batch": 17}, {"chunk_size": 250, "query_batch": 64},
                                     {"chunk_size": 4096, "query_batch": 200}])
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_reduced_precision_equals_brute_force_in_that_precision(data, dtype, options):
    """Scores rounded to float16/bfloat16 tie often; chunked search must still rank as the full product in
    that dtype does (top 100 > a 64-row chunk, with exclusions). On CPU: CUDA kernels round differently."""
    gallery, queries = data
    index = ExactIndex(DIM, device="cpu", dtype=dtype, **options)
    index.add(gallery)
    top = brute_force(queries, gallery, 3, dtype=dtype)[1]
    exclude = [[int(i) for i in top[row, :row % 4]] + [5000] for row in range(len(queries))]
    scores, ids = index.search(queries, 100, exclude=exclude)
    expected_scores, expected_ids = brute_force(queries, gallery, 100, [e[:-1] for e in exclude], dtype=dtype)
    assert np.array_equal(ids, expected_ids) and np.array_equal(scores, expected_scores)
    assert scores.dtype == np.float32
    float32_ids = brute_force(queries, gallery, 100, [e[:-1] for e in exclude])[1]
    assert not np.array_equal(ids, float32_ids)  # the data tells the precisions apart
    assert recall(ids[:, :10], float32_ids[:, :10]) >= 0.98  # measured: float16 0.998, bfloat16 0.985


def test_default_dtype_is_float32_on_every_device(monkeypatch):
    """No device picks a reduced precision; the resolution runs as on a GPU, without touching one."""
    monkeypatch.setattr("cirlib.index.exact.resolve_device", torch.device)
    for device in ("cuda", "cpu"):
        index = build_index("exact", DIM, device=device)
        assert index.device.type == device and index.dtype == torch.float32
        assert index.metadata()["dtype"] == "float32" and len(index.features) == 0
    cuda = ExactIndex(DIM, device="cuda")
    assert cuda.chunk_size * cuda.query_batch * 4 == 4 << 30  # the 4 GiB score block, in float32
    assert ExactIndex(DIM, device="cuda", dtype=torch.bfloat16).dtype == torch.bfloat16


def test_search_scores_with_tf32_off(data, monkeypatch):
    """Inside search float32 matmuls are IEEE (the TF32 setting a caller left is ignored), and restored after."""
    seen = []

    def recording_block_topk(scores, k):
        seen.append(torch.backends.cuda.matmul.fp32_precision)
        return block_topk(scores, k)

    monkeypatch.setattr("cirlib.index.exact.block_topk", recording_block_topk)
    index = ExactIndex(DIM, device="cpu", chunk_size=1000)
    index.add(data[0])
    matmul, before = torch.backends.cuda.matmul, torch.backends.cuda.matmul.fp32_precision
    matmul.fp32_precision = "tf32"  # monkeypatch cannot restore this attribute: set and restore by hand
    try:
        index.search(data[1], 5)
        after = matmul.fp32_precision
    finally:
        matmul.fp32_precision = before
    assert seen == ["ieee"] * 3 and after == "tf32"


def test_cosine_metric_normalises_features_and_queries(data):
    gallery, queries = data
    scale = torch.linspace(0.5, 3.0, len(gallery))[:, None]
    for spec in ("exact", "Flat"):
        index = build_index(spec, DIM, metric="cosine")
        index.add(gallery * scale)
        scores, ids = index.search(queries * 7, 10)
        assert np.array_equal(ids, brute_force(queries, gallery, 10)[1])
        np.testing.assert_allclose(scores, brute_force(queries, gallery, 10)[0], atol=1e-5)


# -- exclusion and short results ----------------------------------------------------------------------------

@pytest.mark.parametrize("spec", ["exact", "Flat"])
def test_per_query_exclusion(data, spec):
    gallery, queries = data
    queries = queries[:6]
    plain = build_index(spec, DIM)
    plain.add(gallery)
    _, top = plain.search(queries, 5)
    exclude = [None, int(top[1, 0]), [int(i) for i in top[2, :3]], [], np.int64(top[4, 2]), [2999, int(top[5, 4])]]
    columns = [[] if e is None else [int(e)] if np.ndim(e) == 0 else list(e) for e in exclude]
    scores, ids = plain.search(queries, 10, exclude=exclude)
    expected_scores, expected_ids = brute_force(queries, gallery, 10, columns)
    assert np.array_equal(ids, expected_ids)
    np.testing.assert_allclose(scores, expected_scores, atol=1e-5)
    assert all(not set(row) & set(drop) for row, drop in zip(ids.tolist(), columns))


@pytest.mark.parametrize("spec", ["exact", "Flat", "HNSW32"])
def test_fewer_items_than_k_are_padded(spec):
    gallery = random_unit(5, 3)
    index = build_index(spec, DIM)
    index.add(gallery, ids=[10, 11, 12, 13, 14])
    scores, ids = index.search(gallery[:2], 8, exclude=[11, None])
    assert ids.shape == (2, 8) and scores.dtype == np.float32 and ids.dtype == np.int64
    assert sorted(ids[0, :4]) == [10, 12, 13, 14] and ids[0, 0] == 10
    assert ids[1, 0] == 11 and sorted(ids[1, :5]) == [10, 11, 12, 13, 14]
    assert (ids[0, 4:] == -1).all() and np.isneginf(scores[0, 4:]).all() and (ids[1, 5:] == -1).all()
    empty = build_index(spec, DIM)
    assert (empty.search(gallery, 3)[1] == -1).all()


# -- save / load ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("spec", "name"), [("exact", "gallery.safetensors"), ("Flat", "flat.faiss"),
                                            ("IVF16,PQ8x4", "ivfpq.faiss")])
def test_save_load_round_trip(tmp_path, data, spec, name):
    gallery, queries = data
    index = build_index(spec, DIM, metric="cosine", model="tiny@abc")
    index.add(gallery, ids=np.arange(len(gallery)) + 100)
    before = index.search(queries, 20, exclude=[100] * len(queries))
    path = index.save(tmp_path / name)
    loaded = load_index(path, model="tiny@abc", dim=DIM)
    assert type(loaded) is type(index) and loaded.metadata() == index.metadata()
    after = loaded.search(queries, 20, exclude=[100] * len(queries))
    assert np.array_equal(after[1], before[1]) and np.array_equal(after[0], before[0])
    loaded.add(gallery[:3])  # ids continue after the largest stored one
    assert loaded.ids[-3:].tolist() == [len(gallery) + 100, len(gallery) + 101, len(gallery) + 102]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([name] + ([name + ".json"] if spec != "exact" else []))


def test_saved_reduced_precision_index_loads_in_its_dtype(tmp_path, data):
    gallery, queries = data
    index = build_index("exact", DIM, model="m", dtype="float16")
    index.add(gallery)
    path = index.save(tmp_path / "half.safetensors")
    loaded = load_index(path, model="m")
    assert loaded.dtype == torch.float16 and loaded.metadata()["dtype"] == "float16"
    assert torch.equal(loaded.features, index.features)
    assert all(np.array_equal(a, b) for a, b in zip(loaded.search(queries, 10), index.search(queries, 10)))
    assert load_index(path, model="m", dtype="float32").dtype == torch.float32  # an option overrides it


@pytest.mark.parametrize(("spec", "name"), [("exact", "g.safetensors"), ("Flat", "g.faiss")])
def test_load_refuses_another_model_or_dimension(tmp_path, spec, name):
    index = build_index(spec, DIM, model="synthclip@1111")
    index.add(random_unit(20, 4))
    path = index.save(tmp_path / name)
    with pytest.raises(IndexMismatchError, match=r"synthclip@1111.*ViT-B-32@2222|ViT-B-32@2222.*synthclip@1111"):
        load_index(path, model="ViT-B-32@2222")
    with pytest.raises(IndexMismatchError, match="32-d features, not 512-d"):
        load_index(path, model="synthclip@1111", dim=512)
    assert len(load_index(path, model=None)) == 20


def test_load_errors_name_the_file(tmp_path):
    (tmp_path / "notes.safetensors").write_text("not an index")
    with pytest.raises(FileError, match="notes.safetensors: the saved index is truncated or damaged"):
        load_index(tmp_path / "notes.safetensors", model=None)
    foreign = save_tensors(tmp_path / "features.safetensors", {"features": torch.zeros(2, 3)}, {"key": "abc"})
    with pytest.raises(FileError, match="features.safetensors: is not a saved cirlib exact index"):
        load_index(foreign, model=None)
    index = FaissIndex(DIM)
    index.add(random_unit(10, 5))
    path = index.save(tmp_path / "g.faiss")
    (tmp_path / "g.faiss.json").unlink()
    with pytest.raises(FileNotFoundError, match="sidecar"):
        FaissIndex.load(path, model=None)


# -- clear errors on bad input ---------------------------------------------------------------------------------

def test_training_needs_enough_vectors():
    with pytest.raises(ValueError, match=r"needs at least 64 training vectors \(64 inverted lists"):
        build_index("IVF64,Flat", DIM).add(random_unit(40, 6))
    with pytest.raises(ValueError, match="at least 256 training vectors"):
        build_index("IVF4,PQ8", DIM).add(random_unit(200, 6))  # 8-bit codes: 256 centroids per codebook
    index = build_index("IVF4,Flat", DIM, train_size=100)
    index.train(random_unit(1000, 7))  # trained on a 100-vector sample, then filled with other vectors
    index.add(random_unit(50, 8))
    assert index.is_trained and len(index) == 50


def test_bad_inputs_are_refused_with_the_fix():
    index = build_index("exact", DIM, model="m")
    with pytest.raises(ValueError, match=r"shape \(n, 32\)"):
        index.add(torch.zeros(3, 16))
    bad = random_unit(3, 9)
    bad[1, 0] = float("nan")
    with pytest.raises(ValueError, match=r"rows \[1\].*NaN"):
        index.add(bad)
    index.add(random_unit(3, 9), ids=[0, 1, 2])
    with pytest.raises(ValueError, match="unique"):
        index.add(random_unit(2, 9), ids=[2, 3])
    with pytest.raises(ValueError, match="non-negative"):
        index.add(random_unit(1, 9), ids=[-4])
    with pytest.raises(ValueError, match="one entry per query"):
        index.search(random_unit(2, 9), 1, exclude=[0])
    with pytest.raises(ValueError, match="k must be a positive integer"):
        index.search(random_unit(2, 9), 0)
    with pytest.raises(ValueError, match="cannot build index 'IVFx'"):
        build_index("IVFx", DIM)
    with pytest.raises(ValueError, match="nprobe is for IVF"):
        build_index("HNSW32", DIM, params="nprobe=4")
    for dtype in ("int8", "auto"):  # "auto" (once float16 on CUDA) is gone: float32 is the default everywhere
        with pytest.raises(ValueError, match="dtype must be one of float32, float16, bfloat16"):
            ExactIndex(DIM, dtype=dtype)
    half = ExactIndex(DIM, dtype="float16")
    with pytest.raises(ValueError, match="features exceed the range of torch.float16"):
        half.add(torch.full((1, DIM), 7e4))
    half.add(random_unit(3, 9))
    with pytest.raises(ValueError, match="queries exceed the range"):
        half.search(torch.full((1, DIM), -7e4), 1)
