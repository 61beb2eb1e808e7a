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
# # 03 · Inside the Mixture-of-Experts combiner: who handles which edit?
#
# **What this notebook teaches.** A Mixture-of-Experts (MoE) combiner routes each query to two of
# its four expert networks. Do the experts specialise? The synthetic benchmark knows what every
# query asks for (FashionIQ-style: which garment attributes change; CIRR-style: add, remove, move,
# count, recolour, ...), so we can measure it: expert utilisation overall and per edit type, a
# heatmap of the mean router weight by edit type, the normalised mutual information (NMI) between
# the top expert and the edit type, and how recall changes when each expert is switched off.
#
# Vocabulary: the *router weights* are the weights with which the router mixes the experts (two
# non-zero per query); the *gate* is only the vector gate g that mixes text and image, the MoE's
# version of the Combiner's λ (notebook 02).
#
# It trains (or reuses, from notebook 02) the MoE of `configs/synth_moe_*.yaml`. `SMALL = True`
# uses the small benchmark (CI); `False` the medium one.

# %% tags=["parameters"]
SMALL = True

# %% tags=["progress"]
from pathlib import Path

import matplotlib.pyplot as plt
import pandas as pd
import seaborn as sns
import torch

from cirlib.analysis.benchmark import prepare_benchmark
from cirlib.analysis.edits import cirr_edit_types, fashioniq_edit_types
from cirlib.analysis.gating import (expert_off_method, router_weights_by_edit_type, routing_weights,
                                    top_expert_edit_type_nmi, utilisation)
from cirlib.data.synth.config import preset
from cirlib.encoders import FeatureCache, load_encoder
from cirlib.experiments import config_variant, evaluate, fusion_method, run_fusion_job, val_features
from cirlib.train.stage2 import load_trained_fusion

ROOT = Path.cwd().parent if Path.cwd().name == "notebooks" else Path.cwd()
size = "small" if SMALL else "medium"
benchmark = ROOT / "data" / ("synth-small" if SMALL else "synth")
manifest = prepare_benchmark(benchmark, preset(size))
DATASETS = {"fashioniq": "synth-fashioniq", "cirr": "synth-cirr"}


def moe_config(dataset: str):
    """The MoE config of notebook 02 (the same run folder), so its run is reused when present."""
    small = {"epochs": 6, "batch_size": 64} if SMALL else {}
    return config_variant(ROOT / "configs" / f"synth_moe_{dataset}.yaml", ROOT / "runs" / "notebooks",
                          data_root=str(benchmark / DATASETS[dataset]), cache=str(ROOT / "data" / "cache"), **small)


# %% [markdown]
# ## Train (or reuse) the MoE, load its best checkpoint, and route the validation queries

# %%
encoder = load_encoder("synthclip")
models, features, weights, types = {}, {}, {}, {}
for dataset in DATASETS:
    config = moe_config(dataset)
    run_fusion_job(config, resume=True, progress=False, verbose=False)  # quiet: no training log
    models[dataset] = load_trained_fusion(Path(config.out) / "best.safetensors")[0]
    features[dataset] = val_features(encoder, FeatureCache(config.cache, progress=False), config)
    splits = list(features[dataset].values()) if dataset == "fashioniq" else [features[dataset]]
    image = torch.cat([f.reference for f in splits])
    text = torch.cat([f.text for f in splits])
    weights[dataset], _ = routing_weights(models[dataset], image, text)
    types[dataset] = fashioniq_edit_types(config.data_root, config.categories) if dataset == "fashioniq" \
        else cirr_edit_types(config.data_root)
    print(dataset, "queries:", len(weights[dataset]), "experts:", weights[dataset].shape[1])

# %% [markdown]
# ## Expert utilisation
# *Mean router weight*: the expert's average router weight; *routed share*: how often it is among the
# two selected; *top share*: how often it carries the larger weight. A collapsed router would
# send everything to the same two experts (the design has no load-balancing loss by default).

# %%
fig, axes = plt.subplots(1, 2, figsize=(10, 3))
for ax, dataset in zip(axes, DATASETS):
    table = pd.DataFrame(utilisation(weights[dataset]), index=[f"expert {e}" for e in range(4)])
    table.plot.bar(ax=ax, rot=0, title=DATASETS[dataset], ylim=(0, 1))
    print(DATASETS[dataset], "\n", table.round(3).to_string(), "\n")
fig.tight_layout()
plt.show()

# %% [markdown]
# ## Mean router weight by edit type, and the NMI between top expert and edit type
# A query with several edit types counts under each with weight 1/(its number of types). NMI is
# 0 when the top expert says nothing about the edit type and 1 when it determines it.

# %%
fig, axes = plt.subplots(1, 2, figsize=(11, 4))
for ax, dataset in zip(axes, DATASETS):
    names, table = router_weights_by_edit_type(weights[dataset], types[dataset])
    nmi = top_expert_edit_type_nmi(weights[dataset], types[dataset])
    sns.heatmap(table, annot=True, fmt=".2f", cmap="viridis", ax=ax, yticklabels=names,
                xticklabels=[f"expert {e}" for e in range(table.shape[1])], cbar_kws={"label": "mean router weight"})
    ax.set_title(f"{DATASETS[dataset]}: NMI(top expert, edit type) = {nmi:.3f}")
    print(f"{DATASETS[dataset]}: NMI = {nmi:.4f}")
fig.tight_layout()
plt.show()

# %% [markdown]
# ## Switching experts off
# With expert *e* switched off, the router picks the best two of the other three for every query
# (only the queries that used *e* change). A large drop means the expert does work nobody else does.

# %%
metric = {"fashioniq": ["avg R@10", "avg R@50"], "cirr": ["R@1", "R@10", "Avg"]}
for dataset in DATASETS:
    full = evaluate(dataset, features[dataset], fusion_method(models[dataset]))
    rows = {"all experts": {k: full[k] for k in metric[dataset]}}
    for expert in range(4):
        off = evaluate(dataset, features[dataset], expert_off_method(models[dataset], expert))
        rows[f"expert {expert} off"] = {k: off[k] - full[k] for k in metric[dataset]}
    print(f"\n{DATASETS[dataset]}: recall with all experts, then the change (points) with one off")
    print(pd.DataFrame(rows).T.round(2).to_string())

# %% [markdown]
# ## Exercises
# 1. Train with `load_balance_weight: 0.01` (and `router_noise: 1.0`). Does utilisation even out,
#    and what happens to the NMI and to recall?
# 2. Restrict the heatmap to queries with a single edit type. Are the patterns sharper?
# 3. Which edit types does the expert with the largest drop serve? Look at a few such queries and
#    their top-5 results (notebook 01's `retrieval_grid`).
# 4. With `top_k: 1` every query uses one expert. Is the router more or less specialised?
