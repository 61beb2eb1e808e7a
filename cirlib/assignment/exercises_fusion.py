"""Notebook 02's graded exercises: the Combiner's forward pass and the batch classification loss.

Expected values come from ``cirlib.fusion.Combiner`` (built from the case's state_dict, eval mode) and
``cirlib.train.loss.batch_classification_loss`` at check time. Weights and features are random (not trained),
so tensors compare with ``torch.testing.assert_close``'s float32 tolerances. Inputs derive from the seed only:
public cases use ``2 * seed``, hidden ones ``2 * seed + 1`` plus edge cases.
"""

from __future__ import annotations

import torch

from cirlib.assignment.checks import Case, Exercise, register
from cirlib.fusion import Combiner
from cirlib.train.loss import batch_classification_loss


def _generator(seed: int, hidden: bool) -> torch.Generator:
    """Public and hidden cases of one variant draw from different streams."""
    return torch.Generator().manual_seed(2 * seed + int(hidden))


def _sizes(state_dict: dict[str, torch.Tensor]) -> tuple[int, int, int]:
    """(embed_dim D, projection_dim P, hidden_dim H) of a Combiner's state_dict."""
    hidden, _ = state_dict["combiner.0.weight"].shape
    return state_dict["output.weight"].shape[0], state_dict["text_projection.0.weight"].shape[0], hidden


@torch.no_grad()
def combiner_reference(state_dict: dict[str, torch.Tensor], image: torch.Tensor, text: torch.Tensor) -> torch.Tensor:
    """q = Combiner(image, text) in eval mode (no dropout), the Combiner loaded with ``state_dict``."""
    model = Combiner(*_sizes(state_dict))
    model.load_state_dict(state_dict)
    return model.eval()(image, text)


def _state_dict(g: torch.Generator, embed_dim: int, projection_dim: int, hidden_dim: int,
                gate_bias: float = 0.0) -> dict[str, torch.Tensor]:
    """Random Combiner weights (scaled by 1/sqrt(fan-in)); ``gate_bias`` shifts the logit of λ."""
    shapes = {name: value.shape for name, value in Combiner(embed_dim, projection_dim, hidden_dim).state_dict().items()}
    weights = {name: torch.randn(shape, generator=g) / shape[-1] ** 0.5 for name, shape in shapes.items()}
    weights["dynamic_scalar.1.bias"] += gate_bias
    return weights


def _features(g: torch.Generator, queries: int, dim: int, norm: float = 1.0) -> tuple[torch.Tensor, torch.Tensor]:
    """(image, text) raw features: random directions, lengths around ``norm`` (image and text differ)."""
    lengths = norm * (0.5 + torch.rand(2, queries, 1, generator=g))
    image, text = torch.randn(2, queries, dim, generator=g) * lengths / dim ** 0.5
    return image, text


def combiner_cases(seed: int, hidden: bool) -> list[Case]:
    """Small Combiners; hidden: one query, P and H not 4D and 8D, a saturated gate, long raw features."""
    g = _generator(seed, hidden)
    if not hidden:
        return [Case((_state_dict(g, 8, 32, 64), *_features(g, 5, 8)), "D=8 (P=32, H=64), 5 queries"),
                Case((_state_dict(g, 6, 12, 20), *_features(g, 4, 6, norm=8.0)),
                     "D=6 (P=12, H=20), 4 queries, raw features of length about 8")]
    return [Case((_state_dict(g, 10, 16, 24), *_features(g, 7, 10)), "D=10 (P=16, H=24), 7 queries"),
            Case((_state_dict(g, 4, 8, 8), *_features(g, 1, 4)), "one query"),
            Case((_state_dict(g, 5, 5, 7), *_features(g, 3, 5, norm=20.0)), "P=D, H=7, raw features of length 20"),
            Case((_state_dict(g, 6, 8, 16, gate_bias=12.0), *_features(g, 4, 6)), "λ close to 1 (text only)")]


def bbc_reference(queries: torch.Tensor, targets: torch.Tensor, logit_scale: float,
                  first_label: int) -> torch.Tensor:
    """``cirlib.train.loss.batch_classification_loss`` (a float32 scalar)."""
    return batch_classification_loss(queries, targets, logit_scale, first_label)


def _batch(g: torch.Generator, queries: int, targets: int, dim: int, first_label: int,
           dtype: torch.dtype = torch.float32) -> tuple[torch.Tensor, torch.Tensor]:
    """(queries, targets) raw features of random lengths; query i is near target ``first_label + i``."""
    target = torch.randn(targets, dim, generator=g) * (0.5 + torch.rand(targets, 1, generator=g))
    noise = torch.randn(queries, dim, generator=g)
    query = target[first_label:first_label + queries] + 2.0 * noise
    return query.to(dtype), target.to(dtype)


def bbc_cases(seed: int, hidden: bool) -> list[Case]:
    """In-batch and gathered targets; hidden: one pair, bfloat16 features, the last rows, logit scale 1."""
    g = _generator(seed, hidden)
    if not hidden:
        return [Case((*_batch(g, 8, 8, 16, 0), 100.0, 0), "8 queries, their 8 targets, logit scale 100"),
                Case((*_batch(g, 4, 12, 16, 4), 20.0, 4),
                     "4 queries among 12 gathered targets (first_label 4), logit scale 20")]
    return [Case((*_batch(g, 6, 6, 12, 0), 50.0, 0), "6 queries, their 6 targets, logit scale 50"),
            Case((*_batch(g, 1, 1, 8, 0), 100.0, 0), "one query, one target"),
            Case((*_batch(g, 5, 5, 16, 0, torch.bfloat16), 100.0, 0), "bfloat16 features"),
            Case((*_batch(g, 3, 9, 8, 6), 10.0, 6), "the queries' targets are the last rows"),
            Case((*_batch(g, 6, 6, 8, 0), 1.0, 0), "logit scale 1")]


COMBINER_FORWARD = register(Exercise("combiner_forward", combiner_cases, combiner_reference))
BBC_LOSS = register(Exercise("bbc_loss", bbc_cases, bbc_reference))
