"""Chapter 4's headline figures over several seeds: the spread a change must exceed to count.

    FACECAP_CACHE=$PWD/build/work/full .venv/bin/python benchmarks/chapter4_seeds.py
        [--seeds 0,1,2] [--preset tiny] [--faces 400] [--smoke] [--json F]
        [--foundations shipped|none|DIR] [--captioner-steps N]

For each seed, trains the recipe of chapters 4-6 with every stage's ``FitConfig.seed`` set to it
(its own run folder, so a seed already trained, by the book or an earlier call, is loaded rather
than trained again) and scores, on chapter 4's held-out faces (``report.au_caption_f1``,
``report.emotion_naming``): AU-BLIP's mean per-AU F1; the share of one-emotion faces whose labelled
emotion Emot-BLIP and Exp-BLIP name; the share of compound faces of which Exp-BLIP names both.
Prints one row per seed, then the mean and range. The data are the same in every seed (the default
corpus); only the weights' start, the data order, augmentation and dropout change.
"""

import argparse
import json
import math
import time
from dataclasses import replace
from pathlib import Path

from facecap_lib.evaluation import report
from facecap_lib.training import STAGES, stages

COLUMNS = (
    "AU-BLIP F1", "Emot-BLIP one", "Exp-BLIP one", "Exp-BLIP compound", "Exp-BLIP AU F1",
    "ITC/log B", "i2t@1", "i2t@5",
)  # fmt: skip


def figures(recipe, faces: int) -> dict:
    au = report.au_caption_f1(recipe, recipe.run("au").final, faces)
    emot = report.emotion_naming(recipe, recipe.run("emot").final, faces)
    exp = report.emotion_naming(recipe, recipe.run("exp").final, faces)
    exp_au = report.au_caption_f1(recipe, recipe.run("exp").final, faces)
    stage1 = recipe.qformer()
    itc = sum(h["itc"] for h in stage1.history[-5:]) / len(stage1.history[-5:])
    recall = report.stage1_recall(recipe, faces)
    return {
        "AU-BLIP F1": float(au["f1"].mean()),
        "Emot-BLIP one": float(emot.loc[emot["single"], "hit"].mean()),
        "Exp-BLIP one": float(exp.loc[exp["single"], "hit"].mean()),
        "Exp-BLIP compound": float(exp.loc[~exp["single"], "hit"].mean()),
        "Exp-BLIP AU F1": float(exp_au["f1"].mean()),
        "ITC/log B": itc / math.log(recipe.config.qformer.fit.batch_size),
        "i2t@1": recall["i2t@1"],
        "i2t@5": recall["i2t@5"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--preset", default="tiny")
    parser.add_argument("--faces", type=int, default=400)
    parser.add_argument("--smoke", action="store_true")
    parser.add_argument("--json", type=Path)
    parser.add_argument(
        "--foundations", help="shipped (the default), none (from scratch) or a folder"
    )
    parser.add_argument("--captioner-steps", type=int, help="every captioner's optimizer steps")
    args = parser.parse_args()
    config = stages.recipe_config(args.smoke, args.preset)
    if args.foundations:
        config = replace(
            config, foundations=None if args.foundations == "none" else args.foundations
        )
    if args.captioner_steps:
        fit = replace(config.captioner.fit, max_steps=args.captioner_steps)
        config = replace(config, captioner=replace(config.captioner, fit=fit))
    rows = {}
    print(f"{'seed':<6}" + "".join(f"{c:>18}" for c in COLUMNS) + f"{'trained in':>12}")
    for seed in map(int, args.seeds.split(",")):
        start = time.perf_counter()
        recipe = stages.chapter_recipe(args.smoke, config=config, seed=seed, log=None)
        for stage in STAGES:
            recipe.run(stage)
        rows[seed] = {**figures(recipe, args.faces), "seconds": time.perf_counter() - start}
        line = "".join(f"{rows[seed][c]:>18.3f}" for c in COLUMNS)
        print(f"{seed:<6}{line}{rows[seed]['seconds']:>11.0f}s", flush=True)
    for name, pick in (("mean", lambda v: sum(v) / len(v)), ("min", min), ("max", max)):
        print(
            f"{name:<6}" + "".join(f"{pick([r[c] for r in rows.values()]):>18.3f}" for c in COLUMNS)
        )
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
