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
# # 01 · CLIP features for composed image retrieval
#
# **What this notebook teaches.** Composed image retrieval (CIR) starts from two CLIP embeddings:
# the reference image's and the modification text's. Here we load the project's small CLIP
# (`synthclip`, trained on the synthetic domain), extract and cache features for the synthetic
# benchmark, check that text and image embeddings agree (text→image retrieval, a similarity
# heatmap, a 2-D map of the features), and measure the three zero-shot baselines every CIR paper
# starts from: the reference image alone, the text alone, and their sum.
#
# `SMALL = True` uses the small benchmark (seconds; what CI runs); set it to `False` for the
# medium benchmark behind the README's tables.

# %% tags=["parameters"]
SMALL = True

# %% tags=["progress"]
from pathlib import Path

import matplotlib.pyplot as plt
import torch

from cirlib.analysis.benchmark import prepare_benchmark
from cirlib.data import CIRR, read_gallery_captions
from cirlib.data.synth.build import synth_labels
from cirlib.data.synth.config import preset
from cirlib.encoders import FeatureCache, describe, load_encoder
from cirlib.evaluation import benchmark_features, evaluate_methods, format_results
from cirlib.fusion import ZERO_SHOT_BASELINES
from cirlib.plots import feature_map, retrieval_grid, similarity_heatmap

ROOT = Path.cwd().parent if Path.cwd().name == "notebooks" else Path.cwd()
size = "small" if SMALL else "medium"
benchmark = ROOT / "data" / ("synth-small" if SMALL else "synth")
manifest = prepare_benchmark(benchmark, preset(size))
cache = FeatureCache(ROOT / "data" / "cache", progress=False)

# %% [markdown]
# ## The encoder
# `load_encoder()` is the one door to every CLIP: the bundled `synthclip`, a model folder, a local
# checkpoint, or an open_clip hub name. The encoder carries its preprocessing and an identity with
# a hash of its weights, which keys the feature cache.

# %%
encoder = load_encoder("synthclip")
print(describe(encoder))

# %% [markdown]
# ## Features of the CIRR-style gallery, cached
# The first call encodes and saves a safetensors file; the second finds it by its key.

# %%
reader = CIRR(benchmark / "synth-cirr")
names = reader.gallery("val")
paths = [reader.image_path(n, "val") for n in names]
images = cache.image_features(encoder, names, paths, "synth-cirr-val")
again = cache.image_features(encoder, names, paths, "synth-cirr-val")
print(images.shape, "cached:", torch.equal(images, again))

# %% [markdown]
# ## Text → image retrieval
# Each gallery image has captions written like a captioning model's (full, partial, noisy). We
# search the gallery with the *full* caption of a few images and outline the image it describes
# (#1 is the top result).

# %%
captions = read_gallery_captions(benchmark / "synth-cirr" / "gallery_captions" / "val.json")
probe = names[:: max(1, len(names) // 5)][:5]
texts = [captions[n][0] for n in probe]
text_features = cache.text_features(encoder, texts, "notebook01-probe")
scores = torch.nn.functional.normalize(text_features, dim=-1) @ torch.nn.functional.normalize(images, dim=-1).T
top = scores.topk(5, dim=1).indices
figure = retrieval_grid([(reader.image_path(n, "val"), t) for n, t in zip(probe, texts)],
                        [[paths[j] for j in row] for row in top.tolist()],
                        [[names[j] == n for j in row] for n, row in zip(probe, top.tolist())],
                        query_title="described image")

# %% [markdown]
# ## Do captions and images agree? A similarity heatmap
# Rows are the full captions of eight gallery images, columns the images: a bright diagonal
# means each caption is closest to its own image.

# %%
eight = names[:8]
caption_features = cache.text_features(encoder, [captions[n][0] for n in eight], "notebook01-heatmap")
rows = [names.index(n) for n in eight]
heat = torch.nn.functional.normalize(caption_features, dim=-1) @ torch.nn.functional.normalize(images[rows], dim=-1).T
similarity_heatmap(heat, [f"caption of {n}" for n in eight], eight)
plt.show()

# %% [markdown]
# ## A 2-D map of the image features
# The first two principal components of the normalised image features, coloured by an attribute.
# Attributes the encoder attends to show up as clusters.

# %%
labels = synth_labels(benchmark / "synth-cirr")
fig, axes = plt.subplots(1, 2, figsize=(10, 4))
feature_map(images, [labels[n]["background"] for n in names], "synth-cirr val, by background", axes[0])
feature_map(images, [str(len(labels[n]["objects"])) for n in names], "synth-cirr val, by object count", axes[1])
plt.show()

# %% [markdown]
# ## Zero-shot baselines
# Image only, text only, and the sum of the raw features (CLIP4Cir's baseline; the variant with
# normalised inputs weighs both modalities equally). FashionIQ-style tables report R@10/R@50 per
# category; CIRR-style R@K with the reference removed and Recall_subset within the image set.

# %%
results = evaluate_methods(benchmark_features(encoder, cache, benchmark), ZERO_SHOT_BASELINES)
print(format_results(results))

# %% [markdown]
# ## Exercises
# 1. Evaluate with `load_encoder("synthclip", preprocess="targetpad")`. Which objects does the
#    centre crop cut away on the 4:3 scenes, and what does it cost in recall?
# 2. Colour the feature map by the *shape* of the first object. Is shape or colour more visible?
# 3. Search with the *noisy* captions (index 2) instead of the full ones. How much does R@1 drop?
# 4. Why is the sum baseline with raw features different from the one with normalised inputs?
#    Compare the norms of image and text features.
