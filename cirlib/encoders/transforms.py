"""Image preprocessing: the plain CLIP transform, CLIP4Cir's "targetpad", and "squarepad".

* ``clip``: resize the short side to the input size (bicubic), centre crop, normalise.
* ``targetpad`` (CLIP4Cir): an image whose long/short side ratio is below 1.25 is left as it is;
  a longer one is zero-padded, centred, on its short side until the ratio is 1.25 (not to a
  square); then as ``clip``. It keeps most of a tall product photo that a centre crop would cut.
* ``squarepad``: pad to 1:1 first, so nothing is cropped (every pixel of the image is kept).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from PIL import Image
from torchvision import transforms as T

PREPROCESS_KINDS = ("clip", "targetpad", "squarepad")
TARGETPAD_RATIO = 1.25
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


class PadToRatio:
    """Zero-pad an image, centred on its short side, so that long/short <= ``max_ratio``."""

    def __init__(self, max_ratio: float) -> None:
        if max_ratio < 1.0:
            raise ValueError(f"max_ratio must be >= 1, got {max_ratio}")
        self.max_ratio = max_ratio

    def __call__(self, image: Image.Image) -> Image.Image:
        width, height = image.size
        long_side, short_side = max(width, height), min(width, height)
        if long_side / short_side <= self.max_ratio:
            return image
        padded_short = round(long_side / self.max_ratio)
        size = (width, padded_short) if width >= height else (padded_short, height)
        canvas = Image.new(image.mode, size, 0)
        canvas.paste(image, ((size[0] - width) // 2, (size[1] - height) // 2))
        return canvas

    def __repr__(self) -> str:
        return f"PadToRatio(max_ratio={self.max_ratio})"


@dataclass(frozen=True)
class PreprocessConfig:
    """Everything that determines the pixels a model sees (part of every feature-cache key)."""

    kind: str = "targetpad"
    image_size: int = 224
    mean: tuple[float, float, float] = CLIP_MEAN
    std: tuple[float, float, float] = CLIP_STD

    def __post_init__(self) -> None:
        if self.kind not in PREPROCESS_KINDS:
            raise ValueError(f"unknown preprocess {self.kind!r}; use one of {', '.join(PREPROCESS_KINDS)}")

    def to_json(self) -> dict:
        return {**asdict(self), "mean": list(self.mean), "std": list(self.std)}


def geometry(config: PreprocessConfig) -> T.Compose:
    """PIL -> PIL: padding, resize and crop (no tensor conversion)."""
    steps: list = [T.Lambda(lambda image: image.convert("RGB"))]
    if config.kind == "targetpad":
        steps.append(PadToRatio(TARGETPAD_RATIO))
    elif config.kind == "squarepad":
        steps.append(PadToRatio(1.0))
    steps += [T.Resize(config.image_size, interpolation=T.InterpolationMode.BICUBIC),
              T.CenterCrop(config.image_size)]
    return T.Compose(steps)


def normalise(config: PreprocessConfig) -> T.Normalize:
    return T.Normalize(config.mean, config.std)


def build_preprocess(config: PreprocessConfig) -> T.Compose:
    """PIL -> normalised float tensor (3, S, S)."""
    return T.Compose([geometry(config), T.ToTensor(), normalise(config)])


def uint8_to_input(images: torch.Tensor, config: PreprocessConfig) -> torch.Tensor:
    """(N, 3, S, S) uint8 pixels (as ``geometry`` leaves them) -> the model's normalised input."""
    mean = torch.tensor(config.mean, device=images.device).view(1, 3, 1, 1)
    std = torch.tensor(config.std, device=images.device).view(1, 3, 1, 1)
    return (images.float() / 255.0 - mean) / std
