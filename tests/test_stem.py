"""The conv stem: same tokens as the patch embedding, saved and loaded with its statistics."""

import copy
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


def test_stem_computes_in_channels_last_what_its_layers_compute_in_the_default_layout():
    """The stem switches to channels-last for speed; the function, its gradients and BatchNorm's
    running statistics stay those of the same layers on ordinary tensors (to float rounding)."""
    torch.manual_seed(0)
    stem = ConvStem((8, 16, 32), hidden=48)
    reference = copy.deepcopy(stem)
    pixels = torch.randn(4, 3, 64, 64)
    out, expected = stem(pixels), reference.layers(pixels)
    assert out.is_contiguous(memory_format=torch.channels_last) and expected.is_contiguous()
    pairs = [(out, expected), *zip(stem.buffers(), reference.buffers(), strict=True)]
    out.square().sum().backward()
    expected.square().sum().backward()
    pairs += [
        (a.grad, b.grad) for a, b in zip(stem.parameters(), reference.parameters(), strict=True)
    ]
    for a, b in pairs:
        assert (a.float() - b.float()).abs().max() <= 1e-4 * b.float().abs().max()
    assert len(pairs) == 1 + 3 * 3 + 11  # output; mean, var, count of 3 norms; 11 parameters


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


def test_both_layouts_compute_the_same_function_at_inference():
    """Max-pool commutes with ReLU and with BatchNorm's per-channel increasing affine map."""
    torch.manual_seed(0)
    legacy = ConvStem((8, 16), hidden=24, layout="conv-norm-pool")
    for module in legacy.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.weight.data.uniform_(0.5, 2.0)  # positive scales
            module.bias.data.normal_()
            module.running_mean.normal_()
            module.running_var.uniform_(0.5, 2.0)
    pooled_first = ConvStem((8, 16), hidden=24)
    assert pooled_first.layout == "conv-pool-norm"
    order = {0: 0, 1: 2, 4: 4, 5: 6, 8: 8}  # legacy index -> index of the same layer
    state = {}
    for key, value in legacy.state_dict().items():
        _, index, name = key.split(".", 2)
        state[f"layers.{order[int(index)]}.{name}"] = value
    pooled_first.load_state_dict(state)
    legacy.eval(), pooled_first.eval()
    pixels = torch.randn(3, 3, 16, 16)
    with torch.no_grad():
        torch.testing.assert_close(pooled_first(pixels), legacy(pixels))


def test_a_config_without_a_layout_loads_the_legacy_stem(tokenizer, tmp_path):
    import json

    spec = preset("tiny")
    legacy = replace(spec, vision=replace(spec.vision, stem_layout="conv-norm-pool"))
    model = build_model(legacy, tokenizer)
    model.save_pretrained(tmp_path)
    config = json.loads((tmp_path / "config.json").read_text())
    assert config["vision_config"].pop("conv_stem_layout") == "conv-norm-pool"
    (tmp_path / "config.json").write_text(json.dumps(config))  # as saved before layouts existed
    loaded = from_pretrained(Blip2ForConditionalGeneration, tmp_path)
    assert loaded.vision_model.embeddings.patch_embedding.layout == "conv-norm-pool"
    state, back = model.state_dict(), loaded.state_dict()
    assert state.keys() == back.keys() and all(torch.equal(state[k], back[k]) for k in state)


def test_an_unknown_layout_is_refused():
    with pytest.raises(ValueError, match="unknown conv stem layout 'pool-first'"):
        ConvStem((8, 16), hidden=24, layout="pool-first")
