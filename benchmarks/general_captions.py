"""Can the general captioner say what it was trained to say? Pose, light and occluder read back from its captions.

    FACECAP_CACHE=build/work/full .venv/bin/python benchmarks/general_captions.py [--faces 400]
        [--steps N ...] [--foundations DIR] [--json F]

Chapter 4's general captioner (the baseline of the paper's first finding, trained on
:func:`facecap_lib.captions.general.general_caption`'s sentences) captions ``--faces`` held-out
faces of new people (beam 5); :func:`facecap_lib.evaluation.general.general_scores` reads pose,
light and occluder back and scores them against what the renderer drew, with the share of
captions that repeat a 4-gram. Beside it, the training captions of the same faces (the ceiling
of the reader: all right). Target (issue 29): pose, light and occluder right on >= 80% of the
faces, <= 5% of captions repeating a 4-gram. Trains chapter 4's run first where it is missing;
``--steps N`` also scores the general captioner trained for N steps (``Recipe.general(steps=N)``,
its own folder in the run).
"""

import argparse
import json
from dataclasses import replace

from facecap_lib import chapters
from facecap_lib.captions.general import general_captions
from facecap_lib.data.synth.corpus import rendered_truth
from facecap_lib.data.table import image_files
from facecap_lib.evaluation.faces import held_out
from facecap_lib.evaluation.general import general_scores, scene_probe
from facecap_lib.evaluation.probes import FeatureCache
from facecap_lib.inference import caption_faces
from facecap_lib.training.provenance import git_commit
from facecap_lib.training.recipe_config import recipe_config


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--faces", type=int, default=400)
    parser.add_argument("--steps", type=int, action="append", default=[])
    parser.add_argument("--foundations", help="a foundations folder (default: the shipped ones)")
    parser.add_argument("--json")
    args = parser.parse_args()
    config = recipe_config(False, "auto")
    if args.foundations:
        config = replace(config, foundations=args.foundations)
    recipe = chapters.chapter_recipe(config=config, progress=True)
    checkpoint = recipe.general().final
    faces = held_out(recipe, args.faces, kind="au", seed=1)
    out = {
        "faces": len(faces), "run": recipe.run_dir.name, "commit": git_commit(),
        "general captioner": general_scores(caption_faces(faces, checkpoint, device=recipe.device), faces),
        "training captions": general_scores(general_captions(faces, image_files(faces)), faces),
    }  # fmt: skip
    for steps in args.steps:
        longer = recipe.general(steps=steps).final
        out[f"general captioner, {steps} steps"] = general_scores(
            caption_faces(faces, longer, device=recipe.device), faces
        )
    # what the encoders hold of pose and light: the plain one and the general captioner's
    train = recipe.faces[recipe.faces["split"] == "train"].sample(1500, random_state=0)
    cache = FeatureCache(recipe.run_dir / "features")
    truth = {"train": rendered_truth(train), "test": rendered_truth(faces)}
    for title, folder in (
        ("plain encoder", recipe.untrained().final),
        ("general captioner's encoder", checkpoint),
    ):
        x = {
            n: cache.features(folder, image_files(d), "encoder")
            for n, d in (("train", train), ("test", faces))
        }
        out[f"scene probe, {title}"] = scene_probe(
            x["train"], truth["train"], x["test"], truth["test"]
        )
    print(json.dumps(out, indent=1))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(out, f, indent=2)
            f.write("\n")


if __name__ == "__main__":
    main()
