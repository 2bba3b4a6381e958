"""Chapter 4 at full size on a GPU (the ``small`` preset, chosen automatically), as a script.

    FACECAP_CACHE=/tmp/work MPLBACKEND=Agg OUT=/tmp/out python benchmarks/chapter4_gpu.py

Runs ``notebooks/04_blip2_training.py`` top to bottom without Jupyter (a machine with a GPU may
lack papermill), stamps every printed line with the seconds since the start, and at the end (or
when stopped by SIGTERM, e.g. by ``timeout``) prints the peak GPU memory and writes the stage
histories (``histories.json``), the recipe and the chapter's scores (``stats.json``) to ``$OUT``.
Copy ``build/work/full/captions`` into ``$FACECAP_CACHE`` first to skip chapter 3's synthesis.

On one H100 (2026-11-26, ``RecipeConfig.small_gpu``: captioners 400 steps of 64): data 35 s,
language model 1000 steps in fp32 48 s, stage 1 300 steps 70 s, each captioner 65-74 s (5.6-6.4
steps/s), pseudo-captions 33 s, training done at 546 s; 8.3 GiB peak GPU memory. The chapter's
evaluation cells after AU-BLIP's F1 (0.203) take more than the 10 minutes a device call allows.
"""

import builtins
import json
import os
import runpy
import shutil
import signal
import sys
import time
from pathlib import Path

import torch

signal.signal(signal.SIGTERM, lambda *_: sys.exit("stopped by SIGTERM"))  # so `finally` runs
out = Path(os.environ.get("OUT", "/tmp/out"))
out.mkdir(parents=True, exist_ok=True)
start = time.perf_counter()
plain_print = builtins.print


def stamped(*args, **kwargs):
    plain_print(f"[{time.perf_counter() - start:6.1f} s]", *args, **kwargs, flush=True)


builtins.print = stamped
print(torch.__version__, torch.cuda.get_device_name(0))
try:
    namespace = runpy.run_path("notebooks/04_blip2_training.py", run_name="__main__")
finally:
    peak = torch.cuda.max_memory_allocated() / 2**30
    print(f"peak GPU memory allocated {peak:.2f} GiB; total {time.perf_counter() - start:.0f} s")
    runs = Path(os.environ["FACECAP_CACHE"]) / "runs"
    histories = {
        h.parent.parent.name: json.loads(h.read_text()) for h in runs.glob("*/*/final/history.json")
    }
    (out / "histories.json").write_text(json.dumps(histories))
    for recipe in runs.glob("*/recipe.json"):
        shutil.copy(recipe, out / "recipe.json")
recipe = namespace["recipe"]
summary = recipe.summary()
print(summary.to_string())
stats = {
    "peak_gib": peak,
    "au_f1": float(namespace["frequent"]["f1"].mean()),
    "exp_emotion_hit": float(namespace["named"]["hit"].mean()),
    "side_by_side": namespace["side_by_side"].to_dict(),
}
(out / "stats.json").write_text(json.dumps(stats, indent=1))
print(json.dumps({k: v for k, v in stats.items() if k != "side_by_side"}))
print(namespace["side_by_side"].to_string())
