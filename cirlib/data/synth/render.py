"""Render every image of a benchmark, in parallel, each from its own seeded random stream.

An image's pixels depend only on the benchmark seed, its file path and its attributes, never on
the order or the process that renders it, so any number of workers gives byte-identical files.
Files are written atomically and existing ones are kept, so an interrupted build resumes.
"""

from __future__ import annotations

import io
import os
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from cirlib.data.synth.garments import Garment, render_garment
from cirlib.data.synth.scenes import Scene, render_scene
from cirlib.util.atomic import write_atomic
from cirlib.util.errors import ConfigError
from cirlib.util.workers import process_pool


@dataclass(frozen=True)
class RenderJob:
    path: str            # relative to the output root
    item: Garment | Scene


def image_rng(seed: int, path: str, stream: str = "image") -> np.random.Generator:
    """The random stream of one image: a function of the seed and the image's path only."""
    return np.random.default_rng([seed, zlib.crc32(path.encode()), zlib.crc32(stream.encode())])


def render_image(item: Garment | Scene, rng: np.random.Generator):
    return render_garment(item, rng) if isinstance(item, Garment) else render_scene(item, rng)


def encode_image(image, suffix: str) -> bytes:
    buffer = io.BytesIO()
    if suffix == ".png":
        image.save(buffer, format="PNG", compress_level=1)
    else:
        image.save(buffer, format="JPEG", quality=92)
    return buffer.getvalue()


def _render_one(args: tuple[Path, int, RenderJob]) -> None:
    root, seed, job = args
    target = root / job.path
    if target.exists():
        return
    data = encode_image(render_image(job.item, image_rng(seed, job.path)), target.suffix)
    write_atomic(target, lambda handle: handle.write(data))


def resolve_workers(workers: int | None) -> int:
    """The number of rendering processes: ``workers``, or every core for None; below 1 is refused.

    Callers check it before writing anything, so a bad ``--workers`` never leaves a half-made folder.
    """
    if workers is None:
        return os.cpu_count() or 1
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise ConfigError("cirlib synth", "workers", workers,
                          "a whole number >= 1 of rendering processes (--workers N); leave it out to use every core")
    return workers


def render_all(jobs: list[RenderJob], root: Path, seed: int, workers: int | None = None, desc: str = "render") -> None:
    """Render ``jobs`` under ``root`` with ``workers`` processes (default: all cores)."""
    workers = resolve_workers(workers)
    tasks = [(root, seed, job) for job in jobs]
    if workers == 1 or len(tasks) < 64:
        for task in tqdm(tasks, desc=desc, unit="img", mininterval=1.0):
            _render_one(task)
        return
    with process_pool(workers) as pool:
        for _ in tqdm(pool.imap_unordered(_render_one, tasks, chunksize=64), total=len(tasks), desc=desc, unit="img",
                      mininterval=1.0):
            pass
