"""Fusion modules: shapes, normalisation, exact designs, routing, vectorised dispatch, parameter counts."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from cirlib.fusion import (
    FUSIONS,
    BilinearCombiner,
    Combiner,
    MoECombiner,
    build_fusion,
    fuse,
    load_balancing_loss,
    parameter_count,
    sum_fusion,
    text_only,
)

D = 16


@pytest.fixture
def features():
    generator = torch.Generator().manual_seed(0)
    return torch.randn(7, D, generator=generator) * 3, torch.randn(7, D, generator=generator) * 2


@pytest.mark.parametrize("name", list(FUSIONS))
def test_every_fusion_maps_n_pairs_to_n_unit_queries_and_is_deterministic_in_eval(name, features):
    torch.manual_seed(0)
    model = build_fusion(name, D, **({} if name == "sum" else {"projection_dim": 8, "hidden_dim": 12})
                         | ({"bilinear_dim": 4} if name == "bilinear" else {})).eval()
    image, text = features
    query = model(image, text)
    assert query.shape == (7, D)
    assert torch.allclose(query.norm(dim=-1), torch.ones(7), atol=1e-6)
    assert torch.equal(query, model(image, text))
    assert fuse(model, image, text)[1] is None


def test_build_fusion_names_the_valid_choices():
    with pytest.raises(ValueError, match="choose one of sum, combiner, bilinear, moe"):
        build_fusion("mlp", D)
    with pytest.raises(ValueError, match="unknown option.*hiden_dim.*valid: projection_dim, hidden_dim"):
        build_fusion("combiner", D, hiden_dim=4)


def test_combiner_residual_is_a_learned_mix_of_raw_features(features):
    """With the branch output zeroed, lambda = sigmoid(bias): 0.5 gives the sum, +inf the text alone."""
    image, text = features
    model = Combiner(D, projection_dim=8, hidden_dim=12).eval()
    with torch.no_grad():
        model.output.weight.zero_(), model.output.bias.zero_()
        model.dynamic_scalar[1].weight.zero_(), model.dynamic_scalar[1].bias.zero_()
        assert torch.allclose(model(image, text), sum_fusion(image, text), atol=1e-6)
        model.dynamic_scalar[1].bias.fill_(50.0)
        assert torch.allclose(model(image, text), text_only(image, text), atol=1e-6)


def test_combiner_equals_the_formula_written_out(features):
    image, text = features
    torch.manual_seed(1)
    m = Combiner(D, projection_dim=8, hidden_dim=12).eval()
    lin = lambda layer, x: x @ layer.weight.T + layer.bias  # noqa: E731
    joint = torch.cat([F.relu(lin(m.text_projection[0], text)), F.relu(lin(m.image_projection[0], image))], dim=1)
    branch = lin(m.output, F.relu(lin(m.combiner[0], joint)))
    scalar = torch.sigmoid(lin(m.dynamic_scalar[1], F.relu(lin(m.dynamic_scalar[0][0], joint))))
    expected = F.normalize(branch + scalar * text + (1 - scalar) * image, dim=1)
    assert torch.allclose(m(image, text), expected, atol=1e-6)


def test_bilinear_branch_is_the_flattened_outer_product_and_adds_to_the_combiner(features):
    image, text = features
    torch.manual_seed(2)
    model = BilinearCombiner(D, projection_dim=8, hidden_dim=12, bilinear_dim=3).eval()
    branch = model.bilinear
    f_image = F.relu(branch.image_projection(image))
    f_text = F.relu(branch.text_projection(text))
    flat = torch.stack([torch.stack([f_image[n, i] * f_text[n, j] for i in range(3) for j in range(3)])
                        for n in range(7)])
    assert torch.allclose(branch(image, text), branch.output(flat), atol=1e-6)
    combiner = Combiner(D, projection_dim=8, hidden_dim=12).eval()
    combiner.load_state_dict({k: v for k, v in model.state_dict().items() if not k.startswith("bilinear.")})
    with torch.no_grad():
        branch.output[2].weight.zero_(), branch.output[2].bias.zero_()
    assert torch.allclose(model(image, text), combiner(image, text), atol=1e-6)
    with pytest.raises(ValueError, match="K < D"):
        BilinearCombiner(D, bilinear_dim=D)


def moe(**options) -> MoECombiner:
    torch.manual_seed(3)
    return MoECombiner(D, projection_dim=8, hidden_dim=12, **options).eval()


def test_top_k_routing_has_k_nonzero_weights_summing_to_one_and_soft_routing_uses_all(features):
    image, text = features
    _, routing = moe()(image, text, return_routing=True)
    assert ((routing.weights > 0).sum(dim=1) == 2).all()
    assert torch.allclose(routing.weights.sum(dim=1), torch.ones(7), atol=1e-6)
    selected = routing.logits.topk(2, dim=1).indices
    assert torch.equal((routing.weights > 0), torch.zeros(7, 4, dtype=torch.bool).scatter(1, selected, True))
    _, soft = moe(routing="soft")(image, text, return_routing=True)
    assert (soft.weights > 0).all() and torch.allclose(soft.weights.sum(dim=1), torch.ones(7), atol=1e-6)
    _, top1 = moe(top_k=1)(image, text, return_routing=True)
    assert torch.equal(top1.weights, F.one_hot(top1.logits.argmax(1), 4).float())
    assert routing.gate.shape == (7, D) and ((routing.gate > 0) & (routing.gate < 1)).all()


def test_vectorised_dispatch_equals_a_row_by_row_loop(features):
    image, text = features
    model = moe()
    query, routing = model(image, text, return_routing=True)
    joint = model.joint(image, text)
    rows = []
    for n in range(7):  # the reference code's way: one query at a time, its selected experts only
        mixture = sum(routing.weights[n, e] * model.experts[e](joint[n:n + 1])
                      for e in range(4) if routing.weights[n, e] > 0)
        rows.append(mixture)
    base = model.output(torch.cat(rows))
    expected = F.normalize(base + routing.gate * text + (1 - routing.gate) * image, dim=1)
    assert torch.allclose(query, expected, atol=1e-6)


def reference_moe_forward(model: MoECombiner, image: torch.Tensor, text: torch.Tensor) -> torch.Tensor:
    """The module docstring's design written out with plain tensor operations on the model's parameters (eval)."""
    def linear(layer, x):
        return x @ layer.weight.T + layer.bias

    def project(branch, x):  # Dropout(ReLU(LayerNorm(Linear(x))))
        norm = branch[1]
        return F.layer_norm(linear(branch[0], x), norm.normalized_shape, norm.weight, norm.bias).relu()

    tokens = torch.stack([project(model.text_projection, text), project(model.image_projection, image)], dim=1)
    attention, heads = model.attention, model.attention.num_heads
    q, k, v = (tokens @ w.T + b for w, b in zip(attention.in_proj_weight.chunk(3), attention.in_proj_bias.chunk(3)))
    split = lambda x: x.unflatten(-1, (heads, -1)).transpose(1, 2)  # noqa: E731  (N, heads, 2, P/heads)
    weights = torch.softmax(split(q) @ split(k).transpose(-1, -2) / split(q).shape[-1] ** 0.5, dim=-1)
    attended = linear(attention.out_proj, (weights @ split(v)).transpose(1, 2).flatten(2))
    norm = model.attention_norm
    h = F.layer_norm(tokens + attended, norm.normalized_shape, norm.weight, norm.bias).flatten(1)  # text first
    logits = linear(model.router, h)
    top = logits.topk(model.top_k, dim=1)
    mixing = torch.zeros_like(logits).scatter(1, top.indices, torch.softmax(top.values, dim=1))
    mixture = sum(mixing[:, e, None] * F.gelu(linear(expert[0], h)) for e, expert in enumerate(model.experts))
    base = linear(model.output[2], mixture.relu())
    gate = torch.sigmoid(linear(model.gate[1], linear(model.gate[0][0], h).relu()))
    return F.normalize(base + gate * text + (1 - gate) * image, dim=1)


@pytest.mark.parametrize("top_k", [1, 2])
def test_moe_equals_its_design_written_out(features, top_k):
    image, text = features
    model = moe(top_k=top_k)
    with torch.no_grad():
        torch.testing.assert_close(model(image, text), reference_moe_forward(model, image, text), atol=1e-5, rtol=0)


def test_switched_off_experts_get_no_weight(features):
    image, text = features
    model = moe()
    _, routing = model(image, text, return_routing=True, disabled_experts=[0, 2])
    assert (routing.weights[:, [0, 2]] == 0).all() and ((routing.weights[:, [1, 3]] > 0).all())
    with pytest.raises(ValueError, match="needs at least 2"):
        model(image, text, disabled_experts=[0, 1, 2])


def test_load_balancing_loss_is_zero_for_a_uniform_gate_and_larger_for_any_other():
    assert load_balancing_loss(torch.full((10, 4), 0.25)).item() == 0.0
    balanced_top2 = torch.tensor([[0.5, 0.5, 0, 0], [0, 0, 0.5, 0.5]])
    assert load_balancing_loss(balanced_top2).item() == 0.0
    generator = torch.Generator().manual_seed(0)
    for _ in range(20):
        weights = torch.softmax(torch.randn(10, 4, generator=generator) * 2, dim=1)
        assert load_balancing_loss(weights).item() > 0
    # one expert takes everything: importance (N, 0, 0, 0) has CV^2 = E - 1
    assert load_balancing_loss(F.one_hot(torch.zeros(10, dtype=torch.long), 4).float()).item() == pytest.approx(3.0)


def test_the_load_balancing_loss_reaches_training_only_when_asked(features):
    image, text = features
    assert fuse(moe().train(), image, text)[1] is None
    model = moe(load_balance_weight=0.5, router_noise=1.0).train()
    query, aux = fuse(model, image, text)
    assert aux.item() > 0
    aux.backward()
    assert model.router.weight.grad.abs().sum() > 0


def test_parameter_counts_stated_in_the_docstrings():
    with torch.device("meta"):
        combiner = Combiner(640)
        assert parameter_count(combiner) == 59_003_521
        assert parameter_count(MoECombiner(640)) == 167_194_884
        assert parameter_count(MoECombiner(640)) - 2 * parameter_count(MoECombiner(640).experts[0]) == 114_755_844
        D_, P, H = 640, 2560, 5120  # the Combiner written out: projections, branch, output, dynamic scalar
        assert parameter_count(combiner) == 2 * (D_ * P + P) + (2 * P * H + H) + (H * D_ + D_) + (2 * P * H + H) + H + 1
        assert parameter_count(build_fusion("sum", 640)) == 0
        assert parameter_count(BilinearCombiner(640, bilinear_dim=64, bilinear_hidden=640)) == 62_117_889
        assert parameter_count(Combiner(256, projection_dim=256, hidden_dim=512)) == 788_737
