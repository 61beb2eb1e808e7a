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
# # 05 · Failure cases: which edits do the best methods miss, and why?
#
# **What this notebook teaches.** A recall number hides *which* queries fail. The synthetic
# benchmark records what every query asks for, so we can split the failures of the best trained
# method (Combiner or MoE) and the best training-free one (usually WeiMoCIR at its best α/β) by
# **edit type** (colour, sleeves, move, count, ...) and by **cause**:
#
# | cause | what the model must get right |
# |---|---|
# | fine-grained attribute | a small part (sleeves, neckline, graphic) or one object's colour, shape, size |
# | global attribute | the garment's colour or pattern, the scene's background |
# | spatial relation | where an object goes |
# | count | how many objects there are |
# | negation | something that must be *absent* ("has no print", "remove the disc") |
# | addition | a new object with its attributes |
# | caption noise | a vague caption that other gallery images satisfy too |
#
# Then we look at the failures themselves: retrieval grids with the target outlined.
#
# It runs (or reuses) the main job of `make demo` (`cirlib.demo.run_demo`): `SMALL = True` uses the
# small benchmark (CI), `False` the medium one with the demo's own runs, so after `make demo` it
# trains nothing.

# %% tags=["parameters"]
SMALL = True

# %%
from pathlib import Path

import matplotlib.pyplot as plt
import pandas as pd

from cirlib.analysis.failures import failure_examples, grid_inputs, group_table, synth_image_path
from cirlib.demo import DATASETS, DemoConfig, run_demo
from cirlib.failure_report import demo_outcomes
from cirlib.plots import group_recall_bars, retrieval_grid

ROOT = Path.cwd().parent if Path.cwd().name == "notebooks" else Path.cwd()
paths = {"cache": str(ROOT / "data" / "cache"), "configs": str(ROOT / "configs")}
if SMALL:
    config = DemoConfig(benchmark=str(ROOT / "data" / "synth-small"), size="small", epochs=4,
                        runs=str(ROOT / "runs" / "notebooks" / "demo-small"),
                        results=str(ROOT / "runs" / "notebooks" / "demo-small"), **paths)
else:
    config = DemoConfig(benchmark=str(ROOT / "data" / "synth"), runs=str(ROOT / "runs" / "demo"),
                        results=str(ROOT / "results"), **paths)
K = 10  # a query fails when its target is not in the top K, i.e. its rank (counted from 1) is above K

# %% [markdown]
# ## The main job: baselines, WeiMoCIR, trained Combiner and MoE
#
# `run_demo` prints only its stages here (`verbose=False`: no training log); the two tables below are
# what `make demo` saves in `results/`.

# %% tags=["progress"]
result = run_demo(config, verbose=False)

# %%
for dataset, rows in result.tables.items():
    display(pd.DataFrame(rows).T.style.format(precision=1).set_caption(f"{DATASETS[dataset]} (val)"))

# %% [markdown]
# ## Every query's outcome under the two best methods
#
# One row per val query: what it asks for, and for each method the target's rank and its top 5.
# Ranks count from 1 (1: the target is the top result), here and in the grids below. They follow the
# metrics' rules, so their recall equals the table above (tested).

# %%
outcomes, best = {}, {}
for dataset in DATASETS:
    outcomes[dataset], best[dataset] = demo_outcomes(result, dataset)
    trained, free = best[dataset]
    print(f"{DATASETS[dataset]}: best trained = {trained}, best training-free = {free}, "
          f"{len(outcomes[dataset])} queries")
outcomes["cirr"].head()

# %% [markdown]
# ## Recall by cause and by edit type
#
# A query with two edits counts in both groups. The count in brackets is the number of queries;
# small groups are noisy, on the small benchmark especially.

# %%
for dataset in DATASETS:
    figure, axes = plt.subplots(1, 2, figsize=(14, 3.8))
    for ax, by in zip(axes, ("causes", "edit types")):
        group_recall_bars(group_table(outcomes[dataset], by=by, k=K), f"R@{K} ", ax=ax,
                          title=f"{DATASETS[dataset]}: R@{K} by {by[:-1]}")
    figure.tight_layout()
    plt.show()

# %%
tables = {dataset: group_table(outcomes[dataset], by="causes", k=K) for dataset in DATASETS}
for dataset, table in tables.items():
    display(table.style.format(precision=1).set_caption(
        f"{DATASETS[dataset]}: failures (target not in the top {K}) by cause"))

# %% [markdown]
# Which cause costs each method the most recall? The lowest bar per method, computed:

# %%
for dataset, table in tables.items():
    for method in best[dataset]:
        column = table[f"R@{K} {method}"]
        print(f"{DATASETS[dataset]:16s} {method:24s} weakest on {column.idxmin()!r} "
              f"(R@{K} {column.min():.1f} over {table.loc[column.idxmin(), 'queries']} queries), "
              f"strongest on {column.idxmax()!r} ({column.max():.1f})")

# %% [markdown]
# ## Do the two methods fail on the same queries?
#
# If the trained and the training-free method failed on different queries, combining them would
# help; if they fail together, those queries are hard for the frozen features themselves.

# %%
for dataset in DATASETS:
    frame, (trained, free) = outcomes[dataset], best[dataset]
    crossed = pd.crosstab(frame[f"rank {trained}"] <= K, frame[f"rank {free}"] <= K,
                          rownames=[f"{trained} finds it"], colnames=[f"{free} finds it"])
    display(crossed.style.set_caption(DATASETS[dataset]))

# %% [markdown]
# ## The failures themselves
#
# For each method, one failed query per cause (the worst-ranked one): the reference with its text,
# the method's top 5, and the target with the rank the method gave it (orange: not in the top 5).

# %%
for dataset in DATASETS:
    path_of = synth_image_path(config.benchmark, DATASETS[dataset])
    for method in best[dataset]:
        examples = failure_examples(outcomes[dataset], method, by="causes", k=K)
        if examples.empty:
            print(f"{DATASETS[dataset]} {method}: no failures at K={K}")
            continue
        figure = retrieval_grid(**grid_inputs(examples, method, path_of), thumb=1.5)
        figure.suptitle(f"{DATASETS[dataset]} · {method}: one failure per cause", fontsize=10)
        plt.show()

# %% [markdown]
# ## What to take away
#
# - The group tables, not the overall recall, say where a method is weak: compare a method's
#   weakest cause with its strongest above.
# - Spatial relations, counts and negations are where a single global vector per image is expected
#   to struggle (it keeps *what* is there better than *where* or *how many*); the cause table shows
#   how far that holds for each method here, and the README quotes it for the medium benchmark.
# - Vague captions ("caption noise") fail by construction: another image fits the text too, so the
#   "failure" may be a correct retrieval that the single ground truth does not credit. CIRR's
#   Recall_subset and CIRCO's multiple ground truths exist for this reason.
# - Queries both methods miss are candidates for a better encoder; queries only one misses are
#   candidates for combining the two.
