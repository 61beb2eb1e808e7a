"""The bundled synthclip: small enough to ship, good enough on held-out synthetic pairs."""

from __future__ import annotations

import pytest
import torch

from cirlib.encoders import load_encoder
from cirlib.encoders.loading import bundled_model_dir
from cirlib.train.pretrain import render_pairs, text_to_image_recall

QUALITY_OFFSET = 20_000_000  # stream indices used neither for training nor for the training-time evaluation
README_R1 = 73.6  # the README's "text->image R@1 73.6% on 1,000 held-out full captions"; deterministic on a CPU


def test_bundled_model_is_at_most_25_mb_and_documented():
    folder = bundled_model_dir("synthclip")
    total = sum(p.stat().st_size for p in folder.iterdir())
    assert total <= 25 * 2**20, f"{total / 2**20:.1f} MB"
    assert {"open_clip_config.json", "open_clip_model.safetensors", "MODEL_CARD.md", "loss_curve.png"} <= \
        {p.name for p in folder.iterdir()}


def test_text_to_image_recall_on_1000_held_out_pairs():
    """Full captions of 1,000 held-out stream pairs, each against all 1,000 images: the README's number, within one
    caption (0.1 point) for another CPU's float32 rounding, so that a change of the model or of the held-out pairs
    shows (change the README's number with it)."""
    encoder = load_encoder("synthclip", device="cpu")
    preprocess = encoder.preprocess_config
    images, captions = render_pairs(0, range(QUALITY_OFFSET, QUALITY_OFFSET + 1000), preprocess, quality="full")
    recall = text_to_image_recall(encoder.model, images, encoder.tokenizer(captions), preprocess, torch.device("cpu"))
    assert recall[1] == pytest.approx(README_R1, abs=0.1 + 1e-6), recall
