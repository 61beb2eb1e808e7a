"""The per-dataset protocols against the benchmarks' conventions (shared/reference/formats-and-methods.md,
"Evaluation" and "Corrections"), the one mAP naming, the one metric-name check and the unknown-dataset error."""

from __future__ import annotations

import pytest

from cirlib.metrics import PROTOCOLS, circo_map, map_columns, protocol, require_metric
from cirlib.util.errors import ConfigError


def test_fashioniq_recall_at_10_and_50_per_category_reference_kept_selected_by_the_mean_of_the_averages():
    fiq = protocol("fashioniq")
    assert (fiq.label, fiq.ks, fiq.categories, fiq.subset_ks) == ("FashionIQ", (10, 50), ("dress", "shirt", "toptee"),
                                                                  ())
    assert fiq.columns == ("dress R@10", "dress R@50", "shirt R@10", "shirt R@50", "toptee R@10", "toptee R@50",
                           "avg R@10", "avg R@50", "avg")
    assert fiq.summary_columns == ("avg R@10", "avg R@50", "avg") and fiq.select_by == "avg"
    assert fiq.reference == "kept" and not fiq.removes_reference() and not fiq.removes_reference(True)
    assert fiq.has_categories and not fiq.has_subset and not fiq.several_targets and fiq.training_split
    assert fiq.metric_names(["shirt"]) == ["shirt R@10", "shirt R@50", "avg R@10", "avg R@50", "avg"]


def test_cirr_removes_the_reference_has_recall_subset_and_selects_by_avg():
    cirr = protocol("cirr")
    assert (cirr.label, cirr.ks, cirr.subset_ks, cirr.categories) == ("CIRR", (1, 5, 10, 50), (1, 2, 3), ())
    assert cirr.columns == ("R@1", "R@5", "R@10", "R@50", "Rsubset@1", "Rsubset@2", "Rsubset@3", "Avg")
    assert cirr.summary_columns == ("R@1", "R@5", "R@10", "R@50", "Rsubset@1", "Avg") and cirr.select_by == "Avg"
    assert cirr.reference == "removed" and cirr.removes_reference() and cirr.removes_reference(False)
    assert cirr.has_subset and not cirr.has_categories and not cirr.several_targets and cirr.training_split
    assert cirr.metric_names() == ["R@1", "R@5", "R@10", "R@50", "Rsubset@1", "Rsubset@2", "Rsubset@3", "Avg",
                                   "arithmetic mean", "harmonic mean", "geometric mean"]


def test_circo_map_at_5_to_50_keeps_the_reference_unless_asked_and_has_no_training_split():
    circo = protocol("circo")
    assert (circo.label, circo.ks, circo.select_by) == ("CIRCO", (5, 10, 25, 50), "mAP@10")
    assert circo.columns == circo.summary_columns == ("mAP@5", "mAP@10", "mAP@25", "mAP@50")
    assert circo.reference == "kept by default"
    assert not circo.removes_reference() and circo.removes_reference(exclude_reference=True)
    assert circo.several_targets and not circo.training_split and not circo.has_subset and not circo.has_categories
    assert circo.metric_names() == list(circo.columns)


def test_every_protocol_selects_by_one_of_its_columns_and_the_order_is_the_reporting_order():
    assert list(PROTOCOLS) == ["fashioniq", "cirr", "circo"]
    for name, rules in PROTOCOLS.items():
        assert rules.name == name and protocol(name) is rules
        assert rules.select_by in rules.columns and rules.select_by in rules.summary_columns
        assert set(rules.summary_columns) <= set(rules.columns) <= set(rules.metric_names())


def test_map_columns_names_circo_map_by_its_cut_offs():
    assert map_columns({5: 12.5, 50: 40.0}) == {"mAP@5": 12.5, "mAP@50": 40.0}
    values = circo_map([[0.9, 0.1, 0.5]], ["a", "b", "c"], [["c", "b"]], protocol("circo").ks)
    # ranking a, c, b: c at rank 2 (P@2 = 1/2), b at rank 3 (P@3 = 2/3); AP = (1/2 + 2/3) / min(K, 2)
    assert map_columns(values) == pytest.approx({f"mAP@{k}": 100 * (1 / 2 + 2 / 3) / 2 for k in (5, 10, 25, 50)})


def test_an_unknown_dataset_names_the_valid_ones():
    with pytest.raises(ValueError, match="unknown dataset 'CIRR': expected one of fashioniq, cirr, circo"):
        protocol("CIRR")


def test_an_unknown_metric_is_one_config_error_that_lists_the_known_ones():
    require_metric("Avg", ["R@1", "Avg"], "the sweep result")  # known: nothing raised
    with pytest.raises(ConfigError) as error:
        require_metric("avg", ["R@1", "Avg"], "config.yaml", "selection_metric", "cirr's validation metrics")
    assert str(error.value) == ("config.yaml: field 'selection_metric' is 'avg'; expected one of cirr's validation "
                                "metrics: R@1, Avg")
