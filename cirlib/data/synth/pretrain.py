"""The pretraining stream: (image, absolute caption) pairs from the benchmark's own renderers.

Pair ``i`` of seed ``s`` is a pure function of (s, i), so the stream needs no files, can be split
across DataLoader workers by index, and restarts exactly where a resumed training run left off.
Its random streams are keyed differently from every benchmark image's, so it never repeats a
benchmark image (a test checks this on the rendered bytes).
"""

from __future__ import annotations

import numpy as np
from PIL import Image

from cirlib.data.synth.garment_text import garment_caption
from cirlib.data.synth.garments import GARMENT_CATEGORIES, random_garment, render_garment
from cirlib.data.synth.scene_text import scene_caption
from cirlib.data.synth.scenes import random_scene, render_scene

STREAM_ID = 4  # keeps these random streams apart from the benchmark builders' (1, 2, 3)
GARMENT_SHARE = 0.5
PARTIAL_CAPTION_SHARE = 0.3


def pretraining_pair(seed: int, index: int, quality: str | None = None) -> tuple[Image.Image, str]:
    """Pair number ``index`` of the stream for ``seed``: a garment or a scene and its caption.

    The caption is full or (with PARTIAL_CAPTION_SHARE) partial; ``quality="full"`` forces a full
    one, for evaluations that need each caption to pin down its image. The image is the same either way.
    """
    rng = np.random.default_rng([seed, STREAM_ID, index])
    drawn = "partial" if rng.random() < PARTIAL_CAPTION_SHARE else "full"
    quality = quality or drawn
    if rng.random() < GARMENT_SHARE:
        garment = random_garment(GARMENT_CATEGORIES[int(rng.integers(len(GARMENT_CATEGORIES)))], rng)
        return render_garment(garment, rng), garment_caption(garment, rng, quality)
    scene = random_scene(rng, 1, 4)
    return render_scene(scene, rng), scene_caption(scene, rng, quality)

