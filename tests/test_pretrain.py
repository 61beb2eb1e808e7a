"""Contrastive pretraining: the loss falls, a resumed run repeats the uninterrupted one exactly."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from cirlib.train.checkpoint import load_checkpoint, read_record, save_checkpoint
from cirlib.train.pretrain import PretrainConfig, batch_indices, learning_rate, pretrain
from tests.helpers import TINY_CLIP


def tiny_config(out, steps: int) -> PretrainConfig:
    return PretrainConfig(out=str(out), model=json.loads(json.dumps(TINY_CLIP)), steps=steps, batch_size=32,
                          lr=2e-3, warmup_steps=3, pool_size=256, eval_pairs=64, eval_every=10, checkpoint_every=5,
                          device="cpu", workers=1)


def test_thirty_steps_lower_the_loss(tmp_path):
    config = tiny_config(tmp_path / "run", steps=30)
    pretrain(config)
    losses = [row["loss"] for row in json.loads((tmp_path / "run" / "log.json").read_text())]
    assert np.mean(losses[-5:]) < np.mean(losses[:5]) - 0.3
    exported = load_file(str(tmp_path / "run" / "model" / "open_clip_model.safetensors"))
    assert all(t.dtype == torch.float16 for t in exported.values())


def test_resume_continues_the_same_trajectory(tmp_path, monkeypatch):
    pretrain(tiny_config(tmp_path / "straight", steps=10))
    import cirlib.train.pretrain as module
    real_rate = module.learning_rate

    def killed_at_step_7(step, config):  # the run dies after the step-5 checkpoint, mid-way to the next
        if step == 7:
            raise KeyboardInterrupt
        return real_rate(step, config)
    monkeypatch.setattr(module, "learning_rate", killed_at_step_7)
    with pytest.raises(KeyboardInterrupt):
        pretrain(tiny_config(tmp_path / "resumed", steps=10))
    monkeypatch.setattr(module, "learning_rate", real_rate)
    pretrain(tiny_config(tmp_path / "resumed", steps=10), resume=True)
    straight = json.loads((tmp_path / "straight" / "log.json").read_text())
    resumed = json.loads((tmp_path / "resumed" / "log.json").read_text())
    assert [r["loss"] for r in straight] == [r["loss"] for r in resumed]
    a = load_file(str(tmp_path / "straight" / "checkpoint.safetensors"))
    b = load_file(str(tmp_path / "resumed" / "checkpoint.safetensors"))
    assert all(torch.equal(a[k], b[k]) for k in a if k.startswith("model."))


def test_checkpoint_round_trip_restores_model_and_optimizer(tmp_path):
    model = torch.nn.Linear(4, 3)
    optimizer = torch.optim.AdamW(model.parameters(), lr=0.1)
    model(torch.randn(8, 4)).sum().backward()
    optimizer.step()
    save_checkpoint(tmp_path / "c.safetensors", model, optimizer, {"step": 1})
    fresh = torch.nn.Linear(4, 3)
    fresh_optimizer = torch.optim.AdamW(fresh.parameters(), lr=0.5)
    assert load_checkpoint(tmp_path / "c.safetensors", fresh, fresh_optimizer) == {"step": 1}
    assert read_record(tmp_path / "c.safetensors") == {"step": 1}
    assert torch.equal(fresh.weight, model.weight)
    assert fresh_optimizer.param_groups[0]["lr"] == 0.1
    assert torch.equal(fresh_optimizer.state_dict()["state"][0]["exp_avg"], optimizer.state_dict()["state"][0]["exp_avg"])


def test_schedule_and_batches():
    config = PretrainConfig(steps=100, warmup_steps=10, lr=1.0, pool_size=64, batch_size=16)
    assert learning_rate(0, config) == 0.1 and learning_rate(9, config) == 1.0
    assert abs(learning_rate(55, config) - 0.5) < 1e-9 and learning_rate(100, config) == 0.0
    epoch = np.concatenate([batch_indices(s, config) for s in range(4)])
    assert sorted(epoch) == list(range(64))  # one epoch visits every pool row once
    assert not np.array_equal(batch_indices(4, config), batch_indices(0, config))
