"""Stage-2 training speed: epochs/s on cached features versus encoding the features on the fly.

    python benchmarks/train.py [--benchmark data/synth] [--category dress] [--triplets 3000] [--epochs 5]
        [--precision auto]

CLIP4Cir's combiner training loads and encodes the reference and target images and the texts of
every batch with the frozen CLIP, every epoch. cirlib encodes them once into the feature cache,
and an epoch only indexes tensors. Both paths train the same Combiner (the synthetic configs'
sizes) with the same loss, optimiser and batch size on the same triplets, in one run; the
cached path is the real ``cirlib.train.stage2.train_fusion`` loop (checkpoints and logs included).
Both train at ``--precision`` (default ``auto``, the training default: bf16 autocast on CUDA, float32
on CPU); the on-the-fly path encodes at the encoder's precision, as the cached features were (float32).
Prints epochs/s of each and the ratio, with the device and precision named.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset

from cirlib.data import FashionIQ
from cirlib.encoders import build_preprocess, load_encoder
from cirlib.features import FeatureCache
from cirlib.features.extract import default_workers
from cirlib.fusion import build_fusion
from cirlib.train.loss import batch_classification_loss
from cirlib.train.pretrain import parameter_groups
from cirlib.train.stage2 import FusionTrainConfig, train_fusion
from cirlib.train.triplets import TripletFeatures, fashioniq_training_texts, fashioniq_triplets
from cirlib.util.device import PRECISIONS, compute_precision, resolve_precision

COMBINER = {"projection_dim": 256, "hidden_dim": 512, "dropout": 0.1}


class TripletImages(Dataset):
    """(reference pixels, target pixels, text) per triplet, decoded from disk as CLIP4Cir does."""

    def __init__(self, reader: FashionIQ, triplets, preprocess, texts: list[str]) -> None:
        self.reader, self.triplets, self.preprocess, self.texts = reader, triplets, preprocess, texts

    def __len__(self) -> int:
        return len(self.triplets)

    def __getitem__(self, index: int):
        triplet = self.triplets[index]
        with Image.open(self.reader.image_path(triplet.candidate)) as ref, \
                Image.open(self.reader.image_path(triplet.target)) as tgt:
            return self.preprocess(ref), self.preprocess(tgt), self.texts[index]


def on_the_fly_epoch(encoder, dataset: TripletImages, batch_size: int, precision: str) -> float:
    """Seconds for one epoch that encodes every batch with the frozen encoder before the fusion step
    (encoding at the encoder's precision, the fusion step at ``precision``)."""
    torch.manual_seed(0)
    model = build_fusion("combiner", encoder.model.text_projection.shape[1], **COMBINER).to(encoder.device)
    optimizer = torch.optim.AdamW(parameter_groups(model, 0.01), lr=1e-3)
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=True, drop_last=True,
                        num_workers=default_workers(), generator=torch.Generator().manual_seed(0))
    start = time.perf_counter()
    for reference, target, texts in loader:
        with torch.no_grad(), compute_precision(encoder.device, encoder.precision):
            v = encoder.model.encode_image(reference.to(encoder.device)).float()
            t = encoder.model.encode_text(encoder.tokenizer(list(texts)).to(encoder.device)).float()
            target_features = encoder.model.encode_image(target.to(encoder.device)).float()
        with compute_precision(encoder.device, precision):
            query = model(v, t)
        loss = batch_classification_loss(query.float(), target_features)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--benchmark", default="data/synth", help="a synthetic benchmark built by `cirlib synth`")
    parser.add_argument("--category", default="dress")
    parser.add_argument("--triplets", type=int, default=3000, help="the first N training triplets")
    parser.add_argument("--epochs", type=int, default=5, help="cached epochs to time (on the fly: one epoch)")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--model", default="synthclip")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--cache", default="data/cache")
    parser.add_argument("--precision", choices=PRECISIONS, default="auto",
                        help="training precision (default auto: bf16 autocast on CUDA, float32 on CPU)")
    args = parser.parse_args()
    root = Path(args.benchmark) / "synth-fashioniq"
    encoder = load_encoder(args.model, device=args.device)
    device_name = torch.cuda.get_device_name(encoder.device) if encoder.device.type == "cuda" else "CPU"
    cache = FeatureCache(args.cache)
    every = fashioniq_triplets(encoder, cache, root, "train", [args.category], dataset=root.name)
    n = min(args.triplets, len(every))
    data = TripletFeatures(every.images, every.reference[:n], every.target[:n], every.texts, every.image_names,
                           every.text_of[:n])
    with tempfile.TemporaryDirectory() as out:
        config = FusionTrainConfig(fusion="combiner", fusion_options=COMBINER, epochs=args.epochs,
                                   batch_size=args.batch_size, lr=1e-3, device=str(encoder.device), out=out,
                                   precision=args.precision)
        start = time.perf_counter()
        train_fusion(config, data, None, progress=False)
        cached_s = (time.perf_counter() - start) / args.epochs
    reader = FashionIQ(root)
    triplets = reader.triplets(args.category, "train")[: n]
    texts = [fashioniq_training_texts(t.captions)[i % 4] for i, t in enumerate(triplets)]
    fly_s = on_the_fly_epoch(encoder, TripletImages(reader, triplets, build_preprocess(encoder.preprocess_config),
                                                    texts), args.batch_size, args.precision)
    print(f"\nmodel {encoder.identity} on {device_name} ({encoder.device}), training in "
          f"{resolve_precision(args.precision, encoder.device)}; {n} {args.category} triplets, "
          f"batch {args.batch_size}, Combiner {COMBINER}")
    print(f"on the fly (encode every batch) : {1 / fly_s:8.3f} epochs/s ({fly_s:.2f} s/epoch)")
    print(f"cached features (train_fusion)  : {1 / cached_s:8.3f} epochs/s ({cached_s:.2f} s/epoch, "
          f"mean of {args.epochs})")
    print(f"speed-up                        : {fly_s / cached_s:8.1f}x")


if __name__ == "__main__":
    main()
