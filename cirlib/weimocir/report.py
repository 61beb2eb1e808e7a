"""Sweeps of the synthetic benchmark for notebooks and the README: the seed's caption ablation and
the table of WeiMoCIR per dataset (paper setting, α/β chosen on held-out halves of val, best cell) next to the
zero-shot baselines.

    from cirlib import FeatureCache, load_encoder
    from cirlib.weimocir.report import benchmark_report
    print(benchmark_report(load_encoder("synthclip"), FeatureCache("data/cache"), "data/synth"))
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from cirlib.encoders.loading import Encoder
from cirlib.evaluation.evaluate import benchmark_features, evaluate_methods
from cirlib.features import FeatureCache
from cirlib.features.captions import CaptionedSplit, synth_captioned_splits
from cirlib.fusion import ZERO_SHOT_BASELINES
from cirlib.metrics.protocols import protocol
from cirlib.util.tables import markdown_table
from cirlib.weimocir.select import HeldOutChoice, held_out_choice
from cirlib.weimocir.sweeps import Split, SweepResult, best_cell, sweep
from cirlib.weimocir.weighted import PAPER_ALPHA, PAPER_BETA

CAPTION_SUBSETS = {"t1": (0,), "t2": (1,), "t3": (2,), "t1∪t2": (0, 1), "t2∪t3": (1, 2), "t1∪t3": (0, 2),
                   "t1∪t2∪t3": (0, 1, 2)}
"""The seed's caption ablation (0-based indices); the synthetic t1, t2, t3 are the full, partial, noisy captions."""


def caption_ablation(split: Split, metric: str, variant: str = "slides",
                     subsets: Mapping[str, Sequence[int]] = CAPTION_SUBSETS) -> dict[str, dict[str, float]]:
    """{subset: best α, best β, ``metric`` there, and at the paper's (α, β)}: one fast sweep per subset."""
    rows = {}
    for name, indices in subsets.items():
        result = sweep(split, variant=variant, captions=indices, progress=False)
        alpha, beta, value = best_cell(result, metric)
        rows[name] = {"best α": alpha, "best β": beta, f"best {metric}": value,
                      f"{metric} at α={PAPER_ALPHA}, β={PAPER_BETA}": result.at(PAPER_ALPHA, PAPER_BETA)[metric]}
    return rows


def near_best(result: SweepResult, metric: str, within: float) -> tuple[tuple[float, float], tuple[float, float]]:
    """((lowest α, highest α), (lowest β, highest β)) of the cells within ``within`` points of the best one:
    where on the heatmap the good region lies, which says more than the single best cell on a noisy split."""
    values = result.metrics[metric]
    rows, columns = np.nonzero(values >= values.max() - within)
    alphas, betas = result.alphas[rows], result.betas[columns]
    return (float(alphas.min()), float(alphas.max())), (float(betas.min()), float(betas.max()))


def _parts(split: Split) -> list[CaptionedSplit]:
    return list(split.values()) if isinstance(split, Mapping) else [split]


def _query_mean(split: Split, function: Callable[[CaptionedSplit], torch.Tensor]) -> float:
    """The mean over all queries (FashionIQ: of every category) of ``function(split) -> (queries,)``."""
    return float(torch.cat([function(part) for part in _parts(split)]).mean())


def _gallery_spread(queries: torch.Tensor, split: CaptionedSplit) -> torch.Tensor:
    """(queries,) the standard deviation of each query's cosine similarities over the split's gallery."""
    return (F.normalize(queries, dim=-1) @ F.normalize(split.features.gallery, dim=-1).T).std(dim=1)


def feature_norms(split: Split) -> dict[str, float]:
    """{"image": mean ‖v‖, "text": mean ‖t‖} of the raw query features: the weights the ``"code"`` variant,
    which fuses unnormalised features, gives the two sides on top of (1-α) and α."""
    return {"image": _query_mean(split, lambda s: s.features.reference.norm(dim=-1)),
            "text": _query_mean(split, lambda s: s.features.text.norm(dim=-1))}


def similarity_spread(split: Split) -> dict[str, float]:
    """{"image": σ_v, "text": σ_t}: per query, the standard deviation over the gallery of cos(v, g_n) and of
    cos(t, g_n), averaged over the queries. A side whose similarities vary less moves the ranking less, so it
    needs a larger weight: (1-α)·σ_v = α·σ_t balances the two at α = σ_v / (σ_v + σ_t)."""
    return {"image": _query_mean(split, lambda s: _gallery_spread(s.features.reference, s)),
            "text": _query_mean(split, lambda s: _gallery_spread(s.features.text, s))}


def query_count(split: Split) -> int:
    """The number of queries (FashionIQ: over every category)."""
    return sum(len(part.features.text) for part in _parts(split))


def one_query_points(split: Split) -> float:
    """How many points one query moves a recall: 100 / queries (FashionIQ, whose metrics average the
    categories: 100 / (categories × queries of the smallest category))."""
    parts = _parts(split)
    return 100.0 / (len(parts) * min(len(part.features.text) for part in parts))


def _held_out_row(choice: HeldOutChoice) -> tuple[str, str, str, Mapping[str, float]]:
    """A table row (method, α, β, metrics) of a held-out choice; α and β give fold A's and fold B's cells."""
    (alpha_a, beta_a), (alpha_b, beta_b) = choice.cells
    return (f"WeiMoCIR ({choice.variant}), held-out choice", f"{alpha_a:g}/{alpha_b:g}", f"{beta_a:g}/{beta_b:g}",
            choice.metrics)


def best_cells_markdown(sweeps: Mapping[str, Sequence[SweepResult]], baselines: Mapping[str, Mapping[str, Mapping]],
                        held_out: Mapping[str, Sequence[HeldOutChoice]] | None = None) -> str:
    """Markdown tables, one per dataset: each baseline, then for each sweep (e.g. one per variant)
    WeiMoCIR at the paper's (α, β), at the held-out choice (if given) and at the best cell.

    ``sweeps`` is {dataset: [results]}, ``baselines`` {dataset: {method: metrics}} (what
    ``cirlib.evaluation.evaluate.evaluate_methods`` gives per dataset), ``held_out`` {dataset: [choices]} in the order of
    ``sweeps`` (``cirlib.weimocir.select``); the best cell is chosen by the protocol's ``select_by`` on the swept
    split itself, an upper bound. The columns are the protocol's ``summary_columns``.
    """
    blocks = []
    for name, results in sweeps.items():
        rules = protocol(results[0].dataset)
        select, columns = rules.select_by, rules.summary_columns
        rows = [(method, "", "", metrics) for method, metrics in baselines[name].items()]
        choices = held_out[name] if held_out else [None] * len(results)
        for result, choice in zip(results, choices):
            alpha, beta, _ = best_cell(result, select)
            rows.append((f"WeiMoCIR ({result.variant}), paper setting", PAPER_ALPHA, PAPER_BETA,
                         result.at(PAPER_ALPHA, PAPER_BETA)))
            rows += [_held_out_row(choice)] if choice else []
            rows.append((f"WeiMoCIR ({result.variant}), upper bound: chosen on the reported split, best {select}",
                         f"{alpha:g}", f"{beta:g}", result.at(alpha, beta)))
        held = (f"; held-out choice: each half of the queries scored at the best {select} cell of the other half, "
                "α and β of the two halves" if held_out else "")
        blocks.append(markdown_table(["method", "α", "β", *columns],
                                     [[method, a, b, *(f"{metrics[c]:.1f}" for c in columns)]
                                      for method, a, b, metrics in rows],
                                     f"**{name}** (val; the upper bound is the best cell by {select} on this same "
                                     f"split{held})"))
    return "\n\n".join(blocks)


def benchmark_report(encoder: Encoder, cache: FeatureCache, benchmark: Path | str,
                     variants: Sequence[str] = ("slides", "code")) -> str:
    """The README's tables: zero-shot baselines and WeiMoCIR (paper setting, held-out choice and best cell, per
    variant) on the synthetic benchmark's val splits."""
    baselines = evaluate_methods(benchmark_features(encoder, cache, benchmark), ZERO_SHOT_BASELINES)
    splits = synth_captioned_splits(encoder, cache, benchmark)
    sweeps = {name: [sweep(split, variant=variant) for variant in variants] for name, split in splits.items()}
    held_out = {name: [held_out_choice(splits[name], result.variant, full=result) for result in results]
                for name, results in sweeps.items()}
    return best_cells_markdown(sweeps, {f"synth-{dataset}": methods for dataset, methods in baselines.items()}, held_out)
