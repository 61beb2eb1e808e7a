"""MoE gating analysis: edit types of the synthetic queries, utilisation, per-type tables, NMI, experts off."""

from __future__ import annotations

import math

import pytest
import torch

from cirlib.analysis.edits import cirr_edit_types, fashioniq_edit_types
from cirlib.analysis.gating import (
    expert_off_method,
    normalized_mutual_information,
    router_weights_by_edit_type,
    routing_weights,
    top_expert_edit_type_nmi,
    utilisation,
)
from cirlib.data import CIRR
from cirlib.fusion import MoECombiner


def test_nmi_is_one_for_the_same_partition_zero_for_independent_ones_and_matches_a_hand_computation():
    assert normalized_mutual_information([0, 0, 1, 1, 2], ["b", "b", "a", "a", "c"]) == pytest.approx(1.0)
    assert normalized_mutual_information([0, 0, 1, 1], [0, 1, 0, 1]) == pytest.approx(0.0, abs=1e-12)
    assert normalized_mutual_information([0, 0, 0], [0, 1, 2]) == 0.0
    # joint p(0,0)=1/2, p(1,0)=1/4, p(1,1)=1/4; marginals (1/2, 1/2) and (3/4, 1/4)
    mutual = 0.5 * math.log(0.5 / 0.375) + 0.25 * math.log(0.25 / 0.375) + 0.25 * math.log(0.25 / 0.125)
    h_a, h_b = math.log(2), -(0.75 * math.log(0.75) + 0.25 * math.log(0.25))
    assert normalized_mutual_information([0, 0, 1, 1], [0, 0, 0, 1]) == pytest.approx(2 * mutual / (h_a + h_b))
    assert normalized_mutual_information([0, 1, 1], [0, 0, 1], sample_weight=[2, 1, 1]) == pytest.approx(
        normalized_mutual_information([0, 0, 1, 1], [0, 0, 0, 1]))


def test_tables_split_a_multi_type_query_over_its_types():
    weights = torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.5, 0.5]])
    names, table = router_weights_by_edit_type(weights, [["colour"], ["pattern"], ["colour", "pattern"]])
    assert names == ["colour", "pattern"]
    # colour: query 0 (weight 1) and query 2 (weight 1/2): (1*[1,0] + 0.5*[0.5,0.5]) / 1.5
    assert table.flatten().tolist() == pytest.approx([1.25 / 1.5, 0.25 / 1.5, 0.25 / 1.5, 1.25 / 1.5])
    assert utilisation(weights) == {"mean router weight": pytest.approx([0.5, 0.5]),
                                    "routed share": pytest.approx([2 / 3, 2 / 3]),
                                    "top share": pytest.approx([2 / 3, 1 / 3])}
    one_expert_per_type = torch.tensor([[0.9, 0.1], [0.2, 0.8], [0.7, 0.3]])
    assert top_expert_edit_type_nmi(one_expert_per_type, [["add"], ["move"], ["add"]]) == pytest.approx(1.0)
    with pytest.raises(ValueError, match="one per query"):
        router_weights_by_edit_type(weights, [["colour"]])


def test_edit_types_follow_the_caption_files_order(small_benchmark):
    root, manifest = small_benchmark
    fiq = fashioniq_edit_types(root / "synth-fashioniq")
    assert len(fiq) == 3 * 60 and all(1 <= len(t) <= 3 for t in fiq)
    assert {t for row in fiq for t in row} <= {"colour", "pattern", "sleeves", "length", "neckline", "graphic"}
    cirr = cirr_edit_types(root / "synth-cirr")
    assert len(cirr) == len(CIRR(root / "synth-cirr").triplets("val")) and all(cirr)
    with pytest.raises(FileNotFoundError, match="synthetic benchmark"):
        cirr_edit_types(root / "synth-cirr", split="nonexistent")


def test_switching_an_expert_off_changes_exactly_the_queries_routed_to_it():
    torch.manual_seed(0)
    model = MoECombiner(16, projection_dim=8, hidden_dim=12)
    image, text = torch.randn(40, 16), torch.randn(40, 16)
    weights, gate = routing_weights(model, image, text)
    assert weights.shape == (40, 4) and gate.shape == (40, 16) and not model.training
    with torch.no_grad():
        full = model(image, text)
    for expert in range(4):
        off = expert_off_method(model, expert)(image, text)
        routed = weights[:, expert] > 0
        assert routed.any() and torch.equal(off[~routed], full[~routed])
        assert not torch.isclose(off[routed], full[routed]).all(dim=1).any()
        assert (routing_weights(model, image, text, disabled_experts=[expert])[0][:, expert] == 0).all()
