"""Reduced precision on the CPU: the GPU-only dtype bugs (issue 13) caught where CI runs.

Every fusion module forward and backward under CUDA-like autocast (``tests.precision``) and with
bf16/fp16 parameters; the trainers under CPU autocast; the precision switches themselves.
"""

from __future__ import annotations

import dataclasses
import json

import pytest
import torch
import torch.nn.functional as F

from cirlib.analysis.gating import routing_weights
from cirlib.experiments.jobs import fusion_method
from cirlib.fusion import FUSIONS, MoECombiner, build_fusion
from cirlib.fusion.moe import route
from cirlib.inversion import LinCIRConfig, Pic2WordConfig, SearleConfig, train_lincir, train_pic2word, train_searle
from cirlib.inversion.loop import load_phi
from cirlib.train.loss import batch_classification_loss
from cirlib.train.pretrain import PretrainConfig, pretrain
from cirlib.train.stage2 import FusionTrainConfig, load_trained_fusion, train_fusion
from cirlib.util.device import compute_precision, exact_float32, resolve_precision
from tests.precision import cuda_autocast, cuda_float32_policy
from tests.test_inversion import tiny_setup  # noqa: F401  (a fixture)
from tests.test_pretrain import tiny_config
from tests.test_train import config, recall_at_1, toy_task

D = 16
LOW = [torch.bfloat16, torch.float16]
OPTIONS = {"sum": {}, "combiner": {"projection_dim": 16, "hidden_dim": 24},
           "bilinear": {"projection_dim": 16, "hidden_dim": 24, "bilinear_dim": 4},
           "moe": {"projection_dim": 16, "hidden_dim": 24}}
# bf16 keeps 8 bits of mantissa (fp16 11): a unit vector's entries agree with float32 to about this much
TOLERANCE = {torch.bfloat16: 0.06, torch.float16: 0.01}


def _pairs(n: int = 9, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(n, D, generator=generator) * 3, torch.randn(n, D, generator=generator) * 2


def _model(name: str, **options) -> torch.nn.Module:
    torch.manual_seed(0)
    return build_fusion(name, D, **(OPTIONS[name] | options)).eval()


def test_the_emulation_promotes_what_cuda_autocast_promotes():
    """The helper itself: matmuls go low, softmax/layer_norm/normalize go float32 (CPU autocast alone keeps bf16)."""
    x = torch.randn(4, 8)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert torch.softmax(F.linear(x, torch.randn(3, 8)), -1).dtype == torch.bfloat16
    with cuda_autocast():
        low = F.linear(x, torch.randn(3, 8))
        assert low.dtype == torch.bfloat16
        assert {torch.softmax(low, -1).dtype, low.softmax(-1).dtype, F.layer_norm(low, (3,)).dtype,
                F.normalize(low, dim=-1).dtype} == {torch.float32}
    assert torch.softmax(x.bfloat16(), -1).dtype == torch.bfloat16  # outside autocast nothing changes


@pytest.mark.parametrize("dtype", LOW + [torch.float32])
def test_routing_weights_are_float32_and_pick_the_same_experts(dtype):
    logits = torch.randn(20, 4, generator=torch.Generator().manual_seed(0)).to(dtype)
    for routing in ("topk", "soft"):
        weights = route(logits, 2, routing)
        assert weights.dtype == torch.float32
        assert torch.equal(weights, route(logits.float(), 2, routing))
        assert torch.allclose(weights.sum(1), torch.ones(20))


@pytest.mark.parametrize("dtype", LOW, ids=str)
@pytest.mark.parametrize("name", list(FUSIONS))
def test_forward_and_backward_under_cuda_autocast(name, dtype):
    """The class of the H200 crash: MoE's scatter of a float32 softmax into bf16 logits."""
    image, text = _pairs()
    model = _model(name).train()
    reference = _model(name).train()
    torch.manual_seed(1)
    with cuda_autocast(dtype):
        query = model(image.requires_grad_(), text)
    torch.manual_seed(1)
    expected = reference(image.detach(), text)  # the same dropout masks, in float32
    assert query.shape == (len(image), D) and torch.isfinite(query).all()
    assert (query.float() - expected).abs().max() < TOLERANCE[dtype]
    query.float().square().sum().backward()
    assert torch.isfinite(image.grad).all() and image.grad.abs().sum() > 0
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    assert all(torch.isfinite(g).all() for g in grads) and (name == "sum" or grads)


@pytest.mark.parametrize("dtype", LOW, ids=str)
@pytest.mark.parametrize("name", list(FUSIONS))
def test_forward_and_backward_with_low_precision_parameters_and_inputs(name, dtype):
    image, text = _pairs()
    model = _model(name).to(dtype)
    query = model(image.to(dtype).requires_grad_(), text.to(dtype))
    assert query.dtype == dtype
    assert (query.float() - _model(name)(image, text)).abs().max() < TOLERANCE[dtype]
    query.float().sum().backward()
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)


@pytest.mark.parametrize("dtype", LOW, ids=str)
def test_moe_routing_statistics_under_cuda_autocast(dtype):
    image, text = _pairs(32)
    model = _model("moe", load_balance_weight=0.5, router_noise=0.1).train()
    with cuda_autocast(dtype):
        _, routing = model(image, text, return_routing=True, disabled_experts=[3])
    assert routing.weights.dtype == torch.float32 and torch.allclose(routing.weights.sum(1), torch.ones(32))
    assert (routing.weights[:, 3] == 0).all() and ((routing.weights > 0).sum(1) == 2).all()
    assert routing.aux_loss.dtype == torch.float32 and torch.isfinite(routing.aux_loss)


def test_the_loss_is_computed_in_float32_from_low_precision_queries():
    queries, targets = _pairs(8)
    expected = batch_classification_loss(queries, targets)
    loss = batch_classification_loss(queries.bfloat16(), targets.bfloat16())
    assert loss.dtype == torch.float32 and abs(loss.item() - expected.item()) < 0.3


@pytest.mark.parametrize("fusion", ["combiner", "moe"])
def test_stage2_training_in_bf16_under_cuda_autocast_learns_and_saves_float32(tmp_path, fusion):
    data, held_out = toy_task()
    options = {"projection_dim": 32, "hidden_dim": 32, "dropout": 0.0} | ({"expert_dropout": 0.0} if fusion == "moe"
                                                                          else {})
    runs = {}
    for precision in ("float32", "bfloat16"):
        run = config(tmp_path / precision, fusion=fusion, fusion_options=options, precision=precision)
        with cuda_float32_policy():  # CPU autocast (precision="bfloat16") then behaves as CUDA's would
            train_fusion(run, data, None, progress=False)
        model, _ = load_trained_fusion(tmp_path / precision / "run" / "last.safetensors")
        assert all(p.dtype == torch.float32 for p in model.parameters())
        log = json.loads((tmp_path / precision / "run" / "log.json").read_text())["log"]
        runs[precision] = recall_at_1(fusion_method(model)(*held_out[:2]), held_out[2]), log
    (full, full_log), (low, low_log) = runs["float32"], runs["bfloat16"]
    assert low_log[-1]["train loss"] < 0.8 * low_log[0]["train loss"]
    assert low_log[0]["train loss"] != full_log[0]["train loss"]  # bf16 really ran
    assert abs(low - full) <= 10, (low, full)  # recall@1 in %, 200 held-out queries


@pytest.mark.parametrize("config_class", [FusionTrainConfig, PretrainConfig, Pic2WordConfig, SearleConfig])
def test_precision_is_validated_with_the_config(config_class):
    with pytest.raises(ValueError, match="field 'precision' is 'fp8'; expected one of auto, float32, bfloat16, float16"):
        config_class(precision="fp8")


def test_pretraining_runs_in_bf16(tmp_path):
    config = dataclasses.replace(tiny_config(tmp_path / "run", steps=12), precision="bfloat16")
    with cuda_float32_policy():
        pretrain(config)
    losses = [row["loss"] for row in json.loads((tmp_path / "run" / "log.json").read_text())]
    assert all(map(torch.isfinite, torch.tensor(losses))) and min(losses[-3:]) < max(losses[:3])


@pytest.mark.parametrize("train, config_class, extra", [
    (train_pic2word, Pic2WordConfig, {}),
    (train_lincir, LinCIRConfig, {}),
    (train_searle, SearleConfig, {"oti_steps": 3, "oti_pairs": 64, "oti_batch_size": 64, "phrases_per_concept": 2}),
], ids=["pic2word", "lincir", "searle"])
def test_inversion_trainers_run_in_bf16(tiny_setup, train, config_class, extra):  # noqa: F811
    root, common = tiny_setup
    settings = common | {"steps": 8, "precision": "bfloat16"}
    with cuda_float32_policy():
        run = train(config_class(**settings, **extra, out=str(root / f"bf16-{config_class.__name__}")))
    _, record = load_phi(run)
    assert record["step"] == 8 and all(torch.isfinite(torch.tensor([row["loss"] for row in record["log"]])))


def test_exact_float32_leaves_the_legacy_tf32_flags_readable():
    """torch refuses to read its older allow_tf32 flags once the new ones disagree: the block must restore them."""
    before = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    with exact_float32():
        pass
    assert (torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32) == before


def test_exact_float32_switches_tf32_off_and_restores_the_callers_setting():
    matmul, conv = torch.backends.cuda.matmul, torch.backends.cudnn.conv
    saved = matmul.fp32_precision, conv.fp32_precision
    try:
        matmul.fp32_precision = conv.fp32_precision = "tf32"
        with pytest.raises(KeyError), exact_float32():
            assert (matmul.fp32_precision, conv.fp32_precision) == ("ieee", "ieee")
            raise KeyError("an error inside the block")
        assert (matmul.fp32_precision, conv.fp32_precision) == ("tf32", "tf32")
    finally:
        matmul.fp32_precision, conv.fp32_precision = saved


def test_precision_resolution_and_contexts():
    cuda, cpu = torch.device("cuda"), torch.device("cpu")
    assert resolve_precision("auto", cuda) == "bfloat16" and resolve_precision("auto", cpu) == "float32"
    assert resolve_precision("float16", cpu) == "float16"
    with pytest.raises(ValueError, match="precision must be one of"):
        resolve_precision("half", cpu)
    x = torch.randn(3, 4)
    for precision, dtype in (("auto", torch.float32), ("float32", torch.float32), ("bfloat16", torch.bfloat16),
                             ("float16", torch.float16)):
        with compute_precision(cpu, precision):
            assert (x @ x.T).dtype == dtype, precision


def test_evaluation_forward_is_float32_with_tf32_off_whatever_the_training_precision():
    """fusion_method (every trained row of every table) scores in exact float32 on any device."""
    model = _model("moe")
    seen = []
    model.router.register_forward_hook(lambda *_: seen.append(torch.backends.cuda.matmul.fp32_precision))
    image, text = _pairs()
    with torch.autocast("cpu", dtype=torch.bfloat16):  # a caller's autocast does not leak into evaluation
        queries = fusion_method(model)(image, text)
    assert queries.dtype == torch.float32 and seen == ["ieee"]
    with torch.no_grad():
        assert torch.equal(queries, model(image, text))


def test_moe_default_is_unchanged_by_the_float32_routing():
    """The faithful default still mixes exactly two experts per query, weights from a softmax of their logits."""
    image, text = _pairs()
    model = _model("moe")
    with torch.no_grad():
        _, routing = model(image, text, return_routing=True)
        values, experts = routing.logits.topk(2, dim=-1)
        assert torch.allclose(routing.weights.gather(1, experts), torch.softmax(values, -1))
    assert isinstance(model, MoECombiner)


def test_routing_analysis_is_float32_whatever_the_callers_autocast():
    image, text = _pairs(16)
    model = _model("moe")
    plain = routing_weights(model, image, text)
    with cuda_autocast():
        inside = routing_weights(model, image, text)
    assert all(t.dtype == torch.float32 for t in inside)
    # float32 rounding only (the emulation's TorchFunctionMode sends attention down its unfused path);
    # the same routing computed in bf16 is off by about 1e-2
    assert all(torch.allclose(a, b, atol=1e-6) for a, b in zip(plain, inside))
