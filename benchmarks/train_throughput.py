"""Stage-2 training throughput of the project's trainer at a preset's shapes, random weights.

    .venv/bin/python benchmarks/train_throughput.py [--preset vitg-opt2.7b] [--batch 32]
        [--tokens 64] [--steps 10] [--warmup 3] [--variants plain,bf16,...] [--profile VARIANT]
        [--json F]

Runs ``facecap_lib.training.captioner.train_captioner`` itself (the one loop, ``training.fit``) (image decoding and augmentation from
JPEG files, tokenizing, the optimizer, the per-step loss check) on noise images and captions of
exactly ``--tokens`` tokens, language model frozen, encoder and Q-Former trained, as the paper's
stage 2. Each variant is a ``FitConfig``:

- ``plain``: fp32, AdamW one arithmetic step at a time (the baseline: a plain port);
- ``bf16-foreach``: bf16 autocast, the same AdamW (the trainer's GPU default until 2026-11-26);
- ``bf16``: the trainer's GPU default: bf16 autocast and the fused AdamW kernel;
- ``bf16-compile``: ``bf16`` with every repeated block compiled (``training.compile``);
- ``bf16-ckpt``: ``bf16`` with gradient checkpointing (what the authors' LAVIS config does, in
  fp16);
- ``bf16-lm16``: ``bf16`` with the frozen language model's weights stored in bf16
  (``CaptionerConfig.frozen_lm_dtype``): no casts of them at every step;

and ``model-only`` is no trainer at all: one batch already on the device, forward, backward and a
fused AdamW with a single group, no clipping, no loss check, no data. What the trainer loses
against it is the trainer's own cost.

Prints images/s after ``--warmup`` steps, model TFLOP/s, MFU against the device's dense bf16
peak and peak GPU memory, one line per variant, then the image loader alone (decoding and
augmenting ``--steps`` batches on the trainer's threads) for comparison: if the loader is not far
faster than training, the GPU waits for it. ``--profile VARIANT`` then runs that variant again
under ``torch.profiler`` and prints where a step's time goes: the trainer's regions (batch,
forward, backward, optimizer), the share of the step the GPU is busy, and the kernels by kind.
A variant that runs out of memory says so and the others still run. On a CPU it runs too
(autocast is off there), which is how it is tested.
"""

from __future__ import annotations

import dataclasses
import json
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

import measure  # noqa: E402

from facecap_lib.models.presets import build_model  # noqa: E402
from facecap_lib.training.captioner import CaptionerConfig, train_captioner  # noqa: E402
from facecap_lib.training.config import FitConfig  # noqa: E402
from facecap_lib.training.data import ImagePrefetch  # noqa: E402
from facecap_lib.training.fit import autocast_for, building_on  # noqa: E402

MODEL_ONLY = "model-only"
VARIANTS = {
    "plain": {"precision": "fp32", "fused_optimizer": False},
    "bf16-foreach": {"precision": "bf16", "fused_optimizer": False},
    "bf16": {"precision": "bf16"},
    "bf16-compile": {"precision": "bf16", "compile": True},
    "bf16-ckpt": {"precision": "bf16", "gradient_checkpointing": True},
    "bf16-lm16": {"precision": "bf16", "frozen_lm_dtype": "bf16"},
    MODEL_ONLY: {"precision": "bf16"},
}


def new_model(spec, tokenizer, device: torch.device):
    with building_on(device):
        model = build_model(spec, tokenizer)
    model.to(device).language_model.requires_grad_(False)
    return model


def flops_per_image(spec, tokenizer, pairs, tokens: int, device: torch.device) -> float:
    """Model FLOPs of one training step's forward and backward, per image (batch of 2)."""
    model = new_model(spec, tokenizer, device)
    batch = measure.training_batch(spec, tokenizer, pairs, 2, tokens, device)

    def step():
        with autocast_for(device):
            model(**batch, use_cache=False).loss.backward()

    return measure.count_flops(step) / 2  # the model is freed on return


def model_only(spec, tokenizer, pairs, config: FitConfig, tokens: int, device, clock) -> float:
    """Forward, backward and a fused single-group AdamW on one batch already on the device;
    returns the last loss. ``clock`` is called after every step, as the trainer's ``log``."""
    torch.manual_seed(config.seed)
    model = new_model(spec, tokenizer, device)
    model.train()
    batch = measure.training_batch(spec, tokenizer, pairs, config.batch_size, tokens, device)
    trained = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trained, lr=config.lr, fused=device.type == "cuda")
    for step in range(1, config.max_steps + 1):
        with autocast_for(device, config.precision):
            loss = model(**batch, use_cache=False).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        if step % config.log_every == 0 or step == config.max_steps:
            clock(f"step {step}/{config.max_steps} loss {loss.item():.4f}")
    return float(loss.detach())


CAPTIONER_FIELDS = {f.name for f in dataclasses.fields(CaptionerConfig)} - {"fit"}


def fit_settings(name: str) -> dict:
    """A variant's ``FitConfig`` changes."""
    return {k: v for k, v in VARIANTS[name].items() if k not in CAPTIONER_FIELDS}


def task_settings(name: str) -> dict:
    """A variant's ``CaptionerConfig`` changes."""
    return {k: v for k, v in VARIANTS[name].items() if k in CAPTIONER_FIELDS}


def run_variant(name, config, pairs, tokenizer, spec, tokens, device, folder, log):
    """The final loss of ``config.max_steps`` steps of variant ``name``, ``log`` after each."""
    if name == MODEL_ONLY:
        return model_only(spec, tokenizer, pairs, config, tokens, device, log)
    captioner = CaptionerConfig(fit=config, max_caption_tokens=tokens + 2, **task_settings(name))
    result = train_captioner(
        pairs, folder, captioner, spec=spec, device=str(device), tokenizer=tokenizer, log=log,
        stop_after=config.max_steps,
    )  # fmt: skip
    return result.history[-1]["loss"]


def loader_rate(pairs, config: FitConfig, size: int, device: torch.device, steps: int) -> float:
    images = [p.image for p in pairs]
    with ImagePrefetch.for_device(images, config, size, device) as prefetch:
        prefetch.pixels(0, 0)
        start = time.perf_counter()
        for step in range(1, steps + 1):
            prefetch.pixels(step, 0)
        return steps * config.batch_size / (time.perf_counter() - start)


REGIONS = (
    "facecap.batch", "facecap.wait_for_images", "facecap.forward", "facecap.backward",
    "facecap.optimizer",
)  # fmt: skip


def profile_variant(name, config, pairs, tokenizer, spec, tokens, device, folder, steps: int):
    """Run ``name`` again, profiling its last ``steps`` steps (from one log line to the last)."""
    from torch.profiler import profile

    prof = profile(activities=measure.activities(device))

    def at_log_line(line: str) -> None:
        step = measure.logged_step(line)
        if step == config.max_steps - steps:
            prof.start()
        elif step == config.max_steps:
            prof.stop()

    run_variant(name, config, pairs, tokenizer, spec, tokens, device, folder, at_log_line)
    return prof


def main() -> None:
    parser = measure.arguments(__doc__, VARIANTS)
    parser.add_argument("--tokens", type=int, default=64)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument(
        "--log-every", type=int, default=1,
        help="steps between the trainer's log lines, at which it reads its losses (make "
        "--warmup and --steps multiples of it)",
    )  # fmt: skip
    parser.add_argument("--profile", choices=list(VARIANTS), help="profile this variant too")
    parser.add_argument("--profile-steps", type=int, default=3)
    bench = measure.setting(parser, VARIANTS)
    args, device, spec, peak = bench.args, bench.device, bench.spec, bench.peak
    counts = [args.warmup, args.steps] + ([args.profile_steps] if args.profile else [])
    if any(count % args.log_every for count in counts):
        parser.error("--warmup, --steps and --profile-steps must be multiples of --log-every")
    size = spec.vision.image_size
    print(
        f"{args.preset} on {bench.device_name}: batch {args.batch}, {size} px, "
        f"{args.tokens} caption tokens"
    )
    results = bench.results()
    with tempfile.TemporaryDirectory() as tmp:
        count = args.batch * 4  # distinct images; batches cycle through them
        pairs, tokenizer = measure.synthetic_pairs(Path(tmp) / "images", count, size, args.tokens)
        flops = flops_per_image(spec, tokenizer, pairs, args.tokens, device)
        print(f"model FLOPs per image (forward and backward): {flops / 1e12:.3f} T")
        results["tflop_per_image"] = flops / 1e12
        base = FitConfig(
            max_steps=args.warmup + args.steps, batch_size=args.batch, warmup_steps=1,
            log_every=args.log_every, save_every=None,
        )  # fmt: skip
        step_seconds = {}
        for variant in bench.variants:
            config = replace(base, **fit_settings(variant))
            measure.reset_memory(device)
            clock = measure.StepClock(device)
            try:
                loss = run_variant(
                    variant, config, pairs, tokenizer, spec, args.tokens, device,
                    Path(tmp) / variant, clock,
                )  # fmt: skip
            except torch.OutOfMemoryError:
                print(f"{variant:<26} out of memory at batch {args.batch}")
                results["variants"][variant] = "out of memory"
                continue
            images = clock.rate(args.warmup) * args.batch
            step_seconds[variant] = args.batch / images
            memory = measure.peak_gib(device)
            print(measure.row(variant, images, "images/s", flops, peak, memory), flush=True)
            results["variants"][variant] = {
                "images_per_s": images, "peak_gib": memory, "final_loss": loss,
            }  # fmt: skip
        loader = loader_rate(pairs, base, size, device, args.steps)
        print(measure.row("loader alone", loader, "images/s", None, None, None))
        results["loader_images_per_s"] = loader
        if args.profile:
            measure.reset_memory(device)
            steps = args.profile_steps
            config = replace(base, max_steps=args.warmup + steps, **fit_settings(args.profile))
            prof = profile_variant(
                args.profile, config, pairs, tokenizer, spec, args.tokens, device,
                Path(tmp) / f"profile-{args.profile}", steps,
            )  # fmt: skip
            summary = measure.profile_summary(
                prof, steps, step_seconds.get(args.profile, 0.0), REGIONS
            )
            measure.print_profile(args.profile, summary)
            results["profile"] = {"variant": args.profile, **summary}
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
