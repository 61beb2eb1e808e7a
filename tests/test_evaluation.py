"""cirlib.evaluation retrieves through cirlib.index and must give the similarity-matrix metrics' numbers."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from cirlib.encoders.features import SplitFeatures
from cirlib.evaluation import (evaluate_circo, evaluate_cirr, evaluate_fashioniq, evaluate_methods, format_results,
                               gallery_index, ranked_names, similarity)
from cirlib.fusion.baselines import image_only, sum_fusion, text_only
from cirlib.metrics import circo_map, cirr_recall, fashioniq_recall, fashioniq_summary, rank_gallery
from cirlib.metrics.recall import cirr_means

DIM = 24
METHODS = {"image only": image_only, "text only": text_only, "sum": sum_fusion}


def split(seed: int, n_gallery: int, n_queries: int, names) -> tuple[SplitFeatures, torch.Generator]:
    """Random features where each target lies near its query's image+text sum, so recalls are mid-range."""
    generator = torch.Generator().manual_seed(seed)
    gallery = torch.randn(n_gallery, DIM, generator=generator)
    reference_rows = torch.randint(0, n_gallery, (n_queries,), generator=generator)
    target_rows = torch.randint(0, n_gallery, (n_queries,), generator=generator)
    text = torch.randn(n_queries, DIM, generator=generator)
    gallery[target_rows] = (F.normalize(gallery[reference_rows] + text, dim=1)
                            + 0.9 * torch.randn(n_queries, DIM, generator=generator))
    gallery_names = [names(i) for i in range(n_gallery)]
    return SplitFeatures(gallery_names, gallery, gallery[reference_rows].clone(), text,
                         [gallery_names[i] for i in reference_rows], [gallery_names[i] for i in target_rows],
                         ["caption"] * n_queries, {}), generator


def cirr_split(seed: int = 3) -> SplitFeatures:
    features, generator = split(seed, 400, 150, lambda i: f"dev-{i}.png")
    members = []
    for reference, target in zip(features.reference_names, features.target_names):
        others = [features.gallery_names[i] for i in torch.randperm(400, generator=generator)[:4].tolist()]
        members.append(list(dict.fromkeys([reference, target] + others)))  # 6 members (fewer if repeated)
    features.extra["img_set_members"] = members
    return features


def circo_split(seed: int = 4) -> SplitFeatures:
    features, generator = split(seed, 500, 120, lambda i: 1000 + 7 * i)  # integer COCO-like ids
    gt = []
    for target in features.target_names:
        extra = torch.randint(0, 500, (int(torch.randint(0, 4, (1,), generator=generator)),), generator=generator)
        gt.append(list(dict.fromkeys([target] + [1000 + 7 * i for i in extra.tolist()])))
    features.extra["gt_img_ids"] = gt
    return features


@pytest.fixture(scope="module")
def fashioniq():
    return {category: split(seed, 300, 200, lambda i, c=category: f"{c}-{i}.png")[0]
            for seed, category in enumerate(("dress", "shirt", "toptee"))}


@pytest.mark.parametrize("method", list(METHODS.values()), ids=list(METHODS))
def test_fashioniq_through_the_index_equals_the_matrix_metrics(fashioniq, method):
    expected = fashioniq_summary({c: fashioniq_recall(similarity(method, f), f.gallery_names, f.target_names)
                                  for c, f in fashioniq.items()})
    found = evaluate_fashioniq(fashioniq, method)
    assert found == expected
    assert 0 < found["avg R@10"] < found["avg R@50"] < 100  # not a vacuous comparison


@pytest.mark.parametrize("method", list(METHODS.values()), ids=list(METHODS))
def test_cirr_through_the_index_equals_the_matrix_metrics(method):
    features = cirr_split()
    expected = cirr_recall(similarity(method, features), features.gallery_names, features.reference_names,
                           features.target_names, features.extra["img_set_members"])
    found = evaluate_cirr(features, method)
    assert found == expected | cirr_means(expected)
    assert 0 < found["R@1"] < found["R@50"] < 100 and 0 < found["Rsubset@1"] < 100


@pytest.mark.parametrize("method", list(METHODS.values()), ids=list(METHODS))
def test_circo_through_the_index_equals_the_matrix_metrics(method):
    features = circo_split()
    expected = circo_map(similarity(method, features), features.gallery_names, features.extra["gt_img_ids"])
    found = evaluate_circo(features, method)
    assert found == expected
    assert 0 < found[5] < 100


def test_ranked_names_excludes_the_reference_like_rank_gallery():
    features = cirr_split(seed=5)
    queries = sum_fusion(features.reference, features.text)
    found = ranked_names(gallery_index(features), queries, features.gallery_names, 50,
                         exclude=features.reference_names)
    assert found == rank_gallery(similarity(sum_fusion, features), features.gallery_names, k=50,
                                 exclude=features.reference_names)
    assert all(reference not in row for reference, row in zip(features.reference_names, found))


def test_evaluate_methods_and_tables_run_on_all_three_datasets(fashioniq):
    results = evaluate_methods((fashioniq, cirr_split(), circo_split()), METHODS)
    assert set(results) == {"fashioniq", "cirr", "circo"} and set(results["cirr"]) == set(METHODS)
    assert results["circo"]["sum"]["mAP@10"] == evaluate_circo(circo_split(), sum_fusion)[10]
    table = format_results(results)
    assert "synth-cirr (val), recall %" in table and "Rsubset@1" in table


def test_unknown_targets_are_refused_as_by_the_matrix_metrics(fashioniq):
    features = cirr_split()
    features.target_names[0] = "missing.png"
    with pytest.raises(ValueError, match="targets not in the gallery"):
        evaluate_cirr(features, sum_fusion)
