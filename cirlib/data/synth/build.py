"""Build the three synthetic datasets under one folder, resumably.

``out/manifest.json`` is written last and holds the configuration and the counts: its presence
with the same configuration means the benchmark is complete, so a second call returns at once.
``out/.building.json`` marks a build in progress; a rerun with the same configuration resumes it
(images already on disk are kept: they are deterministic), and a different configuration is
refused rather than mixed into the same folder.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from ...atomic import write_json
from ..errors import DatasetError
from .circo import build_circo
from .cirr import build_cirr
from .config import SynthConfig
from .fashioniq import build_fashioniq
from .render import render_all

BUILDERS = {"synth-fashioniq": build_fashioniq, "synth-cirr": build_cirr, "synth-circo": build_circo}
MANIFEST = "manifest.json"
IN_PROGRESS = ".building.json"
# Bump when the generator's output changes, so that data written by an older version is never reused.
GENERATOR_VERSION = 1


def _stored_config(path: Path) -> dict | None:
    if not path.exists():
        return None
    stored = json.loads(path.read_text())
    return {**stored["config"], "generator": stored.get("generator")}


def build_benchmark(out: Path | str, config: SynthConfig, workers: int | None = None, overwrite: bool = False) -> dict:
    """Write synth-fashioniq, synth-cirr and synth-circo under ``out``; return the manifest."""
    out = Path(out)
    wanted = {**config.to_json(), "generator": GENERATOR_VERSION}
    for marker in (MANIFEST, IN_PROGRESS):
        stored = _stored_config(out / marker)
        if stored is not None and stored != wanted:
            if not overwrite:
                raise DatasetError(out / marker, f"this folder holds a benchmark built with another configuration "
                                   f"(seed {stored['seed']}, size {stored['size']}, generator {stored['generator']})",
                                   "choose another --out folder, or pass --overwrite to replace it")
            shutil.rmtree(out)
            break
    if _stored_config(out / MANIFEST) == wanted:
        return json.loads((out / MANIFEST).read_text())
    record = {"config": config.to_json(), "generator": GENERATOR_VERSION}
    write_json(out / IN_PROGRESS, record)
    counts = {}
    for name, build in BUILDERS.items():
        jobs, counts[name] = build(out / name, config)
        render_all(jobs, out / name, config.seed, workers=workers, desc=name)
    manifest = {**record, "counts": counts}
    write_json(out / MANIFEST, manifest)
    (out / IN_PROGRESS).unlink()
    return manifest


def synth_labels(dataset_root: Path | str) -> dict[str, dict]:
    """Attribute labels of a synthetic dataset's images: {image name (CIRCO: id) -> attributes}."""
    meta = Path(dataset_root) / "synth_meta"
    path = meta / "attributes.json" if (meta / "attributes.json").exists() else meta / "scenes.json"
    return json.loads(path.read_text())
