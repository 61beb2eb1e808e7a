"""Failure analysis: causes of edit types, per-query ranks equal to the metrics, group tables, grids."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from cirlib.analysis.edits import (  # noqa: E402
    CAUSE_OF_EDIT,
    CAUSES,
    cirr_edit_types,
    cirr_vague_captions,
    fashioniq_edit_types,
    query_causes,
)
from cirlib.analysis.failures import (  # noqa: E402
    failure_examples,
    failures,
    grid_inputs,
    group_table,
    method_scores,
    query_outcomes,
    synth_image_path,
    weimocir_scores,
)
from cirlib.data import CIRR  # noqa: E402
from cirlib.evaluation.evaluate import evaluate_cirr, evaluate_fashioniq  # noqa: E402
from cirlib.fusion import sum_fusion
from cirlib.viz.plots import composed_queries, group_recall_bars, image_with_word_lists, retrieval_grid  # noqa: E402
from cirlib.weimocir import weighted_similarity
from tests.helpers import random_split  # noqa: E402


def test_causes_follow_the_edit_types_the_caption_and_vagueness():
    types = [["sleeves", "colour"], ["move"], ["pattern"], ["add", "count"], ["remove"]]
    texts = ["has short sleeves and is red", "put the disc on the top row", "has no pattern",
             "add a red square and one more disc", "take away the blue triangle"]
    causes = query_causes(types, texts, vague=[False, True, False, False, False])
    assert causes == [["fine-grained attribute", "global attribute"], ["spatial relation", "caption noise"],
                      ["global attribute", "negation"], ["count", "addition"], ["negation"]]
    assert set(CAUSE_OF_EDIT.values()) | {"caption noise"} == set(CAUSES)
    with pytest.raises(ValueError, match="no cause"):
        query_causes([["teleport"]], ["x"])
    with pytest.raises(ValueError, match="one of each per query"):
        query_causes([["move"]], ["x", "y"])


def test_synthetic_vagueness_matches_the_soft_targets_of_the_caption_file(small_benchmark):
    root = small_benchmark[0] / "synth-cirr"
    vague = cirr_vague_captions(root)
    soft = [len(t.target_soft) > 1 for t in CIRR(root).triplets("val")]
    assert vague == soft and 0 < sum(vague) < len(vague)
    causes = query_causes(cirr_edit_types(root), [t.caption for t in CIRR(root).triplets("val")], vague)
    assert sum("caption noise" in c for c in causes) == sum(vague)


def _recall_from_ranks(ranks: np.ndarray, k: int) -> float:
    return 100.0 * float(np.mean(ranks <= k))


@pytest.mark.parametrize("kind", ["fashioniq", "cirr"])
def test_ranks_give_the_benchmark_metrics_and_tops_skip_the_cirr_reference(kind):
    split = random_split(kind, queries=30)
    features = split.features
    scores = {"sum": method_scores(sum_fusion, features)}
    types = [["colour"]] * 30
    frame = query_outcomes(features, scores, types, [["global attribute"]] * 30, exclude_reference=kind == "cirr",
                           k=5)
    ranks = frame["rank sum"].to_numpy()
    if kind == "fashioniq":
        metrics = evaluate_fashioniq({"c": features}, sum_fusion)
        assert _recall_from_ranks(ranks, 10) == pytest.approx(metrics["c R@10"])
    else:
        metrics = evaluate_cirr(features, sum_fusion)
        for k in (1, 5, 10):
            assert _recall_from_ranks(ranks, k) == pytest.approx(metrics[f"R@{k}"])
        assert all(ref not in top for ref, top in zip(frame["reference"], frame["top sum"]))
    # the top list agrees with the (1-based) rank: the target is at position rank where rank <= k
    for rank, target, top in zip(ranks, frame["target"], frame["top sum"]):
        assert (top.index(target) + 1 == rank) if rank <= 5 else target not in top


def test_weimocir_scores_are_weighted_similarity_and_categories_concatenate():
    split = random_split("fashioniq", queries=12)
    f, c = split.features, split.captions
    expected = weighted_similarity(f.reference, f.text, f.gallery, c.gallery, 0.6, 0.3, "slides")
    torch.testing.assert_close(weimocir_scores(split, 0.6, 0.3), expected, rtol=1e-5, atol=1e-5)
    parts = {"a": random_split("fashioniq", seed=1, queries=5).features,
             "b": random_split("fashioniq", seed=2, queries=7).features}
    frame = query_outcomes(parts, {"sum": method_scores(sum_fusion, parts)}, [["colour"]] * 12, [[]] * 12, False)
    assert frame["category"].tolist() == ["a"] * 5 + ["b"] * 7
    with pytest.raises(ValueError, match="one per query"):
        query_outcomes(parts, {"sum": method_scores(sum_fusion, parts)}, [["colour"]] * 11, [[]] * 11, False)


def _toy_frame() -> pd.DataFrame:
    return pd.DataFrame({"reference": ["r0", "r1", "r2", "r3"], "target": ["t0", "t1", "t2", "t3"],
                         "text": ["a", "b", "c", "d"],
                         "edit types": [["colour"], ["move", "colour"], ["move", "move"], ["count"]],
                         "causes": [["global attribute"], ["spatial relation", "global attribute"],
                                    ["spatial relation"], ["count"]],
                         "rank A": [1, 13, 41, 4], "rank B": [21, 2, 3, 31],
                         "top A": [["t0", "x"], ["x", "y"], ["x", "y"], ["x", "y"]],
                         "top B": [["x", "y"], ["x", "t1"], ["x", "y"], ["x", "y"]]})


def test_group_table_counts_multi_label_queries_in_each_group():
    table = group_table(_toy_frame(), by="causes", k=10)
    assert table.index.tolist() == ["global attribute", "spatial relation", "count"]  # documented order
    assert table["queries"].tolist() == [2, 2, 1]
    assert table["R@10 A"].tolist() == [50.0, 0.0, 100.0] and table["failures A"].tolist() == [1, 2, 0]
    assert table["R@10 B"].tolist() == [50.0, 100.0, 0.0] and table["failures B"].tolist() == [1, 0, 1]
    by_type = group_table(_toy_frame(), by="edit types", k=10)
    assert by_type.loc["move", "queries"] == 2 and by_type.loc["count", "R@10 A"] == 100.0  # two moves count once
    assert by_type.loc["move", "failures A"] == 2


def test_failures_are_worst_first_and_grids_mark_the_target(tmp_path):
    frame = _toy_frame()
    missed = failures(frame, "A", k=10)
    assert missed["rank A"].tolist() == [41, 13]
    inputs = grid_inputs(frame.iloc[:2], "A", lambda name: tmp_path / f"{name}.png")
    assert inputs["correct"] == [[True, False], [False, False]]
    assert inputs["targets"][1] == (tmp_path / "t1.png", "target: #13")
    examples = failure_examples(frame, "A", by="causes", k=10)  # no query twice, groups in table order
    assert examples.index.tolist() == [1, 2] and examples["group"].tolist() == ["global attribute", "spatial relation"]
    assert grid_inputs(examples, "A", lambda name: tmp_path / f"{name}.png")["queries"][0][1] == "[global attribute] b"
    from PIL import Image
    for name in ["r0", "r1", "t0", "t1", "x", "y"]:
        Image.new("RGB", (8, 8)).save(tmp_path / f"{name}.png")
    figure = retrieval_grid(**inputs)
    assert np.array(figure.axes).size == 2 * 4  # reference, two results, the target
    plt.close(figure)
    ax = group_recall_bars(group_table(frame, k=10), "R@10 ")
    assert len(ax.patches) >= 3 * 2 and ax.get_legend() is not None
    plt.close(ax.figure)


def test_image_paths_of_the_synthetic_benchmark(small_benchmark):
    root = small_benchmark[0]
    fiq = fashioniq_edit_types(root / "synth-fashioniq")
    assert len(fiq) == 180
    path = synth_image_path(root, "synth-cirr")(CIRR(root / "synth-cirr").triplets("val")[0].reference)
    assert path.is_file()
    with pytest.raises(ValueError, match="synth-fashioniq or synth-cirr"):
        synth_image_path(root, "synth-circo")


def test_the_readme_picture_has_one_row_per_example(tmp_path):
    from PIL import Image
    Image.new("RGB", (8, 8)).save(tmp_path / "a.png")
    figure = composed_queries([(tmp_path / "a.png", "is red", tmp_path / "a.png")] * 2)
    assert np.array(figure.axes).size == 2 * 3 and "is red" in figure.axes[1].texts[0].get_text()
    plt.close(figure)


def test_word_lists_stand_beside_the_image_with_the_image_words_highlighted(tmp_path):
    from PIL import Image
    Image.new("RGB", (8, 6)).save(tmp_path / "a.png")
    lists = {"Pic2Word": ["red", "grey", "dress"], "LinCIR": ["square"]}
    figure = image_with_word_lists(tmp_path / "a.png", "img0: a red square", lists, highlight=["red", "square"])
    image, *columns = figure.axes
    assert image.images and [ax.get_title() for ax in columns] == ["Pic2Word", "LinCIR"]
    assert [(t.get_text(), t.get_fontweight(), t.get_color()) for t in columns[0].texts] == [
        ("red", "bold", "green"), ("grey", "normal", "black"), ("dress", "normal", "black")]
    assert [t.get_text() for t in columns[1].texts] == ["square"] and "a red square" in figure._suptitle.get_text()
    plt.close(figure)
