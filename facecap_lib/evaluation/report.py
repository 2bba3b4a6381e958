"""Chapters 5 and 6 on one :class:`~facecap_lib.training.stages.Recipe`: which faces are scored,
their references, the captions of every captioner (cached), and the paper's tables computed on
them. Each function is one step a notebook shows; the metrics themselves live in
:mod:`.captions`, :mod:`.faithfulness`, :mod:`.probes` and :mod:`.failures`. This module only
evaluates: the recipe trains what is missing (``Recipe.checkpoints``), the data room renders new
faces (:func:`facecap_lib.data.synth.corpus.unseen_faces`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from facecap_lib.data.synth.actions import RENDERED_AUS
from facecap_lib.data.table import image_files, image_ids
from facecap_lib.evaluation import captions as caption_metrics
from facecap_lib.evaluation import faithfulness, probes
from facecap_lib.inference import caption_faces
from facecap_lib.lexicon import EMOTION_NAMES

AU_NAMES = [f"AU{a}" for a in RENDERED_AUS]


def held_out(recipe, n: int, *, kind: str = "au", seed: int = 0) -> pd.DataFrame:
    """``n`` test-split faces (new subjects) with AU labels (``kind="au"``) or an emotion label
    (``"emotion"``), sampled with ``seed``."""
    faces = recipe.faces[recipe.faces["split"] == "test"]
    if kind == "au":
        columns = [c for c in AU_NAMES if c in faces]
        faces = faces[faces[columns].notna().any(axis=1)]
    elif kind == "emotion":
        faces = faces[faces["emotions"].map(len) > 0]
    else:
        raise ValueError(f"kind must be 'au' or 'emotion', got {kind!r}")
    return faces.sample(min(n, len(faces)), random_state=seed)


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
    import math

    history = recipe.qformer().history[-last:]
    itc = sum(h["itc"] for h in history) / len(history)
    return itc, math.log(recipe.config.qformer.fit.batch_size)


def stage1_recall(recipe, n: int = 400, ks=(1, 5), *, seed: int = 1) -> dict[str, float]:
    """Held-out image-text retrieval after BLIP-2 stage 1
    (:func:`facecap_lib.training.stage1.retrieval_recall`): ``n`` test faces of new people with
    their rule-based caption (AU-labelled faces: the AU rule caption, or the fixed no-AU text;
    emotion-labelled faces: the emotion caption), recall@k both ways."""
    from facecap_lib.training.stage1 import retrieval_recall

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
    (``"Action units 6 12."``, see :func:`facecap_lib.training.stages.content_statement`), greedy:
    the language model alone, given the content in words instead of a soft prompt."""
    import torch

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
    from facecap_lib.data.table import au_sets
    from facecap_lib.training.stages import content_statement

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
    from facecap_lib.captions.rules import au_caption
    from facecap_lib.lexicon import NO_AU_DESCRIPTION

    return au_caption(aus) or NO_AU_DESCRIPTION


def references(recipe, faces: pd.DataFrame, kind: str = "au") -> list[list[str]]:
    """Every corpus caption of ``kind`` (``au``: rule-based and LLM-style AU captions;
    ``emotion``) for each face: the references the paper takes the maximum over."""
    table = recipe.tables["captions"]
    table = table[table["kind"] == kind]
    by_image = table.groupby("image_id")["caption"].apply(list)
    out = []
    for image in image_ids(faces):
        if image not in by_image.index:
            raise ValueError(f"{image}: no {kind} caption in the corpus to compare against")
        out.append(by_image[image])
    return out


def captions(
    recipe, faces: pd.DataFrame, models: Mapping[str, Path], *, beams: int = 5
) -> dict[str, list[str]]:
    """Captions of ``faces`` by every model (cached in the run folder)."""
    cache = recipe.run_dir / "eval-captions"
    return {
        title: caption_faces(faces, folder, beams=beams, device=recipe.device, cache=cache)
        for title, folder in models.items()
    }


def metrics_table(
    generated: Mapping[str, Sequence[str]],
    refs: Sequence[Sequence[str]],
    embedders: Mapping | None = None,
) -> pd.DataFrame:
    """Paper Table 2 for these captions: METEOR, ROUGE-L, BLEU-4, CIDEr and embedding similarity
    (x100) as the mean over images of the maximum over references."""
    per_model = {
        title: caption_metrics.caption_metrics(texts, refs, embedders=embedders)
        for title, texts in generated.items()
    }
    return caption_metrics.metrics_table(per_model, percent=list(embedders or {}))


def au_f1(
    generated: Mapping[str, Sequence[str]], faces: pd.DataFrame, min_positives: int = 10
) -> dict[str, pd.DataFrame]:
    """Per-AU precision / recall / F1 of each model's captions, AUs with enough positives."""
    out = {}
    for title, texts in generated.items():
        scores = faithfulness.au_scores(texts, faces)
        out[title] = scores[scores["positives"] >= min_positives].reset_index(drop=True)
    return out


def probe_split(
    recipe, n_train: int, n_test: int, seed: int = 0
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Train and test faces for the probes, from the train and test splits (different
    subjects): faces with any rendered AU labelled (unlabelled AUs are left out of the loss and
    the scores) or with a single emotion label."""
    faces = recipe.faces
    usable = faces[faces[AU_NAMES].notna().any(axis=1) | (faces["emotions"].map(len) == 1)]
    train = usable[usable["split"] == "train"]
    test = usable[usable["split"] == "test"]
    return (
        train.sample(min(n_train, len(train)), random_state=seed),
        test.sample(min(n_test, len(test)), random_state=seed),
    )


def emotion_index(faces: pd.DataFrame) -> np.ndarray:
    """Class index (in :data:`~facecap_lib.lexicon.EMOTION_NAMES`) of single-label emotion
    faces, -1 for the others."""
    return np.array([EMOTION_NAMES.index(e[0]) if len(e) == 1 else -1 for e in faces["emotions"]])


def probe_tables(
    recipe,
    models: Mapping[str, Path],
    train: pd.DataFrame,
    test: pd.DataFrame,
    sources=probes.SOURCES,
) -> pd.DataFrame:
    """Paper Table 3: a linear probe on frozen features of every (model, source), AU F1 x100 per
    rendered AU, mean F1 and ROC-AUC, and emotion accuracy on single-label emotion faces."""
    cache = probes.FeatureCache(recipe.run_dir / "eval-features", recipe.device)
    y_train, y_test = train[AU_NAMES].to_numpy(float), test[AU_NAMES].to_numpy(float)
    e_train, e_test = emotion_index(train), emotion_index(test)
    files = image_files(train) + image_files(test)
    results, emotions = {}, {}
    for title, folder in models.items():
        for source in sources:
            name = f"{title} {'encoder' if source == 'encoder' else 'Q-Former'}"
            x = cache.features(folder, files, source)
            x_train, x_test = x[: len(train)], x[len(train) :]
            a_train, a_test = ~np.isnan(y_train).all(1), ~np.isnan(y_test).all(1)
            au_probe = probes.linear_probe(x_train[a_train], y_train[a_train])
            results[name] = probes.au_detection(
                y_test[a_test], au_probe.scores(x_test[a_test]), AU_NAMES
            )
            if (e_train >= 0).sum() and (e_test >= 0).sum():
                emotion_probe = probes.linear_probe(
                    x_train[e_train >= 0], e_train[e_train >= 0], task="multiclass"
                )
                emotions[name] = probes.emotion_scores(
                    e_test[e_test >= 0], emotion_probe.scores(x_test[e_test >= 0])
                )
    return probes.probe_table(results, emotions)


def finding_quantities(
    recipe, *, n_eval: int = 150, n_train: int = 1200, n_test: int = 400, beams: int = 5
) -> dict[str, dict[str, float]]:
    """What chapter 5's findings compare, for one trained run (its defaults are chapter 5's
    sizes): METEOR and ROUGE-L of AU-BLIP and the general captioner on ``n_eval`` held-out faces
    (:func:`metrics_table`), and the linear probes' mean AU F1 of every model's encoder and
    Q-Former (:func:`probe_tables`)."""
    models = recipe.checkpoints()
    faces = held_out(recipe, n_eval, kind="au")
    pair = {title: models[title] for title in ("AU-BLIP", "general")}
    table = metrics_table(captions(recipe, faces, pair, beams=beams), references(recipe, faces))
    train, test = probe_split(recipe, n_train, n_test)
    probe = probe_tables(recipe, models, train, test)
    return {
        "METEOR": table["METEOR"].astype(float).to_dict(),
        "ROUGE-L": table["ROUGE-L"].astype(float).to_dict(),
        "probe F1": probe["avg F1"].astype(float).to_dict(),
    }


def seed_spread(runs: Sequence[Mapping[str, Mapping[str, float]]]) -> dict[str, float]:
    """The spread a finding's difference must exceed: for each quantity of
    :func:`finding_quantities`, the largest range (max minus min over the seeds' ``runs``) among
    the models it is measured on."""
    out = {}
    for quantity in runs[0]:
        models = runs[0][quantity]
        out[quantity] = max(
            max(run[quantity][m] for run in runs) - min(run[quantity][m] for run in runs)
            for m in models
        )
    return out


def measured(kind: str, preset_name: str) -> dict | None:
    """A measurement kept in ``book/measured/<kind>-<preset>.json`` (``seeds``: see
    :func:`measured_seeds`; ``levers``: ``benchmarks/chapter4_levers.py --json``), or ``None``
    when it was never made for this preset (or outside a clone of the repository)."""
    import json

    from facecap_lib.notebooks import find_repo_root

    try:
        path = find_repo_root() / "book" / "measured" / f"{kind}-{preset_name}.json"
    except FileNotFoundError:
        return None
    return json.loads(path.read_text()) if path.exists() else None


def measured_seeds(preset_name: str) -> dict | None:
    """What ``benchmarks/chapter4_seeds.py --chapter5 --json`` measured for a preset over several
    seeds, kept in ``book/measured/seeds-<preset>.json``: ``seeds`` (each seed's
    :data:`TARGETS` figures, stage 1's figures and chapter 5's quantities), ``spread`` and
    ``provenance`` (command, commit, date). ``None`` when it was never measured for this preset."""
    return measured("seeds", preset_name)


def seed_figures(seeds: dict, names: Sequence[str]) -> pd.DataFrame:
    """One row per seed of :func:`measured_seeds`, the columns ``names``."""
    return pd.DataFrame([seeds["seeds"][s] for s in seeds["seeds"]])[list(names)]


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


def measured_spread(preset_name: str) -> tuple[dict[str, float] | None, dict | None]:
    """The seed-to-seed spread of chapter 5's compared quantities for a preset and where it comes
    from (:func:`measured_seeds`); ``(None, None)`` when it was never measured."""
    measured = measured_seeds(preset_name)
    if measured is None:
        return None, None
    return measured["spread"], measured["provenance"]


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
    return table.assign(met=judged >= table["target"])


def _verdict(differences: Sequence[float], spread: float | None) -> str:
    """``reproduced`` when every difference exceeds the seed-to-seed ``spread``; ``not
    reproduced`` when none is positive; ``within the spread`` between; ``one seed`` when no
    spread was measured (the direction alone cannot carry a claim)."""
    if spread is None:
        return "one seed: " + ("same direction" if all(d > 0 for d in differences) else "not")
    if all(d > spread for d in differences):
        return "reproduced"
    if all(d <= 0 for d in differences):
        return "not reproduced"
    return "within the spread"


def findings(
    metrics: pd.DataFrame,
    probe: pd.DataFrame,
    strategies: pd.DataFrame,
    spread: Mapping[str, float] | None = None,
) -> pd.DataFrame:
    """The paper's four headline claims, each checked on these tables: the evidence and a
    verdict (:func:`_verdict`).

    (1) a task-specific captioner beats a general one on AU-caption metrics: AU-BLIP against
    the ``general`` captioner (the same training on captions that never describe the
    expression), METEOR and ROUGE-L; (2) vision-to-language training improves linear-probe
    features over the plain encoder: each captioner's encoder against the ``untrained`` one (the
    plain pre-trained encoder that every captioner starts from), pair by pair, mean AU F1; (3)
    Q-Former features beat the encoder's, per captioner; (4) Exp captions are the most complete
    (automatic most-complete votes). ``spread`` holds the seed-to-seed spread of each compared
    quantity (``"METEOR"``, ``"ROUGE-L"``, ``"probe F1"``: the largest range over seeds of the
    compared models, from ``benchmarks/chapter4_seeds.py``); a claim is reproduced only where
    the difference exceeds it."""
    spread = dict(spread or {})
    rows = []
    au, base = metrics.loc["AU-BLIP"], metrics.loc["general"]
    gaps = {m: float(au[m] - base[m]) for m in ("METEOR", "ROUGE-L")}
    rows.append(
        {
            "claim": "(1) AU-BLIP beats a general captioner on AU-caption metrics",
            "evidence": "; ".join(
                f"{m} {au[m]:.3f} vs {base[m]:.3f} ({gaps[m]:+.3f}, spread {_spread(spread, m)})"
                for m in gaps
            ),
            "verdict": _worst([_verdict([g], spread.get(m)) for m, g in gaps.items()]),
        }
    )
    encoders = probe[probe.index.str.endswith(" encoder")]["avg F1"]
    plain = encoders["untrained encoder"]
    trained = encoders.drop(["untrained encoder", "general encoder"], errors="ignore")
    gains = {name[: -len(" encoder")]: float(v - plain) for name, v in trained.items()}
    rows.append(
        {
            "claim": "(2) captioning training improves the encoder's features (linear probe)",
            "evidence": f"mean AU F1 against the plain encoder's {plain:.1f}: "
            + ", ".join(f"{t} {g:+.1f}" for t, g in gains.items())
            + f" (spread {_spread(spread, 'probe F1')})",
            "verdict": _verdict(list(gains.values()), spread.get("probe F1")),
        }
    )
    pairs = {
        title: float(
            probe.loc[f"{title} Q-Former", "avg F1"] - probe.loc[f"{title} encoder", "avg F1"]
        )
        for title in gains
    }
    rows.append(
        {
            "claim": "(3) Q-Former features beat the encoder's (mean AU F1)",
            "evidence": ", ".join(f"{t} {d:+.1f}" for t, d in pairs.items())
            + f" (Q-Former minus encoder; spread {_spread(spread, 'probe F1')})",
            "verdict": _verdict(list(pairs.values()), spread.get("probe F1")),
        }
    )
    most = strategies["most complete %"]
    rows.append(
        {
            "claim": "(4) Exp captions are the most complete",
            "evidence": ", ".join(f"{k} {v:.0f}%" for k, v in most.items())
            + " of most-complete votes",
            "verdict": "reproduced" if most.idxmax().startswith("Exp") else "not reproduced",
        }
    )
    return pd.DataFrame(rows).set_index("claim")


def _spread(spread: Mapping[str, float], name: str) -> str:
    return f"{spread[name]:.3g}" if name in spread else "not measured"


def _worst(verdicts: Sequence[str]) -> str:
    """The weakest of several verdicts on one claim."""
    order = ("not reproduced", "one seed: not", "within the spread", "one seed: same direction")
    return next((v for v in order if v in verdicts), "reproduced")


def captioner(folder: str | Path, device: str = "cpu", beams: int = 1):
    """A function from PIL faces to captions (greedy by default: occlusion probes caption many
    variants of one face), for :mod:`.failures`."""
    from facecap_lib.inference import describe, load_captioner

    model, tokenizer = load_captioner(folder, device)

    def caption(images) -> list[str]:
        out = describe(
            list(images), model=model, tokenizer=tokenizer, crop="none", beams=beams, device=device
        )
        return [d.caption or "" for d in out]

    return caption


def fine_tune_table(
    recipe, models: Mapping[str, Path], train: pd.DataFrame, test: pd.DataFrame, *, steps: int
) -> pd.DataFrame:
    """The paper's second strategy: each model's image encoder and a linear layer trained end to
    end on AU detection (``steps`` AdamW steps on the train faces with AU labels), then scored
    on the test faces like :func:`probe_tables`. Each fine-tuning runs in the run folder
    (``eval-fine-tune/``, :func:`~facecap_lib.evaluation.probes.fine_tuned`): it resumes if
    interrupted, and a finished one is loaded, not redone."""
    train = train[train[AU_NAMES].notna().any(axis=1)]
    test = test[test[AU_NAMES].notna().any(axis=1)]
    files, y = image_files(train), train[AU_NAMES].to_numpy(float)
    results = {}
    for title, folder in models.items():
        root = recipe.run_dir / "eval-fine-tune"
        score = probes.fine_tuned(root, folder, files, y, AU_NAMES, steps, device=recipe.device)
        y_test = test[AU_NAMES].to_numpy(float)
        results[f"{title} encoder, fine-tuned"] = probes.au_detection(
            y_test, score(image_files(test)), AU_NAMES
        )
    return probes.probe_table(results)


# How large each failure must be before a chapter says it is seen: a few faces, a few points of
# recall or a single repeated caption are noise at chapter 6's sample sizes (~150 faces).
FAILURE_THRESHOLDS = {
    "occlusion": 0.10,  # mean drop in AU recall when an occluder is added
    "emotion": 0.10,  # share of emotion-labelled faces whose caption names another emotion
    "repetition": 5.0,  # % of the trained captioners' captions that repeat a sentence
}


def failure_findings(
    repeats: pd.DataFrame,
    recall: pd.DataFrame,
    confusion: pd.DataFrame,
    captioner: str = "Exp-BLIP",
    thresholds: Mapping[str, float] = FAILURE_THRESHOLDS,
) -> pd.DataFrame:
    """The paper's three failure modes (supplementary Fig. 2), each measured here: occlusion
    costs AU mentions (mean drop in recall over occluders and AUs), emotions are inferred wrongly
    (share of emotion-labelled faces whose caption names another emotion, and the most frequent
    confusion), and captions repeat themselves (repetition rate of the trained captioners). Each
    is "seen here" only past its threshold (:data:`FAILURE_THRESHOLDS`), which the evidence
    states."""
    drop = recall["drop"].mean()
    worst = recall.groupby("occluder")["drop"].mean()
    wrong_cells = confusion.copy()
    for label in wrong_cells.index:
        if label in wrong_cells.columns:
            wrong_cells.loc[label, label] = 0
    if "none" in wrong_cells.columns:
        wrong_cells = wrong_cells.drop(columns="none")
    wrong = wrong_cells.to_numpy().sum() / max(1, confusion.to_numpy().sum())
    top = wrong_cells.stack().idxmax() if wrong_cells.to_numpy().sum() else ("-", "-")
    trained = repeats.drop(index=["untrained", "general"], errors="ignore")
    rate = trained["repeated sentence %"].mean()
    return pd.DataFrame(
        [
            {
                "failure": "occlusion of large face areas leads to wrong descriptions",
                "evidence": f"mean recall drop {drop:.2f} (threshold {thresholds['occlusion']:.2f}); by occluder "
                + ", ".join(f"{k} {v:.2f}" for k, v in worst.items()),
                "seen here": bool(drop > thresholds["occlusion"]),
            },
            {
                "failure": "wrong inference of the emotion",
                "evidence": f"{captioner} names emotions other than the label for {wrong:.0%} of labelled faces "
                f"(threshold {thresholds['emotion']:.0%}); most frequent: {top[0]} described as {top[1]}",
                "seen here": bool(wrong > thresholds["emotion"]),
            },
            {
                "failure": "duplicate outputs (repeated sentences)",
                "evidence": f"{rate:.1f}% of trained captioners' captions repeat a sentence "
                f"(threshold {thresholds['repetition']:.0f}%; untrained: "
                f"{repeats['repeated sentence %'].get('untrained', float('nan')):.1f}%)",
                "seen here": bool(rate > thresholds["repetition"]),
            },
        ]
    ).set_index("failure")
