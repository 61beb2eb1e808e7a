"""Textual inversion: pseudo-word injection, keyword masking, the three trainers, query building."""

from __future__ import annotations

import dataclasses

import pytest
import torch
import torch.nn.functional as F
from open_clip.model import CustomTextCLIP

from cirlib.encoders import load_encoder
from cirlib.encoders.clip_model import build_clip, build_tokenizer
from cirlib.inversion import (
    LinCIRConfig,
    Pic2WordConfig,
    PromptEncoder,
    SearleConfig,
    encode_with_pseudo_words,
    freeze,
    oti,
    train_lincir,
    train_pic2word,
    train_searle,
)
from cirlib.inversion.concepts import (
    ATTRIBUTE_WORDS,
    CONCEPTS,
    WORD_KINDS,
    attribute_words,
    concept_phrases,
    keyword_runs,
    mask_keywords,
)
from cirlib.inversion.evaluate import evaluate_inversion, inversion_method, invert_unique, load_inverter
from cirlib.inversion.inject import token_embeddings
from cirlib.inversion.loop import finished_run, load_phi, loss_summary, run_seconds
from cirlib.inversion.mapping import Phi, PhiConfig
from cirlib.inversion.searle import ConceptBank
from cirlib.metrics import cirr_recall
from tests.helpers import TINY_CLIP, tiny_model_dir

TEXTS = ["a photo of $ that is red", "$", "a big $ and a small $ on a grey background", "$ is bigger now"]


def tiny_model(kind: str) -> torch.nn.Module:
    torch.manual_seed(0)
    model = build_clip(TINY_CLIP) if kind == "CLIP" else CustomTextCLIP(**TINY_CLIP)
    return freeze(model)


def word_id(tokenizer, word: str) -> int:
    (token,) = tokenizer.encode(f" {word} ")
    return token


@pytest.mark.parametrize("kind", ["CLIP", "CustomTextCLIP"])
@pytest.mark.parametrize("device", ["cpu", pytest.param("cuda", marks=pytest.mark.skipif(
    not torch.cuda.is_available(), reason="no CUDA"))])
def test_injecting_a_real_word_embedding_equals_the_plain_text_encoder(kind, device):
    model, tokenizer = tiny_model(kind).to(device), build_tokenizer(TINY_CLIP)
    prompts = PromptEncoder(model, tokenizer, torch.device(device))
    words = ["cat", "square", "dress", "star"]
    pseudo = token_embeddings(model)[[word_id(tokenizer, w) for w in words]]
    injected = prompts(prompts.tokenize(TEXTS), pseudo)
    plain = model.encode_text(tokenizer([t.replace("$", w) for t, w in zip(TEXTS, words)]).to(device))
    assert injected.shape == (4, TINY_CLIP["embed_dim"])
    torch.testing.assert_close(injected, plain, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(prompts(prompts.tokenize(TEXTS), pseudo, normalize=True), F.normalize(plain, dim=-1),
                               atol=1e-5, rtol=1e-5)


def test_gradients_flow_to_the_pseudo_word_only():
    model, tokenizer = tiny_model("CLIP"), build_tokenizer(TINY_CLIP)
    prompts = PromptEncoder(model, tokenizer, torch.device("cpu"))
    torch.manual_seed(1)
    pseudo = (0.02 * torch.randn(len(TEXTS), prompts.width)).requires_grad_(True)
    features = prompts(prompts.tokenize(TEXTS), pseudo)
    features[0].sum().backward()
    assert all(p.grad is None for p in model.parameters())        # frozen encoder: nothing else is trained
    assert pseudo.grad[0].abs().sum() > 0                           # row 0 depends on its own pseudo-word ...
    assert torch.count_nonzero(pseudo.grad[1:]) == 0                # ... and on no other row's

    # With a trainable encoder the placeholder's own embedding row receives no gradient: it is replaced.
    model.requires_grad_(True)
    encode_with_pseudo_words(model, prompts.tokenize(TEXTS), pseudo.detach(), prompts.placeholder_id).sum().backward()
    grad = model.token_embedding.weight.grad
    assert torch.count_nonzero(grad[prompts.placeholder_id]) == 0
    assert grad[word_id(tokenizer, "photo")].abs().sum() > 0


def test_injection_rejects_rows_without_placeholder_and_wrong_widths():
    model, tokenizer = tiny_model("CLIP"), build_tokenizer(TINY_CLIP)
    prompts = PromptEncoder(model, tokenizer, torch.device("cpu"))
    with pytest.raises(ValueError, match="no separate"):
        prompts.tokenize(["a photo of a cat"])
    with pytest.raises(ValueError, match="hold no placeholder"):
        prompts(tokenizer(["a photo of a cat"]), torch.zeros(1, prompts.width))
    with pytest.raises(ValueError, match="width"):
        prompts(prompts.tokenize(["$"]), torch.zeros(1, prompts.width + 1))


def test_keyword_masking_replaces_each_run_of_vocabulary_words():
    assert mask_keywords("a big red square in the top left on a grey background") == "$ in $ on $"
    assert mask_keywords("product photo of a blue striped dress with a v-neck, a star print") == "$ of $ with $, $"
    assert mask_keywords("hello world") == "a photo of $ that hello world"


def test_keyword_runs_are_what_masking_replaces_and_attribute_words_have_kinds():
    caption = "a big red square in the top left on a grey background"
    assert keyword_runs(caption) == ["a big red square", "the top left", "a grey background"]
    assert len(keyword_runs(caption)) == mask_keywords(caption).count("$")
    assert keyword_runs("hello world") == []
    assert attribute_words(caption + ", a red disc") == ["big", "red", "square", "top", "left", "grey", "disc"]
    assert {w: WORD_KINDS[w] for w in ("red", "grey", "square", "discs", "big", "left", "dress", "striped")} == {
        "red": "colour", "grey": "colour", "square": "shape", "discs": "shape", "big": "size", "left": "place",
        "dress": "garment", "striped": "garment"}
    assert set(WORD_KINDS) == ATTRIBUTE_WORDS and not {"a", "the", "background", "photo"} & ATTRIBUTE_WORDS


def test_nearest_tokens_of_a_real_word_embedding_start_with_that_word():
    model, tokenizer = tiny_model("CLIP"), build_tokenizer(TINY_CLIP)
    prompts = PromptEncoder(model, tokenizer, torch.device("cpu"))
    ids = {"square": word_id(tokenizer, "square"), "dress": word_id(tokenizer, "dress")}
    assert prompts.word_ids(["square", "t-shirt", "dress"]) == ids  # "t-shirt" is 3 tokens: left out
    pseudo = token_embeddings(model)[[word_id(tokenizer, "square"), word_id(tokenizer, "dress")]].detach()
    everywhere = prompts.nearest_tokens(3 * pseudo, k=4)  # the length does not matter: cosine
    assert [row[0] for row in everywhere] == ["square", "dress"] and all(len(row) == 4 for row in everywhere)
    among = prompts.nearest_tokens(pseudo, k=5, words=["star", "dress", "t-shirt", "square"])
    assert [row[0] for row in among] == ["square", "dress"] and [sorted(row) for row in among] == [
        ["dress", "square", "star"]] * 2  # k is capped by the 3 one-token words
    assert prompts.nearest_tokens(-pseudo[:1], k=1) != [["square"]]


def test_loss_summary_compares_the_first_and_last_tenth():
    falling = [{"loss": 20.0 - i} for i in range(20)]  # tenths of 2 steps
    assert loss_summary(falling) == {"first": 19.5, "last": 1.5, "still_falling": True}
    flat = [{"loss": v} for v in [9.0, 7.0] + [1.0] * 18]
    assert loss_summary(flat) == {"first": 8.0, "last": 1.0, "still_falling": False}
    assert loss_summary([{"loss": 2.0}]) == {"first": 2.0, "last": 2.0, "still_falling": False}
    with pytest.raises(ValueError, match="empty"):
        loss_summary([])


def test_concept_phrases_hold_the_concept_once_and_are_seeded():
    for concept in CONCEPTS:
        phrases = concept_phrases(concept, 7, seed=3)
        assert phrases == concept_phrases(concept, 7, seed=3)
        assert all(p.count("{}") == 1 for p in phrases)


def test_phi_layouts():
    pic2word = Phi(PhiConfig(8, 5, 8, hidden_layers=2, dropout=0.1, activation="relu", dropout_first=True))
    searle = Phi(PhiConfig(8, 5, 32))
    assert [type(m).__name__ for m in pic2word.layers] == ["Linear", "Dropout", "ReLU"] * 2 + ["Linear"]
    assert [type(m).__name__ for m in searle.layers] == ["Linear", "GELU", "Dropout"] * 2 + ["Linear"]
    assert searle(torch.zeros(3, 8)).shape == (3, 5)


@pytest.fixture(scope="module")
def tiny_setup(tmp_path_factory):
    """A tiny model folder and shared fields for tiny training jobs (64 stream pairs, cached once)."""
    root = tmp_path_factory.mktemp("inversion")
    folder, _ = tiny_model_dir(root / "model")
    common = dict(model=str(folder), cache=str(root / "cache"), train_pairs=64, batch_size=32, steps=25,
                  lr=1e-2, phi_dropout=0.0, log_every=1000, checkpoint_every=10, device="cpu", workers=1)
    return root, common


def _first_and_last(log: list[dict], n: int = 5) -> tuple[float, float]:
    losses = [row["loss"] for row in log]
    return sum(losses[:n]) / n, sum(losses[-n:]) / n


@pytest.mark.parametrize("train, config_class, extra", [
    (train_pic2word, Pic2WordConfig, {}),
    (train_lincir, LinCIRConfig, {}),
    (train_searle, SearleConfig, {"oti_steps": 5, "oti_pairs": 64, "oti_batch_size": 64, "phrases_per_concept": 2}),
], ids=["pic2word", "lincir", "searle"])
def test_each_trainer_lowers_its_loss(tiny_setup, train, config_class, extra):
    root, common = tiny_setup
    config = config_class(**common, **extra, out=str(root / config_class.__name__))
    run = train(config)
    phi, record = load_phi(run)
    first, last = _first_and_last(record["log"])
    assert record["step"] == 25 and last < 0.9 * first, (first, last)
    assert phi.config.output_dim == TINY_CLIP["text_cfg"]["width"]
    seconds = run_seconds(record)
    assert list(seconds)[-1] == "training steps" and seconds["training steps"] == record["log"][-1]["seconds"]
    assert ("OTI of the training images" in seconds) == (train is train_searle) and min(seconds.values()) >= 0
    assert finished_run(run) and not finished_run(root / "nothing here")


def test_resumed_training_repeats_the_uninterrupted_numbers(tiny_setup, monkeypatch):
    root, common = tiny_setup
    whole = load_phi(train_pic2word(Pic2WordConfig(**{**common, "steps": 20}, out=str(root / "whole"))))[1]["log"]
    import cirlib.inversion.loop as loop
    real_seed = loop.step_seed

    def killed_at_step_13(seed, step):  # after the step-10 checkpoint, mid-way to the next one
        if step == 13:
            raise KeyboardInterrupt
        return real_seed(seed, step)
    monkeypatch.setattr(loop, "step_seed", killed_at_step_13)
    split = Pic2WordConfig(**{**common, "steps": 20}, out=str(root / "split"))
    with pytest.raises(KeyboardInterrupt):
        train_pic2word(split)
    assert not finished_run(split.out)  # a checkpoint at step 10 of 20
    monkeypatch.setattr(loop, "step_seed", real_seed)
    resumed = load_phi(train_pic2word(split, resume=True))[1]["log"]
    assert finished_run(split.out)
    assert [r["loss"] for r in resumed] == [r["loss"] for r in whole]


def test_oti_moves_the_pseudo_word_towards_the_image(tiny_setup):
    root, common = tiny_setup
    encoder = load_encoder(common["model"], device="cpu")
    prompts = PromptEncoder.from_encoder(encoder)
    bank = ConceptBank(prompts, per_concept=2)
    torch.manual_seed(0)
    images = torch.randn(6, TINY_CLIP["embed_dim"])
    config = SearleConfig(oti_steps=30, oti_ema_decay=0.0, oti_lambda_reg=0.0, oti_init_std=0.02, oti_lr=5e-2)
    before = oti(prompts, bank, images, dataclasses.replace(config, oti_steps=0), progress=False)
    after = oti(prompts, bank, images, config, progress=False)
    tokens = prompts.tokenize(["a photo of a $"] * 6)
    similarity = [F.cosine_similarity(prompts(tokens, w), images).mean() for w in (before, after)]
    assert similarity[1] > similarity[0] + 0.1, similarity


def test_composed_queries_equal_the_text_encoder_with_the_real_word():
    model, tokenizer = tiny_model("CLIP"), build_tokenizer(TINY_CLIP)
    prompts = PromptEncoder(model, tokenizer, torch.device("cpu"))
    square = token_embeddings(model)[word_id(tokenizer, "square")]
    calls = []

    def invert(features):
        calls.append(len(features))
        return square.expand(len(features), -1)

    references = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0]])
    texts = ["is red", "has two circles", "is bigger"]
    queries = inversion_method(prompts, invert, texts, "a photo of $ that {}")(references, torch.zeros(3, 2))
    plain = model.encode_text(tokenizer([f"a photo of square that {t}" for t in texts]))
    torch.testing.assert_close(queries, F.normalize(plain, dim=-1), atol=1e-5, rtol=1e-5)
    assert calls == [2]                                               # the repeated reference is inverted once
    assert invert_unique(lambda f: f * 2, references).tolist() == (references * 2).tolist()


def test_evaluation_of_a_trained_run_on_the_small_benchmark(tiny_setup, small_benchmark):
    from cirlib.evaluation.evaluate import benchmark_features
    from cirlib.features import FeatureCache
    root, common = tiny_setup
    run = train_pic2word(Pic2WordConfig(**{**common, "steps": 5}, out=str(root / "eval")))
    encoder = load_encoder(common["model"], device="cpu")
    prompts = PromptEncoder.from_encoder(encoder)
    features = benchmark_features(encoder, FeatureCache(root / "features"), small_benchmark[0])
    inverter = load_inverter(run, encoder)
    results, seconds = evaluate_inversion(features, prompts, {"pic2word": inverter})
    assert set(results) == {"fashioniq", "cirr", "circo"} and set(seconds) == {"pic2word"}
    cirr = features[1]  # the same numbers by hand: compose the queries, rank with cirlib.metrics
    queries = inversion_method(prompts, inverter, cirr.query_texts, "a photo of $ that {}")(cirr.reference, cirr.text)
    expected = cirr_recall(queries @ F.normalize(cirr.gallery.float(), dim=-1).T, cirr.gallery_names,
                           cirr.reference_names, cirr.target_names, cirr.extra["img_set_members"])
    assert {name: results["cirr"]["pic2word"][name] for name in expected} == pytest.approx(expected, abs=1e-6)
    assert "avg R@10" in results["fashioniq"]["pic2word"]
    assert "mAP@10" in results["circo"]["pic2word"]
    other = load_encoder(str(tiny_model_dir(root / "other", seed=1)[0]), device="cpu")
    with pytest.raises(ValueError, match="trained with encoder"):
        load_inverter(run, other)
