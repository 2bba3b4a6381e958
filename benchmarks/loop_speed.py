"""Is the one training loop as fast as the loops it replaced? Steps per second, old and new side by side.

    .venv/bin/python benchmarks/loop_speed.py [--base 999c2b6 | --old-library DIR] [--preset tiny]
        [--batch 32] [--tokens 32] [--steps 12] [--warmup 4] [--log-every 4]
        [--tasks captioner,qformer] [--rounds 2] [--device auto] [--json F]

For stage 2 (the captioner) and stage 1 (the Q-Former), runs the library as it was at ``--base``
(``git archive``; or a copy of it in ``--old-library``, for a machine without the repository's
history) and as it is now, each in its own process, on the same noise images and captions of
``--tokens`` tokens, with each side's defaults for the device (on a GPU: bf16 autocast and the
fused AdamW). Steps are timed between log lines after ``--warmup`` steps (the loops read their
losses at log lines); the sides alternate for ``--rounds`` rounds, and the table gives every
round, so the machine's noise is visible beside the difference.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

from old_library import ROOT, library_at

TASKS = ("captioner", "qformer")


def worker(side: str, task: str, args: argparse.Namespace, out: Path) -> None:
    import numpy as np
    import torch
    from PIL import Image

    import facecap_lib
    from facecap_lib.models.presets import preset
    from facecap_lib.models.tokenizer import train_tokenizer

    here = Path(facecap_lib.__file__).resolve().parent.parent
    if (side == "old") != (here != ROOT):
        raise RuntimeError(f"the {side} side imported the library at {here}")
    spec = preset(args.preset)
    size = spec.vision.image_size
    rng = np.random.default_rng(0)
    folder = out / "images"
    folder.mkdir(parents=True, exist_ok=True)
    words = [f"w{i}" for i in range(400)]
    files, captions = [], []
    for i in range(args.batch * 4):  # distinct images; batches cycle through them
        path = folder / f"{i:05d}.jpg"
        if not path.exists():
            Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8)).save(path)
        files.append(str(path))
        captions.append(" ".join(rng.choice(words, 2 * args.tokens)))
    tokenizer = train_tokenizer(captions)
    times: list[tuple[int, float]] = []
    device = torch.device(
        args.device if args.device != "auto" else ("cuda" if torch.cuda.is_available() else "cpu")
    )

    def clock(line: str) -> None:
        match = re.search(r"\bstep (\d+)/", line)
        if match is None:
            return  # a line that marks no step (the caption lengths)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        times.append((int(match.group(1)), time.perf_counter()))

    steps = args.warmup + args.steps
    common = dict(max_steps=steps, batch_size=args.batch, warmup_steps=1, log_every=args.log_every)
    run = out / f"run-{side}-{task}-{time.time_ns()}"
    train = dict(device=str(device), tokenizer=tokenizer, log=clock, stop_after=steps)
    if side == "old":
        from facecap_lib.training.loop import Pair, train_captioner

        from facecap_lib.training.config import TrainConfig
        from facecap_lib.training.stage1 import train_qformer

        pairs = [Pair(f, c) for f, c in zip(files, captions, strict=True)]
        fields = dict(
            common, preset=args.preset, max_caption_tokens=args.tokens + 2, save_every=10**9,
            eval_every=10**9,
        )  # fmt: skip
        if task == "captioner":
            train_captioner(pairs, run, TrainConfig(**fields), **train)
        else:
            train_qformer(pairs, run, TrainConfig.stage1(**fields), **train)
    else:
        from facecap_lib.training.captioner import CaptionerConfig, train_captioner
        from facecap_lib.training.config import FitConfig
        from facecap_lib.training.data import Pair
        from facecap_lib.training.stage1 import QFormerConfig, train_qformer

        pairs = [Pair(f, c) for f, c in zip(files, captions, strict=True)]
        fit = FitConfig(**common, save_every=None)
        if task == "captioner":
            config = CaptionerConfig(fit=fit, max_caption_tokens=args.tokens + 2)
            train_captioner(pairs, run, config, spec=spec, **train)
        else:
            fit = replace(fit, min_lr=1e-5)  # stage 1's, as TrainConfig.stage1 set it
            config = QFormerConfig(fit=fit, max_caption_tokens=args.tokens + 2)
            train_qformer(pairs, run, config, spec=spec, **train)
    timed = [(s, t) for s, t in times if s >= args.warmup]
    (first, start), (last, end) = timed[0], timed[-1]
    rate = (last - first) * args.batch / (end - start)
    peak = torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else None
    (out / f"{side}-{task}.json").write_text(json.dumps({"images_per_s": rate, "peak_gib": peak}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--base", default="999c2b6")
    parser.add_argument("--old-library", type=Path, help="a folder holding the old facecap_lib")
    parser.add_argument("--preset", default="tiny")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--tokens", type=int, default=32)
    parser.add_argument("--steps", type=int, default=12)
    parser.add_argument("--warmup", type=int, default=4)
    parser.add_argument("--log-every", type=int, default=4)
    parser.add_argument("--tasks", default=",".join(TASKS))
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--json", type=Path)
    parser.add_argument(
        "--worker", nargs=3, metavar=("SIDE", "TASK", "OUT"), help=argparse.SUPPRESS
    )
    args = parser.parse_args()
    if args.worker:
        side, task, out = args.worker
        return worker(side, task, args, Path(out))
    if args.warmup % args.log_every or args.steps % args.log_every:
        parser.error("--warmup and --steps must be multiples of --log-every")
    results = {"base": args.base, "preset": args.preset, "batch": args.batch, "tasks": {}}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        old = args.old_library.resolve() if args.old_library else library_at(args.base, tmp / "old")
        paths = {"old": old, "new": ROOT}
        print(f"{args.preset}, batch {args.batch}, {args.tokens} tokens; images/s per round")
        for task in args.tasks.split(","):
            rates = {"old": [], "new": []}
            for _ in range(args.rounds):
                for side in ("old", "new"):
                    env = {**os.environ, "PYTHONPATH": str(paths[side])}
                    command = [
                        sys.executable,
                        __file__,
                        *sys.argv[1:],
                        "--worker",
                        side,
                        task,
                        str(tmp),
                    ]
                    done = subprocess.run(command, env=env, capture_output=True, text=True, cwd=tmp)
                    if done.returncode:
                        raise RuntimeError(f"{side} {task}:\n{done.stderr[-3000:]}")
                    rates[side].append(json.loads((tmp / f"{side}-{task}.json").read_text()))
            results["tasks"][task] = rates
            for side in ("old", "new"):
                figures = ", ".join(f"{r['images_per_s']:.1f}" for r in rates[side])
                peak = rates[side][-1]["peak_gib"]
                memory = f"; peak {peak:.1f} GiB" if peak is not None else ""
                print(f"{task:<10} {side}: {figures}{memory}", flush=True)
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
