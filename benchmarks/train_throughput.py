"""Stage-2 training throughput of the project's trainer at a preset's shapes, random weights.

    .venv/bin/python benchmarks/train_throughput.py [--preset vitg-opt2.7b] [--batch 32]
        [--tokens 64] [--steps 10] [--warmup 3] [--variants plain,bf16,bf16-ckpt] [--json F]

Runs ``facecap_lib.training.loop.train_captioner`` itself (image decoding and augmentation from
JPEG files, tokenizing, the optimizer, the per-step loss check) on noise images and captions of
exactly ``--tokens`` tokens, language model frozen, encoder and Q-Former trained, as the paper's
stage 2. Each variant is a ``TrainConfig``:

- ``plain``: fp32, no gradient checkpointing (the baseline: a plain port);
- ``bf16``: the project's default on a GPU (bf16 autocast);
- ``bf16-ckpt``: bf16 with gradient checkpointing (what the authors' LAVIS config does, in fp16).

Prints images/s after ``--warmup`` steps, model TFLOP/s, MFU against the device's dense bf16
peak and peak GPU memory, one line per variant, then the image loader alone (decoding and
augmenting ``--steps`` batches on the trainer's threads) for comparison: if the loader is not far
faster than training, the GPU waits for it. A variant that runs out of memory says so and the
others still run. On a CPU it runs too (autocast is off there), which is how it is tested.

On one H100 (2026-11-26, ``--variants bf16 --steps 5 --warmup 2``): 2.656 TFLOP per image;
bf16 90.4 images/s, 240 TFLOP/s, 24.3% MFU, 54.3 GiB peak; the loader alone 737 images/s (so
the loader does not bound it). toolchain.md's plain bf16 + SDPA port did 118 images/s.
"""

from __future__ import annotations

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
from facecap_lib.training.config import TrainConfig  # noqa: E402
from facecap_lib.training.loop import ImagePrefetch, autocast_for, train_captioner  # noqa: E402

VARIANTS = {
    "plain": {"precision": "fp32"},
    "bf16": {"precision": "bf16"},
    "bf16-ckpt": {"precision": "bf16", "gradient_checkpointing": True},
}


def flops_per_image(spec, tokenizer, pairs, tokens: int, device: torch.device) -> float:
    """Model FLOPs of one training step's forward and backward, per image (batch of 2)."""
    model = build_model(spec, tokenizer).to(device)
    model.language_model.requires_grad_(False)
    batch = measure.training_batch(spec, tokenizer, pairs, 2, tokens, device)

    def step():
        with autocast_for(device):
            model(**batch).loss.backward()

    return measure.count_flops(step) / 2  # the model is freed on return


def loader_rate(pairs, config: TrainConfig, size: int, device: torch.device, steps: int) -> float:
    with ImagePrefetch.for_device(pairs, config, size, device) as prefetch:
        prefetch.pixels(0, 0)
        start = time.perf_counter()
        for step in range(1, steps + 1):
            prefetch.pixels(step, 0)
        return steps * config.batch_size / (time.perf_counter() - start)


def main() -> None:
    parser = measure.arguments(__doc__, VARIANTS)
    parser.add_argument("--tokens", type=int, default=64)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=3)
    bench = measure.setting(parser, VARIANTS)
    args, device, spec, peak = bench.args, bench.device, bench.spec, bench.peak
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
        base = TrainConfig(
            preset=args.preset, max_steps=args.warmup + args.steps, batch_size=args.batch,
            warmup_steps=1, max_caption_tokens=args.tokens + 2, log_every=1,
            eval_every=10**9, save_every=10**9,
        )  # fmt: skip
        for variant in bench.variants:
            config = replace(base, **VARIANTS[variant])
            measure.reset_memory(device)
            clock = measure.StepClock(device)
            try:
                result = train_captioner(
                    pairs, Path(tmp) / variant, config, device=str(device), tokenizer=tokenizer,
                    log=clock, stop_after=config.max_steps,
                )  # fmt: skip
            except torch.OutOfMemoryError:
                print(f"{variant:<26} out of memory at batch {args.batch}")
                results["variants"][variant] = "out of memory"
                continue
            images = clock.rate(args.warmup) * args.batch
            memory = measure.peak_gib(device)
            print(measure.row(variant, images, "images/s", flops, peak, memory), flush=True)
            results["variants"][variant] = {
                "images_per_s": images,
                "peak_gib": memory,
                "final_loss": result.history[-1]["loss"],
            }
            del result
        loader = loader_rate(pairs, base, size, device, args.steps)
        print(measure.row("loader alone", loader, "images/s", None, None, None))
        results["loader_images_per_s"] = loader
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
