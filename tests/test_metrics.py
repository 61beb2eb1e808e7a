"""Metrics on hand-computed toy cases: every expected number below is worked out in the comments."""

from __future__ import annotations

import json

import numpy as np
import pytest

from cirlib.metrics import (
    circo_map,
    circo_map_from_rankings,
    cirr_rankings,
    cirr_recall,
    cirr_recall_from_rankings,
    exclude_names,
    fashioniq_recall,
    fashioniq_summary,
    rank_gallery,
    rank_within,
    ranking,
    recall_at_k,
    top_k_indices,
    write_circo_submission,
    write_cirr_submission,
)

# ---------------------------------------------------------------- ranking and the tie rule

def test_ties_go_to_the_lower_gallery_index_and_decide_recall():
    gallery = ["a", "b", "c", "d"]
    similarity = np.array([[0.5, 0.9, 0.9, 0.1],    # b and c tie: b (index 1) ranks first -> target c at rank 2
                           [0.2, 0.7, 0.7, 0.7]])   # b, c, d tie -> target d at rank 3
    ranked = rank_gallery(similarity, gallery)
    assert ranked == [["b", "c", "a", "d"], ["b", "c", "d", "a"]]
    assert recall_at_k(ranked, ["c", "d"], ks=(1, 2, 3)) == {1: 0.0, 2: 50.0, 3: 100.0}
    # Same scores, gallery stored in reverse: now c and d have the lower indices and win their ties.
    reversed_ranked = rank_gallery(similarity[:, ::-1], gallery[::-1])
    assert reversed_ranked == [["c", "b", "a", "d"], ["d", "c", "b", "a"]]
    assert recall_at_k(reversed_ranked, ["c", "d"], ks=(1, 2, 3)) == {1: 100.0, 2: 100.0, 3: 100.0}


@pytest.mark.parametrize("dtype", [np.int64, np.float32, np.uint8])
def test_partial_selection_equals_full_stable_sort_on_tied_scores(monkeypatch, dtype):
    scores = np.random.default_rng(0).integers(0, 5, size=(37, 401)).astype(dtype)  # ~80 ties per value per row
    full = np.argsort(-scores.astype(np.float64), axis=1, kind="stable")
    for k in (1, 2, 7, 50, 99):  # below a quarter of the gallery: the partial path
        assert np.array_equal(top_k_indices(scores, k), full[:, :k]), k
    monkeypatch.setattr(ranking, "_PARTIAL_MAX_FRACTION", 1.01)  # force the partial path for every k ...
    monkeypatch.setattr(ranking, "_BLOCK_ELEMENTS", 3 * 401)     # ... in blocks of 3 rows
    for k in (1, 200, 399, 400, 401):
        assert np.array_equal(top_k_indices(scores, k), full[:, :k]), k


def test_rank_gallery_exclude_matches_removing_from_the_full_ranking():
    rng = np.random.default_rng(1)
    scores = rng.integers(0, 3, size=(20, 300))
    names = [f"img{i}" for i in range(300)]
    exclude = [names[rng.integers(300)] if q % 4 else None for q in range(20)]
    full = rank_gallery(scores, names)
    assert rank_gallery(scores, names, k=10, exclude=exclude) == exclude_names(full, exclude, k=10)
    assert all(len(row) == 10 and row[0] != drop for row, drop in zip(rank_gallery(scores, names, 10, exclude), exclude))


def test_rank_within_orders_ties_by_gallery_index_not_candidate_order():
    gallery = ["a", "b", "c", "d", "e"]
    row = [0.5, 0.5, 0.1, 0.5, 0.9]
    assert rank_within(row, gallery, [["d", "a", "e", "c"]]) == [["e", "a", "d", "c"]]
    assert rank_within(row, gallery, [["d", "a", "e", "c", "a"]], k=2) == [["e", "a"]]


def test_shape_and_name_mistakes_are_reported_clearly():
    similarity = np.zeros((2, 3))
    with pytest.raises(ValueError, match="3 gallery columns but 2 gallery names"):
        rank_gallery(similarity, ["a", "b"])
    with pytest.raises(ValueError, match="exclude has 1"):
        rank_gallery(similarity, ["a", "b", "c"], exclude=["a"])
    with pytest.raises(ValueError, match="'zz'"):
        rank_gallery(similarity, ["a", "b", "c"], exclude=["a", "zz"])
    with pytest.raises(ValueError, match="names repeat: 'a'"):
        rank_gallery(similarity, ["a", "b", "a"])
    with pytest.raises(ValueError, match="NaN scores in 1 query rows: 1"):
        rank_gallery([[0.0, 1.0, 2.0], [0.0, np.nan, 1.0]], ["a", "b", "c"])
    with pytest.raises(ValueError, match="targets not in the gallery: 'q'"):
        fashioniq_recall(similarity, ["a", "b", "c"], ["a", "q"], ks=(1,))
    with pytest.raises(ValueError, match="cut-offs"):
        recall_at_k([["a"]], ["a"], ks=(0,))
    with pytest.raises(ValueError, match="cut-offs"):
        rank_gallery(similarity, ["a", "b", "c"], k=0, exclude=["a", "b"])


def test_tensor_like_inputs_are_detached_first():
    class FakeTensor:  # what np.asarray cannot read directly: a tensor needing grad or on the GPU
        def detach(self):
            return self

        def cpu(self):
            return np.array([[0.1, 0.3, 0.2]])

    assert rank_gallery(FakeTensor(), ["a", "b", "c"]) == [["b", "c", "a"]]


def test_a_short_ranking_without_its_target_is_refused():
    # Top-2 lists cannot say whether a missing target is within the top 5.
    with pytest.raises(ValueError, match="for 1 queries: 1"):
        recall_at_k([["a", "b"], ["a", "b"]], ["a", "c"], ks=(5,))
    # ... but a whole small gallery that holds the target is fine.
    assert recall_at_k([["a", "b"]], ["b"], ks=(1, 5)) == {1: 0.0, 5: 100.0}


# ---------------------------------------------------------------- FashionIQ

def test_fashioniq_keeps_the_reference_in_the_ranking():
    gallery = ["ref", "target", "other"]
    similarity = np.array([[0.9, 0.8, 0.1],   # the reference outranks the target and is NOT removed
                           [0.1, 0.2, 0.3]])  # target "other" at rank 1
    assert fashioniq_recall(similarity, gallery, ["target", "other"], ks=(1, 2)) == {1: 50.0, 2: 100.0}


def test_fashioniq_summary_averages():
    summary = fashioniq_summary({"dress": {10: 20.0, 50: 40.0},
                                 "shirt": {10: 30.0, 50: 50.0},
                                 "toptee": {50: 60.0, 10: 40.0}})
    assert summary == {"dress R@10": 20.0, "dress R@50": 40.0, "shirt R@10": 30.0, "shirt R@50": 50.0,
                       "toptee R@10": 40.0, "toptee R@50": 60.0,
                       "avg R@10": 30.0, "avg R@50": 50.0, "avg": 40.0}
    with pytest.raises(ValueError, match="same cut-offs"):
        fashioniq_summary({"dress": {10: 1.0, 50: 2.0}, "shirt": {10: 1.0}})


# ---------------------------------------------------------------- CIRR

CIRR_GALLERY = [f"img{i}" for i in range(8)]
CIRR_MEMBERS = [CIRR_GALLERY[:6]] * 3
CIRR_REFERENCES = ["img0", "img1", "img2"]
CIRR_TARGETS = ["img3", "img4", "img5"]
CIRR_SIMILARITY = np.array([
    # q0: reference img0 scores highest. Without it: img5, img2, img6, img7, img3 -> target at rank 5
    #     (rank 6 if the reference stayed). Subset {1..5}: img5, img2, img3, img4 (tie, lower index), img1 -> rank 3.
    [1.00, 0.20, 0.80, 0.70, 0.70, 0.90, 0.75, 0.72],
    # q1: without reference img1: img3 / img4 tie at 0.6, img3 first -> target img4 at rank 2.
    #     Subset {0,2,3,4,5}: img3, img4, img2, img5, img0 -> rank 2.
    [0.10, 0.95, 0.30, 0.60, 0.60, 0.20, 0.50, 0.00],
    # q2: without reference img2 the target img5 is first, in the gallery and in the subset.
    [0.50, 0.40, 0.99, 0.30, 0.20, 0.90, 0.85, 0.10],
])


def test_cirr_recall_removes_the_reference_and_restricts_the_subset():
    result = cirr_recall(CIRR_SIMILARITY, CIRR_GALLERY, CIRR_REFERENCES, CIRR_TARGETS, CIRR_MEMBERS)
    assert result == pytest.approx({
        "R@1": 100 / 3, "R@5": 100.0, "R@10": 100.0, "R@50": 100.0,   # ranks 5, 2, 1
        "Rsubset@1": 100 / 3, "Rsubset@2": 200 / 3, "Rsubset@3": 100.0,  # subset ranks 3, 2, 1
        "Avg": (100.0 + 100 / 3) / 2,
    })
    # Keeping the reference (FashionIQ's protocol) would push q0's target to rank 6.
    assert recall_at_k(rank_gallery(CIRR_SIMILARITY, CIRR_GALLERY), CIRR_TARGETS, (5,)) == {5: pytest.approx(200 / 3)}


def test_cirr_rankings_and_ranked_list_entry_point_agree():
    ranked, subset = cirr_rankings(CIRR_SIMILARITY, CIRR_GALLERY, CIRR_REFERENCES, CIRR_MEMBERS, k=5, subset_k=5)
    assert ranked[0] == ["img5", "img2", "img6", "img7", "img3"]
    assert subset == [["img5", "img2", "img3", "img4", "img1"], ["img3", "img4", "img2", "img5", "img0"],
                      ["img5", "img0", "img1", "img3", "img4"]]
    # An index's raw top-(K+1), reference included, gives the same numbers as the similarity path.
    raw_top6 = rank_gallery(CIRR_SIMILARITY, CIRR_GALLERY, k=6)
    raw_subset = [[CIRR_REFERENCES[q]] + row for q, row in enumerate(subset)]
    from_lists = cirr_recall_from_rankings(raw_top6, raw_subset, CIRR_REFERENCES, CIRR_TARGETS, ks=(1, 5))
    assert from_lists == cirr_recall(CIRR_SIMILARITY, CIRR_GALLERY, CIRR_REFERENCES, CIRR_TARGETS, CIRR_MEMBERS,
                                     ks=(1, 5))
    # A raw top-5 loses a name to the reference: q0's target (rank 6 with the reference) becomes unknowable.
    with pytest.raises(ValueError, match="ask the index for one more"):
        cirr_recall_from_rankings(rank_gallery(CIRR_SIMILARITY, CIRR_GALLERY, k=5), subset, CIRR_REFERENCES,
                                  CIRR_TARGETS, ks=(5,))


# ---------------------------------------------------------------- CIRCO

# Query A: gt {a, b, c}; hits at ranks 1 and 3; the reference x sits at rank 2.
# Query B: gt {g1..g6} (more gts than K); hits at ranks 1, 2, 4, 5; the reference r sits at rank 3.
CIRCO_RANKED = [["a", "x", "b", "y", "z", "w"], ["g1", "g2", "r", "g3", "g4", "g5", "q"]]
CIRCO_GT = [["a", "b", "c"], ["g1", "g2", "g3", "g4", "g5", "g6"]]
CIRCO_REFERENCES = ["x", "r"]


def test_circo_ap_divides_by_min_k_and_gt():
    # A alone, K=5: (1/min(5,3)) * (P@1 + P@3) = (1/3) * (1 + 2/3).
    assert circo_map_from_rankings(CIRCO_RANKED[:1], CIRCO_GT[:1], ks=(5,)) == {5: pytest.approx(100 * 5 / 9)}
    result = circo_map_from_rankings(CIRCO_RANKED, CIRCO_GT, ks=(2, 5))
    # K=2: A = 1/min(2,3) = 1/2; B = (1 + 1)/2 = 1.  K=5: A = 5/9; B = (1 + 1 + 3/4 + 4/5)/min(5,6) = 0.71.
    assert result == pytest.approx({2: 100 * (0.5 + 1) / 2, 5: 100 * (5 / 9 + 0.71) / 2})


def test_a_ground_truth_listed_twice_counts_once_and_a_repeated_ranked_name_is_refused():
    # gt {a, b}: a found at rank 1 -> AP@5 = P@1 / min(5, 2) = 1/2, whatever the repetition of a.
    assert circo_map_from_rankings([["a", "x", "y", "z", "w"]], [["a", "a", "b"]], ks=(5,)) == {5: 50.0}
    with pytest.raises(ValueError, match="a name repeats within the top 3"):
        circo_map_from_rankings([["a", "a", "b"]], [["b"]], ks=(3,))


def test_circo_reference_exclusion_is_opt_in():
    # Without the references: A = a, b, ... -> K=2: 2/2, K=5: 2/3.  B = g1..g5 -> 1 at both K.
    excluded = circo_map_from_rankings(CIRCO_RANKED, CIRCO_GT, ks=(2, 5), reference_ids=CIRCO_REFERENCES,
                                       exclude_reference=True)
    assert excluded == pytest.approx({2: 100.0, 5: 100 * (2 / 3 + 1) / 2})
    kept = circo_map_from_rankings(CIRCO_RANKED, CIRCO_GT, ks=(2, 5), reference_ids=CIRCO_REFERENCES)
    assert kept == circo_map_from_rankings(CIRCO_RANKED, CIRCO_GT, ks=(2, 5))
    with pytest.raises(ValueError, match="needs reference_ids"):
        circo_map_from_rankings(CIRCO_RANKED, CIRCO_GT, exclude_reference=True)


def test_circo_similarity_path_with_integer_ids():
    ids = {"a": 1, "b": 2, "c": 3, "x": 4, "y": 5, "z": 6, "w": 7}
    gallery = list(ids.values())
    order = [ids[name] for name in CIRCO_RANKED[0]] + [ids["c"]]
    similarity = np.zeros((1, len(gallery)))
    similarity[0, [gallery.index(i) for i in order]] = -np.arange(len(order))  # scores fall along the ranking
    gt = [[ids[name] for name in CIRCO_GT[0]]]
    assert circo_map(similarity, gallery, gt, ks=(5,)) == {5: pytest.approx(100 * 5 / 9)}
    assert circo_map(similarity, gallery, gt, ks=(5,), reference_ids=[ids["x"]],
                     exclude_reference=True) == {5: pytest.approx(100 * 2 / 3)}
    with pytest.raises(ValueError, match="no ground truth"):
        circo_map_from_rankings([[1, 2]], [[]], ks=(1,))


# ---------------------------------------------------------------- submissions

def _names(query: int, n: int) -> list[str]:
    return [f"q{query}-img{i}" for i in range(n)]


def test_cirr_submission_round_trips(tmp_path):
    recall_path, subset_path = write_cirr_submission(tmp_path, [7, 8], [_names(7, 50), _names(8, 50)],
                                                     [_names(7, 3), _names(8, 3)], expected_pair_ids=[8, 7])
    assert (recall_path.name, subset_path.name) == ("cirr_recall.json", "cirr_recall_subset.json")
    recall, subset = json.loads(recall_path.read_text()), json.loads(subset_path.read_text())
    assert recall == {"version": "rc2", "metric": "recall", "7": _names(7, 50), "8": _names(8, 50)}
    assert subset == {"version": "rc2", "metric": "recall_subset", "7": _names(7, 3), "8": _names(8, 3)}
    assert write_cirr_submission(tmp_path / "run1.json", [7], [_names(7, 50)], [_names(7, 3)])[1].name == \
        "run1_recall_subset.json"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cirr_recall.json", "cirr_recall_subset.json",
                                                          "run1_recall.json", "run1_recall_subset.json"]


def test_circo_submission_round_trips_without_version_key(tmp_path):
    path = write_circo_submission(tmp_path / "circo.json", [3, 1], [list(range(50)), list(range(50, 100))],
                                  expected_query_ids=["1", "3"])
    assert json.loads(path.read_text()) == {"3": [str(i) for i in range(50)], "1": [str(i) for i in range(50, 100)]}


@pytest.mark.parametrize("ids, lists, expected, message", [
    ([5, 6, 5], [_names(0, 50)] * 3, None, r"1 query ids appear more than once: '5'"),
    ([5], [_names(0, 50)], [5, 6], r"1 expected query ids are missing: '6'"),
    ([5, 9], [_names(0, 50)] * 2, [5], r"1 query ids are not in the expected set: '9'"),
    ([5, 6], [_names(0, 50), _names(0, 49)], None, r"lack exactly 50 names: '6 \(49 names\)'"),
    ([5, 6], [_names(0, 50), _names(0, 49) + ["q0-img0"]], None, r"list a name twice: '6'"),
])
def test_circo_submission_validation_names_the_offending_ids(tmp_path, ids, lists, expected, message):
    with pytest.raises(ValueError, match=message):
        write_circo_submission(tmp_path / "circo.json", ids, lists, expected_query_ids=expected)
    assert not list(tmp_path.iterdir())  # nothing written, not even a temporary file


@pytest.mark.parametrize("bad", ["12.5", 12.5, True, "a1"])
def test_a_query_id_that_is_no_integer_is_refused(tmp_path, bad):
    with pytest.raises(ValueError, match="is not an integer"):
        write_circo_submission(tmp_path / "circo.json", [bad], [list(range(50))])
    assert write_circo_submission(tmp_path / "ok.json", [" 07"], [list(range(50))]).read_text().startswith('{"7": ')


def test_cirr_submission_validates_both_files_before_writing_either(tmp_path):
    with pytest.raises(ValueError, match=r"CIRR recall_subset submission not written: .*'2 \(2 names\)'"):
        write_cirr_submission(tmp_path, [1, 2], [_names(1, 50), _names(2, 50)], [_names(1, 3), _names(2, 2)])
    assert not list(tmp_path.iterdir())
