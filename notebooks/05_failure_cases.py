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
# method (Combiner or MoE) and the best training-free one (usually WeiMoCIR, α/β chosen on held-out halves of val) by
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
# It runs (or reuses) the main job of `make demo` (`cirlib.apps.demo.run_demo`): `SMALL = True` uses the
# small benchmark (CI), `False` the medium one with the demo's own runs, so after `make demo` it
# trains nothing.
#
# **Time and files.** With `SMALL = True` it took 273 s, most of it training the Combiner and the MoE on both
# datasets for 8 epochs (measured 2026-11-28 on the 2-core development machine, in a fresh clone, while other
# jobs kept it busy (load average 4-5), so expect less on an idle machine); a rerun reuses everything. It writes
# the small benchmark to `data/synth-small/` (if absent), the features to `data/cache/`, and the four training
# runs, the demo's tables (`demo.json`, `demo_*.md`) and figures to `runs/notebooks/demo-small/`.

# %% tags=["parameters"]
SMALL = True

# %%
from pathlib import Path

import matplotlib.pyplot as plt
import pandas as pd

from cirlib.analysis import failure_examples, grid_inputs, group_table, synth_image_path
from cirlib.apps import DEMO_DATASETS, DemoConfig, demo_outcomes, run_demo
from cirlib.metrics import protocol
from cirlib.viz import difference_text, group_recall_bars, ranking, ranking_text, retrieval_grid, should_see, takeaways

ROOT = Path.cwd().parent if Path.cwd().name == "notebooks" else Path.cwd()
paths = {"cache": str(ROOT / "data" / "cache"), "configs": str(ROOT / "configs")}
if SMALL:
    config = DemoConfig(benchmark=str(ROOT / "data" / "synth-small"), size="small", epochs=8,
                        runs=str(ROOT / "runs" / "notebooks" / "demo-small"),
                        results=str(ROOT / "runs" / "notebooks" / "demo-small"), **paths)
else:
    config = DemoConfig(benchmark=str(ROOT / "data" / "synth"), runs=str(ROOT / "runs" / "demo"),
                        results=str(ROOT / "results"), **paths)
K = 10  # a query fails when its target is not in the top K, i.e. its rank (counted from 1) is above K
MEDIUM = {"fashioniq": {"MoE": 73.0, "Combiner": 69.5, "WeiMoCIR": 52.4},  # README, "The main job's results":
          "cirr": {"WeiMoCIR": 38.1, "MoE": 37.8, "Combiner": 35.7}}       # medium, avg and Avg (WeiMoCIR held-out)

# %% [markdown]
# ## The main job: baselines, WeiMoCIR, trained Combiner and MoE
#
# `run_demo` prints only its stages here (`verbose=False`: no training log); the two tables below are
# what `make demo` saves in `results/`.

# %% tags=["progress"]
result = run_demo(config, verbose=False)

# %%
for dataset, rows in result.tables.items():  # dropna: columns only the baselines have
    display(pd.DataFrame(rows).T.dropna(axis=1).style.format(precision=1).set_caption(f"{DEMO_DATASETS[dataset]} (val)"))

# %%
def short(name: str, dataset: str) -> str:
    names = {result.weimocir_label(dataset): "WeiMoCIR", result.upper_bound_label(dataset): "WeiMoCIR upper bound"}
    return names.get(name, name)


lines, orders = [], {}
for dataset, rows in result.tables.items():
    metric = protocol(dataset).select_by
    values = {short(name, dataset): row[metric] for name, row in rows.items()}  # WeiMoCIR: the held-out row
    orders[dataset] = ranking({method: values[method] for method in MEDIUM[dataset]})
    same = orders[dataset] == ranking(MEDIUM[dataset])
    lines.append(f"- **{DEMO_DATASETS[dataset]}** ({metric}): {ranking_text(values)}. "
                 + ("" if not SMALL else "The same order of the three as on medium." if same else
                    f"On medium the order is {ranking_text(MEDIUM[dataset])}."))
reversed_order = [DEMO_DATASETS[d] for d, order in orders.items() if order != ranking(MEDIUM[d])]
free_first = [DEMO_DATASETS[d] for d, order in orders.items() if order[0] == "WeiMoCIR"]
nl = "\n"
should_see(f"""
Every method by the dataset's selection metric (FashionIQ: avg = (R@10 + R@50) / 2; CIRR: Avg = (R@5 +
Rsubset@1) / 2), best first:

{nl.join(lines)}

{"" if not SMALL else f"WeiMoCIR comes first on {' and '.join(free_first) or 'neither dataset'}. " + (
 f"On {' and '.join(reversed_order)} the order of WeiMoCIR and the trained models differs from the medium "
 "benchmark's (README, section “The main job's results”), where trained fusion wins clearly on synth-fashioniq. "
 f"The small benchmark gives the trained models few training triplets and {config.epochs} epochs, which favours "
 "WeiMoCIR (its α and β are chosen on the other half of val, never on the queries they score; the upper-bound row, "
 "chosen on this very split, shows what peeking would add)." if reversed_order else
 "The three come in the same order as on the medium benchmark (README, section “The main job's results”).")}
The rest of this notebook compares the best trained and the best training-free method query by query.
""")

# %% [markdown]
# ## Every query's outcome under the two best methods
#
# One row per val query: what it asks for, and for each method the target's rank and its top 5.
# Ranks count from 1 (1: the target is the top result), here and in the grids below. They follow the
# metrics' rules, so their recall equals the table above (tested).

# %%
outcomes, best = {}, {}
for dataset in DEMO_DATASETS:
    outcomes[dataset], best[dataset] = demo_outcomes(result, dataset)
    trained, free = best[dataset]
    print(f"{DEMO_DATASETS[dataset]}: best trained = {trained}, best training-free = {free}, "
          f"{len(outcomes[dataset])} queries")
outcomes["cirr"].head()

# %%
trained, free = best["cirr"]
row = outcomes["cirr"].iloc[0]
missed_by = [m for m in (trained, free) if row[f"rank {m}"] > K]
should_see(f"""
Each row is one val query: the reference and target image, the modification text, the edit types the
generator recorded and the causes they map to (e.g. *resize* → fine-grained attribute), then per method the rank
it gave the target (counted from 1: #1 is the top result) and its top 5. The first row asks “{row.text}”
({", ".join(row["edit types"])}): {trained} ranks its target #{row[f"rank {trained}"]}, {short(free, "cirr")}
#{row[f"rank {free}"]}; with K = {K} it is a failure for
{" and ".join(short(m, "cirr") for m in missed_by) if missed_by else "neither"}.
Averaging "rank ≤ K" over the rows gives each method's R@{K} in the table above.
""")

# %% [markdown]
# ## Recall by cause and by edit type
#
# For a group $g$ of queries (one cause, or one edit type) the recall is the share of its queries
# whose target ranks in the top $K$:
#
# $$\mathrm{R@}K(g) = \frac{100}{|Q_g|} \sum_{q \in Q_g} \mathbf{1}[\mathrm{rank}_q \le K],$$
#
# where $Q_g$ is the set of val queries in group $g$, $\mathrm{rank}_q$ the rank of query $q$'s target
# (counted from 1) and $\mathbf{1}[\cdot]$ is 1 when the condition holds, else 0. A query with two edits
# counts in both groups. The count in brackets is $|Q_g|$; small groups are noisy, on the small
# benchmark especially.

# %%
groups = {dataset: {by: group_table(outcomes[dataset], by=by, k=K) for by in ("causes", "edit types")}
          for dataset in DEMO_DATASETS}
for dataset in DEMO_DATASETS:
    figure, axes = plt.subplots(1, 2, figsize=(14, 3.8))
    for ax, by in zip(axes, ("causes", "edit types")):
        group_recall_bars(groups[dataset][by], f"R@{K} ", ax=ax, title=f"{DEMO_DATASETS[dataset]}: R@{K} by {by[:-1]}")
    figure.tight_layout()
    plt.show()

# %%
lines = []
for dataset in DEMO_DATASETS:
    trained, free = best[dataset]
    for by, table in groups[dataset].items():
        gaps = table[f"R@{K} {free}"] - table[f"R@{K} {trained}"]
        widest = gaps.abs().idxmax()
        lines.append(f"- **{DEMO_DATASETS[dataset]}, by {by[:-1]}**: {short(free, dataset)} is ahead in {(gaps > 0).sum()} "
                     f"of {len(gaps)} groups, {trained} in {(gaps < 0).sum()}; the largest gap is on *{widest}* "
                     f"({abs(gaps[widest]):.1f} points, {table.loc[widest, 'queries']} queries, one query = "
                     f"{100 / table.loc[widest, 'queries']:.1f} points).")
smallest = min(table["queries"].min() for by_table in groups.values() for table in by_table.values())
should_see(f"""
Per dataset, which method is ahead in how many groups:

{nl.join(lines)}

A group's bar is only as precise as its size allows: the smallest has {smallest} queries, where one query moves
the bar by {100 / smallest:.1f} points, so read gaps of a few points there as noise.
""")

# %%
tables = {dataset: groups[dataset]["causes"] for dataset in DEMO_DATASETS}
for dataset, table in tables.items():
    display(table.style.format(precision=1).set_caption(
        f"{DEMO_DATASETS[dataset]}: failures (target not in the top {K}) by cause"))

# %% [markdown]
# Which cause costs each method the most recall? The lowest bar per method, computed:

# %%
for dataset, table in tables.items():
    for method in best[dataset]:
        column = table[f"R@{K} {method}"]
        print(f"{DEMO_DATASETS[dataset]:16s} {method:24s} weakest on {column.idxmin()!r} "
              f"(R@{K} {column.min():.1f} over {table.loc[column.idxmin(), 'queries']} queries), "
              f"strongest on {column.idxmax()!r} ({column.max():.1f})")

# %%
# README, "Where they fail" (medium): each method's weakest cause (MoE, WeiMoCIR), and where WeiMoCIR is ahead
MEDIUM_WEAKEST = {"fashioniq": ("negation", "negation"), "cirr": ("caption noise", "negation")}
MEDIUM_AHEAD = {"fashioniq": [], "cirr": ["count", "addition", "caption noise"]}
lines = []
for dataset, table in tables.items():
    trained, free = best[dataset]
    weakest = [table[f"R@{K} {method}"].idxmin() for method in (trained, free)]
    ahead = [cause for cause in table.index if table.loc[cause, f"R@{K} {free}"] > table.loc[cause, f"R@{K} {trained}"]]
    lines.append(f"- **{DEMO_DATASETS[dataset]}**: weakest cause {weakest[0]} for {trained} and {weakest[1]} for "
                 f"{short(free, dataset)} (medium: {MEDIUM_WEAKEST[dataset][0]} for MoE, {MEDIUM_WEAKEST[dataset][1]} "
                 f"for WeiMoCIR); WeiMoCIR is ahead on {len(ahead)} of {len(table)} causes"
                 f"{': ' + ', '.join(ahead) if 0 < len(ahead) < len(table) else ''} (medium: "
                 f"{', '.join(MEDIUM_AHEAD[dataset]) or 'none'}).")
negation_weak = sum(table[f"R@{K} {m}"].idxmin() == "negation" for d, table in tables.items() for m in best[d])
medium_negation = sum(cause == "negation" for causes in MEDIUM_WEAKEST.values() for cause in causes)
cirr_table, (cirr_trained, cirr_free) = tables["cirr"], best["cirr"]
counted = [c for c in ("count", "addition") if c in cirr_table.index
           and cirr_table.loc[c, f"R@{K} {cirr_free}"] > cirr_table.loc[c, f"R@{K} {cirr_trained}"]]
should_see(f"""
The weakest causes, here and on the medium benchmark (README, "Where they fail"):

{nl.join(lines)}

Negation is the weakest cause for {negation_weak} of the 4 method-dataset pairs here ({medium_negation} of 4 on
medium). It is hard for any method that compares one vector per image: "remove the disc" must *lower* the score
of images that show a disc, while the text feature of "disc" pulls them closer.
{f"WeiMoCIR is ahead on {' and '.join(counted)} here, as on medium: its caption side helps, because the gallery "
 "captions name every object, so a caption can match “two triangles” where a single image vector blurs the count."
 if counted else ""}
""")

# %% [markdown]
# ## Do the two methods fail on the same queries?
#
# If the trained and the training-free method failed on different queries, combining them would
# help; if they fail together, those queries are hard for the frozen features themselves.

# %%
crosses = {}
for dataset in DEMO_DATASETS:
    frame, (trained, free) = outcomes[dataset], best[dataset]
    crosses[dataset] = pd.crosstab(frame[f"rank {trained}"] <= K, frame[f"rank {free}"] <= K,
                                   rownames=[f"{trained} finds it"], colnames=[f"{free} finds it"]
                                   ).reindex(index=[True, False], columns=[True, False], fill_value=0)
    display(crosses[dataset].style.set_caption(DEMO_DATASETS[dataset]))

# %%
lines = []
for dataset, crossed in crosses.items():
    trained, free = best[dataset]
    n, both = int(crossed.values.sum()), int(crossed.loc[False, False])
    only_trained, only_free = int(crossed.loc[False, True]), int(crossed.loc[True, False])
    single = 100 * max(crossed.loc[True].sum(), crossed[True].sum()) / n
    lines.append(f"- **{DEMO_DATASETS[dataset]}**: both miss {both} of {n} queries; only {trained} misses {only_trained}, "
                 f"only {short(free, dataset)} {only_free}. Picking the right method per query would reach R@{K} "
                 f"{100 * (n - both) / n:.1f}, {difference_text(100 * (n - both) / n, single)} than the better "
                 f"one alone.")
should_see(f"""
The rows say whether the best trained method ({" / ".join(dict.fromkeys(best[d][0] for d in DEMO_DATASETS))}) finds
the target in its top {K}, the columns whether WeiMoCIR does:

{nl.join(lines)}

The queries both miss are hard for the frozen features themselves: a better fusion of the same vectors will not
find them, a better encoder might. The queries only one misses are what combining the two could win (averaging
their scores, or choosing by edit type): that per-query choice is an upper bound no real combination reaches.
On the medium benchmark (README) they fail together on 1,102 of 3,000 FashionIQ-style and 1,380 of 3,200
CIRR-style queries, and on CIRR one alone fails on 427 (MoE) and 552 (WeiMoCIR) more.
""")

# %% [markdown]
# ## The failures themselves
#
# For each method, one failed query per cause (the worst-ranked one): the reference with its text,
# the method's top 5, and the target with the rank the method gave it (orange: not in the top 5).

# %%
shown = {}
for dataset in DEMO_DATASETS:
    path_of = synth_image_path(config.benchmark, DEMO_DATASETS[dataset])
    for method in best[dataset]:
        shown[dataset, method] = examples = failure_examples(outcomes[dataset], method, by="causes", k=K)
        if examples.empty:
            print(f"{DEMO_DATASETS[dataset]} {method}: no failures at K={K}")
            continue
        figure = retrieval_grid(**grid_inputs(examples, method, path_of), thumb=1.5)
        figure.suptitle(f"{DEMO_DATASETS[dataset]} · {method}: one failure per cause", fontsize=10)
        plt.show()

# %%
lines = []
for (dataset, method), examples in shown.items():
    if examples.empty:
        continue
    ranks = examples[f"rank {method}"]
    reference_kept = sum(r.reference in top for r, top in zip(examples.itertuples(), examples[f"top {method}"]))
    lines.append(f"- **{DEMO_DATASETS[dataset]} · {short(method, dataset)}**: {len(examples)} failures, targets at "
                 f"#{ranks.min()}–#{ranks.max()}" + (f"; in {reference_kept} of them the top 5 hold the reference "
                                                       "image itself" if dataset == "fashioniq" else ""))
should_see(f"""
The orange frame in the last column is the target, labelled with the rank the method gave it (counted from 1,
as in the table of outcomes); it is orange because it is not in the top 5, and here not even in the top {K}:

{nl.join(lines)}

Read each row left to right: the top 5 usually keep much of the reference (the garment's shape, its pattern,
the same objects) and miss some of what the text asked for, such as the new colour or the absent sleeves: the
failure is in applying the edit, not in recognising the reference. FashionIQ keeps the reference in the gallery,
so a method that under-weighs the text retrieves the reference itself. The worst-ranked
failure of each cause is shown, so these are the hardest cases, not typical ones.
""")

# %%
caption_noise = {d: int(tables[d].loc["caption noise", "queries"]) if "caption noise" in tables[d].index else 0
                 for d in DEMO_DATASETS}
takeaways([
    f"""
    Ranking by the selection metric: {"; ".join(f"{DEMO_DATASETS[d]} {' > '.join(orders[d])}" for d in DEMO_DATASETS)}
    {"(medium: trained MoE and Combiner far ahead of WeiMoCIR on synth-fashioniq, WeiMoCIR slightly ahead on "
     "synth-cirr)" if SMALL else ""}. The small benchmark is small: trust only gaps of many queries.""",
    f"""
    The group tables, not the overall recall, say where a method is weak: negation is the weakest cause for
    {negation_weak} of the 4 method-dataset pairs here and {medium_negation} of 4 on medium.""",
    f"""
    The two methods fail together on {", ".join(f"{int(c.loc[False, False])} of {int(c.values.sum())} "
    f"{DEMO_DATASETS[d]}" for d, c in crosses.items())} queries: those need better features; the queries only one
    misses are the room for combining them.""",
    f"""
    Vague captions ("caption noise", {" and ".join(f"{n} {DEMO_DATASETS[d]}" for d, n in caption_noise.items() if n)}
    queries here) fail by construction: another image fits the text too, so a "failure" may be a correct
    retrieval the single ground truth does not credit. CIRR's Recall_subset and CIRCO's multiple ground truths
    exist for this reason.""",
])

# %% [markdown]
# ## Open questions
# Answer each in the cell below it, in words and with the numbers you computed (graded by hand).
#
# 1. Raise `K` to 50 and rerun the tables: which causes stop failing, and which stay hard?

# %% [markdown] nbgrader={"grade": true, "grade_id": "q_k50_causes", "locked": false, "points": 1, "schema_version": 3, "solution": true, "task": false}
# ### BEGIN SOLUTION
# With `K = 50` (SMALL, our run) synth-cirr's count, addition, caption noise and global attribute reach 87-100 % R@50
# for both methods (0-5 failures left each), and spatial relation 90-94 %: those targets were near the top already.
# Negation stays the hardest (MoE 79.7 %, WeiMoCIR 77.0 %: 15 and 17 of 74 queries still missed), then fine-grained
# attribute (86.3 % and 83.8 %). On synth-fashioniq every cause is at 95-100 %. A good answer names negation and small
# details as the failures a larger K does not fix: the target is not just ranked a little low, the query points
# away from it ("remove the disc" pulls towards images with a disc).
# ### END SOLUTION

# %% [markdown]
# 2. Pick a synth-cirr query that only WeiMoCIR finds (rows of `outcomes["cirr"]` whose WeiMoCIR rank is
#    at most `K` and whose trained rank is above it) and read its text and edit types. What does WeiMoCIR's
#    caption side know that the trained model does not?

# %% [markdown] nbgrader={"grade": true, "grade_id": "q_only_weimocir", "locked": false, "points": 1, "schema_version": 3, "solution": true, "task": false}
# ### BEGIN SOLUTION
# On the `tiny` preset (the earlier, smaller `SMALL`) 29 queries are found by WeiMoCIR only, for example "has one jet black triangle instead of two and put a
# small cobalt round shape in the centre" (edit types count and add; MoE ranks its target #12, WeiMoCIR #6). Addition
# (13 of the 29) and count (9) are over-represented. The caption side compares the query with captions that name
# every object of a gallery image with its count, colour and place, so "one triangle" or "a cobalt round shape"
# matches words in the target's caption; the trained model sees one image vector per gallery image, which blurs counts
# and small objects, and learned its fusion from few training triplets.
# ### END SOLUTION

# %% [markdown]
# 3. Group the failures by edit type instead of cause (`failure_examples(..., by="edit types")`): is one
#    edit type behind most of a cause's failures?

# %% [markdown] nbgrader={"grade": true, "grade_id": "q_edit_types_behind_causes", "locked": false, "points": 1, "schema_version": 3, "solution": true, "task": false}
# ### BEGIN SOLUTION
# Yes for most causes, because a cause is mostly one edit type: on synth-cirr (SMALL, MoE, K = 10) all 44 negation
# failures hold a *remove* edit, all 34 spatial-relation failures a *move*, all 28 count failures a *count* edit.
# Fine-grained attribute is mixed: of its 72 failures 44 hold a *recolour*, 25 a *reshape*, 20 a *remove* (a query
# can hold several). So negation's weakness is removal itself, while the fine-grained failures are mostly recolouring
# one object among several.
# ### END SOLUTION

# %% [markdown]
# ## Graded exercises
# Write each function from its docstring. The cell after it checks it against cirlib's own implementation
# on small inputs it makes itself, so these cells use nothing from the notebook above and run in seconds.

# %% nbgrader={"grade": false, "grade_id": "setup_05", "locked": true, "schema_version": 3, "solution": false, "task": false}
import torch

from cirlib.assignment import check

# %% [markdown]
# **Exercise 1: the target's rank**, as `query_outcomes` computes it for the table of outcomes above.

# %% nbgrader={"grade": false, "grade_id": "target_rank", "locked": false, "schema_version": 3, "solution": true, "task": false}
def target_rank(scores, targets, exclude):
    """Each query's target rank counted from 1 (1: the top result), equal scores ranked by the lower column.

    scores: float32 tensor (Q, G), row i holding query i's scores against G gallery images (higher is better);
    targets: int64 tensor (Q,), the gallery column of each query's target; exclude: int64 tensor (Q,), a column
    taken out of the row's ranking (CIRR's reference image), or -1 for none; it is never the target column. With
    c = targets[i] the rank of query i is
        1 + (number of columns j with scores[i, j] > scores[i, c])
          + (number of columns j < c with scores[i, j] == scores[i, c])     (equal scores: the lower column first)
    where both counts skip the column exclude[i]. Return an int64 tensor (Q,).
    """
    ### BEGIN SOLUTION
    own = scores.gather(1, targets[:, None])
    columns = torch.arange(scores.shape[1])
    ahead = (scores > own) | ((scores == own) & (columns < targets[:, None]))
    return 1 + (ahead & (columns != exclude[:, None])).sum(1)
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "target_rank_check", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
check("target_rank", target_rank)
### BEGIN HIDDEN TESTS
check("target_rank", target_rank, hidden=True)
### END HIDDEN TESTS

# %% [markdown]
# **Exercise 2: the failure-cause tally**, one method's column of the cause tables above.

# %% nbgrader={"grade": false, "grade_id": "cause_tally", "locked": false, "schema_version": 3, "solution": true, "task": false}
def cause_tally(causes, ranks, k):
    """Per cause, the number of queries and their R@k: {cause: (queries, recall)}.

    causes: a list with one list of cause names per query (a query may list no cause, or the same cause twice);
    ranks: a list of ints, each query's target rank counted from 1; k: an int. A query belongs to every cause it
    lists, once however often it lists it, and is a hit when its rank <= k. For each cause that at least one
    query belongs to, return queries (int: how many queries belong to it) and recall (float: 100 * hits / queries,
    in percent), as a dict {cause: (queries, recall)} in any order. Causes no query lists are left out.
    """
    ### BEGIN SOLUTION
    counted = {}
    for listed, rank in zip(causes, ranks):
        for cause in set(listed):
            queries, hits = counted.get(cause, (0, 0))
            counted[cause] = (queries + 1, hits + int(rank <= k))
    return {cause: (queries, 100 * hits / queries) for cause, (queries, hits) in counted.items()}
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "cause_tally_check", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
check("cause_tally", cause_tally)
### BEGIN HIDDEN TESTS
check("cause_tally", cause_tally, hidden=True)
### END HIDDEN TESTS
