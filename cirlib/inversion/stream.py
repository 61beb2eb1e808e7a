"""Training data for the inversion methods: features of synthetic pretraining-stream pairs.

None of the three methods sees a CIR triplet. Pic2Word and SEARLE learn from unlabeled images,
LinCIR from captions alone; both come from ``cirlib.data.synth.pretrain.pretraining_pair``.
The pairs are rendered once, their image and caption features computed by the frozen encoder,
and everything is kept in one safetensors file keyed by the encoder, its preprocessing, the
stream range and the generator version (a file with another key is recomputed, never served).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch
from tqdm.auto import tqdm

from cirlib.data.synth.build import GENERATOR_VERSION
from cirlib.encoders.loading import Encoder
from cirlib.encoders.transforms import uint8_to_input
from cirlib.features.extract import encode_texts
from cirlib.train.pretrain import render_pairs
from cirlib.util.config import json_sha256
from cirlib.util.device import compute_precision
from cirlib.util.tensor_io import read_cache, save_tensors

FORMAT = "cirlib-stream-features-2"


@dataclass
class StreamFeatures:
    """Raw (unnormalised) features of stream pairs ``start .. start + count - 1``, row-aligned."""

    image: torch.Tensor
    text: torch.Tensor
    captions: list[str]


@torch.no_grad()
def _encode_pixels(encoder: Encoder, pixels: torch.Tensor, batch_size: int = 512) -> torch.Tensor:
    features = []
    for start in tqdm(range(0, len(pixels), batch_size), desc="encode stream images", unit="batch", mininterval=2.0):
        batch = uint8_to_input(pixels[start:start + batch_size].to(encoder.device), encoder.preprocess_config)
        with compute_precision(encoder.device, encoder.precision):
            features.append(encoder.model.encode_image(batch).float().cpu())
    return torch.cat(features)


def stream_features(encoder: Encoder, cache: Path | str, seed: int, start: int, count: int,
                    workers: int | None = None) -> StreamFeatures:
    """Image and caption features of ``count`` stream pairs of ``seed`` from index ``start``, cached in
    the folder ``cache``. Rendering uses ``workers`` processes (default: all cores)."""
    if count < 1:
        raise ValueError(f"count must be positive, got {count}")
    parts = {"format": FORMAT, **encoder.feature_key, "seed": seed, "start": start, "count": count,
             "generator": GENERATOR_VERSION}
    key = json_sha256(parts)
    path = Path(cache) / f"stream-s{seed}-{start}-{count}-{key[:16]}.safetensors"
    stored = read_cache(path, "the stream feature cache")
    if stored is not None and stored[1].get("key") == key:
        tensors, metadata = stored
        return StreamFeatures(tensors["image"], tensors["text"], json.loads(metadata["captions"]))
    pixels, captions = render_pairs(seed, range(start, start + count), encoder.preprocess_config, workers,
                                    desc="render stream pairs")
    image = _encode_pixels(encoder, pixels)
    text = encode_texts(encoder, captions)
    save_tensors(path, {"image": image, "text": text}, {"key": key, "captions": json.dumps(captions)})
    return StreamFeatures(image, text, captions)
