"""Feature extraction speed: cirlib's batched DataLoader path versus a plain per-image loop.

    python benchmarks/extract.py [--images 1000] [--device auto] [--model synthclip] [--precision float32]

Both encode the same rendered images with the same encoder at its precision (``--precision``: float32,
the library's default, exact on every device; or bfloat16/float16 autocast) in one run, and the
results are checked equal (tightly in float32, loosely in reduced precision); prints images/s for
each and the ratio, with the device and precision named.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from cirlib.data.synth.garments import GARMENT_CATEGORIES, random_garment, render_garment
from cirlib.encoders import build_preprocess, load_encoder
from cirlib.features import encode_images
from cirlib.util.device import compute_precision


def write_images(folder: Path, n: int) -> list[Path]:
    rng = np.random.default_rng(0)
    paths = []
    for i in range(n):
        path = folder / f"{i:05d}.png"
        render_garment(random_garment(GARMENT_CATEGORIES[i % 3], rng), rng).save(path)
        paths.append(path)
    return paths


@torch.no_grad()
def per_image_loop(encoder, paths: list[Path]) -> torch.Tensor:
    """The plain way: open, preprocess and encode one image at a time."""
    preprocess = build_preprocess(encoder.preprocess_config)
    rows = []
    for path in paths:
        with compute_precision(encoder.device, encoder.precision):
            rows.append(encoder.model.encode_image(preprocess(Image.open(path))[None].to(encoder.device)).float().cpu())
    return torch.cat(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=1000)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--model", default="synthclip")
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--precision", choices=("float32", "bfloat16", "float16"), default="float32",
                        help="the encoder's precision (default float32, the library's)")
    args = parser.parse_args()
    encoder = load_encoder(args.model, device=args.device, precision=args.precision)
    device_name = torch.cuda.get_device_name(encoder.device) if encoder.device.type == "cuda" else "CPU"
    with tempfile.TemporaryDirectory() as folder:
        paths = write_images(Path(folder), args.images)
        encode_images(encoder, paths[: args.batch_size], batch_size=args.batch_size, progress=False)  # warm-up
        start = time.perf_counter()
        batched = encode_images(encoder, paths, batch_size=args.batch_size, progress=False)
        batched_s = time.perf_counter() - start
        start = time.perf_counter()
        plain = per_image_loop(encoder, paths)
        plain_s = time.perf_counter() - start
    tolerance = 1e-4 if encoder.precision == "float32" else 5e-2  # exact float32 on any device, else autocast
    assert torch.allclose(batched, plain, atol=tolerance, rtol=tolerance), "both paths must give the same features"
    print(f"model {encoder.identity} on {device_name} ({encoder.device}), {encoder.precision}, {args.images} images")
    print(f"per-image loop : {args.images / plain_s:9.1f} images/s")
    print(f"batched        : {args.images / batched_s:9.1f} images/s (batch {args.batch_size})")
    print(f"speed-up       : {plain_s / batched_s:9.1f}x")


if __name__ == "__main__":
    main()
