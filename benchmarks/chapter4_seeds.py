"""Chapter 4's headline figures over several seeds: the spread a change must exceed to count.

    FACECAP_CACHE=$PWD/build/work/full .venv/bin/python benchmarks/chapter4_seeds.py
        [--seeds 0,1,2] [--preset tiny] [--faces 400] [--smoke] [--json F]
        [--foundations shipped|none|DIR] [--captioner-steps N] [--chapter5] [--renderer 2|3]
    .venv/bin/python benchmarks/chapter4_seeds.py --merge A.json B.json ... --json F

For each seed, trains the recipe of chapters 4-6 with every stage's ``FitConfig.seed`` set to it
(its own run folder, so a seed already trained, by the book or an earlier call, is loaded rather
than trained again) and scores, on chapter 4's held-out faces (``targets.au_caption_f1``,
``targets.emotion_naming``): AU-BLIP's mean per-AU F1; the share of one-emotion faces whose labelled
emotion Emot-BLIP and Exp-BLIP name; the share of compound faces of which Exp-BLIP names both.
Prints one row per seed, then the mean and range. The data are the same in every seed (the default
corpus); only the weights' start, the data order, augmentation and dropout change.
``--renderer 3`` draws that corpus with SynthFACS renderer 3 (same faces and labels, other
images; its own run folders). The JSON's provenance names the device, for a CPU with the vector
kernels it ran (``provenance.device_name``). ``--merge`` joins the files of separate calls (say one
per seed) of one commit and device into one, its spread over all their seeds.
"""

import argparse
import json
import sys
import time
from dataclasses import replace
from pathlib import Path

from facecap_lib import chapters
from facecap_lib.data.default_corpus import DefaultCorpus
from facecap_lib.data.synth.render import RENDERER_VERSION, RENDERERS
from facecap_lib.evaluation import measured, protocol, targets
from facecap_lib.evaluation.findings import quantities
from facecap_lib.models.device import resolve_device
from facecap_lib.training import STAGES
from facecap_lib.training.provenance import device_name
from facecap_lib.training.recipe_config import recipe_config

# the JSON keeps targets.TARGETS' names (chapter 4 reads them back); the printed table is narrower
SHORT = ("AU-BLIP F1", "Emot-BLIP one", "Exp-BLIP one", "Exp-BLIP compound", "Exp-BLIP AU F1")
HEADINGS = dict(zip(targets.TARGETS, SHORT, strict=True))
COLUMNS = (*targets.TARGETS, "ITC/log B", "i2t@1", "i2t@5")


def figures(recipe, faces: int) -> dict:
    checkpoints = {title: recipe.run(name).final for name, title in (
        ("au", "AU-BLIP"), ("emot", "Emot-BLIP"), ("exp", "Exp-BLIP"))}  # fmt: skip
    headline = targets.headline_figures(recipe, checkpoints, faces)
    itc, log_batch = targets.stage1_itc(recipe)
    recall = targets.stage1_recall(recipe, faces)
    return {
        **headline,
        "ITC/log B": itc / log_batch,
        "i2t@1": recall["i2t@1"],
        "i2t@5": recall["i2t@5"],
    }


def chapter5_quantities(run) -> dict:
    """What chapter 5's findings compare (:func:`facecap_lib.evaluation.findings.quantities`),
    on the protocol's tables with the book's evaluation settings: the caption metrics of AU-BLIP
    and the general captioner, and the linear probes of Table 3."""
    recipe, spec = run.recipe(), run.project.evaluation
    pair = recipe.checkpoints(["general", "au"])
    models = recipe.checkpoints(["untrained", "au", "emot", "exp"])
    captions = protocol.caption_table(recipe, pair, spec)
    return quantities(captions, protocol.probe_table(recipe, models, spec))


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
    parser.add_argument(
        "--chapter5", action="store_true",
        help="also what chapter 5's findings compare (findings.quantities) and its spread",
    )  # fmt: skip
    parser.add_argument("--renderer", type=int, default=RENDERER_VERSION, choices=RENDERERS)
    parser.add_argument("--merge", type=Path, nargs="+", help="join these files into --json")
    args = parser.parse_args()
    if args.merge:
        if not args.json:
            parser.error("--merge writes the joined file to --json")
        args.json.write_text(json.dumps(merge(args.merge), indent=1) + "\n")
        return
    corpus = replace(
        DefaultCorpus.smoke() if args.smoke else DefaultCorpus.full(), renderer=args.renderer
    )
    config = recipe_config(args.smoke, args.preset)
    if args.foundations:
        config = replace(
            config, foundations=None if args.foundations == "none" else args.foundations
        )
    if args.captioner_steps:
        fit = replace(config.captioner.fit, max_steps=args.captioner_steps)
        config = replace(config, captioner=replace(config.captioner, fit=fit))
    rows = {}
    print(
        f"{'seed':<6}"
        + "".join(f"{HEADINGS.get(c, c):>18}" for c in COLUMNS)
        + f"{'trained in':>12}"
    )
    for seed in map(int, args.seeds.split(",")):
        start = time.perf_counter()
        run = chapters.chapter_run(args.smoke, config=config, seed=seed, corpus=corpus, log=None)
        recipe = run.recipe()
        for stage in STAGES:
            recipe.run(stage)
        rows[seed] = {**figures(recipe, args.faces), "seconds": time.perf_counter() - start}
        line = "".join(f"{rows[seed][c]:>18.3f}" for c in COLUMNS)
        print(f"{seed:<6}{line}{rows[seed]['seconds']:>11.0f}s", flush=True)
        if args.chapter5:
            rows[seed]["findings"] = chapter5_quantities(run)
        if args.json:  # each seed as it is scored: a crash later loses none of them
            _write(args, config, {"seeds": rows})
    for name, pick in (("mean", lambda v: sum(v) / len(v)), ("min", min), ("max", max)):
        print(
            f"{name:<6}" + "".join(f"{pick([r[c] for r in rows.values()]):>18.3f}" for c in COLUMNS)
        )
    out = {"seeds": rows}
    if args.chapter5:
        out["spread"] = measured.seed_spread([r["findings"] for r in rows.values()])
        print("chapter 5's spread over seeds:", json.dumps(out["spread"]))
    if args.json:
        _write(args, config, out)


def _write(args, config, out: dict) -> None:
    out = {**out, "provenance": {
        "command": "python benchmarks/chapter4_seeds.py " + " ".join(sys.argv[1:]),
        "commit": _commit(),
        "date": time.strftime("%Y-%m-%d"),
        "preset": config.preset,
        "renderer": args.renderer,
        "device": device_name(resolve_device()),
    }}  # fmt: skip
    args.json.write_text(json.dumps(out, indent=1) + "\n")


# what separate calls must share for their seeds to be one measurement
SHARED = ("commit", "preset", "renderer", "device")


def merge(files: list[Path]) -> dict:
    """One measurement of the seeds of several ``--json`` files, which must agree on
    :data:`SHARED` and not measure a seed twice; chapter 5's spread over all their seeds when
    every seed has its quantities."""
    parts = [(f, json.loads(f.read_text())) for f in files]
    seeds, provenance = {}, dict(parts[0][1]["provenance"])
    for file, part in parts:
        for key in SHARED:
            if part["provenance"].get(key) != provenance.get(key):
                raise ValueError(
                    f"{file}: provenance {key} {part['provenance'].get(key)!r}, but "
                    f"{parts[0][0]} says {provenance.get(key)!r}: not one measurement"
                )
        if twice := set(seeds) & set(part["seeds"]):
            raise ValueError(f"{file}: seed(s) {sorted(twice)} measured in an earlier file too")
        seeds.update(part["seeds"])
    seeds = dict(sorted(seeds.items(), key=lambda item: int(item[0])))
    provenance["command"] = "; ".join(p["provenance"]["command"] for _, p in parts)
    out = {"seeds": seeds}
    if all("findings" in row for row in seeds.values()):
        out["spread"] = measured.seed_spread([row["findings"] for row in seeds.values()])
    return {**out, "provenance": provenance}


def _commit() -> str:
    import subprocess

    result = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
    return result.stdout.strip() or "unknown"


if __name__ == "__main__":
    main()
