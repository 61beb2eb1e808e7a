"""Batched feature extraction: images through a DataLoader (decoding in worker processes),
texts through the tokenizer, both under ``torch.no_grad`` at the encoder's precision (exact float32
by default, so features are the same on every device; bf16/fp16 autocast when asked for).

Features are the encoders' raw projected embeddings (float32, on the CPU, not normalised):
methods differ in whether and where they normalise (see the fusion modules).

With a multi-process ``DistContext`` (under ``torchrun``) every process encodes every N-th batch and
all of them receive all features, in order: the batches are those of a single process, so the
features are identical to its own. All processes must then call with the same inputs.

An image that cannot be decoded (missing, truncated, corrupt) stops the extraction with a
:class:`~cirlib.util.errors.FileError` naming it, whether it was decoded in a worker process or not.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset, default_collate
from tqdm.auto import tqdm

from cirlib.encoders.loading import Encoder
from cirlib.encoders.transforms import build_preprocess
from cirlib.util.device import compute_precision
from cirlib.util.distributed import DistContext, gather_batches, is_main, shard_batches
from cirlib.util.errors import FileError

IMAGE_FIX = "re-download or re-render it (images of the synthetic benchmark: `cirlib synth --verify` repairs them)"


@dataclass(frozen=True)
class Unreadable:
    """An image that could not be decoded. It leaves a DataLoader worker as data, not as an exception: the
    DataLoader re-raises a worker's exception as a RuntimeError that holds only the traceback's text."""

    path: str
    problem: str

    def error(self) -> FileError:
        return FileError(self.path, f"image cannot be decoded ({self.problem})", IMAGE_FIX)


class ImageFiles(Dataset):
    """Image files -> preprocessed tensors, or :class:`Unreadable` for a file that cannot be decoded."""

    def __init__(self, paths: Sequence[Path | str], preprocess) -> None:
        self.paths, self.preprocess = list(paths), preprocess

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> torch.Tensor | Unreadable:
        try:
            with Image.open(self.paths[index]) as image:
                return self.preprocess(image)
        except (OSError, SyntaxError, ValueError) as error:  # PIL's errors for missing, truncated, corrupt files
            return Unreadable(str(self.paths[index]), str(error) or type(error).__name__)


def collate_images(samples: list[torch.Tensor | Unreadable]) -> torch.Tensor | Unreadable:
    """One batch of pixels, or the batch's first unreadable image (raised by the caller, outside the workers)."""
    return next((sample for sample in samples if isinstance(sample, Unreadable)), None) or default_collate(samples)


def default_workers() -> int:
    """Decoding workers: this process's share of the cores (torchrun's ``LOCAL_WORLD_SIZE`` processes
    share them) but the one running the model (none on a single core)."""
    share = (os.cpu_count() or 1) // int(os.environ.get("LOCAL_WORLD_SIZE", "1"))
    return max(0, min(8, share - 1))


def _features(batches: list[torch.Tensor], encoder: Encoder) -> torch.Tensor:
    """The batches' features as one (N, D) tensor; (0, D) without batches (a process may have none)."""
    return torch.cat(batches) if batches else torch.empty(0, encoder.embed_dim)


@torch.no_grad()
def encode_images(encoder: Encoder, paths: Sequence[Path | str], batch_size: int = 256,
                  num_workers: int | None = None, progress: bool = True,
                  context: DistContext | None = None) -> torch.Tensor:
    """(N, D) image features of the files at ``paths``, in order (shared out over ``context``'s processes)."""
    mine = shard_batches(paths, batch_size, context)
    loader = DataLoader(ImageFiles(mine, build_preprocess(encoder.preprocess_config)), batch_size=batch_size,
                        num_workers=default_workers() if num_workers is None else num_workers,
                        pin_memory=encoder.device.type == "cuda", collate_fn=collate_images)
    features = []
    for pixels in tqdm(loader, desc="encode images", unit="batch", disable=not (progress and is_main(context)),
                       mininterval=2.0):
        if isinstance(pixels, Unreadable):
            raise pixels.error()
        with compute_precision(encoder.device, encoder.precision):
            features.append(encoder.model.encode_image(pixels.to(encoder.device, non_blocking=True)).float().cpu())
    return gather_batches(_features(features, encoder), len(paths), batch_size, context)


@torch.no_grad()
def encode_texts(encoder: Encoder, texts: Sequence[str], batch_size: int = 1024, progress: bool = True,
                 context: DistContext | None = None) -> torch.Tensor:
    """(N, D) text features of ``texts``, in order (shared out over ``context``'s processes)."""
    mine, features = shard_batches(texts, batch_size, context), []
    for start in tqdm(range(0, len(mine), batch_size), desc="encode texts", unit="batch",
                      disable=not (progress and is_main(context)), mininterval=2.0):
        tokens = encoder.tokenizer(mine[start:start + batch_size]).to(encoder.device)
        with compute_precision(encoder.device, encoder.precision):
            features.append(encoder.model.encode_text(tokens).float().cpu())
    return gather_batches(_features(features, encoder), len(texts), batch_size, context)
