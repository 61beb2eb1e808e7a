"""Fast α×β sweeps: equal to the plain per-cell path (scores to 1e-5, metrics exactly), for every
protocol and both WeiMoCIR variants, with exact ties, chunking, caption subsets and known toy recalls."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from cirlib.encoders import load_encoder
from cirlib.features import FeatureCache
from cirlib.features.captions import synth_captioned_splits
from cirlib.fusion import image_only, text_only
from cirlib.metrics import circo_map, cirr_recall, fashioniq_recall
from cirlib.metrics.ranks import subset_target_ranks, target_ranks
from cirlib.weimocir import weighted_similarity
from cirlib.weimocir.grid_metrics import grid_targets, named_metrics
from cirlib.weimocir.report import (
    CAPTION_SUBSETS,
    best_cells_markdown,
    caption_ablation,
    feature_norms,
    near_best,
    one_query_points,
    query_count,
    similarity_spread,
)
from cirlib.weimocir.sweeps import (
    GRID,
    ScoreGrid,
    SweepResult,
    best_cell,
    per_cell_sweep,
    sweep,
)
from tests.helpers import random_split, tiny_model_dir

DATASETS = ("fashioniq", "cirr", "circo")


def assert_same(fast: SweepResult, plain: SweepResult) -> None:
    assert fast.metrics.keys() == plain.metrics.keys()
    for name in plain.metrics:
        np.testing.assert_allclose(fast.metrics[name], plain.metrics[name], atol=1e-9, err_msg=name)


@pytest.mark.parametrize("variant", ["slides", "code"])
def test_score_grid_equals_weighted_similarity_in_every_cell(variant):
    split = random_split("cirr")
    f, c = split.features, split.captions
    grid = ScoreGrid(split, variant)
    for alpha in GRID:
        for beta in GRID:
            plain = weighted_similarity(f.reference, f.text, f.gallery, c.gallery, alpha, beta, variant, c.reference)
            torch.testing.assert_close(grid.scores(alpha, beta), plain, atol=1e-5, rtol=0)


@pytest.mark.parametrize("variant", ["slides", "code"])
@pytest.mark.parametrize("dataset", DATASETS)
def test_fast_sweep_equals_the_per_cell_reference(dataset, variant):
    split = random_split(dataset, seed=DATASETS.index(dataset))
    fast = sweep(split, variant=variant, progress=False)
    assert_same(fast, per_cell_sweep(split, variant=variant, progress=False))
    first = next(iter(fast.metrics.values()))
    assert first.shape == (11, 11) and len({round(float(v), 6) for v in first.ravel()}) > 1  # the grid varies


def test_fashioniq_categories_chunks_caption_subsets_and_circo_reference_exclusion():
    categories = {name: random_split("fashioniq", seed=i) for i, name in enumerate(("dress", "shirt", "toptee"))}
    alphas, betas = (0.0, 0.3, 0.8, 1.0), (0.0, 0.5, 1.0)
    fast = sweep(categories, alphas, betas, "code", captions=(0, 2), chunk_elements=50, progress=False)
    assert_same(fast, per_cell_sweep(categories, alphas, betas, "code", captions=(0, 2), progress=False))
    assert {"dress R@10", "avg R@50", "avg"} <= fast.metrics.keys() and fast.captions == (0, 2)
    circo = random_split("circo", seed=5, sets=10)  # a gallery above 50, so mAP@50 survives the exclusion
    assert_same(sweep(circo, alphas, betas, exclude_reference=True, progress=False),
                per_cell_sweep(circo, alphas, betas, exclude_reference=True, progress=False))


def test_circo_queries_with_more_correct_images_than_k():
    """Real CIRCO queries often have more than 5 ground truths: AP@5 then divides by 5, not by |gt|. The text is
    the first ground truth's image, so α = 1 ranks it first; the other 7 of 8 are random."""
    split = random_split("circo", seed=2, sets=6)
    f = split.features
    rng = np.random.default_rng(0)
    f.extra["gt_img_ids"] = [[target] + [f.gallery_names[int(i)] for i in rng.choice(36, 7, replace=False)
                                         if f.gallery_names[int(i)] != target][:7] for target in f.target_names]
    f.text = f.gallery[[f.gallery_names.index(t) for t in f.target_names]]
    assert min(len(set(gt)) for gt in f.extra["gt_img_ids"]) > 5
    fast = sweep(split, (0.5, 1.0), (0.0, 0.5), progress=False)
    assert_same(fast, per_cell_sweep(split, (0.5, 1.0), (0.0, 0.5), progress=False))
    assert 20.0 <= fast.at(1.0, 0.0)["mAP@5"] < 100.0  # the text is the first ground truth's own image


def test_rank_counting_by_hand_with_padding_ties_and_no_exclusion():
    scores = torch.tensor([[9.0, 1.0, 5.0, 5.0, 3.0]])  # column 0 scores highest, columns 2 and 3 tie
    subset = torch.tensor([[3, 4, -1]])  # -1 pads a short img_set (it would gather column 0)
    assert subset_target_ranks(scores, subset, torch.tensor([4])).tolist() == [1]
    assert subset_target_ranks(scores, subset, torch.tensor([3])).tolist() == [0]
    relevant = torch.tensor([[3, 1, -1]])
    assert target_ranks(scores, relevant, torch.tensor([-1])).tolist()[0][:2] == [2, 4]
    assert target_ranks(scores, relevant, torch.tensor([2])).tolist()[0][:2] == [1, 3]


@pytest.mark.parametrize("dataset", DATASETS)
def test_rank_counting_equals_the_metrics_functions_under_heavy_ties(dataset):
    split = random_split(dataset, seed=3, queries=30)
    f = split.features
    gen = torch.Generator().manual_seed(0)
    scores = torch.round(torch.randn(30, len(f.gallery_names), generator=gen))  # few distinct values: many ties
    targets = grid_targets(split, exclude_reference=False)
    ranks = target_ranks(scores, targets.relevant, targets.exclude)
    subset = None if targets.subset is None else subset_target_ranks(scores, targets.subset, targets.relevant[:, 0])
    fast = {name: float(v) for name, v in named_metrics(targets, ranks, subset).items()}
    if dataset == "fashioniq":
        plain = {f"R@{k}": v for k, v in fashioniq_recall(scores, f.gallery_names, f.target_names).items()}
    elif dataset == "cirr":
        plain = cirr_recall(scores, f.gallery_names, f.reference_names, f.target_names, f.extra["img_set_members"])
    else:
        plain = {f"mAP@{k}": v for k, v in circo_map(scores, f.gallery_names, f.extra["gt_img_ids"]).items()}
    assert fast == pytest.approx(plain, abs=1e-9)


def test_known_toy_recalls_and_the_baselines_at_the_corners():
    """The text is the target's image feature: text only (α=1, β=0) ranks the target first, except
    behind its exact twin img0 (ties go to the lower index) unless img0 is the removed reference."""
    split = random_split("cirr")
    f = split.features
    group0 = [f"img{i}" for i in range(6)]
    for query, reference in ((0, "img2"), (1, "img0")):
        f.reference_names[query], f.target_names[query], f.extra["img_set_members"][query] = reference, "img1", group0
        f.reference[query] = f.gallery[int(reference[3:])]
    f.text = f.gallery[[f.gallery_names.index(t) for t in f.target_names]] * 2
    result = sweep(split, alphas=(0.0, 1.0), betas=(0.0, 0.5), progress=False)
    behind_twin = sum(t == "img1" and r != "img0" for t, r in zip(f.target_names, f.reference_names))
    assert behind_twin >= 1
    assert result.at(1.0, 0.0)["R@1"] == result.at(1.0, 0.0)["Rsubset@1"] == pytest.approx(
        100 * (1 - behind_twin / len(f.target_names)))
    assert result.at(1.0, 0.0)["R@5"] == 100.0
    for alpha, baseline in ((0.0, image_only), (1.0, text_only)):
        similarity = baseline(f.reference, f.text) @ torch.nn.functional.normalize(f.gallery, dim=-1).T
        assert result.at(alpha, 0.0) == pytest.approx(cirr_recall(similarity, f.gallery_names, f.reference_names,
                                                                  f.target_names, f.extra["img_set_members"]))


def test_best_cell_and_errors():
    values = np.array([[1.0, 3.0], [3.0, 2.0]])
    result = SweepResult(np.array([0.0, 0.5]), np.array([0.1, 0.9]), {"m": values}, "cirr", "slides")
    assert best_cell(result, "m") == (0.0, 0.9, 3.0)  # a tie goes to the lower alpha
    assert result.cell(0.4, 0.2) == (1, 0) and result.at(0.4, 0.2) == {"m": 3.0}
    with pytest.raises(ValueError, match="field 'metric' is 'R@1'; expected one of its metrics: m"):
        best_cell(result, "R@1")
    split = random_split("cirr")
    with pytest.raises(ValueError, match="alphas"):
        sweep(split, alphas=(0.5, 1.5), progress=False)
    with pytest.raises(ValueError, match="variant"):
        sweep(split, variant="paper", progress=False)
    with pytest.raises(ValueError, match="FashionIQ"):
        sweep({"a": split}, progress=False)
    split.features.target_names[0] = "nowhere"
    with pytest.raises(ValueError, match="not in the gallery"):
        sweep(split, progress=False)


def test_caption_ablation_rows():
    split = random_split("cirr")
    rows = caption_ablation(split, "R@1")
    assert list(rows) == list(CAPTION_SUBSETS)
    for name, indices in CAPTION_SUBSETS.items():  # each row: the plain path's best cell and paper cell
        plain = per_cell_sweep(split, captions=indices, progress=False)
        alpha, beta, value = best_cell(plain, "R@1")
        assert rows[name] == {"best α": alpha, "best β": beta, "best R@1": value,
                              "R@1 at α=0.8, β=0.1": plain.metrics["R@1"][8, 1]}, name
    assert len({row["R@1 at α=0.8, β=0.1"] for row in rows.values()}) > 1  # the caption subsets matter


def test_near_best_bounds_the_cells_within_the_margin():
    values = np.array([[10.0, 20.0, 19.5], [12.0, 19.0, 15.0], [11.0, 18.0, 19.2]])
    result = SweepResult(np.array([0.0, 0.5, 1.0]), np.array([0.0, 0.1, 0.2]), {"m": values}, "cirr", "slides")
    assert near_best(result, "m", 0.0) == ((0.0, 0.0), (0.1, 0.1))
    assert near_best(result, "m", 1.0) == ((0.0, 1.0), (0.1, 0.2))   # 19.5, 19.0 and 19.2 join the best 20.0
    assert near_best(result, "m", 1.5) == ((0.0, 1.0), (0.1, 0.2))   # 18.0 is still out


def test_norms_and_query_counts_cover_every_category():
    first, second = random_split("fashioniq", queries=14), random_split("fashioniq", seed=1, queries=10)
    for split, (image, text) in ((first, (2.0, 5.0)), (second, (4.0, 1.0))):
        split.features.reference = torch.nn.functional.normalize(split.features.reference, dim=-1) * image
        split.features.text = torch.nn.functional.normalize(split.features.text, dim=-1) * text
    assert feature_norms(first) == pytest.approx({"image": 2.0, "text": 5.0})
    assert feature_norms({"dress": first, "shirt": second}) == pytest.approx(
        {"image": (14 * 2 + 10 * 4) / 24, "text": (14 * 5 + 10 * 1) / 24})  # a mean over queries, not categories
    assert query_count(first) == 14 and query_count({"dress": first, "shirt": second}) == 24
    assert one_query_points(first) == pytest.approx(100 / 14)
    assert one_query_points({"dress": first, "shirt": second}) == pytest.approx(100 / (2 * 10))


def test_similarity_spread_of_a_query_that_matches_one_image_and_of_one_equally_close_to_all():
    split = random_split("cirr", dim=24)
    f = split.features
    f.gallery = torch.eye(24)                                 # 24 orthogonal gallery images
    f.reference = 3.0 * f.gallery[[f.gallery_names.index(n) for n in f.reference_names]]
    f.text = torch.ones(len(f.text), 24)                      # the same cosine with every image: no spread
    one_hot = torch.zeros(24)
    one_hot[0] = 1.0
    assert similarity_spread(split) == pytest.approx({"image": float(one_hot.std()), "text": 0.0}, abs=1e-6)


def test_small_benchmark_end_to_end_with_a_tiny_clip(small_benchmark, tmp_path):
    encoder = load_encoder(str(tiny_model_dir(tmp_path / "clip")[0]), device="cpu")
    splits = synth_captioned_splits(encoder, FeatureCache(tmp_path / "cache"), small_benchmark[0])
    cirr = splits["synth-cirr"]
    assert cirr.captions.gallery.shape == (len(cirr.features.gallery_names), 3, 32)
    assert cirr.image_path(cirr.features.gallery_names[0]).is_file()
    alphas, betas = (0.0, 0.8, 1.0), (0.0, 0.1, 1.0)
    sweeps = {name: sweep(split, alphas, betas, "code", progress=False) for name, split in splits.items()}
    assert_same(sweeps["synth-cirr"], per_cell_sweep(cirr, alphas, betas, "code", progress=False))
    baselines = {name: {"image only": sweeps[name].at(0.0, 0.0)} for name in sweeps}
    table = best_cells_markdown({name: [result] for name, result in sweeps.items()}, baselines)
    assert table.count("| image only |") == 3 and "best Avg | " in table and "paper setting | 0.8 | 0.1 |" in table
