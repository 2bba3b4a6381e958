"""Chapter 4's checks of a trained recipe: what the captions of held-out faces get right (the
AUs they mention, the emotions they name) against the targets the from-scratch presets must
reach, stage 1's retrieval, and how much the frozen language model can carry; and the tables
that set them beside the spread over seeds and beside the levers that were tried.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path

import pandas as pd
import torch

from facecap_lib.captions.rules import au_caption
from facecap_lib.data.table import au_sets
from facecap_lib.evaluation import faithfulness
from facecap_lib.evaluation.faces import held_out
from facecap_lib.evaluation.measured import seed_figures
from facecap_lib.inference import caption_faces
from facecap_lib.lexicon import NO_AU_DESCRIPTION
from facecap_lib.training.language_text import content_statement
from facecap_lib.training.stage1 import retrieval_recall


def au_caption_f1(
    recipe, checkpoint: str | Path, n: int, *, seed: int = 1, min_positives: int = 10
) -> pd.DataFrame:
    """Chapter 4's AU check: per-AU precision, recall and F1 of the AUs a captioner's captions
    mention on ``n`` held-out AU-labelled faces (:func:`held_out` with ``seed``), for the AUs with
    at least ``min_positives`` positives (``attrs["faces"]``: how many faces); the headline is
    the mean of ``f1``."""
    faces = held_out(recipe, n, kind="au", seed=seed)
    scores = faithfulness.au_scores(caption_faces(faces, checkpoint, device=recipe.device), faces)
    frequent = scores[scores["positives"] >= min_positives].reset_index(drop=True)
    frequent.attrs["faces"] = len(faces)
    return frequent


def emotion_naming(recipe, checkpoint: str | Path, n: int, *, seed: int = 1) -> pd.DataFrame:
    """Chapter 4's emotion check: for ``n`` held-out emotion-labelled faces, the labels, the
    emotions a captioner's caption names, whether it names every label (``hit``) and whether the
    face has one emotion (``single``) or a compound."""
    faces = held_out(recipe, n, kind="emotion", seed=seed)
    captions = caption_faces(faces, checkpoint, device=recipe.device)
    named = faithfulness.emotion_named(captions, faces)
    return named.assign(single=~named["labels"].str.contains("+", regex=False))


# Chapter 4's targets for the from-scratch presets on the held-out faces (issue 18): what the
# captions must get right, measured by chapter 5's parser.
AU_TARGET = "AU-BLIP: mean per-AU F1"


EMOTION_TARGET = "Emot-BLIP: names the emotion, one-emotion faces"


TARGETS = {
    AU_TARGET: 0.70,
    EMOTION_TARGET: 0.70,
    "Exp-BLIP: names the emotion, one-emotion faces": 0.65,
    "Exp-BLIP: names both emotions, compound faces": 0.40,
    "Exp-BLIP: mean per-AU F1": 0.55,
}


def headline_figures(recipe, checkpoints: Mapping[str, Path], n: int = 400) -> dict[str, float]:
    """Chapter 4's figures for :data:`TARGETS` (``checkpoints``: title -> folder of AU-BLIP,
    Emot-BLIP and Exp-BLIP), on ``n`` held-out faces (:func:`au_caption_f1`,
    :func:`emotion_naming`)."""
    au = au_caption_f1(recipe, checkpoints["AU-BLIP"], n)
    emot = emotion_naming(recipe, checkpoints["Emot-BLIP"], n)
    exp = emotion_naming(recipe, checkpoints["Exp-BLIP"], n)
    exp_au = au_caption_f1(recipe, checkpoints["Exp-BLIP"], n)
    values = (
        au["f1"].mean(),
        emot.loc[emot["single"], "hit"].mean(),
        exp.loc[exp["single"], "hit"].mean(),
        exp.loc[~exp["single"], "hit"].mean(),
        exp_au["f1"].mean(),
    )
    return {name: float(v) for name, v in zip(TARGETS, values, strict=True)}


def stage1_itc(recipe, last: int = 5) -> tuple[float, float]:
    """Stage 1's final ITC (the mean of its last ``last`` logged values) and log(batch), the ITC
    of a Q-Former that cannot tell the captions of a batch apart."""

    history = recipe.qformer().history[-last:]
    itc = sum(h["itc"] for h in history) / len(history)
    return itc, math.log(recipe.config.qformer.fit.batch_size)


def stage1_recall(recipe, n: int = 400, ks=(1, 5), *, seed: int = 1) -> dict[str, float]:
    """Held-out image-text retrieval after BLIP-2 stage 1
    (:func:`facecap_lib.training.stage1.retrieval_recall`): ``n`` test faces of new people with
    their rule-based caption (AU-labelled faces: the AU rule caption, or the fixed no-AU text;
    emotion-labelled faces: the emotion caption), recall@k both ways."""

    captions = recipe.tables["captions"]
    rule = captions[(captions["split"] == "test") & captions["generator"].isin(["rule", "fixed"])]
    rule = rule.drop_duplicates("image_id").sample(
        min(n, rule["image_id"].nunique()), random_state=seed
    )
    pairs = recipe.pairs(rule, "test")
    stage1 = recipe.qformer()
    return retrieval_recall(
        stage1.model, stage1.tokenizer, [p.image for p in pairs], [p.caption for p in pairs], ks
    )


def statement_captions(language_model, tokenizer, statements, *, max_new_tokens: int = 60):
    """What a from-scratch preset's frozen language model writes after each content statement
    (``"Action units 6 12."``, see :func:`facecap_lib.training.language_text.content_statement`), greedy:
    the language model alone, given the content in words instead of a soft prompt."""

    bos = tokenizer.bos_token_id
    out = []
    for statement in statements:
        ids = [bos, *tokenizer(statement, add_special_tokens=False)["input_ids"]]
        prompt = torch.tensor([ids])
        with torch.no_grad():
            made = language_model.generate(
                prompt, attention_mask=torch.ones_like(prompt), max_new_tokens=max_new_tokens,
                do_sample=False, num_beams=1, pad_token_id=tokenizer.pad_token_id,
            )  # fmt: skip
        out.append(tokenizer.decode(made[0, len(ids) :], skip_special_tokens=True).strip())
    return out


def language_model_oracle(recipe, n: int = 400, *, seed: int = 1) -> pd.DataFrame:
    """How much of the caption path the frozen language model can carry: it is told each
    held-out face's true AUs as a content statement (:func:`statement_captions`) and its
    captions are scored like AU-BLIP's (:func:`au_caption_f1`'s faces and AUs). A soft prompt
    can at best tell it as much, so this bounds what any Q-Former achieves through it."""

    faces = held_out(recipe, n, kind="au", seed=seed)
    statements = [content_statement(_rule_caption(aus)) for aus in au_sets(faces)]
    written = statement_captions(recipe.language_model(), recipe.tokenizer(), statements)
    scores = faithfulness.au_scores(written, faces)
    frequent = scores[scores["positives"] >= 10].reset_index(drop=True)
    frequent.attrs.update(
        faces=len(faces), examples=list(zip(statements[:3], written[:3], strict=True))
    )
    return frequent


def _rule_caption(aus) -> str:
    return au_caption(aus) or NO_AU_DESCRIPTION


def lever_table(levers: dict, seeds: dict | None = None) -> pd.DataFrame:
    """What each of chapter 4's levers bought (``levers``: ``benchmarks/chapter4_levers.py``'s
    JSON, with a ``base`` row): each measured figure and its change from ``base``, and, where
    ``seeds`` (:func:`measured_seeds`) gives the range of that figure over seeds, whether the
    change is ``beyond`` it (a change within the range is indistinguishable from a reseed), and a
    ``verdict``: ``gains`` (some figure rises beyond its range, none falls beyond it), ``loses``
    (the reverse), ``mixed`` or ``within the seed range``."""
    rows = pd.DataFrame(levers["levers"]).T
    names = [n for n in TARGETS if n in rows.columns]
    table = rows[["captioner steps", "training faces"]].astype(int)
    span = seed_figures(seeds, names).agg(lambda c: c.max() - c.min()) if seeds else None
    up = pd.Series(False, index=rows.index)
    down = pd.Series(False, index=rows.index)
    for name in names:
        table[name] = rows[name].astype(float)
        change = rows[name].astype(float) - float(rows.loc["base", name])
        table[f"change: {name}"] = change
        if span is not None:
            table[f"beyond the seed range ({span[name]:.3f})"] = change.abs() > span[name]
            up, down = up | (change > span[name]), down | (change < -span[name])
    if span is not None:
        verdicts = {(True, False): "gains", (False, True): "loses", (True, True): "mixed"}
        table["verdict"] = [
            verdicts.get((u, d), "within the seed range") for u, d in zip(up, down, strict=True)
        ]
    return table


def target_table(figures: Mapping[str, float], measured: dict | None = None) -> pd.DataFrame:
    """Chapter 4's figures against :data:`TARGETS`: this run's (``figures``, from
    :func:`headline_figures`) and, where ``measured`` (:func:`measured_seeds`), the mean, min and
    max over its seeds; a target is ``met`` by the seeds' mean where measured, else by this run."""
    table = pd.DataFrame({"target": TARGETS, "this run": figures})
    judged = table["this run"]
    if measured is not None:
        rows = seed_figures(measured, TARGETS)
        table["seeds"] = len(rows)
        table["mean over seeds"], judged = rows.mean(), rows.mean()
        table["min"], table["max"] = rows.min(), rows.max()
    return table.assign(met=judged >= table["target"], margin=judged - table["target"])


def build_spread(builds: Mapping[str, dict]) -> pd.DataFrame:
    """How far a fresh build moves chapter 4's targets: for two or more builds of the same seeds
    (a name to its :func:`measured_seeds`: the same commit on another machine, or on other CPU
    kernels), each build's mean of each target figure over the seeds they share, the spread of
    those means (max minus min), the largest change of one seed between builds, and the margin of
    the lowest mean over the target. ``holds``: that margin is larger than the spread, so another
    build, which may move the mean that far, still meets the target."""
    if len(builds) < 2:
        raise ValueError(f"a spread between builds needs two or more, not {len(builds)}")
    shared = sorted(set.intersection(*(set(b["seeds"]) for b in builds.values())), key=int)
    if not shared:
        raise ValueError(f"the builds {list(builds)} share no seed")
    rows = {name: seed_figures(b, TARGETS, shared) for name, b in builds.items()}
    table = pd.DataFrame({"target": TARGETS})
    for name, seeds in rows.items():
        table[f"{name}: mean"] = seeds.mean()
    means = table[[f"{name}: mean" for name in rows]]
    per_seed = pd.concat(list(rows.values()), keys=list(rows))  # build, then seed position
    table["spread of the means"] = means.max(axis=1) - means.min(axis=1)
    table["largest change of one seed"] = (
        per_seed.groupby(level=1).max() - per_seed.groupby(level=1).min()
    ).max()
    table["margin"] = means.min(axis=1) - table["target"]
    table["holds"] = table["margin"] > table["spread of the means"]
    table.attrs["seeds"] = shared
    return table


def encoder_targets(measured_by_encoder: Mapping[str, dict]) -> pd.DataFrame:
    """Chapter 4's targets for captioners built on different image encoders, side by side: for
    each encoder (a name to its :func:`measured_seeds`), the mean of each target figure over its
    seeds (the column's name says over how many) and that mean's margin over the target
    (negative: missed by that much)."""
    table = pd.DataFrame({"target": TARGETS})
    for name, measured in measured_by_encoder.items():
        rows = seed_figures(measured, TARGETS)
        mean = rows.mean()
        table[f"{name}: mean over {len(rows)} seeds"] = mean
        table[f"{name}: margin"] = mean - table["target"]
    return table
