"""Where should chapter 4's spare minutes go: more captioner steps, or more faces?

    FACECAP_CACHE=$PWD/build/work/full .venv/bin/python benchmarks/chapter4_levers.py
        [--levers base,steps,faces] [--factor 2] [--seed 0] [--faces 400] [--smoke] [--json F]

With the shipped foundations, chapter 4 no longer pre-trains its language model or its encoder.
This script measures what the two cheapest uses of that time buy, on the two captioners whose
targets read the encoder most directly (AU-BLIP's mean per-AU F1, and the share of one-emotion
faces whose emotion Emot-BLIP names; ``targets.au_caption_f1``, ``targets.emotion_naming``):

- ``base``: chapter 4's recipe as the book runs it;
- ``steps``: every captioner trains ``--factor`` times as many optimizer steps (same faces);
- ``faces``: the default corpus has ``--factor`` times as many subjects and still images
  (``DefaultCorpus``), with the same steps, so each face is seen fewer times.

Each lever trains stage 1, AU-BLIP and Emot-BLIP in its own run folder (a folder the book or an
earlier call trained is loaded, not trained again) and is scored on ``--faces`` held-out faces of
its own corpus's test split: new people in every case, but not the same faces for ``faces``, so
its difference is compared with the spread over seeds (``book/measured/seeds-<preset>.json``)
and with nothing smaller. Pixels, the third lever, are fixed by the shipped encoder (its
position embeddings and its pre-training are at the preset's image size); buying them means new
foundations (``facecap pretrain``), so they are not measured here. Prints one row per lever with
its training time.
"""

import argparse
import json
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

from facecap_lib import chapters
from facecap_lib.data.default_corpus import DefaultCorpus
from facecap_lib.evaluation import measured, targets
from facecap_lib.training.recipe_config import recipe_config

LEVERS = ("base", "steps", "faces")


def lever_recipe(lever: str, factor: int, seed: int, smoke: bool = False):
    """The recipe of one lever (:data:`LEVERS`), every stage seeded with ``seed``."""
    config = recipe_config(smoke, "tiny")
    corpus = DefaultCorpus.smoke() if smoke else DefaultCorpus.full()
    if lever == "steps":
        fit = config.captioner.fit
        fit = replace(fit, max_steps=fit.max_steps * factor, save_every=fit.save_every * factor)
        config = replace(config, captioner=replace(config.captioner, fit=fit))
    elif lever == "faces":
        video = replace(corpus.video, subjects=corpus.video.subjects * factor)
        stills = replace(corpus.stills, images=corpus.stills.images * factor)
        corpus = replace(corpus, video=video, stills=stills)
    elif lever != "base":
        raise ValueError(f"unknown lever {lever!r}; choose from {LEVERS}")
    return chapters.chapter_recipe(smoke, config=config, corpus=corpus, seed=seed, log=None)


def measure(recipe, n: int) -> dict:
    """The lever's two figures, and the training faces and steps behind them."""
    au = targets.au_caption_f1(recipe, recipe.run("au").final, n)
    emot = targets.emotion_naming(recipe, recipe.run("emot").final, n)
    train = recipe.faces[recipe.faces["split"] == "train"]
    return {
        targets.AU_TARGET: float(au["f1"].mean()),
        targets.EMOTION_TARGET: float(emot.loc[emot["single"], "hit"].mean()),
        "training faces": len(train),
        "captioner steps": recipe.config.captioner.fit.max_steps,
    }


def provenance() -> dict:
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=False
    ).stdout.strip()
    return {
        "command": "python benchmarks/chapter4_levers.py " + " ".join(sys.argv[1:]),
        "commit": commit or None,
        "date": time.strftime("%Y-%m-%d"),
        "seconds": "each lever's time in this call: a run folder trained before counts only "
        "what was left to train",
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--levers", default=",".join(LEVERS))
    parser.add_argument("--factor", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--faces", type=int, default=400)
    parser.add_argument("--smoke", action="store_true", help="smoke settings (tests)")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    rows = {}
    print(f"{'lever':<8}{'AU-BLIP F1':>12}{'Emot-BLIP one':>15}{'train faces':>13}{'steps':>7}"
          f"{'trained in':>12}")  # fmt: skip
    for lever in args.levers.split(","):
        start = time.perf_counter()
        recipe = lever_recipe(lever, args.factor, args.seed, args.smoke)
        for stage in ("qformer", "au", "emot"):
            recipe.run(stage)
        rows[lever] = {**measure(recipe, args.faces), "seconds": time.perf_counter() - start}
        r = rows[lever]
        print(
            f"{lever:<8}{r[targets.AU_TARGET]:>12.3f}{r[targets.EMOTION_TARGET]:>15.3f}"
            f"{r['training faces']:>13}{r['captioner steps']:>7}{r['seconds']:>11.0f}s",
            flush=True,
        )
    out = {"levers": rows, "provenance": provenance()}
    seeds = None if args.smoke else measured.measured_seeds("tiny")
    if "base" in rows:
        print(targets.lever_table(out, seeds).T.to_string())
    if args.json:
        args.json.write_text(json.dumps(out, indent=1) + "\n")


if __name__ == "__main__":
    main()
