"""Batched feature extraction: images through a DataLoader (decoding in worker processes),
texts through the tokenizer, both under ``torch.no_grad`` at the encoder's precision (exact float32
by default, so features are the same on every device; bf16/fp16 autocast when asked for).

Features are the encoders' raw projected embeddings (float32, on the CPU, not normalised):
methods differ in whether and where they normalise (see the fusion modules).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset
from tqdm.auto import tqdm

from .device import compute_precision
from .loading import Encoder
from .transforms import build_preprocess


class ImageFiles(Dataset):
    """Image files -> preprocessed tensors."""

    def __init__(self, paths: Sequence[Path | str], preprocess) -> None:
        self.paths, self.preprocess = list(paths), preprocess

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> torch.Tensor:
        with Image.open(self.paths[index]) as image:
            return self.preprocess(image)


def default_workers() -> int:
    """Decoding workers: all cores but the one running the model (none on a single core)."""
    return max(0, min(8, (os.cpu_count() or 1) - 1))


@torch.no_grad()
def encode_images(encoder: Encoder, paths: Sequence[Path | str], batch_size: int = 256,
                  num_workers: int | None = None, progress: bool = True) -> torch.Tensor:
    """(N, D) image features of the files at ``paths``, in order."""
    loader = DataLoader(ImageFiles(paths, build_preprocess(encoder.preprocess_config)), batch_size=batch_size,
                        num_workers=default_workers() if num_workers is None else num_workers,
                        pin_memory=encoder.device.type == "cuda")
    features = []
    for pixels in tqdm(loader, desc="encode images", unit="batch", disable=not progress, mininterval=2.0):
        with compute_precision(encoder.device, encoder.precision):
            features.append(encoder.model.encode_image(pixels.to(encoder.device, non_blocking=True)).float().cpu())
    return torch.cat(features) if features else torch.empty(0, encoder.model.text_projection.shape[1])


@torch.no_grad()
def encode_texts(encoder: Encoder, texts: Sequence[str], batch_size: int = 1024, progress: bool = True) -> torch.Tensor:
    """(N, D) text features of ``texts``, in order."""
    features = []
    for start in tqdm(range(0, len(texts), batch_size), desc="encode texts", unit="batch", disable=not progress,
                      mininterval=2.0):
        tokens = encoder.tokenizer(list(texts[start:start + batch_size])).to(encoder.device)
        with compute_precision(encoder.device, encoder.precision):
            features.append(encoder.model.encode_text(tokens).float().cpu())
    return torch.cat(features) if features else torch.empty(0, encoder.model.text_projection.shape[1])
