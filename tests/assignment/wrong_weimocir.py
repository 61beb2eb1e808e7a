"""Known-wrong answers to notebook 04's graded exercises: the checks must catch every one (issue 17, item 7)."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F


def _score(reference, text, gallery, gallery_captions, alpha, beta, normalise_inputs=True, normalise_query=True,
           caption_mean_first=False, beta_on_images=False):
    """WeiMoCIR's score with one of its steps switched to a common mistake."""
    if normalise_inputs:
        reference, text = F.normalize(reference, dim=-1), F.normalize(text, dim=-1)
    query = (1 - alpha) * reference + alpha * text
    query = F.normalize(query, dim=-1) if normalise_query else query
    captions = F.normalize(gallery_captions, dim=-1)
    caption_side = (query @ F.normalize(captions.mean(1), dim=-1).T if caption_mean_first
                    else torch.einsum("qd,grd->qgr", query, captions).mean(-1))
    image_side = query @ F.normalize(gallery, dim=-1).T
    weight = beta if beta_on_images else 1 - beta
    return weight * image_side + (1 - weight) * caption_side


def score_code_variant(reference, text, gallery, gallery_captions, alpha, beta):
    return _score(reference, text, gallery, gallery_captions, alpha, beta, normalise_inputs=False)  # raw features


def score_query_not_normalised(reference, text, gallery, gallery_captions, alpha, beta):
    return _score(reference, text, gallery, gallery_captions, alpha, beta, normalise_query=False)


def score_mean_caption_first(reference, text, gallery, gallery_captions, alpha, beta):
    return _score(reference, text, gallery, gallery_captions, alpha, beta, caption_mean_first=True)


def score_beta_swapped(reference, text, gallery, gallery_captions, alpha, beta):
    return _score(reference, text, gallery, gallery_captions, alpha, beta, beta_on_images=True)


def choose_on_val(train, val, alphas, betas):
    i, j = np.unravel_index(int(np.argmax(val)), val.shape)  # tunes on the split it reports
    return float(alphas[i]), float(betas[j]), float(val[i, j])


def choose_reporting_train(train, val, alphas, betas):
    i, j = np.unravel_index(int(np.argmax(train)), train.shape)
    return float(alphas[i]), float(betas[j]), float(train[i, j])


def choose_ties_to_higher_alpha(train, val, alphas, betas):
    flipped = train[::-1, ::-1]  # the last maximum: ties go to the higher α, then the higher β
    i, j = np.unravel_index(int(np.argmax(flipped)), train.shape)
    i, j = train.shape[0] - 1 - i, train.shape[1] - 1 - j
    return float(alphas[i]), float(betas[j]), float(val[i, j])


def choose_ties_to_lower_beta_first(train, val, alphas, betas):
    j, i = np.unravel_index(int(np.argmax(train.T)), train.T.shape)  # β before α
    return float(alphas[i]), float(betas[j]), float(val[i, j])


WRONG = {"weimocir_score": [score_code_variant, score_query_not_normalised, score_mean_caption_first,
                            score_beta_swapped],
         "choose_alpha_beta": [choose_on_val, choose_reporting_train, choose_ties_to_higher_alpha,
                               choose_ties_to_lower_beta_first]}
