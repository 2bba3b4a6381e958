"""The conv stem: same tokens as the patch embedding, saved and loaded with its statistics."""

from dataclasses import replace

import pytest
import torch
from transformers import Blip2ForConditionalGeneration

from facecap_lib.models.presets import build_model, preset
from facecap_lib.models.stem import ConvStem, check_stem, from_pretrained
from facecap_lib.models.tokenizer import train_tokenizer


@pytest.fixture(scope="module")
def tokenizer():
    return train_tokenizer(["the brows are raised"] * 3, vocab_size=300, min_frequency=1)


def test_stem_makes_the_patch_grid_of_the_embedding_it_replaces():
    stem = ConvStem((8, 16, 32), hidden=48)
    plain = torch.nn.Conv2d(3, 48, kernel_size=8, stride=8)
    pixels = torch.randn(2, 3, 64, 64)
    assert stem(pixels).shape == plain(pixels).shape == (2, 48, 8, 8)


def test_stem_depth_must_match_the_patch_size():
    check_stem((8, 16, 32), 8)
    with pytest.raises(ValueError, match="16-pixel patches, but patch_size is 8"):
        check_stem((8, 16, 32, 64), 8)


def test_checkpoint_round_trip_keeps_stem_weights_and_statistics(tokenizer, tmp_path):
    torch.manual_seed(0)
    model = build_model(preset("tiny"), tokenizer)
    assert isinstance(model.vision_model.embeddings.patch_embedding, ConvStem)
    model.train()
    model.vision_model(pixel_values=torch.randn(4, 3, 64, 64))  # moves the BatchNorm statistics
    model.save_pretrained(tmp_path)
    loaded = from_pretrained(Blip2ForConditionalGeneration, tmp_path).eval()
    model.eval()
    pixels = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        expected = model.vision_model(pixel_values=pixels).last_hidden_state
        got = loaded.vision_model(pixel_values=pixels).last_hidden_state
    assert torch.equal(expected, got)
    state, back = model.state_dict(), loaded.state_dict()
    assert state.keys() == back.keys() and all(torch.equal(state[k], back[k]) for k in state)


def test_checkpoint_without_a_stem_loads_as_transformers_saved_it(tokenizer, tmp_path):
    spec = preset("tiny")
    plain = replace(spec, vision=replace(spec.vision, stem=()))
    model = build_model(plain, tokenizer)
    assert isinstance(model.vision_model.embeddings.patch_embedding, torch.nn.Conv2d)
    model.save_pretrained(tmp_path)
    loaded = from_pretrained(Blip2ForConditionalGeneration, tmp_path)
    assert torch.equal(
        loaded.vision_model.embeddings.patch_embedding.weight,
        model.vision_model.embeddings.patch_embedding.weight,
    )


def test_stem_weights_that_do_not_fit_name_the_folder(tokenizer, tmp_path):
    model = build_model(preset("tiny"), tokenizer)
    model.config.vision_config.conv_stem = [32, 64, 96]  # config no longer matches the weights
    model.save_pretrained(tmp_path)
    with pytest.raises(ValueError, match=f"{tmp_path}: conv stem weights do not fit"):
        from_pretrained(Blip2ForConditionalGeneration, tmp_path)
