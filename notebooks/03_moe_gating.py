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
# It trains (or reuses, from notebook 02) the MoE of `configs/synth_moe_*.yaml`, and the balanced MoE of
# `configs/synth_moe_balanced_*.yaml` that the gating study recommends. `SMALL = True` uses the small benchmark
# (CI); `False` the medium one.
#
# **Time and files.** With `SMALL = True` it took 214 s when it had to train its two MoE runs itself (notebook
# 02 not run before it) and encode the training features (measured 2026-11-28 on the 2-core development machine,
# in a fresh clone, while other jobs kept it busy (load average 4-5), so expect less on an idle machine); after
# notebook 02 it reuses those runs and only routes the val queries. It writes features to `data/cache/` and the
# two MoE runs to `runs/notebooks/synth_moe_<dataset>-<hash>/` (the same folders as notebook 02), and builds
# `data/synth-small/` if it is absent.

# %% tags=["parameters"]
SMALL = True

# %% tags=["progress"]
import inspect
from pathlib import Path

import matplotlib.pyplot as plt
import pandas as pd
import seaborn as sns
import torch
from IPython.display import display

from cirlib.analysis import (
    cirr_edit_types,
    expert_off_method,
    fashioniq_edit_types,
    prepare_benchmark,
    query_groups,
    router_weights_by_edit_type,
    routing_weights,
    top_expert_edit_type_nmi,
    utilisation,
)
from cirlib.apps import DEMO_DATASETS
from cirlib.data.synth import preset
from cirlib.encoders import load_encoder
from cirlib.evaluation import evaluate_split
from cirlib.experiments import (
    analyse_routing,
    config_variant,
    fusion_method,
    query_texts,
    run_fusion_job,
    val_features,
)
from cirlib.features import FeatureCache
from cirlib.fusion import MoECombiner, route, switch_loss
from cirlib.train import load_trained_fusion
from cirlib.viz import should_see, takeaways

ROOT = Path.cwd().parent if Path.cwd().name == "notebooks" else Path.cwd()
size = "small" if SMALL else "medium"
benchmark = ROOT / "data" / ("synth-small" if SMALL else "synth")
manifest = prepare_benchmark(benchmark, preset(size))


def moe_config(dataset: str, name: str = "synth_moe"):
    """The MoE config ``configs/<name>_<dataset>.yaml``; the default one is notebook 02's (the same run folder), so
    its run is reused when present."""
    small = {"epochs": 6, "batch_size": 64} if SMALL else {}
    return config_variant(ROOT / "configs" / f"{name}_{dataset}.yaml", ROOT / "runs" / "notebooks",
                          data_root=str(benchmark / DEMO_DATASETS[dataset]), cache=str(ROOT / "data" / "cache"), **small)


# %% [markdown]
# ## Top-k routing, the mixture and the gate
# $v, t \in \mathbb{R}^D$ are the raw CLIP features of the reference image and the text. The MoE projects
# both to $P$ dimensions and lets the two tokens attend to each other; $h \in \mathbb{R}^{2P}$ is the result,
# text first (notebook 02's $c$, after self-attention). A linear **router** scores the $E = 4$ experts,
# $$z = W_r\, h + b_r \in \mathbb{R}^E,$$
# keeps the $k = 2$ largest scores, $S = \operatorname{top-}k(z)$, and turns only those into **router
# weights** with a softmax; every other expert gets 0 and does not run:
# $$w_e = \frac{\exp(z_e)}{\sum_{e' \in S} \exp(z_{e'})} \ \text{ for } e \in S, \qquad w_e = 0 \ \text{ otherwise}.$$
# Each expert is a small network, $\mathrm{expert}_e(h) = \mathrm{Dropout}(\mathrm{GELU}(W_e\, h))$ with $H$
# hidden units. Their weighted mixture, through one output layer, replaces the Combiner's branch $b$:
# $$m = \sum_{e=1}^{E} w_e\, \mathrm{expert}_e(h), \qquad \mathrm{base} = W_o\, \mathrm{Dropout}(\mathrm{ReLU}(m)).$$
# The **gate** is a vector $g = \sigma(\ldots h) \in (0, 1)^D$, one weight per dimension where the Combiner had
# one scalar λ, and mixes the raw text and image features:
# $$q = \mathrm{normalize}\big(\mathrm{base} + g \odot t + (1 - g) \odot v\big)$$
# ($\odot$: element-wise product). Nothing in this objective asks the router to spread the queries over the
# experts: the training loss is notebook 02's batch classification loss alone. The routing, in code:

# %%
print(inspect.getsource(route))

# %% [markdown]
# And the forward pass: `joint` is $h$, `weights` are the $w_e$, `base` and `gate` as above (`residual_mix` is
# the last formula).

# %%
print(inspect.getsource(MoECombiner.forward))

# %% [markdown]
# ## Train (or reuse) the MoE, load its best checkpoint, and route the validation queries

# %%
encoder = load_encoder("synthclip")
models, features, weights, types, best_epoch = {}, {}, {}, {}, {}
for dataset in DEMO_DATASETS:
    config = moe_config(dataset)
    best_epoch[dataset] = run_fusion_job(config, resume=True, progress=False, verbose=False)["best"]["epoch"]
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
# two selected; *top share*: how often it carries the larger weight. Balanced experts would each have a
# mean router weight of 1/4.

# %%
usage = {d: pd.DataFrame(utilisation(weights[d]), index=[f"expert {e}" for e in range(4)]) for d in DEMO_DATASETS}
fig, axes = plt.subplots(1, 2, figsize=(10, 3))
for ax, dataset in zip(axes, DEMO_DATASETS):
    usage[dataset].plot.bar(ax=ax, rot=0, title=DEMO_DATASETS[dataset], ylim=(0, 1.25))
    ax.legend(fontsize=8, loc="upper center", ncols=3)
    display(usage[dataset].style.format(precision=3).set_caption(DEMO_DATASETS[dataset]))
fig.tight_layout()
plt.show()

# %%
dominant = {d: int(usage[d]["mean router weight"].argmax()) for d in DEMO_DATASETS}
carried = {d: usage[d]["mean router weight"].iloc[dominant[d]] for d in DEMO_DATASETS}
top_share = {d: usage[d]["top share"].iloc[dominant[d]] for d in DEMO_DATASETS}
collapsed = all(c > 0.8 for c in carried.values())
should_see(f"""
{"The router has collapsed. " if collapsed else ""}{" ".join(
    f"On {DEMO_DATASETS[d]} expert {dominant[d]} carries {carried[d]:.2f} of the router weight on average and is the top "
    f"expert for {100 * top_share[d]:.1f}% of the queries." for d in DEMO_DATASETS)} Each query still runs two experts, but
the second gets the crumbs ({", ".join(f"{1 - carried[d]:.2f}" for d in DEMO_DATASETS)} on average): top-2 routing has
become top-1 with one expert. Why: the training loss contains no load-balancing term
(`load_balance_weight` = {models["cirr"].load_balance_weight:g}), and top-k routing rewards the rich. The expert
that wins the top slot early receives the gradient of most queries, improves, and the loss pushes its router score
up for every query; the others, rarely selected and weighted near 0, get almost no gradient and never catch up.
The medium benchmark shows the same (README, "The MoE router collapses": one expert is the top expert for
92.7-100% of the val queries in each of its six MoE runs).
""")

# %% [markdown]
# ## Mean router weight by edit type, and the NMI between top expert and edit type
# A query with several edit types counts under each with weight 1/(its number of types). NMI, the
# normalised mutual information, is 0 when the top expert says nothing about the edit type and 1 when it
# determines it.

# %%
fig, axes = plt.subplots(1, 2, figsize=(11, 4))
by_type, nmi = {}, {}
for ax, dataset in zip(axes, DEMO_DATASETS):
    by_type[dataset] = router_weights_by_edit_type(weights[dataset], types[dataset])
    names, table = by_type[dataset]
    nmi[dataset] = top_expert_edit_type_nmi(weights[dataset], types[dataset])
    sns.heatmap(table, annot=True, fmt=".2f", cmap="viridis", ax=ax, yticklabels=names,
                xticklabels=[f"expert {e}" for e in range(table.shape[1])], cbar_kws={"label": "mean router weight"})
    ax.set_title(f"{DEMO_DATASETS[dataset]}: NMI(top expert, edit type) = {nmi[dataset]:.3f}")
fig.tight_layout()
plt.show()

# %%
lowest = {d: by_type[d][1][:, dominant[d]].min() for d in DEMO_DATASETS}
should_see(f"""
One bright column per dataset. {" ".join(
    f"On {DEMO_DATASETS[d]} expert {dominant[d]} gets at least {lowest[d]:.2f} of the router weight for every one of the "
    f"{len(by_type[d][0])} edit types, and NMI = {nmi[d]:.3f}." for d in DEMO_DATASETS)} NMI is near 0 not because the
experts share the edit types out at random, but because one expert is the top expert for (nearly) everything: a
label that is (almost) constant can carry no information about the edit type. No specialisation can show while
the router is collapsed (medium: NMI at most 0.0074, README "The MoE router collapses"). Open question 1 trains
with a load-balancing loss.
""")

# %% [markdown]
# ## Switching experts off
# With expert *e* switched off, the router picks the best two of the other three for every query
# (only the queries that used *e* change). Read the change against one query's worth of points: a drop
# means the expert did useful work the others do not replace; no change, that no query relied on it; a rise,
# that its contribution hurt these val queries.

# %%
metric = {"fashioniq": ["avg R@10", "avg R@50"], "cirr": ["R@1", "R@10", "Avg"]}
knockouts = {}
for dataset in DEMO_DATASETS:
    full = evaluate_split(dataset, features[dataset], fusion_method(models[dataset]))
    rows = {"all experts": {k: full[k] for k in metric[dataset]}}
    for expert in range(4):
        off = evaluate_split(dataset, features[dataset], expert_off_method(models[dataset], expert))
        rows[f"expert {expert} off"] = {k: off[k] - full[k] for k in metric[dataset]}
    knockouts[dataset] = pd.DataFrame(rows).T
    display(knockouts[dataset].style.format(precision=2).set_caption(
        f"{DEMO_DATASETS[dataset]}: recall with all experts, then the change (points) with one off"))

# %%
HEADLINE = {"fashioniq": "avg R@10", "cirr": "R@10"}  # the numbers the README quotes for the medium knockout
MEDIUM_KNOCKOUT = {"fashioniq": -13.2, "cirr": -2.4}  # README "The MoE router collapses": the dominant expert off
one_query = {d: 100 / len(weights[d]) for d in DEMO_DATASETS}


def knockout_effect(dataset: str) -> str:
    """What switching the dominant expert off does: "raises", "lowers", "barely changes" or "moves both ways"."""
    change = knockouts[dataset].loc[f"expert {dominant[dataset]} off"]
    if change.abs().max() < one_query[dataset]:
        return "barely changes"
    if change.min() > -one_query[dataset]:
        return "raises"
    return "lowers" if change.max() < one_query[dataset] else "moves both ways"


def knockout_story(dataset: str) -> str:
    """The knockouts in words: the dominant expert's changes (points and queries), the experts that move nothing."""
    changes = knockouts[dataset].drop(index="all experts")
    own = changes.loc[f"expert {dominant[dataset]} off"]
    count = {k: round(abs(v) / one_query[dataset]) for k, v in own.items()}
    moves = ", ".join(f"{k} {v:+.2f} ({count[k]} quer{'y' if count[k] == 1 else 'ies'})" for k, v in own.items())
    still = [name.removesuffix(" off") for name, row in changes.iterrows() if row.abs().max() < one_query[dataset]]
    return (f"**{DEMO_DATASETS[dataset]}**: switching the dominant expert {dominant[dataset]} off "
            f"{knockout_effect(dataset)} recall: {moves} (medium: {HEADLINE[dataset]} "
            f"{MEDIUM_KNOCKOUT[dataset]:+.1f}). "
            + (f"With {' or '.join(still)} off no metric moves by a whole query: their router weights are too small "
               "to matter." if still else "Every knockout moves some metric by at least a query."))


effect = {d: knockout_effect(d) for d in DEMO_DATASETS}
effects = (f"{effect['cirr']} recall on both datasets" if len(set(effect.values())) == 1
           else " and ".join(f"{e} recall on {DEMO_DATASETS[d]}" for d, e in effect.items()))
epochs = " and ".join(f"{best_epoch[d]} ({DEMO_DATASETS[d]})" for d in DEMO_DATASETS)
as_on_medium = set(effect.values()) == {"lowers"}
should_see(f"""
{knockout_story("fashioniq")}

{knockout_story("cirr")}

On the medium benchmark the dominant expert does the work: switching it off costs 13.2 points avg R@10 on
synth-fashioniq and 2.4 R@10 on synth-cirr, any other expert at most 0.25 (README, "The MoE router collapses").
""" + ("Here too the dominant expert is the one that matters: the others are too lightly weighted to be missed."
       if as_on_medium else f"""Here switching it off {effects}, against the idea that the dominant expert does
the work there. A knockout does not remove a branch cleanly: the dominant expert's share goes to experts that
were almost never selected in training (their router weights stayed near 0), so what the query loses and what
it gains are both untrained quantities, and the net change can have either sign. The checkpoints are from epoch
{epochs} of {moe_config("cirr").epochs}. One query is worth {one_query["cirr"]:.2f} points on synth-cirr and
{one_query["fashioniq"]:.2f} on synth-fashioniq: count the queries above before reading a change as evidence
about the expert, and compare with the medium benchmark's larger val sets."""))

# %% [markdown]
# ## Does a balancing loss make the experts specialise?
# The collapse has a textbook remedy: an auxiliary loss that rewards spreading the queries over the experts.
# `cirlib.fusion.moe` has two, off by default. Over a batch of $N$ queries, $E$ experts, router weights $w_{ne}$ and
# router logits $\ell_n$:
#
# - the *importance* loss (Shazeer et al., 2017), the squared coefficient of variation of the experts' importance
#   $I_e = \sum_n w_{ne}$: $$L_\text{imp} = \frac{\operatorname{Var}_e(I_e)}{\big(\operatorname{mean}_e I_e\big)^2};$$
# - the *Switch* loss (Fedus et al., 2021), with $f_e$ the fraction of the batch's expert selections that go to $e$
#   and $P_e = \frac1N \sum_n \operatorname{softmax}(\ell_n)_e$ the mean router probability:
#   $$L_\text{switch} = E \sum_e f_e P_e,$$ which is 1 when both are uniform; only $P_e$ carries a gradient.
#
# Training then minimises the batch classification loss $+\ \lambda L_\text{aux}$. The gating study
# (`cirlib study --config configs/studies/moe_gating.yaml`; README, "What makes the MoE's experts specialise") trained
# ten routing variants with three seeds each on the medium benchmark. Below, its pick,
# `configs/synth_moe_balanced_<dataset>.yaml` (the Switch loss at $\lambda = 0.1$), against the default MoE above, on
# this notebook's benchmark: recall, how evenly the router spreads the queries (*top share*: the busiest expert's
# share of top-expert slots, 1/4 when balanced; *top entropy*: 1 when balanced, 0 when collapsed), the two NMIs,
# and the recall lost with the most and the second most important expert switched off.

# %%
print(inspect.getsource(switch_loss))

# %%
analyses = {}
for dataset in DEMO_DATASETS:
    config = moe_config(dataset, "synth_moe_balanced")
    run_fusion_job(config, resume=True, progress=False, verbose=False)
    balanced = load_trained_fusion(Path(config.out) / "best.safetensors")[0]
    groups = query_groups(dataset, config.data_root, query_texts(features[dataset]))
    analyses[dataset] = {name: analyse_routing(model, dataset, features[dataset], *groups)
                         for name, model in (("default", models[dataset]), ("balanced", balanced))}
    display(pd.DataFrame({name: a.summary(dataset) for name, a in analyses[dataset].items()}).T
            .style.format(precision=3).set_caption(f"{DEMO_DATASETS[dataset]}: default MoE against the balanced one"))

fig, axes = plt.subplots(1, 2, figsize=(11, 4))
for ax, dataset in zip(axes, DEMO_DATASETS):
    chosen = analyses[dataset]["balanced"]
    sns.heatmap(chosen.by_edit_type, annot=True, fmt=".2f", cmap="viridis", vmin=0, vmax=1, ax=ax,
                yticklabels=chosen.edit_types, xticklabels=[f"expert {e}" for e in range(4)],
                cbar_kws={"label": "mean router weight"})
    ax.set_title(f"{DEMO_DATASETS[dataset]}, balanced: NMI(top expert, edit type) = {chosen.nmi_edit_type:.3f}")
fig.tight_layout()
plt.show()

# %%
def balance_story(dataset: str) -> str:
    """The balanced MoE against the default in words: spread, NMI, recall."""
    old, new = analyses[dataset]["default"], analyses[dataset]["balanced"]
    metric = HEADLINE[dataset]
    change = new.recall[metric] - old.recall[metric]
    return (f"**{DEMO_DATASETS[dataset]}**: the busiest expert is the top expert for {new.balance['top share']:.0%} of the "
            f"queries (default {old.balance['top share']:.0%}; top entropy {new.balance['top entropy']:.2f} against "
            f"{old.balance['top entropy']:.2f}); NMI(top expert, edit type) {new.nmi_edit_type:.3f} (default "
            f"{old.nmi_edit_type:.3f}), NMI(top expert, cause) {new.nmi_cause:.3f}; {metric} {change:+.1f} points "
            f"({abs(change) / one_query[dataset]:.0f} queries' worth).")


spread = all(analyses[d]["balanced"].balance["top share"] < analyses[d]["default"].balance["top share"] - 0.1
             for d in DEMO_DATASETS)
specialised = any(analyses[d]["balanced"].nmi_edit_type > 0.2 for d in DEMO_DATASETS)
gain = {d: analyses[d]["balanced"].recall[HEADLINE[d]] - analyses[d]["default"].recall[HEADLINE[d]] for d in DEMO_DATASETS}
large = [d for d in DEMO_DATASETS if abs(gain[d]) >= 1]
balanced_nmi = ", ".join(f"{analyses[d]['balanced'].nmi_edit_type:.3f}" for d in DEMO_DATASETS)
recall_here = (f"Recall moves by {', '.join(f'{gain[d]:+.1f} {HEADLINE[d]} ({DEMO_DATASETS[d]})' for d in DEMO_DATASETS)} here, "
               + ("more than on medium, where over three seeds the balanced MoE was within a point of the default "
                  "(54.6 against 54.9 avg R@10 on synth-fashioniq, 42.3 against 43.2 R@10 on synth-cirr). One seed on "
                  "this small benchmark is one draw: trust the medium study's three seeds for the direction."
                  if large else "within a point, as on medium (54.6 against 54.9 avg R@10 on synth-fashioniq, "
                  "42.3 against 43.2 R@10 on synth-cirr, three seeds)."))
should_see(f"""
{balance_story("fashioniq")}

{balance_story("cirr")}

{"The loss spreads the queries, " if spread else "Here the loss barely spreads the queries, "}""" + (
    "and the experts now divide the work by edit type (NMI above 0.2 on one dataset at least), unlike on medium."
    if specialised else """but balance is not specialisation. The heatmap's rows look alike: every edit type is
routed to much the same mix of experts, so the top expert still says little about what the query asks for. The
medium study says the same over three seeds: with the Switch loss at 0.1 the busiest expert's top share falls from
0.999 to 0.57 (synth-fashioniq) and from 0.98 to 0.41 (synth-cirr), yet NMI(top expert, edit type) is 0.053 and
0.022, and none of its ten variants exceeds 0.07. Nothing in the objective asks an expert to own an edit type: the
batch classification loss asks for a good query vector, and any split of the work that gives one is as good as
another.""") + f"""

{recall_here} On medium, balancing also made the model robust to losing an expert: switching the most important one
off cost 3.4 points avg R@10 instead of 9.5 (synth-fashioniq).""")

# %%
takeaways([
    "Top-k routing: the router scores the experts, keeps the k best, softmaxes their scores into router weights "
    "and runs only those experts; the gate g then mixes the raw text and image features, dimension by dimension.",
    f"Without a load-balancing loss the router collapses: one expert carries "
    f"{', '.join(f'{carried[d]:.2f} ({DEMO_DATASETS[d]})' for d in DEMO_DATASETS)} of the weight, here as on medium.",
    f"So the top expert tells nothing about the edit type (NMI {', '.join(f'{nmi[d]:.3f}' for d in DEMO_DATASETS)}): "
    "a collapsed MoE is a Combiner with one large branch and three idle ones.",
    f"Switching the dominant expert off {effects} here; on medium it costs 13.2 points avg R@10 "
    "(synth-fashioniq). A knockout shows what an expert is worth only where the model has learned something that "
    "transfers, and only beyond one query's worth of points.",
    f"A balancing loss (the Switch loss at 0.1) spreads the queries over the experts but does not make them "
    f"specialise by edit type (NMI {balanced_nmi} "
    "here; at most 0.07 in the medium study's ten variants). On medium it kept recall within a point and cut the "
    "cost of losing the most important expert from 9.5 to 3.4 points avg R@10.",
])

# %% [markdown]
# ## Open questions
# Each question is graded by hand: answer in the cell below it, in a few sentences, with the numbers you
# measured (say which benchmark: `SMALL` or not). Change the MoE with `config_variant(..., fusion_options=...)`
# as `moe_config` does; a changed config trains in a new run folder.
#
# **1.** Train with `load_balance_weight: 0.01` (and `router_noise: 1.0`). Does utilisation even out,
# and what happens to the NMI and to recall?

# %% [markdown] nbgrader={"grade": true, "grade_id": "q_load_balance", "locked": false, "points": 1, "schema_version": 3, "solution": true, "task": false}
# ### BEGIN SOLUTION
# Hardly, at this weight. On the `tiny` preset (the earlier, smaller `SMALL`) (6 epochs) synth-fashioniq's router moves from one expert carrying 0.99 of
# the mean router weight to two carrying 0.83 and 0.17 (top expert for 90% and 10% of the queries); synth-cirr's
# stays collapsed (0.90, top expert for every query). NMI stays near 0 (0.004 and 0.000, against 0.000 and
# 0.015 without). Recall moves by a few queries: best avg 83.6 against 82.2, best Avg 39.6 against 40.0. A weight
# of 0.01 on a loss that is at most E - 1 = 3 is small beside the classification loss (about 2 to 7): it needs a
# larger weight to compete. And balanced experts need not specialise by edit type.
# ### END SOLUTION

# %% [markdown]
# **2.** Restrict the heatmap to queries with a single edit type. Are the patterns sharper?

# %% [markdown] nbgrader={"grade": true, "grade_id": "q_single_type", "locked": false, "points": 1, "schema_version": 3, "solution": true, "task": false}
# ### BEGIN SOLUTION
# No, the dominant expert's column stays the only bright one. On the `tiny` preset (the earlier, smaller `SMALL`) only 36 of 180 synth-fashioniq queries and
# 30 of 240 synth-cirr queries have a single edit type. On synth-fashioniq the dominant expert gets 0.99 to 1.00
# of the weight for every type and NMI stays 0; on synth-cirr its weight ranges from 0.52 to 0.97 by type and NMI
# rises to 0.11, but that is 30 queries, a few per type, so the table is mostly noise. Splitting multi-type
# queries' weight is not what hides a pattern: the collapsed router is.
# ### END SOLUTION

# %% [markdown]
# **3.** Which queries change when the dominant expert is switched off? Compare each query's top 5 with and
# without it (`fusion_method` and `expert_off_method` give the two query vectors) and look at a few in
# a retrieval grid (notebook 01's `retrieval_grid`).

# %% [markdown] nbgrader={"grade": true, "grade_id": "q_knockout_queries", "locked": false, "points": 1, "schema_version": 3, "solution": true, "task": false}
# ### BEGIN SOLUTION
# Almost all of them, but only a little. On the `tiny` preset (the earlier, smaller `SMALL`) synth-cirr, the top 5 (in order) differs for 230 of the 240
# queries, yet the two query vectors stay close (cosine 0.97 on average, 0.94 at least): the router hands the
# dominant expert's share to the next expert, and the gate's residual mix of the raw $t$ and $v$, which does most
# of the work, is untouched. The top-5 lists mostly swap near-identical family siblings, which is why recall
# moves by only a few queries. The queries whose lists change are those that gave the dominant expert the most
# weight (0.89 on average, against 0.62 for the 10 unchanged).
# ### END SOLUTION

# %% [markdown]
# **4.** With `top_k: 1` every query uses one expert. Is the router more or less specialised?

# %% [markdown] nbgrader={"grade": true, "grade_id": "q_top1", "locked": false, "points": 1, "schema_version": 3, "solution": true, "task": false}
# ### BEGIN SOLUTION
# Less collapsed, but not more specialised. On the `tiny` preset (the earlier, smaller `SMALL`) with top-1 the queries spread over three experts (top
# shares 0.41, 0.18, 0.37 on synth-fashioniq; 0.28, 0.34, 0.38 on synth-cirr) instead of one, yet NMI is only
# 0.027 and 0.026: the experts split the queries by something other than the edit type. With one expert the
# softmax over a single logit is always 1, so the router's logits get no gradient from the loss through the
# weights: the choice stays what the random initialisation made it (weight decay only shrinks the logits). Recall
# is as before (best avg 82.2, best Avg 40.0).
# ### END SOLUTION

# %% [markdown]
# ## Graded exercises
# Each exercise asks for one function; the cell below it checks the function against `cirlib`'s tested
# implementation on small inputs made from a fixed seed (random router logits and weights, not the model above).
# `check` is silent when every case passes and otherwise stops at the first failing case, naming it. The cells
# use nothing defined above: run the setup cell, then any exercise. Write plain torch (or numpy); calling
# `cirlib.fusion.moe` or `cirlib.analysis.gating` would defeat the purpose.

# %% nbgrader={"grade": false, "grade_id": "setup_03", "locked": true, "schema_version": 3, "solution": false, "task": false}
import numpy as np
import torch

from cirlib.assignment import check

# %% [markdown]
# ### 1. Top-k routing weights (2 points)
# The formula is in "Top-k routing, the mixture and the gate" above.

# %% nbgrader={"grade": false, "grade_id": "top_k_routing", "locked": false, "schema_version": 3, "solution": true, "task": false}
def top_k_routing(logits, top_k):
    """A Mixture of Experts' router weights with top-k routing.

    logits: (N, E) router logits z, any float dtype; -inf marks a switched-off expert. top_k: an int k with
      1 <= k <= E; every row has at least k finite logits, and no two logits of a row tie at the k-th place.
    For each row, S = the k experts with the largest logits; w_e = exp(z_e) / sum over e' in S of exp(z_e') for e in
    S, and w_e = 0 for every other expert. Compute in float32, and stay finite for logits in the thousands.
    Returns (N, E) float32 weights; each row sums to 1.
    """
    ### BEGIN SOLUTION
    z = logits.float()
    values, experts = z.topk(top_k, dim=1)
    kept = torch.exp(values - values[:, :1])  # minus the row's largest logit: exp never overflows
    return torch.zeros_like(z).scatter(1, experts, kept / kept.sum(dim=1, keepdim=True))
    ### END SOLUTION

# %% nbgrader={"grade": true, "grade_id": "top_k_routing_check", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
check("top_k_routing", top_k_routing)
### BEGIN HIDDEN TESTS
check("top_k_routing", top_k_routing, hidden=True)
### END HIDDEN TESTS

# %% [markdown]
# ### 2. A load-balancing loss (1 point)
# The model above trains without one, and its router collapsed. Shazeer et al. (2017) penalise unequal
# *importance*, the total router weight each expert receives over a batch.

# %% nbgrader={"grade": false, "grade_id": "load_balance_loss", "locked": false, "schema_version": 3, "solution": true, "task": false}
def load_balance_loss(weights):
    """The squared coefficient of variation of the experts' importance over a batch.

    weights: (N, E) router weights, any float dtype (compute in float32).
    importance_e = sum over the N queries of weights[:, e]; with m = the mean of the E importances and
    var = the mean of (importance_e - m)^2 over the E experts (divide by E, not E - 1),
    loss = var / (m^2 + 1e-10): 0 when every expert carries the same total weight.
    Returns a float32 0-dim tensor.
    """
    ### BEGIN SOLUTION
    importance = weights.float().sum(dim=0)
    mean = importance.mean()
    return ((importance - mean) ** 2).mean() / (mean ** 2 + 1e-10)
    ### END SOLUTION

# %% nbgrader={"grade": true, "grade_id": "load_balance_loss_check", "locked": true, "points": 1, "schema_version": 3, "solution": false, "task": false}
check("load_balance_loss", load_balance_loss)
### BEGIN HIDDEN TESTS
check("load_balance_loss", load_balance_loss, hidden=True)
### END HIDDEN TESTS

# %% [markdown]
# ### 3. NMI between the top expert and the edit type (3 points)
# The number in the heatmaps' titles above: how much the top expert tells about what a query asks for.

# %% nbgrader={"grade": false, "grade_id": "top_expert_nmi", "locked": false, "schema_version": 3, "solution": true, "task": false}
def top_expert_nmi(weights, types):
    """Normalised mutual information between each query's top expert and its edit type(s), in [0, 1].

    weights: (N, E) router weights; types: a list of N non-empty lists of distinct edit-type names (str).
    The top expert of query n is the argmax of weights[n] (ties: the lower expert index). Each (query n, type in
    types[n]) pair is one observation (top expert of n, type) with weight 1 / len(types[n]). Their weights, summed
    per (expert a, type b) and divided by the total, give the joint distribution p(a, b); p(a), p(b) are its
    marginals. With natural logarithms and sums over the non-zero terms only:
      I = sum p(a, b) log(p(a, b) / (p(a) p(b))),  H(A) = -sum p(a) log p(a),  H(B) = -sum p(b) log p(b),
      NMI = 2 I / (H(A) + H(B)), and NMI = 0 when H(A) = 0 or H(B) = 0 (one label is constant).
    Returns a Python float.
    """
    ### BEGIN SOLUTION
    names = sorted({name for row in types for name in row})
    joint = np.zeros((weights.shape[1], len(names)))
    for expert, row in zip(weights.argmax(dim=1).tolist(), types):
        for name in row:
            joint[expert, names.index(name)] += 1 / len(row)
    joint /= joint.sum()
    p_a, p_b = joint.sum(axis=1), joint.sum(axis=0)

    def entropy(p):
        return float(-(p[p > 0] * np.log(p[p > 0])).sum())

    if entropy(p_a) == 0 or entropy(p_b) == 0:
        return 0.0
    nonzero = joint > 0
    mutual = (joint[nonzero] * np.log(joint[nonzero] / np.outer(p_a, p_b)[nonzero])).sum()
    return float(2 * mutual / (entropy(p_a) + entropy(p_b)))
    ### END SOLUTION

# %% nbgrader={"grade": true, "grade_id": "top_expert_nmi_check", "locked": true, "points": 3, "schema_version": 3, "solution": false, "task": false}
check("top_expert_nmi", top_expert_nmi)
### BEGIN HIDDEN TESTS
check("top_expert_nmi", top_expert_nmi, hidden=True)
### END HIDDEN TESTS
