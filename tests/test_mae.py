"""MAE pre-training of the image encoder and the weight mapping into BLIP-2's vision encoder."""

import re
from dataclasses import replace

import pytest
import torch
from transformers import ViTMAEForPreTraining

from facecap_lib.data.images import load_rgb, to_tensor
from facecap_lib.data.synth.batch import FaceSpec, render_to_files
from facecap_lib.models.mae import build_mae, install_mae_encoder, mae_to_blip2_state
from facecap_lib.models.presets import build_model, preset
from facecap_lib.models.tokenizer import train_tokenizer
from facecap_lib.training.pretrain import MAEConfig, pretrain_mae


@pytest.fixture(scope="module")
def captioner():
    tokenizer = train_tokenizer(["the face shows anger"] * 3, vocab_size=300, min_frequency=1)
    return build_model(preset("tiny"), tokenizer).eval()


def test_mapped_encoder_computes_the_same_features(captioner):
    torch.manual_seed(0)
    mae = build_mae(preset("tiny"), mask_ratio=0.0).eval()
    install_mae_encoder(captioner, mae)
    pixels = torch.randn(2, 3, 64, 64)
    patches = (64 // 8) ** 2
    with torch.no_grad():
        expected = mae.vit(
            pixel_values=pixels, noise=torch.arange(patches).float().expand(2, patches)
        ).last_hidden_state
        got = captioner.vision_model(pixel_values=pixels).last_hidden_state
    assert torch.allclose(expected, got, atol=1e-5)


def test_transformers_4_checkpoint_names_map_the_same(captioner):
    state = build_mae(preset("tiny")).state_dict()
    old = {}
    for key, value in state.items():
        key = re.sub(r"vit\.layers\.(\d+)\.", r"vit.encoder.layer.\1.", key)
        key = (
            key.replace("attention.q_proj", "attention.attention.query")
            .replace("attention.k_proj", "attention.attention.key")
            .replace("attention.v_proj", "attention.attention.value")
            .replace("attention.o_proj", "attention.output.dense")
            .replace("mlp.fc1", "intermediate.dense")
            .replace("mlp.fc2", "output.dense")
        )
        old[key] = value
    a, b = mae_to_blip2_state(state, 3), mae_to_blip2_state(old, 3)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_a_checkpoint_that_does_not_fit_is_refused(captioner):
    state = build_mae(preset("tiny")).state_dict()
    del state["vit.layers.1.mlp.fc1.weight"]
    with pytest.raises(KeyError, match="vit.layers.1.mlp.fc1.weight"):
        mae_to_blip2_state(state, 3)
    small = build_mae(preset("small"))
    with pytest.raises(ValueError, match="does not fit"):
        install_mae_encoder(captioner, small)


def test_mae_pretraining_reduces_reconstruction_loss(tmp_path):
    specs = [FaceSpec({6: i % 5}, identity=i, path=f"{i}.png") for i in range(16)]
    render_to_files(specs, tmp_path, size=64, workers=1, progress=False)
    images = [str(tmp_path / s.path) for s in specs]
    log = []
    fit = replace(
        MAEConfig().fit, max_steps=100, batch_size=8, lr=1e-3, warmup_steps=5, log_every=10
    )
    model = pretrain_mae(
        preset("tiny"), images, tmp_path / "run", MAEConfig(fit=fit), log=log.append
    )
    assert isinstance(model, ViTMAEForPreTraining) and len(log) == 10  # a line every 10 steps
    torch.manual_seed(fit.seed)  # the weights the run started from
    untrained = build_mae(preset("tiny"))
    pixels = to_tensor([load_rgb(f) for f in images], 64)

    def loss(mae) -> float:  # every face, the same masks
        torch.manual_seed(1)
        with torch.no_grad():
            return mae.eval()(pixel_values=pixels).loss.item()

    assert loss(model) < 0.95 * loss(untrained)


def test_mae_blanks_masked_patches_before_a_conv_stem():
    """With a conv stem, a masked patch's pixels must not reach the visible tokens: the stem's
    receptive field spans neighbouring patches (mae_loss blanks them first)."""
    import torch

    from facecap_lib.models.mae import build_mae, mae_loss, mask_from_noise
    from facecap_lib.models.presets import preset

    torch.manual_seed(0)
    mae = build_mae(preset("tiny")).eval()
    pixels = torch.randn(2, 3, 64, 64)
    noise = torch.rand(2, mae.vit.embeddings.patch_embeddings.num_patches)
    mask = mask_from_noise(noise, mae.config.mask_ratio)
    assert mask.sum(1).tolist() == [48.0, 48.0]  # 75% of 64 patches
    loss, out = mae_loss(mae, pixels, noise)
    assert torch.equal(out.mask, mask)  # the model masked the same patches
    grid = mask[0].reshape(8, 8)
    row, col = next(  # a masked patch beside a visible one
        (r, c) for r in range(8) for c in range(1, 8) if grid[r, c] == 1 and grid[r, c - 1] == 0
    )
    changed = pixels.clone()
    changed[0, :, row * 8 : row * 8 + 8, col * 8 : col * 8 + 8] += torch.randn(3, 8, 8)  # masked
    changed_loss, changed_out = mae_loss(mae, changed, noise)
    assert torch.equal(out.logits, changed_out.logits)  # no visible token saw the change
    assert changed_loss != loss  # the loss is against the true pixels of the masked patches
    with torch.no_grad():  # without blanking, the stem leaks the masked patch
        leaked = mae(pixel_values=changed, noise=noise).logits
        plain = mae(pixel_values=pixels, noise=noise).logits
    assert not torch.equal(leaked, plain)
