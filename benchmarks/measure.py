"""What the GPU benchmarks share: synthetic inputs at a preset's shapes, FLOP counting, the
device's peak, peak memory, and one printed table.

Model FLOPs are counted by ``torch.utils.flop_counter`` on one real pass (matrix products,
convolutions and attention, forward and backward as executed: a frozen language model costs its
forward and the gradients of its inputs, not of its weights). MFU is model FLOPs per second over
the device's dense bf16 peak, so a run that recomputes activations (gradient checkpointing) is
not credited for the recomputation.
"""

from __future__ import annotations

import argparse
import gc
import re
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch.utils.flop_counter import FlopCounterMode

from facecap_lib.models.captions import encode_captions
from facecap_lib.models.device import resolve_device
from facecap_lib.models.presets import Preset, preset
from facecap_lib.models.tokenizer import train_tokenizer
from facecap_lib.training.data import Pair

# Dense bf16 tensor-core peaks (vendor datasheets, without sparsity), matched by device name.
BF16_PEAK_TFLOPS = {"H200": 989.0, "H100": 989.0, "A100": 312.0, "L40S": 362.0, "A10G": 70.0}


def arguments(doc: str, variants: dict) -> argparse.ArgumentParser:
    """The options every benchmark takes; a script adds its own."""
    parser = argparse.ArgumentParser(description=doc.split("\n")[0])
    parser.add_argument("--preset", default="vitg-opt2.7b")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument(
        "--variants", default=",".join(variants),
        help="comma-separated; NAME@N runs NAME at batch N where the script allows it",
    )  # fmt: skip
    parser.add_argument("--device", default="auto")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    return parser


@dataclass
class Setting:
    """What a benchmark run is about: its options, device, preset and the device's peak."""

    args: argparse.Namespace
    variants: list[str]
    device: torch.device
    spec: Preset
    peak: float | None
    device_name: str

    def results(self) -> dict:
        """The start of the figures written with ``--json``."""
        out = {"preset": self.args.preset, "device": self.device_name, "batch": self.args.batch}
        return {**out, "bf16_peak_tflops": self.peak, "variants": {}}


def setting(parser: argparse.ArgumentParser, variants: dict) -> Setting:
    args = parser.parse_args()
    chosen = args.variants.split(",")
    unknown = {name.split("@")[0] for name in chosen} - set(variants)
    if unknown:
        parser.error(f"unknown variants {sorted(unknown)}; known: {list(variants)}")
    device = resolve_device(args.device)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    return Setting(args, chosen, device, preset(args.preset), bf16_peak(device), name)


def bf16_peak(device: torch.device) -> float | None:
    """The device's dense bf16 peak in TFLOP/s, or None (a CPU, an unknown GPU)."""
    if device.type != "cuda":
        return None
    name = torch.cuda.get_device_name(device)
    return next((peak for key, peak in BF16_PEAK_TFLOPS.items() if key in name), None)


def synthetic_pairs(folder: Path, count: int, image_size: int, tokens: int, seed: int = 0):
    """``count`` noise JPEGs of the preset's size and captions of at least ``tokens`` tokens
    (truncate them with ``max_caption_tokens = tokens + 2``), and a tokenizer trained on them."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    words = [f"w{i}" for i in range(400)]
    pairs = []
    for i in range(count):
        path = folder / f"{i:05d}.jpg"
        pixels = rng.integers(0, 256, (image_size, image_size, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(path, quality=90)
        caption = " ".join(rng.choice(words, 2 * tokens))
        pairs.append(Pair(str(path), caption))
    return pairs, train_tokenizer([p.caption for p in pairs])


def training_batch(spec: Preset, tokenizer, pairs, batch: int, tokens: int, device) -> dict:
    encoded = encode_captions(
        tokenizer, [p.caption for p in pairs[:batch]], spec.qformer.queries, tokens + 2
    )
    size = spec.vision.image_size
    encoded["pixel_values"] = torch.randn(batch, 3, size, size)
    return {k: v.to(device) for k, v in encoded.items()}


def count_flops(run) -> float:
    """FLOPs of ``run()`` as executed."""
    with FlopCounterMode(display=False) as counter:
        run()
    return float(counter.get_total_flops())


def activities(device: torch.device) -> list:
    """What ``torch.profiler`` records on ``device``: the host, and the GPU's kernels if any."""
    from torch.profiler import ProfilerActivity

    return [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])


def reset_memory(device: torch.device) -> None:
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)


def peak_gib(device: torch.device) -> float | None:
    return torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else None


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


class StepClock:
    """A trainer's ``log`` callback: when each logged step ended (lines ``NAME: step N/...``).

    The trainer reads its losses only when it logs (``LossBook``), so the log interval decides
    how often the host waits for the GPU: log every few steps, as a real run does every 50."""

    def __init__(self, device: torch.device):
        self.device, self.times = device, []

    def __call__(self, line: str) -> None:
        step = logged_step(line)
        if step is None:
            return
        synchronize(self.device)
        self.times.append((step, time.perf_counter()))

    def rate(self, warmup: int) -> float:
        """Steps per second between the first logged step at or after ``warmup`` and the last."""
        timed = [(step, t) for step, t in self.times if step >= warmup]
        if len(timed) < 2:
            raise ValueError(f"need two logged steps from step {warmup} on, got {self.times}")
        (first, start), (last, end) = timed[0], timed[-1]
        return (last - first) / (end - start)


def logged_step(line: str) -> int | None:
    """The step of one of :func:`facecap_lib.training.fit.fit`'s log lines; ``None`` for a line
    that marks no step (such as the caption lengths a captioner reports before it starts)."""
    match = re.search(r"\bstep (\d+)/", line)
    return int(match.group(1)) if match else None


def row(name: str, per_second: float, unit: str, flops_each: float | None, peak, memory) -> str:
    tflops = per_second * flops_each / 1e12 if flops_each else None
    mfu = f"{100 * tflops / peak:5.1f}%" if tflops is not None and peak else "  n/a"
    tf = f"{tflops:8.2f}" if tflops is not None else "     n/a"
    mem = f"{memory:7.1f}" if memory is not None else "    n/a"
    return f"{name:<26} {per_second:10.2f} {unit:<9} {tf} TFLOP/s  MFU {mfu}  peak {mem} GiB"


KERNEL_KINDS = {  # kernel-name fragments, first match wins
    "attention": ("flash", "fmha", "sdpa", "attention"),
    "matrix products": ("gemm", "cutlass", "xmma", "nvjet", "cublas", "wgmma"),
    "optimizer": ("adam", "multi_tensor"),
    "norms and softmax": ("layer_norm", "norm_", "softmax", "nll", "cross_entropy"),
    "copies and casts": ("copy", "cat", "index", "gather", "scatter", "memcpy", "memset", "fill"),
}


def kernel_kind(name: str) -> str:
    lowered = name.lower()
    for kind, fragments in KERNEL_KINDS.items():
        if any(f in lowered for f in fragments):
            return kind
    return "other elementwise"


def profile_summary(profiler, steps: int, step_seconds: float, regions=()) -> dict:
    """Per step (of ``steps`` profiled, each ``step_seconds`` long without the profiler): the
    host time of each of ``regions`` (``record_function`` names), the device's busy time, and
    its kernels by kind."""
    events = profiler.key_averages()
    host = {  # ms per step; the host's record (a GPU also lists each region as an annotation)
        e.key: e.cpu_time_total / 1e3 / steps
        for e in events
        if e.key in regions and "CUDA" not in str(getattr(e, "device_type", ""))
    }
    kinds: dict[str, float] = {}
    kernels = []
    for e in events:
        device_ms = getattr(e, "self_device_time_total", 0.0) / 1e3 / steps
        if device_ms <= 0 or e.key in regions or getattr(e, "is_user_annotation", False):
            continue  # annotations (regions, optimizer steps) span kernels already counted
        if e.key.startswith(("ProfilerStep#", "Optimizer.")):
            continue  # more annotations ("#" alone would also drop kernels named by lambdas)
        if getattr(e, "device_type", None) is not None and "CUDA" not in str(e.device_type):
            continue
        kind = kernel_kind(e.key)
        kinds[kind] = kinds.get(kind, 0.0) + device_ms
        kernels.append((device_ms, e.count // steps, e.key[:90]))
    busy = sum(kinds.values())
    return {
        "step_ms": 1e3 * step_seconds,
        "regions_host_ms": host,
        "device_busy_ms": busy,
        "device_busy_share": busy / (1e3 * step_seconds) if step_seconds else None,
        "kernel_kinds_ms": dict(sorted(kinds.items(), key=lambda kv: -kv[1])),
        "top_kernels": [
            {"ms": ms, "calls": calls, "name": name}
            for ms, calls, name in sorted(kernels)[-15:][::-1]
        ],
    }


def print_profile(name: str, summary: dict) -> None:
    print(f"profile of {name}, per step ({summary['step_ms']:.1f} ms timed without the profiler):")
    for region, ms in summary["regions_host_ms"].items():
        print(f"  host {region:<22} {ms:9.2f} ms")
    if not summary["kernel_kinds_ms"]:
        return  # a CPU: no device kernels
    share = summary["device_busy_share"]
    busy = f"{summary['device_busy_ms']:.1f} ms"
    print(f"  device busy {busy}" + (f" ({100 * share:.0f}% of the step)" if share else ""))
    for kind, ms in summary["kernel_kinds_ms"].items():
        print(f"  device {kind:<22} {ms:9.2f} ms")
    for kernel in summary["top_kernels"]:
        print(f"    {kernel['ms']:8.2f} ms  x{kernel['calls']:<5} {kernel['name']}")
