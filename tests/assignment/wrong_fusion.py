"""Known-wrong answers to notebook 02's graded exercises: the checks must catch every one (issue 17, item 7)."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def _combiner(state_dict, image, text, training=False, swap_gate=False, normalise=True, image_first=False):
    """The Combiner's forward with one mistake switched on (dropout 0.5 in training mode, λ on the image, ...)."""
    def linear(name, x):
        return x @ state_dict[name + ".weight"].T + state_dict[name + ".bias"]

    def block(name, x):
        return F.dropout(linear(name, x).relu(), 0.5, training)

    parts = [block("text_projection.0", text), block("image_projection.0", image)]
    joint = torch.cat(parts[::-1] if image_first else parts, dim=-1)
    branch = linear("output", block("combiner.0", joint))
    gate = torch.sigmoid(linear("dynamic_scalar.1", block("dynamic_scalar.0.0", joint)))
    if swap_gate:
        gate = 1 - gate
    query = branch + gate * text + (1 - gate) * image
    return F.normalize(query, dim=-1) if normalise else query


def combiner_in_training_mode(state_dict, image, text):
    return _combiner(state_dict, image, text, training=True)


def combiner_gate_on_the_image(state_dict, image, text):
    return _combiner(state_dict, image, text, swap_gate=True)


def combiner_unnormalised(state_dict, image, text):
    return _combiner(state_dict, image, text, normalise=False)


def combiner_image_first(state_dict, image, text):
    return _combiner(state_dict, image, text, image_first=True)


def _loss(queries, targets, logit_scale, first_label, normalise=True, labels_from_zero=False, both_ways=False):
    """The batch classification loss with one mistake switched on."""
    q, t = queries.float(), targets.float()
    if normalise:
        q, t = F.normalize(q, dim=-1), F.normalize(t, dim=-1)
    logits = logit_scale * q @ t.T
    labels = torch.arange(len(q)) + (0 if labels_from_zero else first_label)
    loss = F.cross_entropy(logits, labels)
    if both_ways:
        own = t[first_label:first_label + len(q)]
        loss = (loss + F.cross_entropy(logit_scale * own @ q.T, torch.arange(len(q)))) / 2
    return loss


def loss_without_cosine(queries, targets, logit_scale, first_label):
    return _loss(queries, targets, logit_scale, first_label, normalise=False)


def loss_ignoring_first_label(queries, targets, logit_scale, first_label):
    return _loss(queries, targets, logit_scale, first_label, labels_from_zero=True)


def loss_symmetric(queries, targets, logit_scale, first_label):
    return _loss(queries, targets, logit_scale, first_label, both_ways=True)


def loss_in_input_precision(queries, targets, logit_scale, first_label):
    """Right in float32, but bfloat16 inputs stay bfloat16 (logits at scale 100 round to steps of 0.5)."""
    q, t = F.normalize(queries, dim=-1), F.normalize(targets, dim=-1)
    return F.cross_entropy(logit_scale * q @ t.T, torch.arange(len(q)) + first_label).float()


WRONG = {
    "combiner_forward": [combiner_in_training_mode, combiner_gate_on_the_image, combiner_unnormalised,
                         combiner_image_first],
    "bbc_loss": [loss_without_cosine, loss_ignoring_first_label, loss_symmetric, loss_in_input_precision],
}
"""Per exercise of notebook 02, the wrong answers its checks must reject."""
