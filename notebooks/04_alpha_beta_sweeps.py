# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     notebook_metadata_filter: -jupytext.text_representation.jupytext_version,-jupytext.text_representation.format_version
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: CIR Lab
#     language: python
#     name: cirlab
# ---

# %% [markdown]
# # 04 · Training-free CIR: WeiMoCIR's α and β, swept
#
# **What this notebook teaches.** WeiMoCIR (Wu, Lin & Yang, 2024) composes a query without any
# training: a weighted average of the reference image's and the text's CLIP features,
#
# $$q = (1-\alpha)\,v + \alpha\,t,$$
#
# and scores each gallery image by its picture *and* by R captions a captioning model wrote for it,
#
# $$s_n = (1-\beta)\,\mathrm{sim}(q, v_n) + \beta\,\tfrac{1}{R}\textstyle\sum_r \mathrm{sim}(q, t_{n,r}).$$
#
# Two numbers decide everything, so we look at all of them at once: R@K over the whole α×β grid
# for synth-fashioniq and synth-cirr, the best cell, how much the number and the quality of the
# captions matter (the synthetic captions come as *full*, *partial* and *noisy*), and an
# interactive explorer. Because fusion and similarity are linear, the whole 11×11 grid costs a
# fixed handful of matrix products (`cirlib.sweep`), not 121 retrievals.
#
# `SMALL = True` uses the small benchmark (seconds; what CI runs); set it to `False` for the
# medium benchmark behind the README's tables. `MODEL` is any `load_encoder` name or folder.

# %% tags=["parameters"]
SMALL = True
MODEL = "synthclip"

# %% tags=["progress"]
import time
from pathlib import Path

import matplotlib.pyplot as plt
import pandas as pd
import seaborn as sns

from cirlib.analysis.benchmark import prepare_benchmark
from cirlib.data import read_gallery_captions
from cirlib.data.synth.config import preset
from cirlib.encoders import FeatureCache, describe, load_encoder
from cirlib.encoders.captions import synth_captioned_splits
from cirlib.evaluation import benchmark_features, evaluate_methods
from cirlib.fusion import PAPER_ALPHA, PAPER_BETA, ZERO_SHOT_BASELINES
from cirlib.plots import parameter_heatmap
from cirlib.sweep import SELECT_BY, best_cell, per_cell_sweep, sweep
from cirlib.sweep_report import CAPTION_SUBSETS, caption_ablation
from cirlib.widgets import Panel, SweepExplorer

ROOT = Path.cwd().parent if Path.cwd().name == "notebooks" else Path.cwd()
size = "small" if SMALL else "medium"
benchmark = ROOT / "data" / ("synth-small" if SMALL else "synth")
manifest = prepare_benchmark(benchmark, preset(size))
cache = FeatureCache(ROOT / "data" / "cache", progress=False)
encoder = load_encoder(MODEL)
print(describe(encoder))

# %% [markdown]
# ## Features: images, query texts and three captions per gallery image
# `synth_captioned_splits` reads each val split, and encodes (or finds in the cache) the gallery
# images, the query texts and the gallery captions, `(images, R=3, D)`. It also keeps every query's
# reference-image captions: the authors' *code* fuses those with the text (see below).

# %%
splits = synth_captioned_splits(encoder, cache, benchmark)
cirr = splits["synth-cirr"]
print("synth-cirr gallery captions:", tuple(cirr.captions.gallery.shape),
      "| reference captions:", tuple(cirr.captions.reference.shape))
name = cirr.features.gallery_names[0]
texts = read_gallery_captions(benchmark / "synth-cirr" / "gallery_captions" / "val.json")[name]
for quality, text in zip(("full", "partial", "noisy"), texts):
    print(f"{name} {quality:8s} {text}")

# %% [markdown]
# ## Slides or code? Two definitions
# The published formula (variant `"slides"`, our default) normalises v and t, so α weighs two unit
# vectors, and compares the one query q with every caption. The authors' reference code (variant
# `"code"`) fuses the *raw* features, so whichever encoder output is longer weighs more, and on
# the caption side fuses each of the reference image's own captions with the text. Both are
# cosine similarities, so q is normalised in both. At the corners both reduce to the zero-shot
# baselines: α=0, β=0 is *image only*; α=1, β=0 is *text only*.

# %%
baselines = evaluate_methods(benchmark_features(encoder, cache, benchmark), ZERO_SHOT_BASELINES)
datasets = {"synth-fashioniq": "fashioniq", "synth-cirr": "cirr", "synth-circo": "circo"}
sweeps = {name: sweep(splits[name], progress=False) for name in datasets}
for name, kind in datasets.items():
    metric = SELECT_BY[kind]
    corners = {"α=0, β=0": sweeps[name].at(0, 0)[metric], "image only": baselines[kind]["image only"][metric],
               "α=1, β=0": sweeps[name].at(1, 0)[metric], "text only": baselines[kind]["text only"][metric]}
    print(f"{name:16s} {metric}: " + "  ".join(f"{k} {v:.1f}" for k, v in corners.items()))

# %% [markdown]
# ## Why the sweep is fast
# For each α the score is ((1-α)·(v·g) + α·(t·g)) / ‖(1-α)·v + α·t‖ on each side, so the products
# v·g and t·g (with the gallery images and with the captions) and the three numbers ‖v‖², v·t, ‖t‖²
# are computed once; each cell is then element-wise work, and each query's target rank is counted
# rather than sorted. The plain path runs a full retrieval per cell. Both give the same numbers;
# `benchmarks/sweep.py` times them on the medium benchmark.

# %%
small_grid = (0.0, 0.5, 0.8, 1.0)
start = time.perf_counter()
fast = sweep(cirr, small_grid, small_grid, progress=False)
fast_s = time.perf_counter() - start
start = time.perf_counter()
plain = per_cell_sweep(cirr, small_grid, small_grid, progress=False)
plain_s = time.perf_counter() - start
same = all(abs(fast.metrics[m] - plain.metrics[m]).max() < 1e-9 for m in plain.metrics)
print(f"4x4 grid on synth-cirr: fast {fast_s:.2f} s, per cell {plain_s:.2f} s, identical metrics: {same}")

# %% [markdown]
# ## R@K over the α×β grid
# Rows are α (0: image only, 1: text only), columns β (0: images only, 1: captions only). The
# star marks the best cell, the box the paper's setting α=0.8, β=0.1 (CLIP ViT-L/14).

# %%
panels = [("synth-fashioniq", "avg R@10"), ("synth-fashioniq", "avg R@50"), ("synth-cirr", "R@1"),
          ("synth-cirr", "R@5")]
figure, axes = plt.subplots(2, 2, figsize=(14, 11))
for ax, (name, metric) in zip(axes.ravel(), panels):
    result = sweeps[name]
    parameter_heatmap(result.metrics[metric], result.alphas, result.betas,
                      marker=result.cell(PAPER_ALPHA, PAPER_BETA), title=f"{name}: {metric}", ax=ax)
figure.tight_layout()
plt.show()

# %% [markdown]
# ## The best cell, next to the baselines
# The best cell is chosen on the same val split it is reported on, so it is an upper bound; a fair
# protocol picks α and β on a held-out split (an exercise below).

# %%
rows = {}
for name, kind in datasets.items():
    metric = SELECT_BY[kind]
    alpha, beta, value = best_cell(sweeps[name], metric)
    rows[name] = {"selected by": metric, "best α": alpha, "best β": beta, "best": value,
                  "paper α, β": sweeps[name].at(PAPER_ALPHA, PAPER_BETA)[metric],
                  **{method: metrics[metric] for method, metrics in baselines[kind].items()}}
pd.DataFrame.from_dict(rows, orient="index").round(2)  # by rows, so each column keeps its type

# %% [markdown]
# ## The authors' code variant
# The same sweep with raw features and reference-caption fusion. Compare the best cells: where does
# the optimum move, and is the best value higher or lower?

# %%
code_sweeps = {name: sweep(splits[name], variant="code", progress=False) for name in datasets}
code_rows = {name: {"selected by": SELECT_BY[kind],
                    **dict(zip(["best α", "best β", "best"], best_cell(code_sweeps[name], SELECT_BY[kind]))),
                    "slides' best": best_cell(sweeps[name], SELECT_BY[kind])[2]}
             for name, kind in datasets.items()}
pd.DataFrame.from_dict(code_rows, orient="index").round(2)

# %% [markdown]
# ## How many captions, and which? (the seed's ablation)
# t1, t2, t3 are the first, second and third captions, and on the synthetic benchmark they are the
# *full*, *partial* and *noisy* captions, so this table is also the effect of caption quality. For
# each subset: the best cell and the value at the paper setting. Do more captions always help, or
# can the worse ones dilute the best one?

# %%
ablation = {name: pd.DataFrame(caption_ablation(splits[name], metric)).T
            for name, metric in (("synth-fashioniq", "avg R@10"), ("synth-cirr", "R@5"))}
for name, table in ablation.items():
    print(name)
    display(table.round(2))

# %% [markdown]
# ## Caption quality and the weight it deserves
# For one caption at a time, the best R@K over α as a function of β. With good captions a larger β
# should pay off; with noisy ones the curve should turn down earlier.

# %%
figure, axes = plt.subplots(1, 2, figsize=(12, 4))
for ax, (name, metric) in zip(axes, (("synth-fashioniq", "avg R@10"), ("synth-cirr", "R@5"))):
    for label, quality in (("t1", "full"), ("t2", "partial"), ("t3", "noisy"), ("t1∪t2∪t3", "all three")):
        result = sweep(splits[name], captions=CAPTION_SUBSETS[label], progress=False)
        sns.lineplot(x=result.betas, y=result.metrics[metric].max(axis=0), marker="o", ax=ax, label=quality)
    ax.set(title=f"{name}: best {metric} over α", xlabel="β (weight of the captions)", ylabel=metric)
plt.show()

# %% [markdown]
# ## Explore interactively
# Move α and β: the readouts, the box on the heatmap and the top-5 of the chosen query follow
# (the reference image on the left, correct results outlined in green). "metric" picks the metric.
# FashionIQ's heatmap averages its three categories; its queries come from the dress category.

# %%
explorer = SweepExplorer({"synth-fashioniq": Panel(sweeps["synth-fashioniq"], splits["synth-fashioniq"]["dress"]),
                          "synth-cirr": Panel(sweeps["synth-cirr"], cirr),
                          "synth-circo": Panel(sweeps["synth-circo"], splits["synth-circo"])})
explorer.alpha.value, explorer.beta.value = PAPER_ALPHA, PAPER_BETA
explorer

# %% [markdown]
# ## Exercises
# 1. Choose α and β on the *train* split (`synth_captioned_splits(..., split="train")`) and report
#    them on val. How far is that from the best val cell?
# 2. With the `"code"` variant, compare the norms of the image and text features
#    (`splits["synth-cirr"].features.reference.norm(dim=-1)`). Explain where its best α lies.
# 3. Give every gallery image the captions of another image (shuffle the rows of
#    `splits["synth-cirr"].captions.gallery`) and sweep again. What happens to the best β?
# 4. The paper's α=0.8, β=0.1 was tuned for CLIP ViT-L/14 on real data. Is it near the best cell for
#    `synthclip`? What would you expect for a much weaker or stronger text encoder?
