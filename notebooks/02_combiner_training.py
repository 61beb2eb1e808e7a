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
# # 02 · Training fusion modules: Sum, Combiner, bilinear fusion, Mixture of Experts
#
# **What this notebook teaches.** Zero-shot CIR adds the image and text embeddings; supervised
# CIR *learns* how to combine them from (reference, text, target) triplets while the CLIP encoder
# stays frozen (CLIP4Cir's "stage 2"). Because the encoder is frozen, every feature is computed
# once and cached, and an epoch only indexes tensors. We train four fusion modules with the same
# loop and loss (cross-entropy of each query against the batch's targets, logit scale 100):
#
# * **Sum**: `normalize(v + t)`, no parameters (the baseline);
# * **Combiner** (CLIP4Cir): projections of t and v, a learned branch, plus a learned scalar mix
#   `λ·t + (1-λ)·v` of the raw features;
# * **Bilinear** (CLIP-CD): the Combiner plus a bilinear-pooling branch (outer product of projected v and t);
# * **MoE**: self-attention over [text, image], four expert networks mixed by the router's weights
#   (top-2 routing), and a *vector* gate g instead of λ.
#
# We plot their loss and validation curves and compare them with the zero-shot baselines.
# `SMALL = True` uses the small benchmark and few epochs (what CI runs, about 2 minutes on a CPU);
# `False` runs the medium benchmark with the configs behind the README's table (one seed).

# %% tags=["parameters"]
SMALL = True

# %% tags=["progress"]
import json
from pathlib import Path

import matplotlib.pyplot as plt
import pandas as pd
from tqdm.auto import tqdm

from cirlib.analysis.benchmark import prepare_benchmark
from cirlib.data.synth.config import preset
from cirlib.encoders import FeatureCache, describe, load_encoder
from cirlib.experiments import config_variant, evaluate, run_fusion_job, val_features
from cirlib.fusion import ZERO_SHOT_BASELINES

ROOT = Path.cwd().parent if Path.cwd().name == "notebooks" else Path.cwd()
size = "small" if SMALL else "medium"
benchmark = ROOT / "data" / ("synth-small" if SMALL else "synth")
manifest = prepare_benchmark(benchmark, preset(size))
METHODS = ["sum", "combiner", "bilinear", "moe"]
DATASETS = {"fashioniq": "synth-fashioniq", "cirr": "synth-cirr"}

# %% [markdown]
# ## The configurations
# Each run is one YAML file in `configs/` (the same that `cirlib train --config` reads). Here we
# point them at this notebook's benchmark; with `SMALL` the epochs and batch are cut down so the
# small training sets (600 FashionIQ-style, 320 CIRR-style triplets) still give several steps per
# epoch. Each run's folder is named by a hash of its config, so a changed config trains afresh.

# %%
def notebook_config(method: str, dataset: str):
    small = {"epochs": 6, "batch_size": 64} if SMALL else {}
    return config_variant(ROOT / "configs" / f"synth_{method}_{dataset}.yaml", ROOT / "runs" / "notebooks",
                          data_root=str(benchmark / DATASETS[dataset]), cache=str(ROOT / "data" / "cache"), **small)


print(notebook_config("moe", "cirr"))

# %% [markdown]
# ## Training
# `run_fusion_job` encodes (or loads from the cache) the training and validation features,
# trains with validation after every epoch, keeps the best epoch's checkpoint, and writes
# `log.json`, `log.csv` and `results.json` (each headed by the config) in the run folder.
# A finished run is reused (`resume=True`), so rerunning the notebook is quick. The notebook keeps the
# training log quiet (`verbose=False`; the curves below read it from `log.json`) and shows one bar over
# the eight runs.

# %% tags=["progress"]
jobs = [(m, d) for d in DATASETS for m in METHODS]
results = {(m, d): run_fusion_job(notebook_config(m, d), resume=True, progress=False, verbose=False)
           for m, d in tqdm(jobs, desc="training runs", unit="run")}

# %% [markdown]
# ## Loss and validation curves
# FashionIQ selects the epoch by (avg R@10 + avg R@50)/2, CIRR by (R@5 + Rsubset@1)/2.

# %%
selection = {"fashioniq": "avg", "cirr": "Avg"}
fig, axes = plt.subplots(2, 2, figsize=(10, 6.5))
for row, dataset in enumerate(DATASETS):
    for method in METHODS[1:]:
        log = json.loads((Path(notebook_config(method, dataset).out) / "log.json").read_text())["log"]
        epochs = [r["epoch"] for r in log]
        axes[row, 0].plot(epochs, [r["train loss"] for r in log], "o-", label=method, ms=3)
        axes[row, 1].plot(epochs, [r[selection[dataset]] for r in log], "o-", label=method, ms=3)
    sum_score = results["sum", dataset]["best"][selection[dataset]]
    axes[row, 1].axhline(sum_score, color="grey", ls="--", label="sum (zero-shot)")
    axes[row, 0].set(title=f"{DATASETS[dataset]}: training loss", xlabel="epoch", ylabel="BBC loss")
    axes[row, 1].set(title=f"{DATASETS[dataset]}: validation", xlabel="epoch", ylabel=selection[dataset] + " (%)")
    axes[row, 1].legend(fontsize=8)
fig.tight_layout()
plt.show()

# %% [markdown]
# ## The comparison table
# The best validation epoch of each trained module, beside the zero-shot baselines on the same
# validation features.

# %%
encoder = load_encoder("synthclip")
print(describe(encoder))
columns = {"fashioniq": ["avg R@10", "avg R@50", "avg"], "cirr": ["R@1", "R@5", "R@10", "Rsubset@1", "Avg"]}
for dataset in DATASETS:
    config = notebook_config("sum", dataset)
    features = val_features(encoder, FeatureCache(config.cache, progress=False), config)
    rows = {name: evaluate(dataset, features, ZERO_SHOT_BASELINES[name]) for name in ("image only", "text only")}
    rows |= {method: results[method, dataset]["best"] for method in METHODS}
    table = pd.DataFrame(rows).T[columns[dataset]].astype(float).round(1)
    table["parameters"] = [0, 0] + [results[m, dataset]["parameters"] for m in METHODS]
    print(f"\n{DATASETS[dataset]} (val, {size} benchmark)\n{table.to_string()}")

# %% [markdown]
# ## Exercises
# 1. Set `fusion_options: {routing: soft}` for the MoE. Does soft routing train faster or slower, and
#    does it end higher?
# 2. The Combiner's residual uses the *raw* features. Train with `dropout: 0.0`: how much does the
#    gap between training loss and validation recall change?
# 3. Switch on CLIP-CD's pseudo triplets (`pseudo_triplets: {eps_low: 0.9, eps_high: 0.995}`) and
#    look at the counts printed: are the paper's thresholds sensible for synthclip's cosines?
# 4. Reduce `batch_size` to 32. Why does a batch-based classification loss depend on the batch size?
