"""Does the one training loop train what the five loops before it trained? Losses side by side.

    .venv/bin/python benchmarks/loop_equivalence.py [--base 999c2b6] [--steps 50] [--json F]

Before ``training.fit`` there were five loops: stage 2 (``training/loop.py``), stage 1
(``training/stage1.py``), language-model and MAE pre-training (``training/pretrain.py``) and the
fine-tuning probe (``evaluation/probes.py``). This script takes the library as it was at
``--base`` (``git archive``), and for each task runs ``--steps`` steps of the ``tiny`` preset on
the CPU with the same seed, the same rendered faces and the same settings, once with the old code
and once with the present one, each in its own process. Both sides record the loss each step
back-propagates (a hook on ``Tensor.backward``: the same quantity whatever the loop), and the table
gives the largest relative difference.

Where a task's numbers were changed on purpose, a third run (``compat``) puts the old behaviour
back inside the new loop, to show that the loop itself is not what moved them:

- every task: no weight decay on biases, norms and query tokens (stage 2's rule; stage 1 decayed
  the query tokens, the pre-training loops and the probe decayed everything);
- language model, MAE, probe: the data order of every task (an epoch permutation that depends only
  on the step, so resuming is exact) instead of draws with replacement from one generator; MAE:
  the crops' seeds of every task;
- MAE: the masked patches blanked in the pixels before a conv stem sees them
  (``models.mae.mae_loss``) instead of ``ViTMAEForPreTraining``'s own loss on the whole image.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from old_library import ROOT, library_at

TASKS = ("stage2", "stage1", "language_model", "mae", "fine_tune")
STEPS, BATCH, SEED = 50, 8, 0
AU_SETS = [{1, 2}, {6, 12}, {4, 7}, {25, 26}, {12, 25}, {9, 10}, {1, 2, 5}, {4}, {6, 12, 25}]


# ---------------------------------------------------------------- run in a worker process


def record_backward() -> list[float]:
    """Every value ``Tensor.backward`` is called on, from now on."""
    import torch

    seen: list[float] = []
    original = torch.Tensor.backward

    def backward(self, *args, **kwargs):
        seen.append(float(self.detach()))
        return original(self, *args, **kwargs)

    torch.Tensor.backward = backward
    return seen


def faces(folder: Path):
    from facecap_lib.captions.rules import au_caption
    from facecap_lib.data.synth.batch import FaceSpec, render_to_files

    specs = [
        FaceSpec({au: 4 for au in aus}, identity=i, path=f"{i}.png")
        for i, aus in enumerate(AU_SETS * 3)
    ]
    render_to_files(specs, folder, size=64, workers=1, progress=False)
    files = [str(folder / s.path) for s in specs]
    return files, [au_caption(aus) for aus in AU_SETS * 3]


def compat_patches(task: str) -> None:
    """Put the old behaviour that was changed on purpose back into the new loop."""
    import numpy as np
    import torch

    from facecap_lib.data.images import Augment, load_rgb, to_tensor
    from facecap_lib.training import pretrain, schedule
    from facecap_lib.training.finetune import FineTuneTask

    if task == "stage1":
        schedule.no_decay = lambda name, p: p.ndim < 2
    if task in ("language_model", "mae", "fine_tune"):
        schedule.no_decay = lambda name, p: False
    if task == "language_model":

        def lm_batches(self, model, config, device):
            rng = np.random.default_rng(config.seed)
            t = self.tokenizer

            def batch_at(step, micro):
                picks = rng.integers(0, len(self.encoded), config.batch_size)
                rows = [[t.bos_token_id, *self.encoded[i], t.eos_token_id] for i in picks]
                ids = torch.full((len(rows), max(map(len, rows))), t.pad_token_id)
                for r, row in enumerate(rows):
                    ids[r, : len(row)] = torch.tensor(row)
                mask = (ids != t.pad_token_id).long()
                return {
                    "input_ids": ids,
                    "attention_mask": mask,
                    "labels": ids.masked_fill(mask == 0, -100),
                }

            from contextlib import nullcontext

            return nullcontext(batch_at)

        pretrain.LanguageModelTask.batches = lm_batches
    if task == "mae":

        def mae_batches(self, model, config, device):
            rng = np.random.default_rng(config.seed)
            n, size = config.batch_size, self.spec.vision.image_size

            def batch_at(step, micro):
                chosen = rng.integers(0, len(self.images), n)
                crops = [
                    Augment(seed=int(config.seed * 1_000_003 + step * n + j))(
                        load_rgb(self.images[i])
                    )
                    for j, i in enumerate(chosen)
                ]
                return {"pixel_values": to_tensor(crops, size)}

            from contextlib import nullcontext

            return nullcontext(batch_at)

        pretrain.MAETask.batches = mae_batches
        pretrain.MAETask.loss = lambda self, model, batch: {
            "loss": model(pixel_values=batch["pixel_values"]).loss
        }
    if task == "fine_tune":

        def probe_batches(self, model, config, device):
            rng = np.random.default_rng(config.seed)
            pixels = to_tensor([load_rgb(i) for i in self.images], self.vision.config.image_size)

            def batch_at(step, micro):
                idx = rng.integers(0, len(pixels), config.batch_size)
                return {"pixel_values": pixels[idx], "targets": self.targets[idx]}

            from contextlib import nullcontext

            return nullcontext(batch_at)

        FineTuneTask.batches = probe_batches


def worker(side: str, task: str, data: Path, out: Path, steps: int) -> None:
    import numpy as np
    import torch

    from facecap_lib.models.presets import build_model, preset
    from facecap_lib.models.tokenizer import train_tokenizer

    torch.set_num_threads(1)  # the same arithmetic order on both sides
    import facecap_lib

    here = Path(facecap_lib.__file__).resolve().parent.parent
    if (side == "old") != (here != ROOT):
        raise RuntimeError(f"{side} side imported the library at {here}")
    files, captions = faces(data)
    spec = preset("tiny")
    tokenizer = train_tokenizer(captions, vocab_size=300, min_frequency=1)
    run = out / f"{side}-{task}"
    if side == "compat":
        compat_patches(task)
    seen = record_backward()
    old = side == "old"
    if task in ("stage2", "stage1"):
        common = dict(
            max_steps=steps, batch_size=BATCH, warmup_steps=5, lr=1e-3, save_every=25,
            log_every=10,
        )  # fmt: skip
        train = dict(tokenizer=tokenizer, log=None, device="cpu")
        if old:
            from facecap_lib.training.loop import Pair, train_captioner

            from facecap_lib.training.config import TrainConfig
            from facecap_lib.training.stage1 import train_qformer

            pairs = [Pair(f, c) for f, c in zip(files, captions, strict=True)]
            if task == "stage2":
                train_captioner(pairs, run, TrainConfig(**common), **train)
            else:
                train_qformer(pairs, run, TrainConfig.stage1(**common), **train)
        else:
            from facecap_lib.training.captioner import CaptionerConfig, train_captioner
            from facecap_lib.training.config import FitConfig
            from facecap_lib.training.data import Pair
            from facecap_lib.training.stage1 import QFormerConfig, train_qformer

            pairs = [Pair(f, c) for f, c in zip(files, captions, strict=True)]
            if task == "stage2":
                config = CaptionerConfig(fit=FitConfig(**common))
                train_captioner(pairs, run, config, spec=spec, **train)
            else:
                config = QFormerConfig(fit=FitConfig(**common, min_lr=1e-5))
                train_qformer(pairs, run, config, spec=spec, **train)
    elif task == "language_model":
        from facecap_lib.training import pretrain

        if old:
            pretrain.pretrain_language_model(
                spec, tokenizer, captions, steps=steps, batch_size=16, lr=2e-3, device="cpu"
            )
        else:
            from dataclasses import replace

            fit = replace(
                pretrain.LanguageModelConfig().fit, max_steps=steps, batch_size=16, lr=2e-3
            )
            config = pretrain.LanguageModelConfig(fit=fit)
            pretrain.pretrain_language_model(spec, tokenizer, captions, run, config, device="cpu")
    elif task == "mae":
        from facecap_lib.training import pretrain

        if old:
            pretrain.pretrain_mae(spec, files, steps=steps, batch_size=BATCH, lr=1e-3, device="cpu")
        else:
            from dataclasses import replace

            fit = replace(
                pretrain.MAEConfig().fit,
                max_steps=steps,
                batch_size=BATCH,
                lr=1e-3,
                warmup_steps=max(1, steps // 20),
            )
            pretrain.pretrain_mae(spec, files, run, pretrain.MAEConfig(fit=fit), device="cpu")
    else:
        from facecap_lib.evaluation.probes import fine_tune

        torch.manual_seed(SEED)
        model = build_model(spec, tokenizer)
        y = np.array([[float(a in aus) for a in (1, 4, 6, 12, 25)] for aus in AU_SETS * 3])
        fine_tune(model, files, y, steps=steps, batch_size=BATCH, lr=5e-4, progress=False)
    (out / f"{side}-{task}.json").write_text(json.dumps(seen))


# ---------------------------------------------------------------- the comparison


def run_side(side: str, task: str, data: Path, out: Path, steps: int, path: Path) -> list[float]:
    env = {
        **os.environ,
        "PYTHONPATH": str(path),
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
    }
    command = [sys.executable, __file__, "--worker", side, task, str(data), str(out), str(steps)]
    done = subprocess.run(command, env=env, capture_output=True, text=True, cwd=out)
    if done.returncode:
        raise RuntimeError(f"{side} {task} failed:\n{done.stderr[-3000:]}")
    return json.loads((out / f"{side}-{task}.json").read_text())


def relative(a: list[float], b: list[float]) -> float:
    if len(a) != len(b):
        return float("inf")
    return max(abs(x - y) / max(abs(x), 1e-12) for x, y in zip(a, b, strict=True))


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--worker":
        side, task, data, out, steps = sys.argv[2:7]
        return worker(side, task, Path(data), Path(out), int(steps))
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--base", default="999c2b6", help="the commit before the one loop")
    parser.add_argument("--steps", type=int, default=STEPS)
    parser.add_argument("--tasks", default=",".join(TASKS))
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    results = {"base": args.base, "steps": args.steps, "tasks": {}}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        old = library_at(args.base, tmp / "old")
        data, out = tmp / "faces", tmp / "runs"
        out.mkdir()
        print(
            f"{'task':<16}{'steps':>6}{'old final':>11}{'new final':>11}{'new vs old':>12}{'compat vs old':>15}"
        )
        for task in args.tasks.split(","):
            before = run_side("old", task, data, out, args.steps, old)
            after = run_side("new", task, data, out, args.steps, ROOT)
            compat = run_side("compat", task, data, out, args.steps, ROOT)
            row = {
                "old": before, "new": after, "compat": compat,
                "new_vs_old": relative(after, before), "compat_vs_old": relative(compat, before),
            }  # fmt: skip
            results["tasks"][task] = row
            print(
                f"{task:<16}{len(before):>6}{before[-1]:>11.4f}{after[-1]:>11.4f}"
                f"{row['new_vs_old']:>12.1e}{row['compat_vs_old']:>15.1e}",
                flush=True,
            )
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
