"""The supplementary's visual representations (Tables 2-8): what every captioner's image encoder
and Q-Former know, probed on the combination of the project's AU training sets.

The supplementary (§3.1) trains each classifier on all the AU training sets together (full
EmotioNet and RAF-AU, sampled BP4D, DISFA and GFT) rather than one dataset at a time, and tests
it on BP4D's 12 AUs (Tables 2, 4, 6), RAF-AU's 17 (Tables 3, 5, 7) and AffectNet's 8 emotions.
Here:

- **Training faces**: up to ``n_train`` AU-labelled training faces drawn from every AU dataset of
  the project together (an AU a dataset does not label is left out of that face's loss), and for
  emotions each emotion dataset's one-emotion training faces.
- **Rows**, in the paper's names and order: ``ViT`` (the plain encoder every captioner starts
  from), then ``ViT(X)`` and ``QFormer(X)`` for X = Emot, AU, Mix, Cat, Exp (the encoder's CLS
  output and the mean query output of X-BLIP, :func:`~facecap_lib.evaluation.probes.extract`).
- **Strategies**: ``linear probe`` (one linear layer on frozen features,
  :func:`~facecap_lib.evaluation.probes.linear_probe`) and ``fine-tune`` (the encoder, or the
  encoder and Q-Former, trained end to end with the layer: Tables 6-7,
  :func:`~facecap_lib.evaluation.probes.fine_tune`) for ``epochs`` over the training faces, the
  plain encoder for ``plain_epochs`` (the paper: 20 and 50).
- **Scores**: F1 x100 per AU and their mean on each AU test set, over the paper's AUs of that
  dataset where it names them (:data:`PAPER_AUS`), else every AU the dataset labels; accuracy
  on each emotion test set; and Table 8's per-AU accuracy with mean accuracy and mean F1 on
  RAF-AU's 12 AUs of that table (:data:`TABLE8_AUS`).

The paper's means stand beside the rows of its setting (:data:`PAPER`: ViT-B with OPT-2.7B for
Tables 2, 3, 6, 7; ViT-G with OPT-6.7B for Tables 4, 5, 8); its per-AU cells are not
transcribed (the supplementary's extracted tables are garbled in places).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from facecap_lib.data.table import image_files
from facecap_lib.evaluation import probes
from facecap_lib.evaluation.faces import emotion_index, probe_sets
from facecap_lib.lexicon import AU_COLUMNS, EMOTION_NAMES

# The AUs of each dataset's tables in the paper (BP4D: Tables 2, 4, 6; RAF-AU: Tables 3, 5, 7).
PAPER_AUS = {
    "bp4d": ("AU1", "AU2", "AU4", "AU6", "AU7", "AU10", "AU12", "AU14", "AU15", "AU17", "AU23",
             "AU24"),
    "rafau": ("AU1", "AU2", "AU4", "AU5", "AU6", "AU7", "AU9", "AU10", "AU12", "AU15", "AU16",
              "AU17", "AU22", "AU24", "AU25", "AU26", "AU27"),
}  # fmt: skip
# Table 8 (accuracy on RAF-AU, beside the AU detector DGCN) reports 12 AUs.
TABLE8_AUS = ("AU1", "AU2", "AU4", "AU5", "AU6", "AU7", "AU9", "AU12", "AU17", "AU23", "AU24",
              "AU25")  # fmt: skip
MODELS = ("Emot-BLIP", "AU-BLIP", "Mix-BLIP", "Cat-BLIP", "Exp-BLIP")  # the paper's row order
PLAIN = "ViT"
STRATEGIES = ("linear probe", "fine-tune")

# The paper's means (supplementary Tables 2-8), by (preset, strategy, what) and row:
# "bp4d" mean F1 x100 over the 12 AUs, "affectnet" accuracy x100, "rafau" mean F1 over the 17
# AUs; "rafau accuracy" and "rafau F1 (Table 8)" over Table 8's 12 AUs. "ViT fine-tune" is the
# ViT row of the fine-tune strategy.
# The rows of each of the paper's tables, in its order (what :func:`features` names).
PAPER_ROWS = ("ViT", "ViT(Emot)", "QFormer(Emot)", "ViT(AU)", "QFormer(AU)", "ViT(Mix)",
              "QFormer(Mix)", "ViT(Cat)", "QFormer(Cat)", "ViT(Exp)", "QFormer(Exp)")  # fmt: skip


def _rows(*values: float) -> dict[str, float]:
    """One table's means, in :data:`PAPER_ROWS`' order."""
    return dict(zip(PAPER_ROWS, values, strict=True))


_B = "vitb-opt2.7b"
_G = "vitg-opt6.7b"
PAPER: dict[tuple[str, str, str], dict[str, float]] = {
    (_B, "linear probe", "bp4d"):
        _rows(52.7, 53.3, 56.9, 52.9, 60.9, 52.7, 60.3, 52.7, 58.3, 53.2, 60.3),
    (_B, "linear probe", "affectnet"):
        _rows(37.8, 38.2, 54.3, 38.8, 45.2, 38.6, 52.1, 39.8, 48.1, 39.6, 48.2),
    (_B, "linear probe", "rafau"):
        _rows(37.6, 39.3, 49.1, 41.4, 51.2, 40.7, 53.9, 40.4, 50.9, 40.7, 50.9),
    (_B, "fine-tune", "bp4d"):
        _rows(60.4, 61.5, 62.5, 61.7, 64.1, 61.9, 63.9, 61.9, 63.6, 61.5, 64.4),
    (_B, "fine-tune", "affectnet"):
        _rows(51.4, 52.9, 54.7, 51.9, 53.6, 52.6, 54.3, 52.1, 54.3, 52.1, 54.8),
    (_B, "fine-tune", "rafau"):
        _rows(59.9, 57.6, 65.1, 57.8, 67.2, 57.9, 69.3, 58.7, 66.4, 57.6, 67.4),
    (_G, "linear probe", "bp4d"):
        _rows(49.0, 54.3, 35.6, 63.3, 63.9, 58.5, 60.5, 58.9, 59.8, 63.3, 61.9),
    (_G, "linear probe", "affectnet"):
        _rows(44.8, 50.9, 52.7, 50.1, 52.2, 48.2, 49.3, 48.9, 49.5, 51.0, 51.6),
    (_G, "linear probe", "rafau"):
        _rows(45.5, 45.6, 32.7, 58.1, 61.7, 51.9, 52.2, 52.6, 53.2, 57.0, 55.1),
    (_G, "fine-tune", "bp4d"): {"ViT": 57.5},
    (_G, "fine-tune", "affectnet"): {"ViT": 50.3},
    (_G, "fine-tune", "rafau"): {"ViT": 58.3},
    (_G, "linear probe", "rafau accuracy"):
        _rows(76.3, 76.0, 77.2, 83.6, 84.6, 81.3, 83.9, 81.9, 84.2, 80.8, 82.8),
    (_G, "linear probe", "rafau F1 (Table 8)"):
        _rows(53.5, 53.0, 52.2, 59.9, 60.2, 57.4, 59.4, 57.2, 59.5, 57.5, 59.7),
    (_G, "fine-tune", "rafau accuracy"): {"ViT": 77.2},
    (_G, "fine-tune", "rafau F1 (Table 8)"): {"ViT": 45.2},
}  # fmt: skip


def paper(preset_name: str, strategy: str, what: str, row: str) -> float | None:
    """The paper's figure for this row, or None where its setting is not this preset's."""
    return PAPER.get((preset_name, strategy, what), {}).get(row)


@dataclass(frozen=True)
class Feature:
    """One row: a model's encoder or Q-Former (``title``: a captioner, or ``untrained``)."""

    title: str
    source: str  # "encoder" or "qformer" (probes.SOURCES)

    @property
    def label(self) -> str:
        """Its name in Table 3's rows per dataset: "AU-BLIP Q-Former", "untrained encoder"."""
        return f"{self.title} {'encoder' if self.source == 'encoder' else 'Q-Former'}"

    @property
    def name(self) -> str:
        """Its name in the supplementary's tables: "ViT", "ViT(AU)", "QFormer(AU)"."""
        if self.title == "untrained":
            return PLAIN
        short = self.title.removesuffix("-BLIP")
        return f"{'ViT' if self.source == 'encoder' else 'QFormer'}({short})"


def features(models: Mapping[str, Path]) -> list[Feature]:
    """The rows for these models (``untrained`` and the five captioners), in the paper's order;
    the untrained captioner's Q-Former (stage 1's, before any caption training) is no row of the
    paper's."""
    rows = [Feature("untrained", "encoder")] if "untrained" in models else []
    rows += [Feature(t, s) for t in MODELS if t in models for s in probes.SOURCES]
    return rows


def training_faces(faces: pd.DataFrame, n: int, seed: int = 0) -> pd.DataFrame:
    """Up to ``n`` AU-labelled training faces of every dataset together (§3.1)."""
    train = faces[(faces["split"] == "train") & faces[list(AU_COLUMNS)].notna().any(axis=1)]
    return train.sample(min(n, len(train)), random_state=seed)


def au_columns(faces: pd.DataFrame) -> list[str]:
    """The AUs labelled on some of ``faces``, in the lexicon's order."""
    return [c for c in AU_COLUMNS if faces[c].notna().any()]


def test_sets(faces: pd.DataFrame, trained: list[str], n: int) -> dict[str, pd.DataFrame]:
    """Each dataset's AU-labelled test faces (up to ``n``) with an AU among ``trained``."""
    out = {}
    for dataset in sorted(faces["dataset"].unique()):
        part = faces[(faces["dataset"] == dataset) & (faces["split"] == "test")]
        part = part[part[trained].notna().any(axis=1)] if trained else part.iloc[:0]
        if len(part):
            out[dataset] = part.sample(min(n, len(part)), random_state=0)
    return out


def scored_aus(dataset: str, test: pd.DataFrame, trained: list[str]) -> list[str]:
    """The AUs a dataset's table shows: the paper's for it, where the project has them, else
    every trained AU its test faces label."""
    labelled = [c for c in trained if test[c].notna().any()]
    wanted = [c for c in PAPER_AUS.get(dataset, ()) if c in labelled]
    return wanted or labelled


def emotion_sets(faces: pd.DataFrame, n_train: int, n_test: int) -> dict[str, tuple]:
    """Each emotion dataset's one-emotion ``(train, test)`` faces: Table 3's pairs
    (:func:`facecap_lib.evaluation.faces.probe_sets`), so both tables share their fine-tunes."""

    pairs = probe_sets(faces, n_train, n_test)
    return {s.dataset: (s.train, s.test) for s in pairs if not s.columns}


def targets(train: pd.DataFrame, columns) -> tuple[np.ndarray, list[str]]:
    """What a classifier of ``train`` learns, and the names of its outputs: the AU ``columns``
    (0/1, NaN where not labelled), or with no columns the one emotion of each face (class
    indices in :data:`~facecap_lib.lexicon.EMOTION_NAMES`)."""
    if len(columns):
        return train[list(columns)].to_numpy(float), list(columns)
    return emotion_index(train), list(EMOTION_NAMES)


def steps_for(faces: int, epochs: float, batch_size: int = 32) -> int:
    """Optimizer steps of ``epochs`` passes over ``faces`` in batches of ``batch_size``."""
    return max(1, math.ceil(epochs * faces / batch_size))


def fine_tune_steps(feature: Feature, faces: int, spec) -> int:
    """A fine-tune's optimizer steps over ``faces``: the plain encoder's epochs for it
    (``spec.plain_fine_tune_epochs``), ``spec.fine_tune_epochs`` for the captioners'."""
    plain = feature.title == "untrained"
    return steps_for(faces, spec.plain_fine_tune_epochs if plain else spec.fine_tune_epochs)


@dataclass
class Faces:
    """What the tables are measured on (see the module docstring)."""

    train: pd.DataFrame  # the AU training faces of every dataset together
    trained: list[str]  # the AUs they label
    tests: dict[str, pd.DataFrame]  # each dataset's AU test faces
    emotions: dict[str, tuple[pd.DataFrame, pd.DataFrame]]  # each dataset's (train, test)

    def has_au(self) -> bool:
        """AU classifiers are trained (and fine-tuned) only with faces to train and test them."""
        return bool(len(self.train) and self.tests)

    @classmethod
    def of(cls, faces: pd.DataFrame, spec) -> Faces:
        train = training_faces(faces, spec.probe_train_faces)
        trained = au_columns(train)
        return cls(
            train, trained, test_sets(faces, trained, spec.faces),
            emotion_sets(faces, spec.probe_train_faces, spec.faces),
        )  # fmt: skip


class Scorer:
    """Every row's scores: linear probes fitted on cached features (``run_dir/eval-features``),
    fine-tunes trained, or loaded once finished, in ``run_dir/eval-fine-tune``."""

    def __init__(self, run_dir: Path, models: Mapping[str, Path], spec, device: str):
        self.root, self.models, self.spec, self.device = Path(run_dir), models, spec, device
        self.cache = probes.FeatureCache(self.root / "eval-features", device)

    def strategies(self) -> tuple[str, ...]:
        return STRATEGIES if self.spec.fine_tune_epochs > 0 else STRATEGIES[:1]

    def scores(
        self, feature: Feature, strategy: str, train: pd.DataFrame, y: np.ndarray,
        names: list[str], tests: Mapping[str, pd.DataFrame],
    ) -> dict[str, np.ndarray]:  # fmt: skip
        """Probabilities on each of ``tests`` of the classifier of ``feature`` learnt on
        ``train``: AUs ``names`` (``y``: 0/1/NaN) or emotions (``y``: class indices)."""

        task = "multilabel" if y.ndim == 2 else "multiclass"
        checkpoint = self.models[feature.title]
        if strategy == "linear probe":
            files = image_files(train) + [f for t in tests.values() for f in image_files(t)]
            x = self.cache.features(checkpoint, files, feature.source)
            probe = probes.linear_probe(x[: len(train)], y, task=task)
            out, start = {}, len(train)
            for dataset, test in tests.items():
                out[dataset] = probe.scores(x[start : start + len(test)])
                start += len(test)
            return out
        score = probes.fine_tuned(
            self.root / "eval-fine-tune", checkpoint, image_files(train), y, names,
            fine_tune_steps(feature, len(train), self.spec), task=task, source=feature.source,
            device=self.device,
        )  # fmt: skip
        return {dataset: score(image_files(test)) for dataset, test in tests.items()}


@dataclass(frozen=True)
class FineTune:
    """One fine-tune the evaluation trains: ``feature`` on the training faces ``what`` names
    (``(dataset, protocol, fold)`` of a Table 3 pair, or the AU datasets together)."""

    what: tuple
    feature: Feature
    train: pd.DataFrame
    y: np.ndarray
    names: list[str]


def fine_tunes(faces: pd.DataFrame, probed, rows, spec) -> list[FineTune]:
    """Every fine-tune of the report, once: Table 3's on every pair of
    :func:`~facecap_lib.evaluation.faces.probe_sets` for the ``probed`` models (titles), both
    sources each, and the supplementary's rows (:func:`features` of the ``rows`` titles) on the
    AU datasets together and on each emotion dataset (Table 3's one-emotion pairs, so those are
    shared). None when ``spec.fine_tune_epochs`` is 0."""

    if spec.fine_tune_epochs <= 0:
        return []
    found: dict[tuple, FineTune] = {}

    def add(what, feature, train, columns) -> None:
        found.setdefault((what, feature), FineTune(what, feature, train, *targets(train, columns)))

    pairs = probe_sets(faces, spec.probe_train_faces, spec.faces)
    for s in pairs:
        for title in probed:
            for source in probes.SOURCES:
                add((s.dataset, s.protocol, s.fold), Feature(title, source), s.train, s.columns)
    data = Faces.of(faces, spec)
    for feature in features(dict.fromkeys(rows)):
        if data.has_au():
            add(("AU datasets together",), feature, data.train, data.trained)
        for s in pairs:
            if not s.columns:  # the emotion sets (:func:`emotion_sets`)
                add((s.dataset, s.protocol, s.fold), feature, s.train, ())
    return list(found.values())


def fine_tune_all(
    run_dir: Path, faces: pd.DataFrame, probed: Mapping[str, Path],
    rows: Mapping[str, Path], spec, device: str,
) -> None:  # fmt: skip
    """Every fine-tune of the report (:func:`fine_tunes`), trained: under torchrun every rank
    calls it (the fine-tunes are data-parallel), so that the report, which the main process
    writes alone, only loads them."""
    scorer = Scorer(run_dir, {**probed, **rows}, spec, device)
    for job in fine_tunes(faces, list(probed), list(rows), spec):
        scorer.scores(job.feature, "fine-tune", job.train, job.y, job.names, {})


def tables(
    run_dir: Path, faces: pd.DataFrame, models: Mapping[str, Path], spec, device: str,
    preset_name: str,
) -> dict[str, pd.DataFrame]:  # fmt: skip
    """The supplementary's tables: ``representations-<dataset>`` (per-AU F1, their mean, the
    paper's mean) for each AU test set, ``representations-emotion`` (accuracy per emotion
    dataset) and, with RAF-AU, ``representations-rafau-accuracy`` (Table 8). ``spec``: the
    project's evaluation settings; ``models``: ``untrained`` and the five captioners."""
    scorer, data = Scorer(run_dir, models, spec, device), Faces.of(faces, spec)
    per_au = {dataset: [] for dataset in data.tests}
    emotion_rows, accuracy = [], []
    y, names = targets(data.train, data.trained)
    for feature in features(models):
        for strategy in scorer.strategies():
            row = {"features": feature.name, "strategy": strategy}

            def beside(what: str, feature=feature, strategy=strategy) -> float | None:
                return paper(preset_name, strategy, what, feature.name)

            for dataset, (train, test) in data.emotions.items():
                p = scorer.scores(feature, strategy, train, *targets(train, ()), {dataset: test})
                acc = probes.emotion_scores(emotion_index(test), p[dataset])["accuracy"]
                emotion_rows.append({
                    "dataset": dataset, **row, "train": len(train), "test": len(test),
                    "accuracy": acc, "paper": beside(dataset),
                })  # fmt: skip
            if not data.has_au():
                continue
            scores = scorer.scores(feature, strategy, data.train, y, names, data.tests)
            for dataset, test in data.tests.items():
                columns = scored_aus(dataset, test, data.trained)
                picked = [data.trained.index(c) for c in columns]
                table = probes.au_detection(
                    test[columns].to_numpy(float), scores[dataset][:, picked], columns
                ).set_index("au")
                per_au[dataset].append({
                    **row, **table["F1"].drop("mean").to_dict(), "avg F1": table.loc["mean", "F1"],
                    "paper avg F1": beside(dataset),
                })  # fmt: skip
                eight = [c for c in TABLE8_AUS if c in columns]
                if dataset == "rafau" and eight:
                    table8 = table.loc[eight]
                    accuracy.append({
                        **row, **table8["accuracy"].to_dict(),
                        "avg accuracy": table8["accuracy"].mean(), "avg F1": table8["F1"].mean(),
                        "paper avg accuracy": beside("rafau accuracy"),
                        "paper avg F1": beside("rafau F1 (Table 8)"),
                    })  # fmt: skip
    out = {f"representations-{d}": pd.DataFrame(rows) for d, rows in per_au.items() if rows}
    if emotion_rows:
        out["representations-emotion"] = pd.DataFrame(emotion_rows)
    if accuracy:
        out["representations-rafau-accuracy"] = pd.DataFrame(accuracy)
    return out
