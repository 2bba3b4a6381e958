"""Does pre-training help? The fine-tuning probe of chapter 5 on encoders with different starts.

    FACECAP_CACHE=$PWD/build/work/full .venv/bin/python benchmarks/encoder_probe.py \
        --start none --start shipped --start DIR ... [--steps 1000] [--seeds 0,1,2] \
        [--task au|emotion|labels] [--json F]

Each ``--start`` is ``none`` (random weights, as chapter 4 trained before foundations),
``shipped`` (the package's foundations for the preset) or a foundations folder
(``facecap pretrain --out DIR``). For each start and seed,
:func:`facecap_lib.evaluation.ceilings.encoder_ceiling` trains the preset's image encoder and a
linear layer on its class token end to end on the labels of the default corpus's training
faces (``--steps`` AdamW steps of 32, lr ``--lr``) and scores chapter 4's 400 held-out faces of
new people: ``--task au`` the mean per-AU F1 (x100, at 0.5) and ROC-AUC over the AUs with at
least 10 positives; ``--task emotion`` the share of held-out emotion-labelled faces whose label
it names. ``--task labels`` prints the label ceiling instead (a classifier on the true rendered
AU intensities; no encoder). One JSON line per run.
"""

import argparse
import json
import time
from dataclasses import replace

from facecap_lib import chapters
from facecap_lib.evaluation import ceilings
from facecap_lib.training.recipe_config import recipe_config


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--start", action="append", default=[])
    parser.add_argument("--preset", default="tiny")
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--seeds", default="0")
    parser.add_argument("--task", choices=("au", "emotion", "labels"), default="au")
    parser.add_argument("--json")
    args = parser.parse_args()

    rows = []
    base = recipe_config(False, args.preset)
    if args.task == "labels":
        recipe = chapters.chapter_recipe(config=replace(base, foundations=None), log=None)
        rows.append({"task": "labels", **ceilings.label_ceiling(recipe)})
        print(json.dumps(rows[-1]), flush=True)
    for start in args.start:
        config = replace(base, foundations=None if start == "none" else start)
        recipe = chapters.chapter_recipe(config=config, log=None)
        for seed in [int(s) for s in args.seeds.split(",")]:
            began = time.perf_counter()
            row = {"start": start, "seed": seed, "task": args.task, "steps": args.steps}
            result = ceilings.encoder_ceiling(
                recipe, args.task, steps=args.steps, lr=args.lr, seed=seed
            )
            if args.task == "au":
                row |= {
                    "train": result.attrs["train"],
                    "f1": round(float(result["F1"].mean()), 2),
                    "auc": round(float(result["AUC"].mean()), 4),
                }
            else:
                row |= result
            row["seconds"] = round(time.perf_counter() - began, 1)
            rows.append(row)
            print(json.dumps(row), flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=1)


if __name__ == "__main__":
    main()
