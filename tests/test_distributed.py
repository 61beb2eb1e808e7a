"""Process-group plumbing: each process's device (tested without GPUs), and feature extraction by two CPU
processes (gloo) that share every chunk's batches and write the one cache file a single process writes."""

from __future__ import annotations

from datetime import timedelta
from types import SimpleNamespace

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from PIL import Image
from safetensors import safe_open
from safetensors.torch import load_file, save_file

import cirlib.features.cache as cache_module
from cirlib.encoders import load_encoder
from cirlib.features import FeatureCache
from cirlib.util.distributed import DistContext, backend_for, init_distributed, rank_device, shard_batches
from cirlib.util.tensor_io import save_tensors
from tests.test_ddp import as_torchrun_process, free_port

# 21 images in chunks of 8 + 8 + 5 and 11 texts in 8 + 3, in batches of 3: every chunk ends with a short
# batch, and in the last text chunk (one batch) the second process has nothing to encode
CHUNK, BATCH, IMAGES = 8, 3, 21
TEXTS = [f"is {colour} with {n} stripes" for colour, n in zip(["red", "blue", "green", "black"] * 3, range(11))]


@pytest.mark.parametrize("device, local_rank, cuda_count, expected", [
    ("auto", 1, 2, "cuda:1"), ("auto", 0, 0, "cpu"), ("cpu", 1, 4, "cpu"), ("cuda", 3, 4, "cuda:3"),
    ("cuda:1", 0, 2, "cuda:1")])
def test_each_process_gets_its_own_gpu_or_the_cpu(device, local_rank, cuda_count, expected):
    resolved = rank_device(device, local_rank, cuda_count)
    assert resolved == torch.device(expected)
    assert backend_for(resolved) == ("nccl" if expected.startswith("cuda") else "gloo")


@pytest.mark.parametrize("device, local_rank, cuda_count, message", [
    ("auto", 2, 2, r"LOCAL_RANK 2 needs cuda:2 but 2 CUDA device\(s\) .* --nproc_per_node <= 2 .* or device 'cpu'"),
    ("cuda", 1, 1, r"LOCAL_RANK 1 needs cuda:1 but 1 CUDA device\(s\) .* --nproc_per_node <= 1 .* or device 'cpu'"),
    ("cuda", 0, 0, r"LOCAL_RANK 0 needs cuda:0 but 0 CUDA device\(s\) are visible: use device 'cpu'"),
    ("cuda:2", 0, 2, r"'cuda:2' was asked for but 2 CUDA device\(s\)")])
def test_more_processes_than_gpus_is_refused_with_the_fix(device, local_rank, cuda_count, message):
    with pytest.raises(ValueError, match=message):
        rank_device(device, local_rank, cuda_count)


def test_init_distributed_picks_the_local_rank_gpu_unless_told_cpu(monkeypatch):
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)  # no CUDA tensor is made: world size 1
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    monkeypatch.setenv("LOCAL_RANK", "1")
    assert init_distributed("auto") == DistContext(0, 1, torch.device("cuda", 1))
    assert init_distributed("cpu") == DistContext(0, 1, torch.device("cpu"))


def test_the_shards_of_all_processes_are_the_batches_dealt_in_turn():
    items = list(range(11))
    shards = [shard_batches(items, 3, DistContext(rank, 2, torch.device("cpu"))) for rank in range(2)]
    assert shards == [[0, 1, 2, 6, 7, 8], [3, 4, 5, 9, 10]]
    assert shard_batches(items, 3, None) == items


def _extract(cache: FeatureCache, encoder, images: list) -> dict[str, torch.Tensor]:
    return {"images": cache.image_features(encoder, [p.stem for p in images], images, "toy", batch_size=BATCH,
                                           num_workers=0, progress=False),
            "texts": cache.text_features(encoder, TEXTS, "toy", batch_size=BATCH, progress=False)}


def _worker(rank: int, world_size: int, port: int, root, images: list) -> None:
    """One torchrun process: a fresh extraction, the same again (now from the cache file), and one that
    resumes from a chunk saved before, where only the main process's folder holds files (as on nodes
    without a shared file system); every process saves what it got."""
    as_torchrun_process(rank, world_size, port)
    # the group init_distributed would start, with a timeout: processes that disagree on their
    # collectives then fail the test instead of hanging it
    dist.init_process_group("gloo", timeout=timedelta(seconds=60))
    try:
        context, encoder = init_distributed("cpu"), load_encoder(device="cpu")
        fresh = FeatureCache(root / "ddp", CHUNK, context)
        first, again = _extract(fresh, encoder, images), _extract(fresh, encoder, images)
        own_folder = root / ("resumed" if context.is_main else f"resumed-rank{rank}")
        resumed = _extract(FeatureCache(own_folder, CHUNK, context), encoder, images)["images"]
        save_file({"first images": first["images"], "first texts": first["texts"], "again images": again["images"],
                   "again texts": again["texts"], "resumed images": resumed}, str(root / f"rank{rank}.safetensors"))
    finally:
        dist.destroy_process_group()


class Interrupted(Exception):
    pass


def _plant_first_chunk(folder, encoder, images: list) -> torch.Tensor:
    """An extraction killed after its first chunk, whose saved features are then replaced by recognisable
    ones (same key): a resumed run must take them from the file."""
    real, calls = cache_module.encode_images, []

    def dies_on_second_chunk(*args, **options):
        calls.append(1)
        if len(calls) == 2:
            raise Interrupted
        return real(*args, **options)
    with pytest.MonkeyPatch.context() as patch, pytest.raises(Interrupted):
        patch.setattr(cache_module, "encode_images", dies_on_second_chunk)
        _extract(FeatureCache(folder, CHUNK), encoder, images)
    (part,) = folder.glob(f".*part0-{CHUNK}.safetensors")
    with safe_open(str(part), framework="pt") as handle:
        metadata, shape = handle.metadata(), handle.get_slice("features").get_shape()
    planted = torch.arange(shape[0] * shape[1], dtype=torch.float32).view(shape)
    save_tensors(part, {"features": planted}, metadata)
    return planted


@pytest.fixture(scope="module")
def extracted(tmp_path_factory):
    """One process's features (one thread, as each spawned process has), then two processes' own."""
    root = tmp_path_factory.mktemp("extraction")
    (root / "img").mkdir()
    images = [root / "img" / f"{i:02d}.png" for i in range(IMAGES)]
    for i, path in enumerate(images):
        Image.new("RGB", (30 + 3 * i, 40), (11 * i, 250 - 9 * i, 40 + 5 * i)).save(path)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        encoder = load_encoder(device="cpu")
        reference = _extract(FeatureCache(root / "single", CHUNK), encoder, images)
        planted = _plant_first_chunk(root / "resumed", encoder, images)
    finally:
        torch.set_num_threads(threads)
    mp.spawn(_worker, args=(2, free_port(), root, images), nprocs=2, join=True)
    ranks = [load_file(str(root / f"rank{rank}.safetensors")) for rank in range(2)]
    return SimpleNamespace(root=root, images=images, reference=reference, planted=planted, ranks=ranks)


def test_two_processes_extract_exactly_what_one_process_does(extracted):
    for got in extracted.ranks:
        for kind in ("images", "texts"):
            assert torch.equal(got[f"first {kind}"], extracted.reference[kind]), kind
            assert torch.equal(got[f"again {kind}"], extracted.reference[kind]), kind
    assert extracted.reference["images"].shape[0] == IMAGES and extracted.reference["texts"].shape[0] == len(TEXTS)


def test_two_processes_write_the_one_cache_file_one_process_then_reads(extracted, monkeypatch):
    ddp, single = extracted.root / "ddp", extracted.root / "single"
    names = sorted(p.name for p in ddp.glob("*.safetensors"))  # beside the file-hash memo
    assert len(names) == 2 and names == sorted(p.name for p in single.glob("*.safetensors"))  # same keys, no parts left
    assert [n.split("-")[1] for n in names] == ["images", "texts"]

    def refuse(*args, **options):
        raise AssertionError("the cache file of the two processes should have been read")
    monkeypatch.setattr(cache_module, "encode_images", refuse)
    monkeypatch.setattr(cache_module, "encode_texts", refuse)
    read = _extract(FeatureCache(ddp, CHUNK), load_encoder(device="cpu"), extracted.images)
    for kind in ("images", "texts"):
        assert torch.equal(read[kind], extracted.reference[kind])


def test_two_processes_resume_from_the_chunk_only_the_main_process_can_see(extracted):
    for got in extracted.ranks:
        resumed = got["resumed images"]
        assert torch.equal(resumed[:CHUNK], extracted.planted)
        assert torch.equal(resumed[CHUNK:], extracted.reference["images"][CHUNK:])
    assert not list((extracted.root / "resumed").glob(".*.safetensors")), "no chunk outlives the complete file"
    assert not (extracted.root / "resumed-rank1").exists(), "only the main process touches files"
