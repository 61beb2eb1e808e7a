"""Encoders: loading from local files, preprocessing geometry, extraction, the feature cache."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from PIL import Image

from cirlib.encoders import PadToRatio, PreprocessConfig, build_preprocess, load_encoder
from cirlib.encoders.transforms import geometry
from cirlib.features import FeatureCache, encode_images
from cirlib.util.errors import ConfigError, FileError
from cirlib.util.tensor_io import read_tensors, save_tensors
from tests.helpers import tiny_model_dir


@pytest.fixture
def images(tmp_path):
    paths = []
    for i in range(7):
        path = tmp_path / "img" / f"{i}.png"
        path.parent.mkdir(exist_ok=True)
        Image.new("RGB", (40 + 5 * i, 30), (30 * i, 200 - 20 * i, 90)).save(path)
        paths.append(path)
    return paths


@pytest.mark.parametrize("size, expected", [((100, 200), (160, 200)), ((200, 100), (200, 160)),
                                            ((110, 100), (110, 100)), ((125, 100), (125, 100))])
def test_targetpad_pads_the_short_side_to_ratio_1_25_only_when_longer(size, expected):
    padded = PadToRatio(1.25)(Image.new("RGB", size, (255, 255, 255)))
    assert padded.size == expected
    if padded.size != size:  # centred zero padding: the corners are black, the centre keeps the image
        assert padded.getpixel((0, 0)) == (0, 0, 0)
        assert padded.getpixel((padded.width // 2, padded.height // 2)) == (255, 255, 255)


def test_squarepad_keeps_every_pixel_and_clip_crops():
    image = Image.new("RGB", (200, 100), (255, 0, 0))
    image.paste((0, 0, 255), (0, 0, 20, 100))  # a blue band at the left edge
    square = geometry(PreprocessConfig(kind="squarepad", image_size=50))(image)
    cropped = geometry(PreprocessConfig(kind="clip", image_size=50))(image)
    assert square.size == cropped.size == (50, 50)
    assert square.getpixel((1, 25))[2] > 200      # the band survives squarepad
    assert cropped.getpixel((1, 25))[0] > 200     # and is cut away by the centre crop
    assert build_preprocess(PreprocessConfig(image_size=50))(image).shape == (3, 50, 50)


def test_loading_from_a_local_model_folder_restores_the_weights_exactly(tmp_path):
    folder, model = tiny_model_dir(tmp_path / "m")
    encoder = load_encoder(str(folder), device="cpu")
    tokens = encoder.tokenizer(["a red circle"])
    with torch.no_grad():
        assert torch.equal(encoder.model.encode_text(tokens), model.eval().encode_text(tokens))
    assert encoder.preprocess_config.kind == "targetpad" and encoder.preprocess_config.image_size == 32
    assert load_encoder(str(folder), preprocess="squarepad", device="cpu").preprocess_config.kind == "squarepad"


def test_loading_from_a_local_checkpoint_file_with_an_open_clip_architecture(tmp_path):
    import open_clip
    from safetensors.torch import save_file
    model = open_clip.create_model("RN50", pretrained=None)
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(tmp_path / "rn50.safetensors"))
    encoder = load_encoder("RN50", pretrained=str(tmp_path / "rn50.safetensors"), device="cpu", quick_gelu=False)
    assert torch.equal(encoder.model.visual.conv1.weight, model.visual.conv1.weight)
    assert encoder.name == "RN50:rn50.safetensors"
    with pytest.raises(FileError, match="not found"):
        load_encoder("RN50", pretrained=str(tmp_path / "missing.safetensors"))
    with pytest.raises(ConfigError, match="open_clip architecture"):
        load_encoder(str(tmp_path / "nowhere"))


def test_batched_extraction_equals_one_image_at_a_time(tmp_path, images):
    encoder = load_encoder(str(tiny_model_dir(tmp_path / "m")[0]), device="cpu")
    batched = encode_images(encoder, images, batch_size=3, num_workers=0, progress=False)
    preprocess = build_preprocess(encoder.preprocess_config)
    with torch.no_grad():
        single = torch.cat([encoder.model.encode_image(preprocess(Image.open(p))[None]) for p in images])
    assert torch.allclose(batched, single, atol=1e-5)


def counting(monkeypatch):
    """Count the images the cache sends to the encoder."""
    import cirlib.features.cache as cache_module
    seen = []
    real = cache_module.encode_images

    def encode(encoder, paths, **options):
        seen.append(len(paths))
        return real(encoder, paths, num_workers=0, progress=False)
    monkeypatch.setattr(cache_module, "encode_images", encode)
    return seen


def test_cache_hits_for_the_same_key_and_misses_when_weights_or_preprocess_change(tmp_path, images, monkeypatch):
    seen = counting(monkeypatch)
    cache = FeatureCache(tmp_path / "cache")
    names = [p.stem for p in images]
    encoder = load_encoder(str(tiny_model_dir(tmp_path / "a", seed=0)[0]), device="cpu")
    first = cache.image_features(encoder, names, images, "toy")
    assert sum(seen) == 7
    assert torch.equal(cache.image_features(encoder, names, images, "toy"), first) and sum(seen) == 7
    other_weights = load_encoder(str(tiny_model_dir(tmp_path / "b", seed=1)[0]), device="cpu")
    assert not torch.equal(cache.image_features(other_weights, names, images, "toy"), first) and sum(seen) == 14
    other_preprocess = load_encoder(str(tmp_path / "a"), preprocess="squarepad", device="cpu")
    cache.image_features(other_preprocess, names, images, "toy")
    assert sum(seen) == 21
    Image.new("RGB", (50, 30), (1, 2, 3)).save(images[0])  # the file changed on disk
    cache.image_features(encoder, names, images, "toy")
    assert sum(seen) == 28


class Encoded(Exception):
    """Raised by a model that was asked to encode where its features had to come from the cache."""


def refuse_to_encode(monkeypatch, encoder) -> None:
    """Make ``encoder``'s model raise :class:`Encoded` on any image or text encoding (its weights stay as they are)."""
    def refuse(*args, **kwargs):
        raise Encoded
    for method in ("encode_image", "encode_text"):
        monkeypatch.setattr(encoder.model, method, refuse)


def test_a_repeated_request_is_read_from_the_cache_file_and_any_key_change_reaches_the_model(tmp_path, images,
                                                                                              monkeypatch):
    """A new FeatureCache on the same folder (nothing in memory) with a model that cannot encode returns the stored
    image and text features bit for bit, and what the files hold (planted there); a change of the texts, of an
    image's bytes, of the preprocessing or of one weight makes the cache ask the model."""
    encoder = load_encoder(str(tiny_model_dir(tmp_path / "m")[0]), device="cpu")
    folder, names, texts = tmp_path / "cache", [p.stem for p in images], ["is red", "has stripes"]
    first = FeatureCache(folder, progress=False)
    image_features = first.image_features(encoder, names, images, "toy", num_workers=0)
    text_features = first.text_features(encoder, texts, "q")
    refuse_to_encode(monkeypatch, encoder)
    assert torch.equal(FeatureCache(folder).image_features(encoder, names, images, "toy"), image_features)
    assert torch.equal(FeatureCache(folder).text_features(encoder, texts, "q"), text_features)
    for path in folder.glob("*.safetensors"):
        stored, metadata = read_tensors(path, "cache file")
        save_tensors(path, {"features": stored["features"] + 1}, metadata)
    assert torch.equal(FeatureCache(folder).image_features(encoder, names, images, "toy"), image_features + 1)
    assert torch.equal(FeatureCache(folder).text_features(encoder, texts, "q"), text_features + 1)
    squarepad = dataclasses.replace(encoder, preprocess_config=PreprocessConfig(kind="squarepad", image_size=32))
    with pytest.raises(Encoded):
        FeatureCache(folder).text_features(encoder, ["is red", "has dots"], "q")  # as many texts: the key decides
    with pytest.raises(Encoded):
        FeatureCache(folder).image_features(squarepad, names, images, "toy")
    Image.new("RGB", (50, 30), (1, 2, 3)).save(images[3])
    with pytest.raises(Encoded):
        FeatureCache(folder).image_features(encoder, names, images, "toy")
    with torch.no_grad():
        encoder.model.text_projection[0, 0] += 1e-3
    with pytest.raises(Encoded):
        FeatureCache(folder).text_features(encoder, texts, "q")


def test_reduced_precision_features_are_close_and_cached_under_their_own_key(tmp_path, images, monkeypatch):
    """A bf16 extraction (a GPU's speed option) is never served to a float32 run, nor the other way round."""
    seen = counting(monkeypatch)
    cache, names = FeatureCache(tmp_path / "cache"), [p.stem for p in images]
    folder = str(tiny_model_dir(tmp_path / "a", seed=0)[0])
    full = cache.image_features(load_encoder(folder, device="cpu"), names, images, "toy")
    low = cache.image_features(load_encoder(folder, device="cpu", precision="bfloat16"), names, images, "toy")
    assert sum(seen) == 14 and low.dtype == torch.float32 and not torch.equal(low, full)
    assert torch.allclose(low, full, atol=0.05 * full.abs().max())
    assert torch.equal(cache.image_features(load_encoder(folder, device="cpu"), names, images, "toy"), full)
    assert sum(seen) == 14 and len(list((tmp_path / "cache").glob("toy-images-*.safetensors"))) == 2
    with pytest.raises(ValueError, match="precision must be float32, bfloat16 or float16"):
        load_encoder(folder, device="cpu", precision="auto")


def test_interrupted_extraction_resumes_from_saved_chunks_with_identical_results(tmp_path, images, monkeypatch):
    encoder = load_encoder(str(tiny_model_dir(tmp_path / "m")[0]), device="cpu")
    names = [p.stem for p in images]
    expected = FeatureCache(tmp_path / "reference", chunk_size=3).image_features(encoder, names, images, "toy",
                                                                                 num_workers=0, progress=False)
    import cirlib.features.cache as cache_module
    real, calls = cache_module.encode_images, []

    def dies_on_second_chunk(encoder, paths, **options):
        calls.append(len(paths))
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(encoder, paths, num_workers=0, progress=False)
    monkeypatch.setattr(cache_module, "encode_images", dies_on_second_chunk)
    cache = FeatureCache(tmp_path / "cache", chunk_size=3)
    with pytest.raises(KeyboardInterrupt):
        cache.image_features(encoder, names, images, "toy")
    assert not list((tmp_path / "cache").glob("toy-*.safetensors")), "no final file after an interruption"
    assert len(list((tmp_path / "cache").glob(".*part*.safetensors"))) == 1
    seen = counting(monkeypatch)
    resumed = cache.image_features(encoder, names, images, "toy")
    assert seen == [3, 1], "only the chunks not saved before the interruption are encoded"
    assert torch.equal(resumed, expected)
    assert not list((tmp_path / "cache").glob(".*part*")), "chunks are removed once the file is complete"


def test_text_features_are_cached_by_their_texts(tmp_path):
    encoder = load_encoder(str(tiny_model_dir(tmp_path / "m")[0]), device="cpu")
    cache = FeatureCache(tmp_path / "cache")
    a = cache.text_features(encoder, ["is red", "has stripes"], "q", progress=False)
    b = cache.text_features(encoder, ["is red", "has stripes", "is blue"], "q", progress=False)
    assert torch.equal(a, b[:2]) and len(list((tmp_path / "cache").glob("q-texts-*.safetensors"))) == 2
