"""What chapter 4's captioners are measured against: how far their encoder gets without captions,
and how far the labels themselves get.

A captioner learns the AUs and emotions of a face only through its captions and a frozen language
model. Two ceilings put its scores on a scale, on the same held-out faces (new people) that
chapter 4 scores the captioners on (:func:`facecap_lib.evaluation.faces.held_out`, seed 1):

- :func:`encoder_ceiling`: the image encoder the captioners start from (the recipe's foundations,
  or random weights) and one linear layer on its class token, fine-tuned end to end directly on
  the labels of the training faces (chapter 5's fine-tuning probe). ``task="au"`` gives per-AU
  F1 (x100, at 0.5) and ROC-AUC for the AUs with at least 10 positives; ``"emotion"`` a
  classifier over the one-emotion training faces, and the share of the held-out
  emotion-labelled faces whose label it names.
- :func:`label_ceiling`: a logistic regression on the **true rendered AU intensities** of the
  one-emotion training faces, naming the emotion of the held-out ones. No image model can do
  better than the AUs it sees, so the emotion a perfect AU reader could name is bounded by this.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch

from facecap_lib.data.synth.corpus import rendered_truth
from facecap_lib.data.table import image_files
from facecap_lib.evaluation import probes
from facecap_lib.evaluation.faces import AU_NAMES, held_out
from facecap_lib.models.presets import build_vision_encoder, preset


def starting_encoder(recipe, seed: int = 0):
    """The image encoder every captioner of ``recipe`` starts from: its foundations' pre-trained
    encoder, or the preset's random initialisation under ``seed``."""

    torch.manual_seed(seed)
    vision = build_vision_encoder(preset(recipe.config.preset))
    start = recipe.foundations()
    if start is not None:
        start.install_vision(vision)
    return vision


def _one_emotion(faces: pd.DataFrame) -> pd.DataFrame:
    return faces[faces["emotions"].map(len) == 1]


def encoder_ceiling(
    recipe,
    task: str = "au",
    *,
    n: int = 400,
    steps: int = 1000,
    lr: float = 1e-3,
    seed: int = 0,
    progress: bool = False,
) -> pd.DataFrame | dict:
    """The starting encoder fine-tuned directly on the training faces' labels (see the module
    docstring); ``task="au"``: the per-AU table (``attrs``: ``train``, ``faces``), ``"emotion"``:
    ``{"named", "named_one_emotion", "train", "faces"}``."""
    faces = recipe.faces
    train = faces[faces["split"] == "train"]
    vision = starting_encoder(recipe, seed)
    common = dict(steps=steps, lr=lr, seed=seed, progress=progress)
    if task == "au":
        train = train[train[AU_NAMES].notna().any(axis=1)]
        test = held_out(recipe, n, kind="au", seed=1)
        y = train[AU_NAMES].to_numpy(float)
        score = probes.fine_tune(vision, image_files(train), y, **common)
        table = probes.au_detection(
            test[AU_NAMES].to_numpy(float), score(image_files(test)), AU_NAMES
        )
        table = table[(table["au"] != "mean") & (table["positives"] >= 10)].reset_index(drop=True)
        table.attrs.update(train=len(train), faces=len(test))
        return table
    if task != "emotion":
        raise ValueError(f"task must be 'au' or 'emotion', got {task!r}")
    train = _one_emotion(train)
    test = held_out(recipe, n, kind="emotion", seed=1)
    names = sorted({labels[0] for labels in train["emotions"]})
    y = np.array([names.index(labels[0]) for labels in train["emotions"]])
    score = probes.fine_tune(vision, image_files(train), y, task="multiclass", **common)
    predicted = [names[i] for i in score(image_files(test)).argmax(1)]
    return _named(predicted, test) | {"train": len(train), "faces": len(test)}


def label_ceiling(recipe, *, n: int = 400) -> dict:
    """A logistic regression on the true rendered AU intensities of the one-emotion training
    faces names the emotion of chapter 4's held-out emotion-labelled faces:
    ``{"named", "named_one_emotion", "train", "faces"}`` (one emotion is named per face, so a
    compound face is never fully named)."""
    from sklearn.linear_model import LogisticRegression

    faces = recipe.faces
    train = _one_emotion(faces[faces["split"] == "train"])
    test = held_out(recipe, n, kind="emotion", seed=1)
    columns = [f"I{name[2:]}" for name in AU_NAMES]
    x_train = rendered_truth(train)[columns].to_numpy(float)
    x_test = rendered_truth(test)[columns].to_numpy(float)
    labels = [labels[0] for labels in train["emotions"]]
    model = LogisticRegression(max_iter=2000).fit(x_train, labels)
    return _named(list(model.predict(x_test)), test) | {"train": len(train), "faces": len(test)}


def _named(predicted: list[str], test: pd.DataFrame) -> dict:
    hits = np.array([p in labels for p, labels in zip(predicted, test["emotions"], strict=True)])
    one = (test["emotions"].map(len) == 1).to_numpy()
    return {"named": float(hits.mean()), "named_one_emotion": float(hits[one].mean())}
