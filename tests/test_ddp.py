"""Two CPU processes under DistributedDataParallel (gloo) train what one process does on the same global
batch: each takes half of every batch, the targets are gathered, gradients are averaged. ``free_port`` and
``as_torchrun_process`` start such processes for other tests too."""

from __future__ import annotations

import json
import os
import socket

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from safetensors.torch import load_file

from cirlib.train.stage2 import load_trained_fusion, train_fusion
from tests.test_train import config, toy_task

NO_DROPOUT = {"combiner": {"projection_dim": 32, "hidden_dim": 32, "dropout": 0.0},
              "moe": {"projection_dim": 16, "hidden_dim": 24, "dropout": 0.0, "expert_dropout": 0.0}}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def as_torchrun_process(rank: int, world_size: int, port: int) -> None:
    """The environment torchrun gives each process (on one node, one CPU thread each)."""
    os.environ.update({"MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port), "RANK": str(rank),
                       "LOCAL_RANK": str(rank), "WORLD_SIZE": str(world_size), "LOCAL_WORLD_SIZE": str(world_size),
                       "OMP_NUM_THREADS": "1"})
    torch.set_num_threads(1)


def _worker(rank: int, world_size: int, port: int, run_configs) -> None:
    """What torchrun does for each process: the environment, then the ordinary entry point."""
    as_torchrun_process(rank, world_size, port)
    try:
        for run_config in run_configs:
            train_fusion(run_config, toy_task()[0], None, progress=False)
    finally:
        dist.destroy_process_group()


def test_two_processes_match_one_process_on_the_same_global_batch(tmp_path):
    fusions = list(NO_DROPOUT)
    # device "cpu" (gloo) even where CUDA is visible: the test is about CPU processes
    runs = {(fusion, mode): config(tmp_path / mode / fusion, fusion=fusion, fusion_options=NO_DROPOUT[fusion],
                                   epochs=2, device="cpu") for fusion in fusions for mode in ("single", "ddp")}
    for fusion in fusions:
        train_fusion(runs[fusion, "single"], toy_task()[0], None, progress=False)
    mp.spawn(_worker, args=(2, free_port(), [runs[f, "ddp"] for f in fusions]), nprocs=2, join=True)
    held_out = toy_task()[1]
    for fusion in fusions:
        one, two = (load_file(str(tmp_path / mode / fusion / "run" / "last.safetensors")) for mode in ("single", "ddp"))
        weights = [k for k in one if k.startswith("model.")]
        assert weights and set(weights) == {k for k in two if k.startswith("model.")}
        for key in weights:
            a, b = one[key], two[key]
            if key == "model.attention.in_proj_bias":
                # the key bias cannot change any attention output, so its exact gradient is 0 and Adam
                # turns float rounding into full-size steps: compare the query and value biases only
                a, b = a.view(3, -1)[[0, 2]], b.view(3, -1)[[0, 2]]
            assert torch.allclose(a, b, atol=1e-6), (fusion, key)
        models = [load_trained_fusion(tmp_path / mode / fusion / "run" / "last.safetensors")[0]
                  for mode in ("single", "ddp")]
        with torch.no_grad():
            assert torch.allclose(models[0](*held_out[:2]), models[1](*held_out[:2]), atol=1e-5)
        logs = [json.loads((tmp_path / mode / fusion / "run" / "log.json").read_text())["log"]
                for mode in ("single", "ddp")]
        assert [abs(x["train loss"] - y["train loss"]) < 1e-5 for x, y in zip(*logs)] == [True, True]
        assert logs[0][0]["train loss"] > logs[0][1]["train loss"]  # it trained
