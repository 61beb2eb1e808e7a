"""WeiMoCIR's (α, β) chosen on held-out halves of val (cirlib.weimocir.select): fixed halves, numbers equal to a plain
reference built from weighted_similarity and cirlib.metrics, and a toy case where peeking picks another cell."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from cirlib.features.captions import CaptionedSplit
from cirlib.metrics import circo_map, cirr_recall, fashioniq_recall, fashioniq_summary, protocol
from cirlib.weimocir import weighted_similarity
from cirlib.weimocir.select import fold, held_out_choice, query_halves
from cirlib.weimocir.sweeps import best_cell, per_cell_sweep, sweep
from tests.helpers import random_split

CATEGORIES = ("dress", "shirt", "toptee")
ALPHAS, BETAS = (0.0, 0.3, 0.6, 1.0), (0.0, 0.2, 0.5, 1.0)  # a small grid, so the plain per-cell path stays fast


def fashioniq_categories(queries: int = 15) -> dict[str, CaptionedSplit]:
    return {name: random_split("fashioniq", seed=10 + i, queries=queries + i) for i, name in enumerate(CATEGORIES)}


def plain_scores(split: CaptionedSplit, halves, cells, variant: str) -> torch.Tensor:
    """Each fold's queries scored by weighted_similarity at its cell, put back in the split's query order."""
    f, c = split.features, split.captions
    scores = torch.empty(len(f.text), len(f.gallery_names))
    for rows, (alpha, beta) in zip(halves, cells):
        rows = torch.as_tensor(rows)
        scores[rows] = weighted_similarity(f.reference[rows], f.text[rows], f.gallery, c.gallery, alpha, beta, variant,
                                           c.reference[rows])
    return scores


def plain_metrics(split, halves, cells, variant: str, exclude_reference: bool) -> dict[str, float]:
    """cirlib.metrics on the whole split (FashionIQ: per category, then fashioniq_summary)."""
    if isinstance(split, dict):
        return fashioniq_summary({name: fashioniq_recall(plain_scores(part, halves[name], cells, variant),
                                                         part.features.gallery_names, part.features.target_names)
                                  for name, part in split.items()})
    f, scores = split.features, plain_scores(split, halves, cells, variant)
    if split.dataset == "cirr":
        return cirr_recall(scores, f.gallery_names, f.reference_names, f.target_names, f.extra["img_set_members"])
    return {f"mAP@{k}": v for k, v in circo_map(scores, f.gallery_names, f.extra["gt_img_ids"],
                                                reference_ids=f.reference_names,
                                                exclude_reference=exclude_reference).items()}


def test_the_halves_are_fixed_disjoint_cover_every_query_and_go_per_category():
    split = random_split("cirr", queries=15)
    first, second = query_halves(split, seed=3), query_halves(split, seed=3)
    assert all(np.array_equal(a, b) for a, b in zip(first, second))  # same seed, same halves
    assert not all(np.array_equal(a, b) for a, b in zip(first, query_halves(split, seed=4)))
    a, b = first
    assert (len(a), len(b)) == (7, 8) and not set(a) & set(b) and sorted([*a, *b]) == list(range(15))
    categories = fashioniq_categories()
    halves = query_halves(categories, seed=3)
    assert list(halves) == list(CATEGORIES)
    for name, (a, b) in halves.items():
        n = len(categories[name].features.text)
        assert not set(a) & set(b) and sorted([*a, *b]) == list(range(n)) and abs(len(a) - len(b)) <= 1
    with pytest.raises(ValueError, match="at least 2 queries"):
        query_halves(random_split("cirr", queries=1))


def test_a_fold_keeps_the_gallery_and_every_per_query_field_of_its_queries():
    split = random_split("cirr", queries=15)
    split.features.extra["category"] = "scenes"  # not per query: kept as it is
    rows = query_halves(split, seed=0)[1]
    part = fold(split, query_halves(split, seed=0), 1)
    f, p = split.features, part.features
    assert p.gallery_names == f.gallery_names and torch.equal(p.gallery, f.gallery)
    assert torch.equal(p.reference, f.reference[rows]) and torch.equal(p.text, f.text[rows])
    assert torch.equal(part.captions.reference, split.captions.reference[rows])
    assert torch.equal(part.captions.gallery, split.captions.gallery)
    assert p.target_names == [f.target_names[i] for i in rows]
    assert p.query_texts == [f.query_texts[i] for i in rows]
    assert p.extra["img_set_members"] == [f.extra["img_set_members"][i] for i in rows]
    assert p.extra["category"] == "scenes"


CASES = {"fashioniq": (fashioniq_categories, False), "cirr": (lambda: random_split("cirr", seed=1, queries=24), False),
         "circo": (lambda: random_split("circo", seed=2, queries=20, sets=10), True)}


@pytest.mark.parametrize("variant", ["slides", "code"])
@pytest.mark.parametrize("case", list(CASES))
def test_held_out_metrics_equal_the_plain_reference(case, variant):
    """The chosen cells are the plain per-cell path's best cells of the other fold, and the metrics are
    cirlib.metrics on the whole split scored by weighted_similarity at each fold's cell."""
    make, exclude = CASES[case]
    split = make()
    full = sweep(split, ALPHAS, BETAS, variant, exclude_reference=exclude, progress=False)
    choice = held_out_choice(split, variant, seed=7, full=full, exclude_reference=exclude, device="cpu")
    halves, metric = query_halves(split, seed=7), protocol(case).select_by
    assert choice.metric == metric and choice.dataset == case
    for index, other in ((0, 1), (1, 0)):
        chosen_on = per_cell_sweep(fold(split, halves, other), ALPHAS, BETAS, variant, exclude_reference=exclude,
                                   progress=False)
        assert choice.cells[index] == best_cell(chosen_on, metric)[:2]
    expected = plain_metrics(split, halves, choice.cells, variant, exclude)
    assert choice.metrics.keys() == expected.keys()
    assert choice.metrics == pytest.approx(expected, abs=1e-9)
    (alpha_a, beta_a), (alpha_b, beta_b) = choice.cells
    assert choice.cells_text() == f"α {alpha_a:g}/{alpha_b:g}, β {beta_a:g}/{beta_b:g}"
    summary = json.loads(json.dumps(choice.summary()))
    assert summary["metrics"] == pytest.approx(choice.metrics) and sum(summary["fold queries"]) == sum(
        len(part.features.text) for part in (split.values() if isinstance(split, dict) else [split]))


def test_choosing_on_the_reported_split_picks_other_cells_and_only_an_upper_bound():
    """Toy CIRR split (seeded): each half's own best cell differs from the one the other half picks for it, and
    the best cell of the whole split (the upper bound) is the full sweep's best_cell and scores above the
    held-out choice."""
    split = random_split("cirr", seed=1, queries=40)
    full = sweep(split, progress=False)
    choice = held_out_choice(split, full=full, device="cpu")
    halves = query_halves(split)
    for index in (0, 1):
        own = best_cell(sweep(fold(split, halves, index), progress=False), "Avg")[:2]
        assert own != choice.cells[index], index
    alpha, beta, value = best_cell(full, "Avg")
    assert choice.upper_cell == (alpha, beta) and choice.upper_metrics == full.at(alpha, beta)
    assert choice.upper_cell not in choice.cells
    assert choice.metrics["Avg"] < value
    scored = choice.scores(split)
    expected = plain_scores(split, halves, choice.cells, "slides")
    torch.testing.assert_close(scored, expected, atol=1e-5, rtol=0)


def test_a_full_sweep_of_another_variant_or_caption_subset_is_refused():
    split = random_split("cirr", queries=10)
    with pytest.raises(ValueError, match="'code' variant"):
        held_out_choice(split, "slides", full=sweep(split, (0.0, 1.0), (0.0, 1.0), "code", progress=False))
    with pytest.raises(ValueError, match=r"captions \(0,\)"):
        held_out_choice(split, full=sweep(split, (0.0, 1.0), (0.0, 1.0), captions=(0,), progress=False))
