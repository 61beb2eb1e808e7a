"""CLIP-CD's pseudo triplets: substitute sets, the matching constraint, k-to-1 alternation in training."""

from __future__ import annotations

import json
import math

import pytest
import torch
import torch.nn.functional as F

from cirlib.train.pseudo_triplets import PseudoTripletConfig, pseudo_triplets, substitutes
from cirlib.train.stage2 import train_fusion
from cirlib.train.triplets import TripletFeatures
from tests.test_train import config, toy_task


def at_cosine(c: float) -> list[float]:
    """A unit vector in the xy-plane at cosine ``c`` to (1, 0, 0)."""
    return [c, math.sqrt(1 - c * c), 0.0]


def test_substitutes_are_the_most_similar_images_within_the_band_never_the_image_itself():
    cosines = [1.0, 0.95, 0.999, 0.85, 0.97, 0.92, 0.93, 0.91]   # image 2: near-duplicate; image 3: too far
    images = torch.tensor([at_cosine(c) for c in cosines]) * 3.0  # raw features: the norm does not matter
    sets = substitutes(images, eps_low=0.90, eps_high=0.995, s_max=4)
    assert sets.shape == (8, 4) and sets[0].tolist() == [4, 1, 6, 5]
    assert substitutes(images, 0.90, 0.995, s_max=6)[0].tolist() == [4, 1, 6, 5, 7, -1]
    assert substitutes(images, 0.90, 0.995, s_max=4, chunk=3)[0].tolist() == [4, 1, 6, 5]
    assert all(i not in row.tolist() for i, row in enumerate(substitutes(images, -1.0, 1.0, s_max=8)))
    with pytest.raises(ValueError, match="eps_low.*<= eps_high"):
        PseudoTripletConfig(eps_low=0.99, eps_high=0.9)


def test_pseudo_triplets_replace_reference_or_target_and_keep_those_that_still_match():
    s = math.sqrt(1 - 0.95 ** 2)
    images = torch.tensor([[1.0, 0, 0], [0.95, s, 0], [0, 0, 1.0], [0, s, 0.95]])  # 1 ~ 0 and 3 ~ 2 at cos 0.95
    texts = torch.tensor([[[-1.0, 0.0, 3.0]]])                                     # one triplet: 0 --text--> 2
    data = TripletFeatures(images, torch.tensor([0]), torch.tensor([2]), texts)
    pseudo, counts = pseudo_triplets(data, PseudoTripletConfig(eps_low=0.9, eps_high=0.995, s_max=4,
                                                               match_threshold=0.6))
    assert counts == {"candidates": 2, "kept": 2}
    assert list(zip(pseudo.reference.tolist(), pseudo.target.tolist())) == [(1, 2), (0, 3)]
    assert pseudo.text_of.tolist() == [0, 0]
    # the matching scores, by hand: cos(normalize(v_ref + t), target)
    score_new_reference = F.normalize(torch.tensor([0.95 - 1, s, 3.0]), dim=0)[2].item()    # ~0.994
    score_new_target = 0.95                                                                  # q = (0, 0, 1)
    threshold = (score_new_reference + score_new_target) / 2
    kept, counts = pseudo_triplets(data, PseudoTripletConfig(match_threshold=threshold))
    assert counts == {"candidates": 2, "kept": 1} and (kept.reference.item(), kept.target.item()) == (1, 2)
    v, t, target = kept.batch(torch.tensor([0]), torch.tensor([0]))
    assert torch.equal(v[0], images[1]) and torch.equal(t[0], texts[0, 0]) and torch.equal(target[0], images[2])


def test_training_alternates_k_real_epochs_with_one_pseudo_epoch(tmp_path):
    train, _ = toy_task()
    pseudo = TripletFeatures(train.images, train.reference[:200], train.target[:200], train.texts,
                             text_of=train.text_of[:200])
    train_fusion(config(tmp_path, epochs=6), train, None, pseudo=pseudo, pseudo_every=2, progress=False)
    log = json.loads((tmp_path / "run" / "log.json").read_text())["log"]
    assert [row["pseudo"] for row in log] == [False, False, True, False, False, True]
