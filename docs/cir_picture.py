"""Draw docs/cir.png, the README's picture of composed image retrieval, from the small synthetic benchmark.

    python docs/cir_picture.py        # builds data/synth-small first if it is missing (about 12 s)
"""

from pathlib import Path

from cirlib.analysis.benchmark import prepare_benchmark
from cirlib.data import CIRR, FashionIQ
from cirlib.data.synth.config import preset
from cirlib.viz.plots import composed_queries

ROOT = Path(__file__).resolve().parents[1]
benchmark = ROOT / "data" / "synth-small"
prepare_benchmark(benchmark, preset("small"))
fashion, scenes = FashionIQ(benchmark / "synth-fashioniq"), CIRR(benchmark / "synth-cirr")
dress = fashion.triplets("dress", "val")[0]
scene = scenes.triplets("val")[1]
figure = composed_queries([
    (fashion.image_path(dress.candidate), " and ".join(dress.captions), fashion.image_path(dress.target)),
    (scenes.image_path(scene.reference, "val"), scene.caption, scenes.image_path(scene.target_hard, "val"))])
figure.savefig(ROOT / "docs" / "cir.png", dpi=110, bbox_inches="tight")
print(f"wrote {ROOT / 'docs' / 'cir.png'}")
