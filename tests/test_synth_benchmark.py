"""The synthetic benchmark: official layouts, consistent labels, determinism, resumable builds."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from cirlib.cli import main
from cirlib.data import CIRCO, CIRR, DatasetError, FashionIQ, captions_for, read_gallery_captions
from cirlib.data.synth.build import GENERATOR_VERSION, build_benchmark
from cirlib.data.synth.config import preset
from cirlib.data.synth.garments import Garment
from cirlib.data.synth.pretrain import pretraining_pair
from cirlib.data.synth.scene_edits import apply_chain, edit_from_json
from cirlib.data.synth.scenes import scene_from_json


def tree_digest(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def meta(root: Path, name: str):
    return json.loads((root / "synth_meta" / name).read_text())


def test_readers_load_every_split_with_counts_from_the_manifest(small_benchmark):
    out, manifest = small_benchmark
    fiq, cirr, circo = FashionIQ(out / "synth-fashioniq"), CIRR(out / "synth-cirr"), CIRCO(out / "synth-circo")
    for category, splits in manifest["counts"]["synth-fashioniq"].items():
        for split, counts in splits.items():
            triplets = fiq.triplets(category, split)
            assert len(triplets) == counts["queries"] and len(fiq.gallery(category, split)) == counts["gallery"]
            assert all(len(t.captions) == 2 for t in triplets)
            assert all((t.target is None) == (split == "test") for t in triplets)
    for split, counts in manifest["counts"]["synth-cirr"].items():
        triplets = cirr.triplets(split)
        assert len(triplets) == counts["queries"] and len(cirr.gallery(split)) == counts["gallery"]
        assert all(t.reference in t.img_set.members and len(t.img_set.members) == 6 for t in triplets)
        assert all(cirr.image_path(t.reference, split).is_file() for t in triplets)
    assert len(circo.gallery()) == manifest["counts"]["synth-circo"]["gallery"]["images"]
    assert len(circo.queries("val")) == manifest["counts"]["synth-circo"]["val"]["queries"]
    train_paths = {cirr.image_path(n, "train").parent.parent.name for n in cirr.gallery("train")}
    assert train_paths == {"train"}, "train images live in train/<k>/ as in the release"


def test_fashioniq_every_query_has_exactly_one_correct_image(small_benchmark):
    root = small_benchmark[0] / "synth-fashioniq"
    reader = FashionIQ(root)
    garments = {n: Garment(**a) for n, a in meta(root, "attributes.json").items()}
    for category in FashionIQ.CATEGORIES:
        for split in ("train", "val", "test"):
            gallery = [garments[n] for n in reader.gallery(category, split)]
            for query in meta(root, f"queries.{category}.{split}.json"):
                reference, target = garments[query["candidate"]], garments[query["target"]]
                assert sum(g == target for g in gallery) == 1
                differing = [a for a in reference.attributes if reference.attributes[a] != target.attributes[a]]
                assert differing == query["changed"] and 1 <= len(differing) <= 3


def test_cirr_hard_target_is_unique_and_soft_targets_are_exactly_the_set_members_that_fit(small_benchmark):
    root = small_benchmark[0] / "synth-cirr"
    reader = CIRR(root)
    scenes = {n: scene_from_json(s) for n, s in meta(root, "scenes.json").items()}
    for split in ("train", "val"):
        gallery_keys = [scenes[n].key() for n in reader.gallery(split)]
        assert len(set(gallery_keys)) == len(gallery_keys), "no two images of a split show the same scene"
        queries = {q["pairid"]: q for q in meta(root, f"queries.{split}.json")}
        for t in reader.triplets(split):
            allowed = {s.key() for s in apply_chain(scenes[t.reference], [edit_from_json(e) for e in queries[t.pairid]["edits"]])}
            assert scenes[t.target_hard].key() in allowed and scenes[t.reference].key() not in allowed
            fitting = {m for m in t.img_set.members if scenes[m].key() in allowed}
            assert {n for n, v in t.target_soft.items() if v > 0} == fitting
            assert t.target_soft[t.target_hard] == 1.0
            assert t.img_set.members[t.img_set.target_rank] == t.target_hard


def test_circo_gt_ids_are_every_gallery_image_the_caption_allows(small_benchmark):
    root = small_benchmark[0] / "synth-circo"
    reader = CIRCO(root)
    scenes = {int(i): scene_from_json(s) for i, s in meta(root, "scenes.json").items()}
    ids = reader.gallery()
    edits = {q["id"]: [edit_from_json(e) for e in q["edits"]] for q in meta(root, "queries.val.json")}
    for q in reader.queries("val"):
        allowed = {s.key() for s in apply_chain(scenes[q.reference_img_id], edits[q.id])}
        correct = {i for i in ids if scenes[i].key() in allowed}
        assert set(q.gt_img_ids) == correct and q.gt_img_ids[0] == q.target_img_id
        assert q.reference_img_id not in correct
        assert len(q.gt_img_ids) >= 2, "CIRCO-style queries have several correct images"


def test_sanity_baselines_oracle_is_perfect_and_reference_alone_is_weak(small_benchmark):
    sanity = small_benchmark[1]["sanity"]
    assert sanity["synth-fashioniq"]["oracle"]["avg R@1"] == 100.0
    assert sanity["synth-cirr"]["oracle"]["R@1"] == 100.0
    assert sanity["synth-circo"]["oracle"]["5"] == 100.0
    # The small benchmark has few queries; the medium one's datacard records the < 30% R@10 figures.
    assert sanity["synth-fashioniq"]["reference only"]["avg R@10"] < 40.0
    assert sanity["synth-cirr"]["reference only"]["R@10"] < 40.0
    card = (small_benchmark[0] / "synth-cirr" / "datacard.md").read_text()
    assert "reference only" in card and (small_benchmark[0] / "synth-cirr" / "examples.png").is_file()


def test_gallery_captions_cover_every_gallery_image_with_three_captions(small_benchmark):
    root = small_benchmark[0] / "synth-cirr"
    captions = read_gallery_captions(root / "gallery_captions" / "val.json")
    names = CIRR(root).gallery("val")
    assert set(captions) == set(names)
    assert all(len(c) == 3 and all(c) for c in captions_for(names, captions, r=3))


def test_same_seed_gives_byte_identical_files_whatever_the_worker_count(small_benchmark, tmp_path):
    again = tmp_path / "again"
    build_benchmark(again, preset("tiny", seed=0), workers=1)
    first = {k: v for k, v in tree_digest(small_benchmark[0]).items()
             if not k.endswith(("datacard.md", "examples.png")) and k != "manifest.json"}
    second = {k: v for k, v in tree_digest(again).items() if k != "manifest.json"}
    assert first == second
    from cirlib.data.synth.fashioniq import build_fashioniq
    documents, _, _ = build_fashioniq(preset("tiny", seed=1))
    written = json.loads((again / "synth-fashioniq" / "captions" / "cap.dress.val.json").read_text())
    assert documents["captions/cap.dress.val.json"] != written


def test_interrupted_build_resumes_to_the_same_files_and_other_configs_are_refused(small_benchmark, tmp_path):
    out = tmp_path / "b"
    config = preset("tiny", seed=0)
    build_benchmark(out, config, workers=2)
    expected = tree_digest(out)
    # Simulate a kill during rendering: the manifest was never written and some images are gone.
    (out / "manifest.json").unlink()
    (out / ".building.json").write_text(json.dumps({"config": config.to_json(), "generator": GENERATOR_VERSION}))
    for image in sorted((out / "synth-fashioniq" / "images").iterdir())[::7]:
        image.unlink()
    build_benchmark(out, config, workers=2)
    assert tree_digest(out) == expected
    with pytest.raises(DatasetError, match="--overwrite"):
        build_benchmark(out, preset("tiny", seed=3))
    stale = json.loads((out / "manifest.json").read_text())
    (out / "manifest.json").write_text(json.dumps({**stale, "generator": GENERATOR_VERSION - 1}))
    with pytest.raises(DatasetError, match="generator"):
        build_benchmark(out, config)


def test_pretraining_stream_is_deterministic_and_disjoint_from_benchmark_images(small_benchmark):
    image, caption = pretraining_pair(7, 12)
    image_again, caption_again = pretraining_pair(7, 12)
    assert caption == caption_again and image.tobytes() == image_again.tobytes()
    assert pretraining_pair(7, 13)[1] != caption or pretraining_pair(7, 13)[0].tobytes() != image.tobytes()
    out = small_benchmark[0]
    benchmark = {hashlib.sha256(np.asarray(Image.open(p).convert("RGB")).tobytes()).digest()
                 for p in [*(out / "synth-fashioniq" / "images").glob("*.png"), *(out / "synth-cirr").rglob("*.png")]
                 if p.name != "examples.png"}
    stream = {hashlib.sha256(pretraining_pair(0, i)[0].tobytes()).digest() for i in range(300)}
    assert len(stream) == 300 and not stream & benchmark


def test_cli_reuses_a_built_benchmark_and_reports_config_errors(small_benchmark, capsys):
    out = small_benchmark[0]
    assert main(["synth", "--out", str(out), "--size", "tiny"]) == 0
    printed = capsys.readouterr().out
    assert "reference only" in printed and '"seed": 0' in printed
    assert main(["synth", "--out", str(out), "--size", "tiny", "--seed", "5"]) == 2
    assert "--overwrite" in capsys.readouterr().err
