"""How well could AU-BLIP's captions mention the right AUs? A supervised detector's F1 on the same data.

    FACECAP_CACHE=$PWD/build/work/full .venv/bin/python benchmarks/caption_ceiling.py
        [--preset tiny] [--steps 3000] [--lr 1e-3] [--task au|emotion]

Chapter 4 scores AU-BLIP by the per-AU F1 of the AUs its captions mention, on 400 held-out faces
of new people. Here the captioner's image encoder (the preset's, from scratch) is trained directly
on the AU labels of the same training faces (binary cross-entropy on its CLS output, the
fine-tuning probe of chapter 5) and scored on the same 400 faces with the same AUs (>= 10
positives): F1 at threshold 0.5 and with the best threshold per AU chosen on the test faces
themselves (an oracle, so an upper bound). A captioner learns the AUs only through its captions
and a frozen language model, so it should not be expected to beat this.

``--task emotion`` does the same for Exp-BLIP's emotion check: a classifier over the basic
emotions, trained on the training faces with one emotion label and scored on chapter 4's
held-out emotion-labelled faces by the share whose label it names.

Measured 2026-11-26 on the full default corpus (renderer version 2): AU mean F1 60.1 at 0.5,
66.7 with oracle thresholds, ROC-AUC 0.862 (359 s); emotion 44.2% with ``--steps 1500``. Those
used the earlier conv stem (32 channels first, BatchNorm before max-pool); at 1000 steps it gave
F1 56.2, ROC-AUC 0.841, and the present stem (16 channels, max-pool first) 57.7 and 0.853.
"""

import argparse
import time

import numpy as np
import torch
from sklearn.metrics import f1_score

from facecap_lib.data.table import image_files
from facecap_lib.evaluation import report
from facecap_lib.evaluation.probes import au_detection, fine_tune
from facecap_lib.evaluation.report import AU_NAMES
from facecap_lib.models.presets import build_model, preset
from facecap_lib.training import stages


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--preset", default="tiny")
    parser.add_argument("--steps", type=int, default=3000)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--task", choices=("au", "emotion"), default="au")
    args = parser.parse_args()

    recipe = stages.chapter_recipe(False, args.preset, log=None)
    if args.task == "emotion":
        return emotion_ceiling(recipe, args)
    faces = recipe.faces
    au_rows = faces[AU_NAMES].notna().any(axis=1)
    train = faces[(faces["split"] == "train") & au_rows]
    test = faces[(faces["split"] == "test") & au_rows]
    test = test.sample(min(400, len(test)), random_state=1)  # chapter 4's held-out faces

    torch.manual_seed(0)
    model = build_model(preset(recipe.config.preset), recipe.tokenizer())
    start = time.perf_counter()
    score = fine_tune(
        model, image_files(train), train[AU_NAMES].to_numpy(float), steps=args.steps, lr=args.lr
    )
    seconds = time.perf_counter() - start
    scores, y = score(image_files(test)), test[AU_NAMES].to_numpy(float)
    table = au_detection(y, scores, AU_NAMES)
    table = table[(table["au"] != "mean") & (table["positives"] >= 10)]
    oracle = []
    for name in table["au"]:
        k = AU_NAMES.index(name)
        known = ~np.isnan(y[:, k])
        truth = y[known, k] == 1
        oracle.append(
            max(
                f1_score(truth, scores[known, k] >= t, zero_division=0)
                for t in np.linspace(0.05, 0.95, 19)
            )
        )
    table = table.assign(**{"F1 (oracle threshold)": 100 * np.array(oracle)})
    print(table.round(3).to_string(index=False))
    print(
        f"{recipe.config.preset} encoder trained on {len(train)} faces, {args.steps} steps of 32 "
        f"({seconds:.0f} s), scored on {len(test)} held-out faces: mean F1 over {len(table)} AUs "
        f"{table['F1'].mean():.1f} at 0.5, {np.mean(oracle) * 100:.1f} with oracle thresholds; "
        f"mean ROC-AUC {table['AUC'].mean():.3f}"
    )


def emotion_ceiling(recipe, args) -> None:
    faces = recipe.faces
    single = faces[faces["emotions"].map(len) == 1]
    train = single[single["split"] == "train"]
    test = report.held_out(recipe, 400, kind="emotion", seed=1)  # chapter 4's faces
    names = sorted({labels[0] for labels in train["emotions"]})
    torch.manual_seed(0)
    model = build_model(preset(recipe.config.preset), recipe.tokenizer())
    start = time.perf_counter()
    y = np.array([names.index(labels[0]) for labels in train["emotions"]])
    score = fine_tune(model, image_files(train), y, task="multiclass", steps=args.steps, lr=args.lr)
    predicted = [names[i] for i in score(image_files(test)).argmax(1)]
    hit = np.mean([p in labels for p, labels in zip(predicted, test["emotions"], strict=True)])
    print(
        f"{recipe.config.preset} encoder trained on the emotion of {len(train)} faces, "
        f"{args.steps} steps of 32 ({time.perf_counter() - start:.0f} s): names the label of "
        f"{hit:.1%} of {len(test)} held-out emotion-labelled faces"
    )


if __name__ == "__main__":
    main()
