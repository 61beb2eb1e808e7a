"""cirlib.evaluation.evaluate retrieves through cirlib.index and must give the similarity-matrix metrics' numbers, and both
must give the numbers of a plain reference written here without cirlib (float64 cosine, ranks counted from their
definition, the papers' formulas), so that a bug shared by the index and matrix paths shows too."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from cirlib.evaluation.evaluate import (
    evaluate_circo,
    evaluate_cirr,
    evaluate_fashioniq,
    evaluate_methods,
    format_results,
    gallery_index,
    ranked_names,
    similarity,
)
from cirlib.features.splits import SplitFeatures
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
    """Up to 12 correct images per query, each placed near the query as its target is (a later query may move it
    away), so that mAP is mid-range and min(K, |gt|) differs from |gt| at K = 5 and 10."""
    features, generator = split(seed, 500, 120, lambda i: 1000 + 7 * i)  # integer COCO-like ids
    gt = []
    for query, target in zip(F.normalize(features.reference + features.text, dim=1), features.target_names):
        extra = torch.randint(0, 500, (int(torch.randint(0, 12, (1,), generator=generator)),), generator=generator)
        features.gallery[extra] = query + 0.2 * torch.randn(len(extra), DIM, generator=generator)
        gt.append(list(dict.fromkeys([target] + [1000 + 7 * i for i in extra.tolist()])))
    features.extra["gt_img_ids"] = gt
    return features


# --- the plain reference: no cirlib code, each number from its definition ---
PLAIN_FUSION = {"image only": lambda v, t: v, "text only": lambda v, t: t, "sum": lambda v, t: v + t}


def unit(rows: np.ndarray) -> np.ndarray:
    return rows / np.linalg.norm(rows, axis=1, keepdims=True)


def plain_scores(features: SplitFeatures, method: str) -> np.ndarray:
    """(Q, G) float64 cosine similarity of the hand-fused queries to the gallery."""
    image, text, gallery = (x.double().numpy() for x in (features.reference, features.text, features.gallery))
    return unit(PLAIN_FUSION[method](image, text)) @ unit(gallery).T


def plain_rank(scores: np.ndarray, column: int, among=None, excluded: int | None = None) -> float:
    """0-based rank of ``column`` in one query's ``scores`` among the columns ``among`` (default all): higher scores
    first, ties by lower column; ``excluded`` is not ranked (inf when it is ``column`` itself)."""
    if column == excluded:
        return math.inf
    others = [c for c in (range(len(scores)) if among is None else among) if c not in (column, excluded)]
    return sum(scores[c] > scores[column] or (scores[c] == scores[column] and c < column) for c in others)


def plain_recall(ranks: list[float], k: int) -> float:
    return 100.0 * sum(rank < k for rank in ranks) / len(ranks)


def plain_fashioniq(split_features, method: str) -> dict[str, float]:
    row = {}
    for category, f in split_features.items():
        scores, column = plain_scores(f, method), {name: c for c, name in enumerate(f.gallery_names)}
        ranks = [plain_rank(s, column[target]) for s, target in zip(scores, f.target_names)]
        row |= {f"{category} R@{k}": plain_recall(ranks, k) for k in (10, 50)}
    for k in (10, 50):
        row[f"avg R@{k}"] = sum(row[f"{c} R@{k}"] for c in split_features) / len(split_features)
    return row | {"avg": (row["avg R@10"] + row["avg R@50"]) / 2}


def plain_cirr(f: SplitFeatures, method: str) -> dict[str, float]:
    scores, column = plain_scores(f, method), {name: c for c, name in enumerate(f.gallery_names)}
    queries = list(zip(scores, f.reference_names, f.target_names, f.extra["img_set_members"]))
    ranks = [plain_rank(s, column[target], excluded=column[reference]) for s, reference, target, _ in queries]
    subset = [plain_rank(s, column[target], {column[m] for m in members}, column[reference])
              if target in members else math.inf for s, reference, target, members in queries]
    row = {f"R@{k}": plain_recall(ranks, k) for k in (1, 5, 10, 50)}
    row |= {f"Rsubset@{k}": plain_recall(subset, k) for k in (1, 2, 3)}
    seven = list(row.values())
    row["Avg"] = (row["R@5"] + row["Rsubset@1"]) / 2
    positive = min(seven) > 0
    return row | {"arithmetic mean": sum(seven) / 7, "harmonic mean": 7 / sum(1 / x for x in seven) if positive else 0,
                  "geometric mean": math.exp(sum(map(math.log, seven)) / 7) if positive else 0}


def plain_average_precision(ranks: list[float], k: int) -> float:
    """AP@k from the 0-based ranks of a query's correct images: sum of P@(r+1) over those with r < k, / min(k, n)."""
    found = sorted(rank for rank in ranks if rank < k)
    return sum((hit + 1) / (rank + 1) for hit, rank in enumerate(found)) / min(k, len(ranks))


def plain_circo(f: SplitFeatures, method: str) -> dict[str, float]:
    scores, column = plain_scores(f, method), {name: c for c, name in enumerate(f.gallery_names)}
    ranks = [[plain_rank(s, column[name]) for name in set(gt)] for s, gt in zip(scores, f.extra["gt_img_ids"])]
    return {f"mAP@{k}": 100.0 * sum(plain_average_precision(r, k) for r in ranks) / len(ranks) for k in (5, 10, 25, 50)}


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


def test_evaluate_methods_gives_the_plain_reference_numbers_on_all_three_datasets(fashioniq):
    cirr, circo = cirr_split(), circo_split()
    results = evaluate_methods((fashioniq, cirr, circo), METHODS)
    expected = {"fashioniq": {m: plain_fashioniq(fashioniq, m) for m in METHODS},
                "cirr": {m: plain_cirr(cirr, m) for m in METHODS}, "circo": {m: plain_circo(circo, m) for m in METHODS}}
    assert {d: {m: set(row) for m, row in rows.items()} for d, rows in results.items()} == \
        {d: {m: set(row) for m, row in rows.items()} for d, rows in expected.items()}
    for dataset, rows in expected.items():
        for method, row in rows.items():
            assert results[dataset][method] == pytest.approx(row, rel=1e-12), (dataset, method)
    assert all(10 < row["mAP@10"] < 90 for row in expected["circo"].values())  # mid-range: not a vacuous comparison
    table = format_results(results)
    assert "synth-cirr (val), recall %" in table and "Rsubset@1" in table


def test_unknown_targets_are_refused_as_by_the_matrix_metrics(fashioniq):
    features = cirr_split()
    features.target_names[0] = "missing.png"
    with pytest.raises(ValueError, match="targets not in the gallery"):
        evaluate_cirr(features, sum_fusion)


def hand_made_split(references: list[str], targets: list[str], extra: dict) -> SplitFeatures:
    """Six 2-D gallery images a-f (a and b identical, so they tie) and queries by their reference image's name."""
    gallery = torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.8, 0.6], [0.0, 1.0], [-1.0, 0.0], [0.0, -1.0]])
    names = list("abcdef")
    rows = [names.index(name) for name in references]
    return SplitFeatures(names, gallery, gallery[rows].clone(), torch.ones(len(rows), 2), references, targets,
                         ["caption"] * len(rows), extra)


def test_known_answers_on_a_hand_made_split():
    """Image-only queries, ranks worked out by hand. CIRR: a is left out of its own query's ranking, so b ranks
    first; for c's query a and b tie at 0.8 and a (the lower index) ranks first; for d's query a, b and e tie at 0
    behind c, so e ranks 4th of the 5. CIRCO keeps the reference: for a's query the ranking is a, b, c, d, f, e
    with correct b, c, e (AP@5 = (1/2 + 2/3) / 3, AP@10 = (1/2 + 2/3 + 3/6) / 3); for d's query every image is
    correct (AP = 1 at every K, as the denominator is min(K, 6))."""
    cirr = hand_made_split(["a", "c", "d"], ["b", "a", "e"],
                           {"img_set_members": [list("abde"), list("cabf"), list("dec")]})
    expected = {"R@1": 200 / 3, "R@5": 100.0, "R@10": 100.0, "R@50": 100.0, "Rsubset@1": 200 / 3,
                "Rsubset@2": 100.0, "Rsubset@3": 100.0, "Avg": 250 / 3}
    for found in (evaluate_cirr(cirr, image_only), plain_cirr(cirr, "image only")):  # the reference is checked too
        assert {key: found[key] for key in expected} == pytest.approx(expected)
    circo = hand_made_split(["a", "d"], ["b", "a"], {"gt_img_ids": [list("bce"), list("abcdef")]})
    expected = {5: 100 * (7 / 18 + 1) / 2} | {k: 100 * (5 / 9 + 1) / 2 for k in (10, 25, 50)}
    assert evaluate_circo(circo, image_only) == pytest.approx(expected)
    assert plain_circo(circo, "image only") == pytest.approx({f"mAP@{k}": value for k, value in expected.items()})
