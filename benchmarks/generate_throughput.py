"""Caption generation throughput of ``facecap_lib.inference.describe`` at a preset's shapes.

    .venv/bin/python benchmarks/generate_throughput.py [--preset vitg-opt2.7b] [--images 64]
        [--batch 32] [--beams 5] [--tokens 60] [--variants plain,bf16@128,...]
        [--check-greedy N] [--json F]

Random weights, noise images of the preset's size, beam search (the paper's beam 5) forced to
write exactly ``--tokens`` new tokens per caption (``min_new_tokens``), so that an untrained
model's early end-of-text cannot flatter the figure. Variants (``describe``'s ``decoding``):

- ``plain``: fp32 weights, transformers' dynamic key-value cache (the baseline);
- ``bf16-dynamic``: bf16 weights, the same cache;
- ``bf16``: bf16 weights, the project's default (the beam cache, ``models.beam_cache``);
- ``bf16-compile``: bf16 weights, a static cache and a compiled decoding step (CUDA graphs on a
  GPU).

``NAME@N`` runs a variant at batch N instead of ``--batch``. Each variant captions ``--images``
images after one warm-up batch (which also pays any compilation); prints captions/s, model TFLOP/s
(FLOPs counted on one caption's generation), MFU against the device's dense bf16 peak and peak
GPU memory. ``--profile VARIANT[@N]`` profiles one batch (kernels by kind, the share of the
time the GPU is busy; per new token, the prefill and the image encoder included).
``--attention KERNEL`` makes PyTorch prefer that attention kernel (``flash``, ``efficient``,
``cudnn`` or ``math``; the others stay as fallbacks) for every variant; by default PyTorch
chooses. ``--check-greedy N`` then captions N images with bf16 weights, greedily with the
compiled decoding and with ``--beams`` beams with the beam cache (those of them among the
variants), and counts the captions identical to the dynamic cache's. Runs on a CPU too, which is how it is tested.
"""

from __future__ import annotations

import contextlib
import json
import sys
import tempfile
import time
from pathlib import Path

import torch
from PIL import Image
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.profiler import profile

sys.path.insert(0, str(Path(__file__).resolve().parent))

import measure  # noqa: E402

from facecap_lib.inference import describe  # noqa: E402
from facecap_lib.models.presets import build_model  # noqa: E402
from facecap_lib.training.fit import building_on  # noqa: E402

VARIANTS = {  # weights' dtype, describe's decoding
    "plain": (torch.float32, "dynamic"),
    "bf16-dynamic": (torch.bfloat16, "dynamic"),
    "bf16": (torch.bfloat16, "beam-cache"),
    "bf16-compile": (torch.bfloat16, "compiled"),
}
ATTENTION = {  # --attention: the kernel scaled_dot_product_attention tries first
    "flash": SDPBackend.FLASH_ATTENTION,
    "efficient": SDPBackend.EFFICIENT_ATTENTION,
    "cudnn": SDPBackend.CUDNN_ATTENTION,
    "math": SDPBackend.MATH,
}


def preferring(attention: str | None):
    """A context in which ``scaled_dot_product_attention`` tries ``attention`` first."""
    if attention is None:
        return contextlib.nullcontext()
    first = ATTENTION[attention]
    return sdpa_kernel([first, *(b for b in ATTENTION.values() if b != first)], set_priority=True)


def main() -> None:
    parser = measure.arguments(__doc__, VARIANTS)
    parser.add_argument("--images", type=int, default=64)
    parser.add_argument("--beams", type=int, default=5)
    parser.add_argument("--tokens", type=int, default=60)
    parser.add_argument("--check-greedy", type=int, default=0, metavar="N")
    parser.add_argument("--attention", choices=list(ATTENTION), help="the kernel to prefer")
    parser.add_argument(
        "--profile", metavar="VARIANT[@N]", help="profile one batch of this variant too"
    )
    bench = measure.setting(parser, VARIANTS)
    args, device, spec, peak = bench.args, bench.device, bench.spec, bench.peak
    print(
        f"{args.preset} on {bench.device_name}: {args.images} images, beam {args.beams}, "
        f"{args.tokens} new tokens, attention: {args.attention or 'PyTorch chooses'}"
    )
    results = {**bench.results(), "attention": args.attention}
    with tempfile.TemporaryDirectory() as tmp, preferring(args.attention):
        pairs, tokenizer = measure.synthetic_pairs(
            Path(tmp), args.images, spec.vision.image_size, 8
        )
        images = [Image.open(p.image).convert("RGB") for p in pairs]
        torch.manual_seed(0)
        with building_on(device):
            model = build_model(spec, tokenizer)
        model = model.to(device).eval().requires_grad_(False)
        model.generation_config.min_new_tokens = args.tokens  # every caption full length

        def run(chosen, batch_size, beams=args.beams, decoding="dynamic"):
            out = describe(
                chosen, model=model, tokenizer=tokenizer, crop="none", beams=beams,
                max_new_tokens=args.tokens, batch_size=batch_size, decoding=decoding,
            )  # fmt: skip
            measure.synchronize(device)
            return out

        flops = measure.count_flops(lambda: run(images[:1], 1))
        print(f"model FLOPs per caption: {flops / 1e12:.4f} T")
        results["tflop_per_caption"] = flops / 1e12
        for variant in bench.variants:
            name, _, batch = variant.partition("@")
            batch = int(batch) if batch else args.batch
            dtype, decoding = VARIANTS[name]
            model.to(dtype)
            measure.reset_memory(device)
            try:
                run(images[:batch], batch, decoding=decoding)  # warm-up (and compilation)
                start = time.perf_counter()
                captions = run(images, batch, decoding=decoding)
            except torch.OutOfMemoryError:
                print(f"{variant:<26} out of memory")
                results["variants"][variant] = "out of memory"
                continue
            rate = len(captions) / (time.perf_counter() - start)
            memory = measure.peak_gib(device)
            print(measure.row(variant, rate, "captions/s", flops, peak, memory), flush=True)
            results["variants"][variant] = {
                "captions_per_s": rate, "peak_gib": memory, "batch": batch,
            }  # fmt: skip
        if args.profile:
            name, _, batch = args.profile.partition("@")
            batch = int(batch) if batch else args.batch
            dtype, decoding = VARIANTS[name]
            model.to(dtype)
            start = time.perf_counter()
            run(images[:batch], batch, decoding=decoding)  # warm, and the time without profiler
            seconds = time.perf_counter() - start
            with profile(activities=measure.activities(device)) as prof:
                run(images[:batch], batch, decoding=decoding)
            summary = measure.profile_summary(prof, args.tokens, seconds / args.tokens)
            print(f"(per new token: one batch of {batch} images, {args.tokens} tokens)")
            measure.print_profile(args.profile, summary)
            results["profile"] = {"variant": args.profile, "per": "new token", **summary}
        if args.check_greedy:
            model.to(torch.bfloat16)
            chosen = images[: args.check_greedy]
            results["identical"] = {}
            names = {v.partition("@")[0] for v in bench.variants}
            checks = {"bf16-compile": ("compiled", 1), "bf16": ("beam-cache", args.beams)}
            for decoding, beams in (checks[n] for n in checks if n in names):
                plain = run(chosen, len(chosen), beams=beams)
                fast = run(chosen, len(chosen), beams=beams, decoding=decoding)
                same = sum(a.caption == b.caption for a, b in zip(plain, fast, strict=True))
                what = f"{decoding}, beam {beams}"
                print(
                    f"bf16, {what}: {same} of {len(chosen)} captions identical to the dynamic cache's"
                )
                results["identical"][what] = {"same": same, "of": len(chosen)}
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
