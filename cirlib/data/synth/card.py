"""Datacards: one markdown page and one example picture per synthetic dataset.

The card is written from the files on disk (counts, captions, edit types) and from numbers the
caller passes in (the sanity baselines), so it describes exactly the data beside it.
"""

from __future__ import annotations

import json
import textwrap
from collections import Counter
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

from cirlib.data.synth.render import encode_image
from cirlib.data.synth.vocab import BACKGROUNDS, CELL_WORDS, GARMENT_VALUES, OBJECT_COLOURS, SHAPES, SIZES
from cirlib.util.atomic import write_atomic, write_text
from cirlib.util.tables import markdown_table

EXAMPLES = 8
CARD, EXAMPLES_PICTURE = "datacard.md", "examples.png"
CARD_FILES = (CARD, EXAMPLES_PICTURE)  # what write_datacards writes into each dataset folder
GALLERY_CAPTIONS_DOC = """\
## Gallery captions
`gallery_captions/{file}.json` emulates a captioning model's output for training-free methods
(WeiMoCIR): a JSON list with one entry per gallery image,
`{{"candidate": "<image name>", "captions": ["<full>", "<partial>", "<noisy>"]}}`, R = 3 captions of
falling quality: *full* names every attribute, *partial* some of them, *noisy* drops one fact
and may get one attribute wrong. Read it with `cirlib.data.read_gallery_captions`; an image absent
from the file gets empty captions (`cirlib.data.captions_for`)."""


def example_grid(rows: list[tuple[Path, Path, str]], thumb: int = 112) -> Image.Image:
    """Reference | target | caption rows; the target is outlined in green."""
    font = ImageFont.load_default()
    text_width, row_height = 330, thumb + 12
    sheet = Image.new("RGB", (2 * thumb + text_width + 24, row_height * len(rows) + 24), "white")
    draw = ImageDraw.Draw(sheet)
    draw.text((8, 4), "reference", fill="black", font=font)
    draw.text((thumb + 16, 4), "target", fill="black", font=font)
    for i, (reference, target, caption) in enumerate(rows):
        top = 20 + i * row_height
        for j, path in enumerate((reference, target)):
            image = Image.open(path).convert("RGB")
            image.thumbnail((thumb, thumb))
            left = 8 + j * (thumb + 8)
            sheet.paste(image, (left, top))
            if j == 1:
                draw.rectangle((left - 2, top - 2, left + image.width + 1, top + image.height + 1), outline=(0, 170, 0),
                               width=2)
        draw.multiline_text((2 * thumb + 24, top + 4), "\n".join(textwrap.wrap(caption, 52)), fill="black", font=font)
    return sheet


def _sanity_table(sanity: dict[str, dict]) -> str:
    metrics = list(next(iter(sanity.values())))
    return markdown_table(["baseline", *[str(m) for m in metrics]],
                          [[label, *[f"{values[m]:.1f}" for m in metrics]] for label, values in sanity.items()])


def _write_grid(root: Path, rows: list[tuple[Path, Path, str]]) -> None:
    data = encode_image(example_grid(rows), ".png")
    write_atomic(root / EXAMPLES_PICTURE, lambda handle: handle.write(data))


def _header(title: str, what: str, config: dict) -> str:
    return (f"# {title}\n\n{what}\n\nBuilt by `cirlib synth --seed {config['seed']} --size {config['size']}`; "
            f"the full configuration is in `../manifest.json`. Same seed and size, byte-identical files.\n")


def fashioniq_card(root: Path, config: dict, counts: dict, sanity: dict) -> str:
    rows, examples = [], []
    for category, splits in counts.items():
        rows += [[category, split, c["gallery"], c["queries"]] for split, c in splits.items()]
    changed = Counter()
    for path in sorted((root / "synth_meta").glob("queries.*.val.json")):
        changed.update(len(q["changed"]) for q in json.loads(path.read_text()))
    records = json.loads((root / "captions" / "cap.dress.val.json").read_text())[:EXAMPLES]
    for r in records:
        examples.append((root / "images" / f"{r['candidate']}.png", root / "images" / f"{r['target']}.png",
                         " / ".join(r["captions"])))
    _write_grid(root, examples)
    attributes = "\n".join(f"- **{a}**: {', '.join(v)}" for a, v in GARMENT_VALUES.items())
    return "\n\n".join([
        _header("synth-fashioniq", "Rendered garments (dress, shirt, toptee) in FashionIQ's official layout. "
                "Each gallery holds distinct garments; a query's target differs from its reference in 1-3 "
                "attributes, so exactly one gallery image is correct. Nuisance: aspect ratio, scale, position, "
                "tilt, background tint, lighting, pixel noise.", config),
        "## Counts\n" + markdown_table(["category", "split", "gallery", "queries"], rows),
        "## Attributes\n" + attributes,
        "## Relative captions\nTwo per pair, lower case, from templates with synonyms: absolute (\"is red\", "
        "\"has a v-neck\"), contrastive (\"is solid instead of striped\"), comparative only where it names one value "
        "(\"has shorter sleeves\" from short sleeves), negation (\"has no print\"). Half the pairs have both captions "
        "describe every change; otherwise the changes are split between the two captions. "
        "Changed attributes per val query: " + ", ".join(f"{k}: {v}" for k, v in sorted(changed.items())) + ".\n\n"
        "Examples (dress, val):\n" + "\n".join(f"- `{r['candidate']}` -> `{r['target']}`: "
                                                f"\"{r['captions'][0]}\" / \"{r['captions'][1]}\"" for r in records),
        GALLERY_CAPTIONS_DOC.format(file="<category>.<split>"),
        "## Sanity (val, attribute labels only; see `cirlib.analysis.sanity`)\n" + _sanity_table(sanity),
        "![examples](examples.png)\n"])


def cirr_card(root: Path, config: dict, counts: dict, sanity: dict) -> str:
    meta = json.loads((root / "synth_meta" / "queries.val.json").read_text())
    kinds = Counter(e["kind"] for q in meta for e in q["edits"])
    n_edits = Counter(len(q["edits"]) for q in meta)
    soft = sum(bool(q["also_correct"]) for q in meta)
    records = json.loads((root / "cirr" / "captions" / "cap.rc2.val.json").read_text())
    paths = json.loads((root / "cirr" / "image_splits" / "split.rc2.val.json").read_text())
    shown = records[:: max(1, len(records) // EXAMPLES)][:EXAMPLES]
    _write_grid(root, [(root / paths[r["reference"]], root / paths[r["target_hard"]], r["caption"]) for r in shown])
    return "\n\n".join([
        _header("synth-cirr", "Rendered scenes of 1-4 shapes on a 3x3 grid, in CIRR's official layout. Images come "
                f"in families of {config['cirr_family_size']}: a base scene and its one-edit variants, cut into "
                "image sets of six. A query joins two members of one set; the caption names one or two edits.", config),
        "## Counts\n" + markdown_table(["split", "gallery", "queries", "img_sets"],
                                       [[s, c["gallery"], c["queries"], c["img_sets"]] for s, c in counts.items()]),
        "## Attributes\n" + f"- **shape**: {', '.join(SHAPES)}\n- **colour**: {', '.join(OBJECT_COLOURS)}\n"
        f"- **size**: {', '.join(SIZES)}\n- **cell**: {', '.join(w[0] for w in CELL_WORDS)}\n"
        f"- **background**: {', '.join(BACKGROUNDS)}",
        "## Edits (val)\n" + markdown_table(["edit", "count"], sorted(kinds.items())) +
        f"\n\nEdits per caption: {dict(sorted(n_edits.items()))}. Captions may leave the size or the cell of an "
        f"added object free, or name only the row of a move; {soft} of {len(meta)} val queries then have other set "
        "members that also fit, marked 0.5 in `target_soft`.\n\nExamples:\n" +
        "\n".join(f"- \"{r['caption']}\"" for r in shown),
        GALLERY_CAPTIONS_DOC.format(file="<split>"),
        "## Sanity (val, attribute labels only; see `cirlib.analysis.sanity`)\n" + _sanity_table(sanity),
        "![examples](examples.png)\n"])


def circo_card(root: Path, config: dict, counts: dict, sanity: dict) -> str:
    records = json.loads((root / "annotations" / "val.json").read_text())
    gts = Counter(min(len(r["gt_img_ids"]), 6) for r in records)
    aspects = Counter(a for r in records for a in r["semantic_aspects"])
    image = lambda i: root / "COCO2017_unlabeled" / "unlabeled2017" / f"{i:012d}.jpg"  # noqa: E731
    shown = records[:EXAMPLES]
    _write_grid(root, [(image(r["reference_img_id"]), image(r["target_img_id"]),
                        f"{r['relative_caption']} (shared: {r['shared_concept']}; {len(r['gt_img_ids'])} correct)")
                       for r in shown])
    return "\n\n".join([
        _header("synth-circo", "Rendered scenes in CIRCO's official layout. Each caption leaves attributes free, so "
                "several gallery images are correct; `gt_img_ids` lists every gallery image that satisfies the "
                "caption (checked against all of them), the annotated target first. The gallery also holds wrong "
                "one-edit variants of each reference and near misses of the correct images.", config),
        "## Counts\n" + markdown_table(["split", "queries", "mean ground truths"],
                                       [[s, c["queries"], c["mean_gt"]] for s, c in counts.items() if s != "gallery"]) +
        f"\n\nGallery: {counts['gallery']['images']} images (shared by val and test, like COCO unlabeled2017).",
        "## Ground truths per val query\n" + markdown_table(["ground truths (6 = 6 or more)", "queries"],
                                                             sorted(gts.items())),
        "## Semantic aspects (val)\n" + markdown_table(["aspect", "queries"], sorted(aspects.items())),
        "Examples:\n" + "\n".join(f"- \"{r['relative_caption']}\" (shared concept: {r['shared_concept']})"
                                  for r in shown),
        GALLERY_CAPTIONS_DOC.format(file="unlabeled2017"),
        "## Sanity (val, mAP@K, reference excluded; see `cirlib.analysis.sanity`)\n" + _sanity_table(sanity),
        "![examples](examples.png)\n"])


CARDS = {"synth-fashioniq": fashioniq_card, "synth-cirr": cirr_card, "synth-circo": circo_card}


def write_datacards(out: Path | str, manifest: dict, sanity: dict[str, dict]) -> None:
    """Write ``datacard.md`` and ``examples.png`` (CARD_FILES) into each dataset folder under ``out``."""
    out = Path(out)
    for name, card in CARDS.items():
        text = card(out / name, manifest["config"], manifest["counts"][name], sanity[name])
        write_text(out / name / CARD, text)
