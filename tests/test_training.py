"""The stage-2 loop: schedules, parameter groups, data order, and exact resume after a crash."""

from dataclasses import replace

import pytest
import torch

from facecap_lib.captions.rules import au_caption
from facecap_lib.data.images import load_rgb, to_tensor
from facecap_lib.data.synth.batch import FaceSpec, render_to_files
from facecap_lib.models.presets import build_model, preset
from facecap_lib.models.tokenizer import train_tokenizer
from facecap_lib.training.config import TrainConfig
from facecap_lib.training.loop import (
    DecodedImages,
    ImagePrefetch,
    Pair,
    batch_indices,
    load_images,
    train_captioner,
)
from facecap_lib.training.schedule import cosine_with_warmup, parameter_groups

AU_SETS = [{1, 2}, {6, 12}, {4, 7}, {25, 26}, {12, 25}, {9, 10}]


@pytest.fixture(scope="module")
def pairs(tmp_path_factory):
    root = tmp_path_factory.mktemp("faces")
    specs = [
        FaceSpec({au: 4 for au in aus}, identity=i, path=f"{i}.png")
        for i, aus in enumerate(AU_SETS)
    ]
    render_to_files(specs, root, size=64, workers=1, progress=False)
    return [
        Pair(str(root / s.path), au_caption(aus)) for s, aus in zip(specs, AU_SETS, strict=True)
    ]


def test_schedule():
    lrs = [cosine_with_warmup(s, 100, 10, 1e-3, 1e-5) for s in range(100)]
    assert lrs[0] == pytest.approx(1e-4) and lrs[9] == pytest.approx(1e-3)
    assert lrs[10] == pytest.approx(1e-3) and lrs[-1] == pytest.approx(1e-5, rel=0.05)
    assert all(a >= b for a, b in zip(lrs[10:], lrs[11:], strict=False))


def test_layer_wise_decay_and_no_decay_groups(pairs):
    tokenizer = train_tokenizer([p.caption for p in pairs], vocab_size=300, min_frequency=1)
    model = build_model(preset("tiny"), tokenizer)
    model.language_model.requires_grad_(False)
    groups = parameter_groups(model, 0.05, 0.9)
    scale = {id(p): g["lr_scale"] for g in groups for p in g["params"]}
    decay = {id(p): g["weight_decay"] for g in groups for p in g["params"]}
    named = dict(model.named_parameters())
    layers = model.config.vision_config.num_hidden_layers
    stem = "vision_model.embeddings.patch_embedding.layers."  # conv stem: conv 0, pool 1, norm 2
    assert scale[id(named[stem + "0.weight"])] == pytest.approx(0.9 ** (layers + 1))
    assert (
        decay[id(named[stem + "0.weight"])] == 0.05 and decay[id(named[stem + "2.weight"])] == 0.0
    )
    assert scale[id(named["vision_model.encoder.layers.0.self_attn.qkv.weight"])] == pytest.approx(
        0.9**layers
    )
    assert scale[id(named["qformer.encoder.layer.0.attention.attention.query.weight"])] == 1.0
    assert (
        decay[id(named["query_tokens"])] == 0.0
        and decay[id(named["language_projection.weight"])] == 0.05
    )
    assert not any(id(p) in scale for p in model.language_model.parameters())


def test_data_order_depends_only_on_the_step():
    config = TrainConfig(batch_size=4, seed=3)
    first = [batch_indices(10, s, 0, config).tolist() for s in range(6)]
    assert first == [batch_indices(10, s, 0, config).tolist() for s in range(6)]
    assert sorted(sum(first[:5], [])[:10]) == list(range(10))  # an epoch sees every example once


def test_prefetched_batches_are_those_of_a_serial_loop(pairs):
    config = TrainConfig(batch_size=4, grad_accumulation=2, max_steps=3, seed=1)
    with ImagePrefetch(pairs, config, 32, threads=3) as prefetch:
        order = [(0, 0), (0, 1), (1, 0), (2, 1), (2, 0), (1, 1)]  # in order, then out of order
        got = {key: prefetch.pixels(*key) for key in order}
    for (step, micro), (indices, pixels) in got.items():
        expected = batch_indices(len(pairs), step, micro, config)
        assert indices.tolist() == expected.tolist()
        serial = to_tensor(load_images(pairs, expected, config, step), 32)
        assert torch.equal(pixels, serial), (step, micro)


def test_decoded_images_keep_what_fits_the_budget_and_stay_unchanged(pairs):
    one = 64 * 64 * 3 / 2**20  # one 64-pixel RGB face, in MB
    read = DecodedImages(budget_mb=2.5 * one)
    files = [p.image for p in pairs]
    first = [read(f) for f in files]
    assert list(read.images) == files[:2]  # two fit; the rest are decoded at every use
    assert all(
        torch.equal(to_tensor([a], 32), to_tensor([load_rgb(f)], 32))
        for a, f in zip(first, files, strict=True)
    )
    config = TrainConfig(batch_size=4, seed=1)
    indices = batch_indices(len(pairs), 0, 0, config)
    augmented = to_tensor(load_images(pairs, indices, config, 0, read=read), 32)
    again = to_tensor(load_images(pairs, indices, config, 0, read=read), 32)
    assert torch.equal(augmented, again)  # crops and flips did not write into the cache
    assert torch.equal(augmented, to_tensor(load_images(pairs, indices, config, 0), 32))


@pytest.mark.parametrize("fused", [False, True])  # True: checked one step late (LossBook)
def test_a_nan_loss_stops_the_run_before_the_weights_take_it(pairs, tmp_path, fused):
    config = TrainConfig(
        max_steps=4, batch_size=3, warmup_steps=1, save_every=2, log_every=100,
        fused_optimizer=fused,
    )  # fmt: skip
    seen = {}

    def poison(model):
        model.language_projection.bias.data[0] = float("nan")
        seen["model"], seen["start"] = model, {k: v.clone() for k, v in model.state_dict().items()}

    with pytest.raises(FloatingPointError, match=r"run: the loss is nan at step 1;"):
        train_captioner(pairs, tmp_path / "run", config, log=None, initialize=poison)
    assert not list((tmp_path / "run").glob("checkpoint-*"))
    for key, value in seen["model"].state_dict().items():  # no update reached the weights
        if "running_" not in key and not key.endswith("num_batches_tracked"):  # BatchNorm's own
            torch.testing.assert_close(value, seen["start"][key], rtol=0, atol=0, equal_nan=True)


@pytest.mark.parametrize("fused", [False, True])
def test_resume_after_a_crash_is_exact(pairs, tmp_path, fused):
    config = TrainConfig(
        max_steps=6, batch_size=3, warmup_steps=2, save_every=3, log_every=100, freeze_lm=False,
        fused_optimizer=fused,
    )  # fmt: skip
    straight = train_captioner(pairs, tmp_path / "straight", config, log=None)
    crashed = train_captioner(pairs, tmp_path / "crashed", config, log=None, stop_after=3)
    assert crashed.history[-1]["step"] == 3 and (tmp_path / "crashed" / "checkpoint-3").exists()
    resumed = train_captioner(pairs, tmp_path / "crashed", config, log=None)
    assert resumed.resumed_from == 3 and [h["loss"] for h in resumed.history] == [
        h["loss"] for h in straight.history
    ]
    for (name, a), b in zip(
        straight.model.state_dict().items(), resumed.model.state_dict().values(), strict=True
    ):
        assert torch.equal(a, b), name
    again = train_captioner(
        pairs, tmp_path / "crashed", config, log=None
    )  # finished: nothing redone
    assert again.history == resumed.history


def test_frozen_language_model_does_not_move(pairs, tmp_path):
    config = TrainConfig(max_steps=2, batch_size=2, warmup_steps=1, save_every=100, log_every=100)
    tokenizer = train_tokenizer([p.caption for p in pairs], vocab_size=300, min_frequency=1)
    torch.manual_seed(0)
    before = build_model(preset("tiny"), tokenizer).language_model.state_dict()
    result = train_captioner(pairs, tmp_path / "run", config, tokenizer=tokenizer, log=None)
    after = result.model.language_model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert (result.final / "history.json").exists() and len(result.history) == 2


def test_fused_optimizer_and_compiled_blocks_change_the_run_only_by_rounding(
    pairs, tmp_path, monkeypatch
):
    """The GPU's fast settings, run here on the CPU: same losses and weights up to rounding.
    Compiled dropout draws its masks from its own generator; here it takes eager's, so that the
    arithmetic is what is compared."""
    import collections

    import torch._inductor.config

    monkeypatch.setattr(torch._inductor.config, "fallback_random", True)

    from facecap_lib.training.compile import repeated_blocks

    tokenizer = train_tokenizer([p.caption for p in pairs], vocab_size=300, min_frequency=1)
    model = build_model(preset("tiny"), tokenizer)
    kinds = collections.Counter(type(b).__name__ for b in repeated_blocks(model))
    assert kinds == {"Blip2EncoderLayer": 3, "Blip2QFormerLayer": 2, "OPTDecoderLayer": 2}
    config = TrainConfig(max_steps=3, batch_size=3, warmup_steps=1, save_every=100, log_every=100)
    runs = {
        name: train_captioner(
            pairs, tmp_path / name, replace(config, **changes), tokenizer=tokenizer, log=None
        )
        for name, changes in {
            "plain": {"fused_optimizer": False},
            "fused": {"fused_optimizer": True},
            "compiled": {"compile": True},
        }.items()
    }
    plain = runs.pop("plain")
    weights = plain.model.state_dict()
    for name, run in runs.items():
        losses = [h["loss"] for h in run.history]
        assert losses == pytest.approx([h["loss"] for h in plain.history], rel=1e-4), name
        for key, value in run.model.state_dict().items():
            torch.testing.assert_close(value, weights[key], rtol=1e-4, atol=1e-5, msg=key)
    torch.manual_seed(config.seed)  # as the trainer does before building its model
    start = build_model(preset("tiny"), tokenizer).state_dict()
    moved = "language_projection.weight"  # the runs moved the weights: not copies compared
    assert (weights[moved] - start[moved]).abs().max() > 10 * 1e-5  # ten times the tolerance
