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
# # 06 · Zero-shot CIR by textual inversion: Pic2Word, SEARLE, LinCIR
#
# **What this notebook teaches.** A CLIP text encoder already knows how to compose: "a photo of a
# *dog* that is swimming" means something. What it lacks is a word for *this particular* reference
# image. Textual inversion supplies one: a **pseudo-word** — a vector in the token-embedding space,
# written `$` in the prompt — that stands for the image, so the query becomes the text feature of
# "a photo of `$` that <modification>". None of these methods sees a single CIR triplet:
#
# * **Pic2Word** trains a small network φ (image feature → pseudo-word) on unlabeled images, so that
#   "a photo of `$`" encodes close to the image (contrastive loss).
# * **SEARLE** optimises a pseudo-word for each image on its own (**OTI**), kept word-like by a
#   regulariser, and distils OTI into φ (**SEARLE-XL**) so queries need no optimisation.
# * **LinCIR** never looks at an image: φ maps a caption's *text* feature (plus noise, to cross
#   the modality gap) to a pseudo-word that must rebuild the caption with its keywords masked out.
#
# We first check the one mechanism all three share, then train each on the synthetic pretraining
# stream, evaluate on the synthetic benchmark beside the zero-shot baselines, and look at what the
# pseudo-words "mean".
#
# `SMALL = True` uses the small benchmark and short training runs (a few minutes on a CPU; what CI
# runs); set it to `False` for the medium benchmark and the settings in `configs/*_synth.yaml`.

# %% tags=["parameters"]
SMALL = True
MODEL = "synthclip"

# %% tags=["progress"]
import tempfile
import time
from pathlib import Path

import matplotlib.pyplot as plt
import torch
import torch.nn.functional as F

from cirlib.analysis.benchmark import prepare_benchmark
from cirlib.config import load_config
from cirlib.data import CIRR
from cirlib.data.synth.config import preset
from cirlib.encoders import FeatureCache, describe, load_encoder
from cirlib.evaluation import benchmark_features, evaluate_methods, format_results
from cirlib.fusion import ZERO_SHOT_BASELINES
from cirlib.inversion import (LinCIRConfig, Pic2WordConfig, PromptEncoder, SearleConfig, train_lincir,
                              train_pic2word, train_searle)
from cirlib.inversion.concepts import mask_keywords
from cirlib.inversion.evaluate import evaluate_inversion, inversion_method, load_inverter
from cirlib.inversion.inject import token_embeddings
from cirlib.inversion.loop import load_phi
from cirlib.plots import retrieval_grid

ROOT = Path.cwd().parent if Path.cwd().name == "notebooks" else Path.cwd()
size = "small" if SMALL else "medium"
benchmark = ROOT / "data" / ("synth-small" if SMALL else "synth")
manifest = prepare_benchmark(benchmark, preset(size))
cache = FeatureCache(ROOT / "data" / "cache", progress=False)
runs = Path(tempfile.mkdtemp(prefix="notebook06-")) if SMALL else ROOT / "runs" / "zero_shot"

encoder = load_encoder(MODEL)
prompts = PromptEncoder.from_encoder(encoder)
print(describe(encoder))

# %% [markdown]
# ## The shared mechanism: a vector in the placeholder's place
# `PromptEncoder` tokenises a prompt, looks up the token embeddings, puts the pseudo-word wherever
# `$` sits, and runs the rest of the frozen text tower exactly as `encode_text` does. If the
# pseudo-word *is* the embedding of a real word, the result must be that word's sentence.

# %%
word = "square"
word_id = encoder.tokenizer.encode(f" {word} ")[0]
pseudo = token_embeddings(encoder.model)[[word_id]].detach()
with torch.no_grad():
    injected = prompts(prompts.tokenize(["a photo of $ that is red"]), pseudo)
    plain = encoder.model.encode_text(encoder.tokenizer(["a photo of square that is red"]).to(encoder.device))
print("largest difference:", float((injected - plain).abs().max()))
print("LinCIR's masking of a caption:", mask_keywords("a big red square in the top left on a grey background"))

# %% [markdown]
# ## Training the three methods
# Each job reads its YAML config (`configs/<method>_synth.yaml`); the small setting shortens them.
# The training pairs come from the synthetic *pretraining stream* (never a benchmark image);
# their features are computed once and cached. The wait is long, so each run shows a progress bar;
# its training log stays in the run folder (`verbose=False`) and is plotted below.

# %% tags=["progress"]
short = dict(train_pairs=512, steps=60, batch_size=64, log_every=20) if SMALL else {}
jobs = {"pic2word": (Pic2WordConfig, train_pic2word, {}),
        "lincir": (LinCIRConfig, train_lincir, {}),
        "searle": (SearleConfig, train_searle, dict(oti_pairs=128, oti_steps=20, oti_ema_decay=0.9) if SMALL else {})}
trained, seconds = {}, {}
for name, (config_class, train, extra) in jobs.items():
    config = load_config(config_class, ROOT / "configs" / f"{name}_synth.yaml", model=MODEL,
                         cache=str(ROOT / "data" / "cache"), out=str(runs / name), **short, **extra)
    started = time.perf_counter()
    trained[name] = train(config, resume=True, verbose=False)  # a finished run of the same config is reused
    seconds[name] = time.perf_counter() - started

fig, axes = plt.subplots(1, 3, figsize=(12, 3))
for ax, (name, run) in zip(axes, trained.items()):
    log = load_phi(run)[1]["log"]
    ax.plot([r["step"] for r in log], [r["loss"] for r in log], lw=0.8)
    ax.set(title=f"{name} ({seconds[name]:.0f} s)", xlabel="step", ylabel="training loss")
plt.tight_layout()
plt.show()

# %% [markdown]
# ## Evaluation beside the zero-shot baselines
# Every inversion method builds its queries as "a photo of `$` that <modification>". SEARLE (OTI)
# optimises a pseudo-word for each distinct reference image at query time (with the SEARLE run's
# OTI settings); the others call their trained φ.

# %%
features = benchmark_features(encoder, cache, benchmark)
results = evaluate_methods(features, {k: ZERO_SHOT_BASELINES[k] for k in ("image only", "text only", "sum")})
inverters = {"Pic2Word": load_inverter(trained["pic2word"], encoder),
             "SEARLE (OTI)": load_inverter(trained["searle"], encoder, use_oti=True, progress=False),
             "SEARLE-XL": load_inverter(trained["searle"], encoder),
             "LinCIR": load_inverter(trained["lincir"], encoder)}
inverted, query_seconds = evaluate_inversion(features, prompts, inverters)
for dataset in results:
    results[dataset].update(inverted[dataset])
print(format_results(results))
print("seconds to build the queries:", {k: round(v, 1) for k, v in query_seconds.items()})

# %% [markdown]
# ## What does a pseudo-word "mean"?
# A pseudo-word is a point in the token-embedding space, so we can list the real tokens nearest to
# it (cosine). Words of the image's colours and shapes near the top mean φ put the image's content
# where the text encoder expects words; a list of unrelated tokens means the pseudo-word works
# through directions no real word uses.

# %%
reader = CIRR(benchmark / "synth-cirr")
fiq, cirr, circo = features
table = F.normalize(token_embeddings(encoder.model).detach().float(), dim=-1)
for name in ("Pic2Word", "SEARLE-XL", "LinCIR"):
    words = F.normalize(inverters[name](cirr.reference[:1]).to(table.device), dim=-1)
    nearest = (words @ table.T).topk(8, dim=1).indices[0].tolist()
    print(f"{name:10s}", [encoder.tokenizer.decoder[i].replace("</w>", "") for i in nearest])

# %% [markdown]
# ## Retrieval examples (LinCIR, synth-cirr)
# The reference image, titled with its modification text, then the top five results; the target
# is outlined.

# %%
rows = list(range(0, len(cirr.query_texts), max(1, len(cirr.query_texts) // 4)))[:4]
method = inversion_method(prompts, inverters["LinCIR"], [cirr.query_texts[i] for i in rows], "a photo of $ that {}")
queries = method(cirr.reference[rows], cirr.text[rows])
scores = queries @ F.normalize(cirr.gallery, dim=-1).T
for i, row in enumerate(rows):  # CIRR's protocol removes the reference from its own ranking
    scores[i, cirr.gallery_names.index(cirr.reference_names[row])] = -2
top = scores.topk(5, dim=1).indices.tolist()
hits = [[cirr.gallery_names[j] == cirr.target_names[r] for j in ranked] for r, ranked in zip(rows, top)]
figure = retrieval_grid([(reader.image_path(cirr.reference_names[r], "val"), cirr.query_texts[r]) for r in rows],
                        [[reader.image_path(cirr.gallery_names[j], "val") for j in ranked] for ranked in top], hits)
plt.show()

# %% [markdown]
# ## Exercises
# 1. Change the query template to Pic2Word's own, `"a photo of $ , {}"`, in `evaluate_inversion`.
#    Which method is most sensitive to the wording of the prompt?
# 2. Train LinCIR with `noise_scale: 0` (no noise). Its training loss goes *down* — what happens to
#    its retrieval numbers, and why? (Compare the norms of image and text features.)
# 3. Run OTI with `oti_lambda_reg: 0`. Do the nearest tokens of its pseudo-words change?
# 4. `invert_unique` inverts each distinct reference image once. How many OTI runs does that save
#    on synth-fashioniq, where several queries share a reference?
