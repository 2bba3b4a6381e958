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

from facecap_lib.data.table import image_files, image_ids
from facecap_lib.evaluation import captions as caption_metrics
from facecap_lib.evaluation import faithfulness, probes
from facecap_lib.evaluation.faces import AU_NAMES, emotion_index, held_out
from facecap_lib.inference import caption_faces


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
