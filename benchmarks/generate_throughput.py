"""Caption generation throughput of ``facecap_lib.inference.describe`` at a preset's shapes.

    .venv/bin/python benchmarks/generate_throughput.py [--preset vitg-opt2.7b] [--images 64]
        [--batch 32] [--beams 5] [--tokens 60] [--variants plain,bf16] [--json F]

Random weights, noise images of the preset's size, beam search (the paper's beam 5) forced to
write exactly ``--tokens`` new tokens per caption (``min_new_tokens``), so that an untrained
model's early end-of-text cannot flatter the figure. Variants: ``plain`` keeps the weights in
fp32 (the baseline), ``bf16`` casts them to bf16. Prints captions/s after one warm-up batch,
model TFLOP/s (FLOPs counted on one caption's generation), MFU against the device's dense bf16
peak and peak GPU memory. Runs on a CPU too, which is how it is tested.
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path

import torch
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))

import measure  # noqa: E402

from facecap_lib.inference import describe  # noqa: E402
from facecap_lib.models.presets import build_model  # noqa: E402

VARIANTS = {"plain": torch.float32, "bf16": torch.bfloat16}


def main() -> None:
    parser = measure.arguments(__doc__, VARIANTS)
    parser.add_argument("--images", type=int, default=64)
    parser.add_argument("--beams", type=int, default=5)
    parser.add_argument("--tokens", type=int, default=60)
    bench = measure.setting(parser, VARIANTS)
    args, device, spec, peak = bench.args, bench.device, bench.spec, bench.peak
    print(
        f"{args.preset} on {bench.device_name}: {args.images} images in batches of {args.batch}, "
        f"beam {args.beams}, {args.tokens} new tokens"
    )
    results = bench.results()
    with tempfile.TemporaryDirectory() as tmp:
        pairs, tokenizer = measure.synthetic_pairs(
            Path(tmp), args.images, spec.vision.image_size, 8
        )
        images = [Image.open(p.image).convert("RGB") for p in pairs]
        torch.manual_seed(0)
        model = build_model(spec, tokenizer).to(device).eval().requires_grad_(False)
        model.generation_config.min_new_tokens = args.tokens  # every caption full length

        def run(chosen, batch_size):
            out = describe(
                chosen, model=model, tokenizer=tokenizer, crop="none", beams=args.beams,
                max_new_tokens=args.tokens, batch_size=batch_size,
            )  # fmt: skip
            measure.synchronize(device)
            return out

        flops = measure.count_flops(lambda: run(images[:1], 1))
        print(f"model FLOPs per caption: {flops / 1e12:.4f} T")
        results["tflop_per_caption"] = flops / 1e12
        for variant in bench.variants:
            model.to(VARIANTS[variant])
            measure.reset_memory(device)
            run(images[: args.batch], args.batch)  # warm-up
            start = time.perf_counter()
            captions = run(images, args.batch)
            rate = len(captions) / (time.perf_counter() - start)
            memory = measure.peak_gib(device)
            print(measure.row(variant, rate, "captions/s", flops, peak, memory), flush=True)
            results["variants"][variant] = {"captions_per_s": rate, "peak_gib": memory}
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
