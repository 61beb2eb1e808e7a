"""Bundle a pretraining run as a model: weights, config, loss curve and a model card."""

from __future__ import annotations

import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from cirlib.util.atomic import save_figure, write_bytes, write_text


def loss_curve(log: list[dict], path: Path) -> None:
    """Training loss per step and held-out text->image R@1 at each evaluation."""
    figure, loss_axis = plt.subplots(figsize=(6, 3.2))
    loss_axis.plot([r["step"] for r in log], [r["loss"] for r in log], lw=0.6, color="tab:blue")
    loss_axis.set(xlabel="step", ylabel="InfoNCE loss", yscale="log")
    evaluated = [r for r in log if "held-out t2i R@1" in r]
    recall_axis = loss_axis.twinx()
    recall_axis.plot([r["step"] for r in evaluated], [r["held-out t2i R@1"] for r in evaluated], "o-", color="tab:red")
    recall_axis.set_ylabel("held-out text->image R@1 (%)", color="tab:red")
    figure.tight_layout()
    save_figure(path, figure, dpi=120)
    plt.close(figure)


def bundle_model(run: Path | str, destination: Path | str, command: str, evaluation: str = "") -> Path:
    """Copy ``run/model`` to ``destination`` with ``loss_curve.png`` and ``MODEL_CARD.md``."""
    run, destination = Path(run), Path(destination)
    destination.mkdir(parents=True, exist_ok=True)
    for name in ("open_clip_config.json", "open_clip_model.safetensors"):
        write_bytes(destination / name, (run / "model" / name).read_bytes())
    config, log = json.loads((run / "config.json").read_text()), json.loads((run / "log.json").read_text())
    loss_curve(log, destination / "loss_curve.png")
    evaluated = [r for r in log if "held-out t2i R@1" in r]
    size_mb = (destination / "open_clip_model.safetensors").stat().st_size / 2**20
    rows = "\n".join(f"| {r['step']} | {r['loss']:.3f} | {r['held-out t2i R@1']:.1f} | {r['held-out t2i R@5']:.1f} | "
                     f"{r['seconds']:.0f} |" for r in evaluated)
    text = f"""# synthclip

A small CLIP (open_clip architecture, ViT image tower, transformer text tower) trained from scratch
by `cirlib pretrain` on the synthetic pretraining stream (rendered garments and shape scenes with
absolute captions). It exists so that everything in CIR Lab runs offline, on a CPU, in seconds;
its numbers say nothing about real CLIP models.

- Command: `{command}`
- Seed {config['seed']}, {config['steps']} steps, batch {config['batch_size']}, AdamW lr {config['lr']}
  (warmup {config['warmup_steps']}, cosine), weight decay {config['weight_decay']}, pool of
  {config['pool_size']:,} stream pairs, preprocessing `{config['preprocess']}` at
  {config['model']['vision_cfg']['image_size']} px.
- Architecture: `{json.dumps(config['model'])}`
- Weights: float16 safetensors, {size_mb:.1f} MB; load with `cirlib.encoders.load_encoder("synthclip")`
  or `open_clip.create_model_and_transforms("local-dir:<this folder>")`.

## Training

Held-out text->image recall over {config['eval_pairs']:,} stream pairs never seen in training
(each full or partial caption against all {config['eval_pairs']:,} images):

| step | loss | R@1 | R@5 | seconds |
|---|---|---|---|---|
{rows}

![loss curve](loss_curve.png)
{evaluation}"""
    write_text(destination / "MODEL_CARD.md", text)
    return destination
