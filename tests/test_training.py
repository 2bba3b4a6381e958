"""The one training loop (``training.fit``) and what it does for every task: schedules, parameter
groups, data order, exact resume after a crash, the non-finite guard, fused and compiled steps,
gradient checkpointing and accumulation, settings that a task does not use."""

import json
from dataclasses import asdict, replace

import pytest
import torch

from facecap_lib.data.images import load_rgb, to_tensor
from facecap_lib.models.presets import build_model, preset
from facecap_lib.models.tokenizer import train_tokenizer
from facecap_lib.training.captioner import CaptionerConfig, train_captioner
from facecap_lib.training.config import FitConfig, settings_from_dict
from facecap_lib.training.data import DecodedImages, ImagePrefetch, batch_indices, load_images
from facecap_lib.training.fit import fit
from facecap_lib.training.schedule import cosine_with_warmup, parameter_groups
from facecap_lib.training.stage1 import QFormerConfig
from facecap_lib.training.stages import RecipeConfig
from tests.training_tasks import (
    TASKS,
    assert_same_weights,
    make,
    render,
    small_fit,
    start_weights,
)


@pytest.fixture(scope="module")
def pairs(tmp_path_factory):
    return render(tmp_path_factory.mktemp("faces"))


@pytest.fixture(scope="module")
def tokenizer(pairs):
    return train_tokenizer([p.caption for p in pairs], vocab_size=300, min_frequency=1)


def images(pairs):
    return [p.image for p in pairs]


def test_schedule():
    lrs = [cosine_with_warmup(s, 100, 10, 1e-3, 1e-5) for s in range(100)]
    assert lrs[0] == pytest.approx(1e-4) and lrs[9] == pytest.approx(1e-3)
    assert lrs[10] == pytest.approx(1e-3) and lrs[-1] == pytest.approx(1e-5, rel=0.05)
    assert all(a >= b for a, b in zip(lrs[10:], lrs[11:], strict=False))


def test_layer_wise_decay_and_no_decay_groups(tokenizer):
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
    flat = parameter_groups(model, 0.05)  # no layer decay: one scale
    assert {g["lr_scale"] for g in flat} == {1.0}


def test_data_order_depends_only_on_the_step():
    config = FitConfig(batch_size=4, seed=3)
    first = [batch_indices(10, s, 0, config).tolist() for s in range(6)]
    assert first == [batch_indices(10, s, 0, config).tolist() for s in range(6)]
    assert sorted(sum(first[:5], [])[:10]) == list(range(10))  # an epoch sees every example once


def test_prefetched_batches_are_those_of_a_serial_loop(pairs):
    config = FitConfig(batch_size=4, grad_accumulation=2, max_steps=3, seed=1)
    with ImagePrefetch(images(pairs), config, 32, threads=3) as prefetch:
        order = [(0, 0), (0, 1), (1, 0), (2, 1), (2, 0), (1, 1)]  # in order, then out of order
        got = {key: prefetch.pixels(*key) for key in order}
    for (step, micro), (indices, pixels) in got.items():
        expected = batch_indices(len(pairs), step, micro, config)
        assert indices.tolist() == expected.tolist()
        serial = to_tensor(load_images(images(pairs), expected, step, seed=1, augment=True), 32)
        assert torch.equal(pixels, serial), (step, micro)


def test_decoded_images_keep_what_fits_the_budget_and_stay_unchanged(pairs):
    one = 64 * 64 * 3 / 2**20  # one 64-pixel RGB face, in MB
    read = DecodedImages(budget_mb=2.5 * one)
    files = images(pairs)
    first = [read(f) for f in files]
    assert list(read.images) == files[:2]  # two fit; the rest are decoded at every use
    assert all(
        torch.equal(to_tensor([a], 32), to_tensor([load_rgb(f)], 32))
        for a, f in zip(first, files, strict=True)
    )
    indices = batch_indices(len(pairs), 0, 0, FitConfig(batch_size=4, seed=1))
    augment = dict(seed=1, augment=True)
    augmented = to_tensor(load_images(files, indices, 0, read=read, **augment), 32)
    again = to_tensor(load_images(files, indices, 0, read=read, **augment), 32)
    assert torch.equal(augmented, again)  # crops and flips did not write into the cache
    assert torch.equal(augmented, to_tensor(load_images(files, indices, 0, **augment), 32))


def test_augmentation_mirrors_only_when_flips_are_on(tmp_path):
    """A picture bright on its left stays so under every crop unless flips are on: the general
    captioner, whose captions name sides, trains with ``flip=0``."""
    from PIL import Image

    pixels = torch.zeros(64, 64, 3, dtype=torch.uint8)
    pixels[:, :32] = 255
    file = tmp_path / "left.png"
    Image.fromarray(pixels.numpy()).save(file)

    def left_brighter(flip: float) -> list[bool]:
        out = []
        for step in range(40):
            image = to_tensor(load_images([file], [0], step, seed=1, augment=True, flip=flip), 32)
            out.append(bool(image[0, :, :, :16].mean() > image[0, :, :, 16:].mean()))
        return out

    assert all(left_brighter(0.0))
    assert 5 < sum(left_brighter(0.5)) < 35  # about half mirrored


# ---------------------------------------------------------------- every task, the same features


def weights(model) -> dict:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


@pytest.mark.parametrize("fused", [False, True])  # True: checked one step late (LossBook)
@pytest.mark.parametrize("name", TASKS)
def test_resume_after_a_crash_is_exact(name, fused, pairs, tokenizer, tmp_path):
    config = small_fit(max_steps=6, save_every=3, fused_optimizer=fused)
    straight = fit(make(name, pairs, tokenizer), tmp_path / "straight", config, log=None)
    crashed = fit(
        make(name, pairs, tokenizer), tmp_path / "crashed", config, log=None, stop_after=3
    )
    assert crashed.history[-1]["step"] == 3 and (tmp_path / "crashed" / "checkpoint-3").exists()
    logged = []
    resumed = fit(make(name, pairs, tokenizer), tmp_path / "crashed", config, log=logged.append)
    assert resumed.resumed_from == 3 and any(
        "resumed from checkpoint-3 (step 3)" in x for x in logged
    )
    assert resumed.history == straight.history
    expected = weights(straight.model)
    for key, value in weights(resumed.model).items():
        assert torch.equal(value, expected[key]), key
    again = fit(make(name, pairs, tokenizer), tmp_path / "crashed", config, log=None)
    assert again.history == resumed.history and again.resumed_from == 6  # loaded, not redone
    for key, value in weights(again.model).items():
        assert torch.equal(value.cpu(), expected[key].cpu()), key


class Poisoned:
    """A task whose first trainable weight is NaN (``"weight"``) or whose gradient of it is
    infinite while the loss stays finite (``"gradient"``)."""

    def __init__(self, task, what):
        self.task, self.what, self.start = task, what, None

    def __getattr__(self, name):
        return getattr(self.task, name)

    def freeze(self, model):
        self.task.freeze(model)
        first = next(p for p in model.parameters() if p.requires_grad)
        if self.what == "weight":
            first.data.fill_(float("nan"))
        else:
            first.register_hook(lambda grad: grad * float("inf"))
        self.model, self.start = model, weights(model)


@pytest.mark.parametrize("what", ["weight", "gradient"])
@pytest.mark.parametrize("fused", [False, True])
@pytest.mark.parametrize("name", TASKS)
def test_a_non_finite_step_stops_the_run_before_the_weights_take_it(
    name, fused, what, pairs, tokenizer, tmp_path
):
    task = Poisoned(make(name, pairs, tokenizer), what)
    config = small_fit(save_every=2, fused_optimizer=fused)
    value = "the loss" if what == "weight" else "the gradient norm"
    with pytest.raises(FloatingPointError, match=rf"run: {value} is (nan|inf) at step 1;"):
        fit(task, tmp_path / "run", config, log=None)
    assert not list((tmp_path / "run").glob("checkpoint-*"))
    for key, value in weights(task.model).items():  # no update reached the weights
        if "running_" not in key and not key.endswith("num_batches_tracked"):  # BatchNorm's own
            torch.testing.assert_close(value, task.start[key], rtol=0, atol=0, equal_nan=True)


@pytest.mark.parametrize("name", TASKS)
def test_fused_optimizer_and_compiled_blocks_change_the_run_only_by_rounding(
    name, pairs, tokenizer, tmp_path
):
    """The GPU's fast settings, run here on the CPU: same losses and weights up to rounding.
    Compiled dropout draws its masks from its own generator; here it takes eager's, so that the
    arithmetic is what is compared."""
    import torch._inductor.config

    config = small_fit(max_steps=3, lr=1e-4, save_every=None)  # Adam at 1e-3 amplifies rounding
    variants = {
        "plain": {"fused_optimizer": False},
        "fused": {"fused_optimizer": True},
        "compiled": {"compile": True},
    }
    with torch._inductor.config.patch(fallback_random=True):
        runs = {
            variant: fit(
                make(name, pairs, tokenizer),
                tmp_path / variant,
                replace(config, **changes),
                log=None,
            )  # fmt: skip
            for variant, changes in variants.items()
        }
    plain = runs.pop("plain")
    expected = weights(plain.model)
    for variant, run in runs.items():
        assert [h["loss"] for h in run.history] == pytest.approx(
            [h["loss"] for h in plain.history], rel=1e-4
        ), variant
        assert_same_weights(weights(run.model), expected, rtol=1e-4, atol=1e-5)
    start = start_weights(make(name, pairs, tokenizer), config)
    moved = max(
        (expected[k] - v).abs().max().item() for k, v in start.items() if v.is_floating_point()
    )
    assert moved > 10 * 1e-5  # the runs moved the weights: not copies compared


@pytest.mark.parametrize("name", TASKS)
def test_gradient_checkpointing_and_accumulation_keep_the_arithmetic(
    name, pairs, tokenizer, tmp_path, monkeypatch
):
    """Recomputing activations changes memory, not results; accumulating two micro-batches logs
    the mean of what each back-propagated."""
    config = small_fit(max_steps=2, save_every=None)
    plain = fit(make(name, pairs, tokenizer), tmp_path / "plain", config, log=None)
    recomputed = fit(
        make(name, pairs, tokenizer), tmp_path / "ckpt", replace(config, gradient_checkpointing=True),
        log=None,
    )  # fmt: skip
    assert [h["loss"] for h in recomputed.history] == pytest.approx(
        [h["loss"] for h in plain.history], rel=1e-5
    )
    seen = []
    backward = torch.Tensor.backward

    def record(self, *args, **kwargs):
        seen.append(float(self.detach()))
        return backward(self, *args, **kwargs)

    monkeypatch.setattr(torch.Tensor, "backward", record)
    twice = replace(config, batch_size=2, grad_accumulation=2)
    accumulated = fit(make(name, pairs, tokenizer), tmp_path / "accumulated", twice, log=None)
    assert len(seen) == 4  # two micro-batches per step, each scaled by 1/2
    for step, entry in enumerate(accumulated.history):
        assert entry["loss"] == pytest.approx(seen[2 * step] + seen[2 * step + 1], rel=1e-6)


def test_log_lines_name_the_task_and_carry_every_loss(pairs, tokenizer, tmp_path):
    lines = []
    config = small_fit(max_steps=2, log_every=1, save_every=None)
    fit(
        make("qformer", pairs, tokenizer), tmp_path / "run", config, log=lines.append, progress=True
    )
    assert [line.split(" loss")[0] for line in lines] == ["stage 1: step 1/2", "stage 1: step 2/2"]
    assert all(all(f" {k} " in line for k in ("itc", "itm", "itg", "lr")) for line in lines)


def test_frozen_language_model_does_not_move(pairs, tokenizer, tmp_path):
    config = CaptionerConfig(fit=small_fit(max_steps=2, save_every=None))
    torch.manual_seed(0)
    before = build_model(preset("tiny"), tokenizer).language_model.state_dict()
    result = train_captioner(pairs, tmp_path / "run", config, tokenizer=tokenizer, log=None)
    after = result.model.language_model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert (result.final / "history.json").exists() and len(result.history) == 2


def test_a_setting_no_task_uses_is_an_error_that_names_it(pairs, tokenizer, tmp_path):
    with pytest.raises(TypeError, match="layer_decay"):
        QFormerConfig(layer_decay=0.9)  # a captioner's setting, not stage 1's
    with pytest.raises(ValueError, match=r"qformer\.layer_decay: not a setting of QFormerConfig"):
        settings_from_dict(RecipeConfig, {"qformer": {"layer_decay": 0.9}})
    with pytest.raises(ValueError, match=r"captioner\.fit\.lr_warmup: not a setting of FitConfig"):
        settings_from_dict(RecipeConfig, {"captioner": {"fit": {"lr_warmup": 5}}})
    saved = json.loads(json.dumps(asdict(RecipeConfig.smoke())))
    assert settings_from_dict(RecipeConfig, saved) == RecipeConfig.smoke()  # read back whole
    with pytest.raises(ValueError, match="eval_every"):  # nothing would ever evaluate
        fit(make("mae", pairs, tokenizer), tmp_path / "run", small_fit(eval_every=2), log=None)
    for bad, field in [({"precision": "fp16"}, "precision"), ({"parallel": "zero"}, "parallel"),
                       ({"batch_size": 0}, "batch_size"), ({"min_lr": 1.0}, "min_lr")]:  # fmt: skip
        with pytest.raises(ValueError, match=field):
            FitConfig(**bad)


def test_a_frozen_language_model_kept_in_bf16_trains_like_fp32_and_resumes(
    pairs, tokenizer, tmp_path
):
    fit32 = small_fit(max_steps=4, save_every=2)
    plain = fit(make("captioner", pairs, tokenizer), tmp_path / "fp32", fit32, log=None)
    task = make("captioner", pairs, tokenizer, fit=fit32, frozen_lm_dtype="bf16")
    half = fit(task, tmp_path / "bf16", fit32, log=None)
    lm = half.model.language_model
    assert {p.dtype for p in lm.parameters()} == {torch.bfloat16}  # kept in bf16 while training
    assert [h["loss"] for h in half.history] == pytest.approx(
        [h["loss"] for h in plain.history], rel=2e-2
    )  # bf16 weights: about three significant digits
    torch.manual_seed(fit32.seed)
    start = build_model(preset("tiny"), tokenizer).language_model.to(torch.bfloat16)
    assert all(
        torch.equal(a, b)
        for a, b in zip(start.state_dict().values(), lm.state_dict().values(), strict=True)
    )
    again = make("captioner", pairs, tokenizer, fit=fit32, frozen_lm_dtype="bf16")
    fit(again, tmp_path / "crashed", fit32, log=None, stop_after=2)
    resumed = fit(
        make("captioner", pairs, tokenizer, fit=fit32, frozen_lm_dtype="bf16"),
        tmp_path / "crashed",
        fit32,
        log=None,
    )
    assert resumed.history == half.history
    with pytest.raises(ValueError, match="frozen_lm_dtype"):
        CaptionerConfig(freeze_lm=False, frozen_lm_dtype="bf16")


def test_random_states_are_restored_per_rank_and_old_checkpoints_still_resume():
    from facecap_lib.training.checkpoints import random_state, restore_rng

    torch.manual_seed(1)
    first = random_state()
    torch.manual_seed(2)
    second = random_state()
    restore_rng({"random_states": [first, second]}, rank=1)
    assert torch.equal(torch.get_rng_state(), second["torch"])
    restore_rng({"random_states": [first, second]}, rank=3)  # more ranks than saved: rank 0's
    assert torch.equal(torch.get_rng_state(), first["torch"])
    restore_rng({"torch_rng": second["torch"], "cuda_rng": None})  # written before 2026-12-04
    assert torch.equal(torch.get_rng_state(), second["torch"])
