"""Small builders shared by several test modules."""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from cirlib.encoders.clip_model import build_clip, export_model_dir
from cirlib.features.captions import CaptionedSplit, CaptionFeatures
from cirlib.features.splits import SplitFeatures

REPOSITORY = Path(__file__).resolve().parent.parent

# A CLIP small enough to build, train and encode with in well under a second on a CPU.
TINY_CLIP = {
    "embed_dim": 32,
    "vision_cfg": {"image_size": 32, "layers": 1, "width": 32, "head_width": 16, "patch_size": 16},
    "text_cfg": {"context_length": 16, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 1},
}


def tiny_model_dir(folder: Path, seed: int = 0, kind: str = "targetpad"):
    """A random TINY_CLIP saved as a model folder; returns (folder, model)."""
    torch.manual_seed(seed)
    model = build_clip(TINY_CLIP)
    return export_model_dir(folder, model, TINY_CLIP, {"kind": kind}, dtype=torch.float32), model


def random_split(dataset: str, seed: int = 0, queries: int = 14, sets: int = 4, r: int = 3,
                 dim: int = 8) -> CaptionedSplit:
    """Random features for ``sets`` groups of six gallery images; images 0 and 1 are identical (exact ties)."""
    gen = torch.Generator().manual_seed(seed)
    n = 6 * sets
    gallery, captions = torch.randn(n, dim, generator=gen), torch.randn(n, r, dim, generator=gen)
    gallery[1], captions[1] = gallery[0], captions[0]
    names = list(range(100, 100 + n)) if dataset == "circo" else [f"img{i}" for i in range(n)]
    rng = np.random.default_rng(seed)
    members, refs, targets, gts = [], [], [], []
    for _ in range(queries):
        group = 0 if rng.random() < 0.3 else int(rng.integers(sets))
        ref, target = (0, 1) if group == 0 else rng.choice(6, size=2, replace=False) + 6 * group  # 0, 1: twins
        refs.append(int(ref)), targets.append(int(target))
        members.append([names[6 * group + i] for i in range(6)])
        extra_gt = rng.choice(n, size=int(rng.integers(0, 4)), replace=True)  # may repeat, may hold the reference
        gts.append([names[target]] + [names[int(i)] for i in extra_gt])
    features = SplitFeatures(names, gallery, gallery[refs] * 3.0, torch.randn(queries, dim, generator=gen) * 0.5,
                             [names[i] for i in refs], [names[i] for i in targets],
                             [f"text {i}" for i in range(queries)],
                             {"img_set_members": members, "gt_img_ids": gts})
    return CaptionedSplit(dataset, features, CaptionFeatures(captions, captions[refs]))


def make_notebook_root(folder: Path, notebooks: Sequence[str] = ()) -> Path:
    """A stand-in for the repository root in ``folder``: a copy of ``configs/`` and a ``notebooks/`` holding copies of
    ``notebooks`` (paths relative to the repository). A notebook takes its ROOT from the kernel's working directory,
    ``<root>/notebooks``, so run there it writes its benchmark, feature cache and runs into ``folder``, never into
    the checkout's ``data/`` or ``runs/``."""
    shutil.copytree(REPOSITORY / "configs", folder / "configs")
    (folder / "notebooks").mkdir()
    for notebook in notebooks:
        shutil.copy2(REPOSITORY / notebook, folder / notebook)
    return folder
