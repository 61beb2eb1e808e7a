"""WeiMoCIR's weighted fusion and similarity (both variants), and the cached gallery-caption features."""

from __future__ import annotations

import json
import math

import pytest
import torch
import torch.nn.functional as F

from cirlib.encoders import load_encoder
from cirlib.features import FeatureCache, encode_texts
from cirlib.features.captions import CaptionFeatures, caption_features, captioned_split
from cirlib.features.splits import SplitFeatures
from cirlib.fusion import image_only, sum_fusion, text_only
from cirlib.weimocir import weighted_fusion, weighted_similarity
from tests.helpers import tiny_model_dir


def features(seed: int = 0, q: int = 5, g: int = 7, r: int = 3, d: int = 6):
    gen = torch.Generator().manual_seed(seed)
    v, t = torch.randn(q, d, generator=gen) * 3, torch.randn(q, d, generator=gen)
    gallery = torch.randn(g, d, generator=gen)
    return v, t, gallery, torch.randn(g, r, d, generator=gen), torch.randn(q, r, d, generator=gen)


def test_hand_computed_example():
    v, t = torch.tensor([[2.0, 0.0]]), torch.tensor([[0.0, 1.0]])
    gallery = torch.tensor([[1.0, 0.0], [0.0, 3.0], [1.0, 1.0]])
    captions = torch.tensor([[[0.0, 1.0], [1.0, 0.0]], [[1.0, 1.0], [1.0, 1.0]], [[0.0, 2.0], [0.0, 1.0]]])
    root = 1 / math.sqrt(2)
    # slides: q = normalize(0.5·(1, 0) + 0.5·(0, 1)) = (1, 1)/√2
    image_side = torch.tensor([[root, root, 1.0]])
    caption_side = torch.tensor([[(root + root) / 2, 1.0, root]])
    expected = 0.75 * image_side + 0.25 * caption_side
    torch.testing.assert_close(weighted_similarity(v, t, gallery, captions, 0.5, 0.25), expected)
    # code: raw v = (2, 0) outweighs t: q = normalize((1, 0.5)); caption side fuses the reference's own captions
    q = F.normalize(torch.tensor([[1.0, 0.5]]), dim=-1)
    own = torch.tensor([[[2.0, 0.0], [0.0, 0.0]]])
    q1, q2 = F.normalize(torch.tensor([1.0, 0.5]), dim=0), F.normalize(torch.tensor([0.0, 0.5]), dim=0)
    unit = F.normalize(captions, dim=-1)
    code_caption = torch.stack([(q1 @ unit[:, 0].T + q2 @ unit[:, 1].T) / 2])
    code = 0.75 * (q @ F.normalize(gallery, dim=-1).T) + 0.25 * code_caption
    torch.testing.assert_close(weighted_similarity(v, t, gallery, captions, 0.5, 0.25, "code", own), code)


@pytest.mark.parametrize("variant", ["slides", "code"])
def test_alpha_and_beta_corners_reduce_to_the_baselines(variant):
    v, t, gallery, captions, own = features()
    unit_gallery = F.normalize(gallery, dim=-1)

    def scores(alpha, beta):
        return weighted_similarity(v, t, gallery, captions, alpha, beta, variant, own)

    torch.testing.assert_close(scores(0.0, 0.0), image_only(v, t) @ unit_gallery.T)   # image only
    torch.testing.assert_close(scores(1.0, 0.0), text_only(v, t) @ unit_gallery.T)    # text only
    summed = sum_fusion(v, t, normalize_inputs=variant == "slides")                   # α = 0.5: the sum baseline
    torch.testing.assert_close(scores(0.5, 0.0), summed @ unit_gallery.T)
    for alpha in (0.2, 0.8):                                                          # β = 0: query-to-image only
        pure = F.cosine_similarity(weighted_fusion(v, t, alpha, variant)[:, None], gallery[None], dim=-1)
        torch.testing.assert_close(scores(alpha, 0.0), pure)


def test_beta_one_is_the_mean_caption_similarity():
    v, t, gallery, captions, own = features(1)
    q = weighted_fusion(v, t, 0.3)
    slides = torch.stack([F.cosine_similarity(q[:, None], captions[None, :, r], dim=-1) for r in range(3)]).mean(0)
    torch.testing.assert_close(weighted_similarity(v, t, gallery, captions, 0.3, 1.0), slides)
    code = torch.stack([F.cosine_similarity(F.normalize(0.7 * own[:, r] + 0.3 * t, dim=-1)[:, None],
                                            captions[None, :, r], dim=-1) for r in range(3)]).mean(0)
    torch.testing.assert_close(weighted_similarity(v, t, gallery, captions, 0.3, 1.0, "code", own), code)
    # the slides' fusion is scale-free in v and t; the code's is not
    torch.testing.assert_close(weighted_fusion(v * 5, t, 0.3), weighted_fusion(v, t, 0.3))
    assert not torch.allclose(weighted_fusion(v * 5, t, 0.3, "code"), weighted_fusion(v, t, 0.3, "code"))


def test_bad_inputs_are_named():
    v, t, gallery, captions, own = features()
    with pytest.raises(ValueError, match="variant"):
        weighted_similarity(v, t, gallery, captions, 0.5, 0.5, "paper")
    with pytest.raises(ValueError, match="alpha"):
        weighted_fusion(v, t, 1.5)
    with pytest.raises(ValueError, match="beta"):
        weighted_similarity(v, t, gallery, captions, 0.5, -0.1)
    with pytest.raises(ValueError, match="reference_captions"):
        weighted_similarity(v, t, gallery, captions, 0.5, 0.5, "code")
    with pytest.raises(ValueError, match="gallery_captions"):
        weighted_similarity(v, t, gallery, captions[:3], 0.5, 0.5)
    with pytest.raises(ValueError, match="caption indices"):
        CaptionFeatures(captions, own).select([3])


def test_caption_features_are_cached_and_missing_images_get_empty_captions(tmp_path, monkeypatch):
    encoder = load_encoder(str(tiny_model_dir(tmp_path / "m")[0]), device="cpu")
    file = tmp_path / "captions.json"
    file.write_text(json.dumps([{"candidate": "a", "captions": ["a red circle", "a circle", "a blue circle"]},
                                {"candidate": "7", "captions": ["a red circle", "two squares"]}]))
    cache = FeatureCache(tmp_path / "cache")
    with pytest.warns(UserWarning, match="1 of 3 images have no captions"):
        got = caption_features(encoder, cache, file, ["a", 7, "b"], "toy")
    texts = ["a red circle", "a circle", "a blue circle", "a red circle", "two squares", "", "", "", ""]
    expected = encode_texts(encoder, texts, progress=False).reshape(3, 3, -1)
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5)

    import cirlib.features.cache as cache_module
    calls = []
    monkeypatch.setattr(cache_module, "encode_texts", lambda *a, **k: calls.append(a) or torch.zeros(0))
    with pytest.warns(UserWarning):
        again = caption_features(encoder, cache, file, ["a", 7, "b"], "toy")
    assert not calls and torch.equal(again, got)  # read from the cache, nothing encoded

    with pytest.raises(ValueError, match="none of the 2 images"):
        caption_features(encoder, cache, file, ["x", "y"], "toy")


def test_captioned_split_gives_references_their_own_captions(tmp_path):
    encoder = load_encoder(str(tiny_model_dir(tmp_path / "m")[0]), device="cpu")
    file = tmp_path / "captions.json"
    file.write_text(json.dumps([{"candidate": n, "captions": [f"{n} one", f"{n} two"]} for n in ("g0", "g1", "ref")]))
    split = SplitFeatures(["g0", "g1"], torch.zeros(2, 32), torch.zeros(3, 32), torch.zeros(3, 32),
                          ["g1", "ref", "g1"], ["g0", "g0", "g1"], ["t"] * 3, {})
    captioned = captioned_split(encoder, FeatureCache(tmp_path / "cache"), "fashioniq", split, file, "toy", r=2)
    assert captioned.captions.gallery.shape == (2, 2, 32) and captioned.captions.reference.shape == (3, 2, 32)
    torch.testing.assert_close(captioned.captions.reference[0], captioned.captions.gallery[1])
    torch.testing.assert_close(captioned.captions.reference[2], captioned.captions.gallery[1])
    own = encode_texts(encoder, ["ref one", "ref two"], progress=False)
    torch.testing.assert_close(captioned.captions.reference[1], own, atol=1e-5, rtol=1e-5)
    assert captioned.captions.select([1]).gallery.shape == (2, 1, 32)
    with pytest.raises(ValueError, match="unknown dataset .coco.: expected one of fashioniq, cirr, circo"):
        captioned_split(encoder, FeatureCache(tmp_path / "cache"), "coco", split, file, "toy")
