"""WeiMoCIR (Wu, Lin & Yang, 2024): training-free weighted modality fusion and weighted similarity.

    q   = (1-α)·v + α·t                                    weighted modality fusion
    s_n = (1-β)·sim(q, v_n) + β·(1/R)·Σ_r sim(q, t_{n,r})   weighted similarity

v, t: the reference image's and the modification text's features; v_n: gallery image n;
t_{n,r}: its r-th of R captions written by a captioning model. sim is the cosine similarity,
so q is L2-normalised (its norm would scale every score of a query alike). Two variants:

- ``"slides"`` (default) -- the formula as the authors present it (shared/seeds/weimocir-slides.txt):
  v and t are L2-normalised before the fusion, so α weighs two unit vectors, and the caption side
  compares the same q with every caption of image n.
- ``"code"`` -- the authors' reference implementation (github.com/whats2000/WeiMoCIR): v and t are
  the raw projected embeddings, q = normalize((1-α)·v + α·t); the caption side does not use the
  image: for each r it fuses the *reference image's own* r-th caption c_r with t,
  q_r = normalize((1-α)·c_r + α·t), compares q_r with the gallery's r-th captions, and averages over r.

Paper settings: α=0.8, β=0.1 (CLIP); α=0.95, β=0.2 (BLIP). The code's own defaults differ, so
always state α and β. Every input is a raw encoder feature; this module does the normalising.
This plain per-cell form is the reference that ``cirlib.weimocir.sweeps``'s fast grid must equal.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

VARIANTS = ("slides", "code")
PAPER_ALPHA, PAPER_BETA = 0.8, 0.1


def _check(alpha: float, beta: float, variant: str) -> None:
    if variant not in VARIANTS:
        raise ValueError(f"variant must be one of {VARIANTS}, got {variant!r}")
    for name, value in (("alpha", alpha), ("beta", beta)):
        if not 0.0 <= value <= 1.0:
            raise ValueError(f"{name} must lie in [0, 1], got {value}")


def weighted_fusion(image: torch.Tensor, text: torch.Tensor, alpha: float, variant: str = "slides") -> torch.Tensor:
    """The normalised query normalize((1-α)·v + α·t), (N, D); ``"slides"`` normalises v and t first."""
    _check(alpha, 0.0, variant)
    if variant == "slides":
        image, text = F.normalize(image, dim=-1), F.normalize(text, dim=-1)
    return F.normalize((1 - alpha) * image + alpha * text, dim=-1)


def weighted_similarity(reference: torch.Tensor, text: torch.Tensor, gallery: torch.Tensor,
                        gallery_captions: torch.Tensor, alpha: float, beta: float, variant: str = "slides",
                        reference_captions: torch.Tensor | None = None) -> torch.Tensor:
    """WeiMoCIR scores s (Q, G) of Q queries against G gallery images.

    ``reference`` and ``text`` are (Q, D), ``gallery`` (G, D), ``gallery_captions`` (G, R, D); the
    ``"code"`` variant also needs ``reference_captions`` (Q, R, D), the reference images' own captions.
    """
    _check(alpha, beta, variant)
    _check_shapes(reference, text, gallery, gallery_captions, reference_captions, variant)
    query = weighted_fusion(reference, text, alpha, variant)
    targets = F.normalize(gallery_captions, dim=-1)
    image_side = query @ F.normalize(gallery, dim=-1).T
    if variant == "slides":
        caption_side = torch.stack([query @ targets[:, r].T for r in range(targets.shape[1])]).mean(0)
    else:
        caption_side = torch.stack([weighted_fusion(reference_captions[:, r], text, alpha, "code") @ targets[:, r].T
                                    for r in range(targets.shape[1])]).mean(0)
    return (1 - beta) * image_side + beta * caption_side


def _check_shapes(reference: torch.Tensor, text: torch.Tensor, gallery: torch.Tensor, gallery_captions: torch.Tensor,
                  reference_captions: torch.Tensor | None, variant: str) -> None:
    """Clear errors for the shapes a caller most often gets wrong."""
    q, d = reference.shape
    if text.shape != (q, d) or gallery.ndim != 2 or gallery.shape[1] != d:
        raise ValueError(f"reference and text must be (Q, D) and gallery (G, D) with one D; got reference "
                         f"{tuple(reference.shape)}, text {tuple(text.shape)}, gallery {tuple(gallery.shape)}")
    if gallery_captions.ndim != 3 or gallery_captions.shape[::2] != (gallery.shape[0], d):
        raise ValueError(f"gallery_captions must be (G, R, D) = ({gallery.shape[0]}, R, {d}), "
                         f"got {tuple(gallery_captions.shape)}")
    if variant == "code" and (reference_captions is None
                              or reference_captions.shape != (q, gallery_captions.shape[1], d)):
        got = None if reference_captions is None else tuple(reference_captions.shape)
        raise ValueError(f"the 'code' variant needs reference_captions of shape (Q, R, D) = "
                         f"({q}, {gallery_captions.shape[1]}, {d}), got {got}; pass CaptionFeatures.reference")
