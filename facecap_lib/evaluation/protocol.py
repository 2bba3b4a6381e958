"""The paper's evaluation, dataset by dataset: every table a project's report holds, and the
chapters show (``facecap run``'s evaluate stage and chapters 5 and 6 call these same functions).

- **Caption metrics** (paper Table 2, :func:`caption_table`): on the test sets of the AU datasets
  the paper names (GFT in the lab, RAF-AU in the wild,
  :data:`~facecap_lib.evaluation.faces.CAPTION_SETS`), each captioner's captions against every
  corpus caption of the face (rule-based and LLM-written), METEOR, ROUGE-L, BLEU-4, CIDEr and an
  embedding similarity as the mean over images of the maximum over references
  (:mod:`facecap_lib.evaluation.captions`). A project without those datasets is scored on the
  test set of every AU-labelled dataset it has.
- **Faithfulness per dataset** (:func:`faithfulness_table`): the mean per-AU F1 of the AUs the
  captions mention on each AU-labelled test set (AUs with at least ``min_positives`` positives),
  and the share of each emotion-labelled test set's faces whose every emotion the captions name.
- **Mix, Cat and Exp** (paper Table 5, :func:`strategy_table`): automatic correctness and
  completeness of the three strategies' captions on each dataset's labelled test faces and on
  all of them together, and how often each is the most and the least complete.
- **Probes per dataset** (paper Table 3, :func:`probe_table`): a linear layer on the frozen
  features of the plain encoder and of AU-, Emot- and Exp-BLIP's encoders and Q-Formers, and the
  same fine-tuned end to end, on each AU-labelled dataset's own AUs (mean F1 x100 and ROC-AUC over
  the AUs its test faces show), BP4D and DISFA also subject-independently over their three folds
  (trained on two, tested on the third, the mean of the three), and on each emotion-labelled
  dataset's one-emotion faces (accuracy x100; AffectNet's 8 classes in the paper).
- **Representations** (supplementary Tables 2-8,
  :func:`facecap_lib.evaluation.representations.tables`) and **the findings**
  (:func:`facecap_lib.evaluation.findings.findings`): the paper's four claims, each difference
  against the spread over seeds.

The captioners scored are the five of the recipe and two baselines (:func:`models`): the
``untrained`` captioner (stage 1 only; its encoder is the plain encoder of the probes) and,
where every face is a SynthFACS render, the ``general`` captioner (the same training on captions
that never describe the expression). Captions and features are cached in the run folder, so
every table and chapter that asks for the same faces reads the same captions.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import pandas as pd

from facecap_lib.data.table import image_ids
from facecap_lib.evaluation import captions as caption_metrics
from facecap_lib.evaluation import faithfulness, probes, representations
from facecap_lib.evaluation.faces import (
    caption_sets,
    emotion_index,
    labelled_test_faces,
    probe_sets,
    test_faces,
)
from facecap_lib.evaluation.findings import findings
from facecap_lib.evaluation.paper import PAPER_TABLE5, probes_with_paper, with_paper
from facecap_lib.evaluation.representations import Feature, Scorer, targets
from facecap_lib.inference import caption_faces
from facecap_lib.training import TITLES

PROBED = ("AU-BLIP", "Emot-BLIP", "Exp-BLIP")  # the captioners of Table 3's probes (the paper's)
STRATEGIES = ("Mix-BLIP", "Cat-BLIP", "Exp-BLIP")
MIN_POSITIVES = 5  # an AU's per-AU F1 counts in faithfulness only with this many positives


def models(recipe) -> dict[str, Path]:
    """Title -> final checkpoint of every captioner the evaluation scores, in
    :data:`~facecap_lib.training.TITLES` order: the ``untrained`` baseline, the ``general`` one
    where every face is a SynthFACS render, and the five captioners (each trained first where
    the run lacks it)."""
    names = [n for n in TITLES if n != "general" or recipe.synthfacs_only()]
    return recipe.checkpoints(names)


def probed(models: Mapping[str, Path]) -> dict[str, Path]:
    """The models of Table 3's probes: the plain encoder (``untrained``) and :data:`PROBED`."""
    return {t: models[t] for t in ("untrained", *PROBED)}


def represented(models: Mapping[str, Path]) -> dict[str, Path]:
    """The models of the supplementary's tables: the plain encoder and the five captioners."""
    return {t: models[t] for t in ("untrained", *representations.MODELS)}


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
    """Captions of ``faces`` by every model (cached in the run folder's ``eval-captions``)."""
    cache = recipe.run_dir / "eval-captions"
    return {
        title: caption_faces(faces, folder, beams=beams, device=recipe.device, cache=cache)
        for title, folder in models.items()
    }


def caption_table(
    recipe, models: Mapping[str, Path], spec, *, embedders=None, preset_name: str = ""
) -> pd.DataFrame:
    """Paper Table 2 per dataset: one row per (dataset, captioner) on up to ``spec.faces`` AU
    test faces (``spec``: the project's evaluation settings), the paper's numbers beside the
    rows of its setting (:func:`~facecap_lib.evaluation.paper.with_paper`)."""
    rows = []
    for dataset in caption_sets(recipe.faces):
        faces = test_faces(recipe.faces, dataset, "au", spec.faces)
        refs = references(recipe, faces, "au")
        for title, texts in captions(recipe, faces, models, beams=spec.beams).items():
            scores = caption_metrics.caption_metrics(texts, refs, embedders=embedders)
            means = scores.mean()
            for name in embedders or {}:
                means[name] *= 100
            rows.append({"dataset": dataset, "captioner": title, **means, "images": len(faces)})
    return with_paper(pd.DataFrame(rows), preset_name)


def faithfulness_table(
    recipe, models: Mapping[str, Path], spec, *, min_positives: int = MIN_POSITIVES
) -> pd.DataFrame:
    """Per dataset and captioner: mean per-AU F1 of the mentioned AUs on up to ``spec.faces``
    AU-labelled test faces, and the share of as many emotion-labelled test faces whose emotions
    are all named."""
    rows = []
    for dataset in sorted(recipe.faces["dataset"].unique()):
        for kind in ("au", "emotion"):
            faces = test_faces(recipe.faces, dataset, kind, spec.faces)
            if faces.empty:
                continue
            for title, texts in captions(recipe, faces, models, beams=spec.beams).items():
                row = {"dataset": dataset, "captioner": title, "faces": len(faces)}
                if kind == "au":
                    scores = faithfulness.au_scores(texts, faces)
                    frequent = scores[scores["positives"] >= min_positives]
                    row["mean per-AU F1"] = frequent["f1"].mean() if len(frequent) else None
                    row["AUs scored"] = len(frequent)
                else:
                    named = faithfulness.emotion_named(texts, faces)
                    row["emotions named"] = named["hit"].mean()
                rows.append(row)
    table = pd.DataFrame(rows).groupby(["dataset", "captioner"], as_index=False, sort=False).first()
    order = ["dataset", "captioner", "faces", "mean per-AU F1", "AUs scored", "emotions named"]
    return table[[c for c in order if c in table.columns]]


def probe_table(recipe, models: Mapping[str, Path], spec, *, preset_name: str = "") -> pd.DataFrame:
    """Paper Table 3 per dataset (see the module docstring): one row per dataset, protocol,
    feature source and strategy (linear probe; fine-tune unless ``spec.fine_tune_epochs`` is
    0), the 3-fold protocols averaged over their folds. ``spec``: the project's evaluation
    settings. The fine-tunes are trained here unless done before
    (:func:`~facecap_lib.evaluation.representations.fine_tune_all`). The paper's numbers stand
    beside the rows of its setting (:func:`~facecap_lib.evaluation.paper.probes_with_paper`)."""
    scorer = Scorer(recipe.run_dir, models, spec, recipe.device)
    rows = []
    for s in probe_sets(recipe.faces, spec.probe_train_faces, spec.faces):
        columns = list(s.columns)
        y, names = targets(s.train, columns)
        for title in models:
            for source in probes.SOURCES:
                feature = Feature(title, source)
                for strategy in scorer.strategies():
                    scores = scorer.scores(feature, strategy, s.train, y, names, {"t": s.test})
                    row = {
                        "dataset": s.dataset, "protocol": s.protocol, "features": feature.label,
                        "strategy": strategy, "train": len(s.train), "test": len(s.test),
                    }  # fmt: skip
                    if columns:
                        table = probes.au_detection(
                            s.test[columns].to_numpy(float), scores["t"], columns
                        )
                        mean = table[table["au"] == "mean"].iloc[0]
                        row |= {"avg F1": mean["F1"], "avg AUC": mean["AUC"]}
                    else:
                        truth = emotion_index(s.test)
                        row["accuracy"] = probes.emotion_scores(truth, scores["t"])["accuracy"]
                    rows.append(row)
    keys = ["dataset", "protocol", "features", "strategy"]
    order = [*keys, "train", "test", "avg F1", "avg AUC", "accuracy"]
    if not rows:  # no dataset with training and test faces
        return probes_with_paper(pd.DataFrame(columns=order), preset_name)
    table = pd.DataFrame(rows).groupby(keys, as_index=False, sort=False).mean(numeric_only=True)
    return probes_with_paper(table[[c for c in order if c in table.columns]], preset_name)


def strategy_table(
    recipe, models: Mapping[str, Path], spec, *, preset_name: str = ""
) -> pd.DataFrame:
    """Paper Table 5 per dataset and over all datasets: one row per (dataset, strategy) on up to
    ``spec.faces`` AU- and as many emotion-labelled test faces of each dataset, with the paper's
    "most complete" share beside the rows of its setting (ViT-B, OPT-2.7B)."""
    chosen = {title: models[title] for title in STRATEGIES}
    parts = labelled_test_faces(recipe.faces, spec.faces)
    rows = []
    for dataset, faces in [*parts.items(), ("all", pd.concat(parts.values()))]:
        texts = captions(recipe, faces, chosen, beams=spec.beams)
        scores = faithfulness.strategy_scores(texts, faces)
        for strategy, row in scores.iterrows():
            rows.append({"dataset": dataset, "strategy": strategy, "faces": len(faces), **row})
    table = pd.DataFrame(rows)
    paper = preset_name == "vitb-opt2.7b"
    table["paper most complete %"] = [
        PAPER_TABLE5.get(s) if paper and d == "all" else None
        for s, d in zip(table["strategy"], table["dataset"], strict=True)
    ]
    return table


def tables(
    recipe, models: Mapping[str, Path], spec, *, preset_name: str = "", embedders=None,
    spread: Mapping[str, float] | None = None,
) -> dict[str, pd.DataFrame]:  # fmt: skip
    """Every table of the report, by name, in the report's order: ``captions``,
    ``faithfulness``, ``strategies``, ``probes``, the supplementary's ``representations-*`` and
    ``findings`` (with ``spread``, the seed-to-seed spread of the compared quantities, or none).
    ``models``: :func:`models`; ``spec``: the project's evaluation settings."""
    out = {
        "captions": caption_table(
            recipe, models, spec, embedders=embedders, preset_name=preset_name
        ),
        "faithfulness": faithfulness_table(recipe, models, spec),
        "strategies": strategy_table(recipe, models, spec, preset_name=preset_name),
        "probes": probe_table(recipe, probed(models), spec, preset_name=preset_name),
    }
    out |= representations.tables(
        recipe.run_dir, recipe.faces, represented(models), spec, recipe.device, preset_name
    )
    out["findings"] = findings(out["captions"], out["probes"], out["strategies"], spread)
    return out


def train_fine_tunes(recipe, models: Mapping[str, Path], spec) -> None:
    """Every fine-tune the report's tables read, trained (under torchrun on every rank: they
    are data-parallel), so that :func:`tables`, which the main process computes alone, only
    loads them."""
    representations.fine_tune_all(
        recipe.run_dir, recipe.faces, probed(models), represented(models), spec, recipe.device
    )
