"""Faithfulness of captions to labels: which AUs and emotions a caption mentions (read by
:func:`facecap_lib.captions.mentions.mentioned_aus` and
:func:`facecap_lib.captions.validate.named_emotions`) against the face's labels.

F1 convention: an AU with no labelled positives and no predictions scores 0 (not 1 and not
undefined), as scikit-learn's ``zero_division=0``; :func:`au_scores` reports the counts so a
reader can tell such rows apart.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from facecap_lib.captions.mentions import mentioned_aus
from facecap_lib.captions.validate import named_emotions
from facecap_lib.lexicon import AU_COLUMNS


def _f1(tp: int, fp: int, fn: int) -> float:
    return 2 * tp / (2 * tp + fp + fn) if tp else 0.0


def au_scores(captions: Sequence[str], faces: pd.DataFrame) -> pd.DataFrame:
    """Per-AU precision, recall and F1 of the AUs the captions mention, over the faces where that
    AU is labelled (1 or 0; NaN rows are skipped). One row per AU labelled anywhere in ``faces``,
    with ``positives`` (labelled present) and ``mentioned`` counts."""
    if len(captions) != len(faces):
        raise ValueError(f"{len(captions)} captions for {len(faces)} faces")
    mentioned = [mentioned_aus(c or "") for c in captions]
    rows = []
    for column in AU_COLUMNS:
        labels = faces[column].to_numpy(dtype=float)
        known = ~np.isnan(labels)
        if not known.any():
            continue
        number = int(column[2:])
        said = np.array([number in m for m in mentioned])[known]
        truth = labels[known] == 1
        tp, fp, fn = (
            int((said & truth).sum()),
            int((said & ~truth).sum()),
            int((~said & truth).sum()),
        )
        rows.append(
            {
                "au": column,
                "labelled": int(known.sum()),
                "positives": int(truth.sum()),
                "mentioned": int(said.sum()),
                "precision": tp / (tp + fp) if tp + fp else 0.0,
                "recall": tp / (tp + fn) if tp + fn else 0.0,
                "f1": _f1(tp, fp, fn),
            }
        )
    return pd.DataFrame(rows)


def emotion_named(captions: Sequence[str], faces: pd.DataFrame) -> pd.DataFrame:
    """For every emotion-labelled face: its labels, the emotions its caption names, and whether
    every label is named (``hit``)."""
    if len(captions) != len(faces):
        raise ValueError(f"{len(captions)} captions for {len(faces)} faces")
    rows = []
    for caption, labels in zip(captions, faces["emotions"], strict=True):
        if len(labels) == 0:
            continue
        named = named_emotions(caption or "")
        rows.append(
            {
                "labels": "+".join(labels),
                "named": "+".join(sorted(named)),
                "hit": set(labels) <= named,
            }
        )
    return pd.DataFrame(rows, columns=["labels", "named", "hit"])
