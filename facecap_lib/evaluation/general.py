"""Does the general captioner say what it was trained to say? Its captions read back.

The general captioner (the baseline of the paper's first finding) is trained on
:func:`facecap_lib.captions.general.general_caption`'s sentences: who is there, how the head is
turned, where the light comes from and what covers the face. :func:`read_general` reads those
facts back from any caption, and :func:`general_scores` scores a captioner's captions of rendered
faces against what the renderer drew (:func:`~facecap_lib.captions.general.general_labels`): the
share of faces whose pose (turn and tilt), light and occluder it states rightly, a fact left
unsaid counting as wrong, and the share of captions that repeat a 4-gram. A captioner that can
write its own kind of caption gets pose, light and occluder right on most faces (issue 29's
target: 80%, with at most 5% of captions repeating a 4-gram); one that repeats "surprise
surprise" says none of them.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from facecap_lib.captions.general import UNSAID, general_labels, read_general
from facecap_lib.data.synth.corpus import rendered_truth
from facecap_lib.evaluation.failures import repetition

ATTRIBUTES = ("pose", "light", "occluder")  # what the target counts; pose is turn and tilt
__all__ = [
    "ATTRIBUTES",
    "SCENE",
    "UNSAID",
    "general_rows",
    "general_scores",
    "read_general",
    "scene_probe",
]


def general_rows(captions: Sequence[str], truth: pd.DataFrame) -> pd.DataFrame:
    """Per face: what the caption states, what the renderer drew (``truth``: rows of
    :func:`~facecap_lib.data.synth.corpus.rendered_truth`, or anything with its ``yaw``,
    ``pitch``, ``light_x`` and ``occluder``), and whether pose (turn and tilt together), light and
    occluder are right."""
    if len(truth) != len(captions):
        raise ValueError(f"{len(captions)} captions for {len(truth)} faces")
    rows = []
    for caption, (_, drawn) in zip(captions, truth.iterrows(), strict=True):
        said, want = read_general(caption), general_labels(drawn)
        rows.append(
            {
                "caption": caption,
                **{f"said_{k}": v for k, v in said.items()},
                **{f"drawn_{k}": v for k, v in want.items()},
                "pose": said["turn"] == want["turn"] and said["tilt"] == want["tilt"],
                "light": said["light"] == want["light"],
                "occluder": said["occluder"] == want["occluder"],
                "repeated 4-gram": bool(repetition(caption, 4).ngrams),
            }
        )
    return pd.DataFrame(rows)


def general_scores(captions: Sequence[str], faces: pd.DataFrame) -> dict[str, float]:
    """The shares of :func:`general_rows` for captions of the faces of a SynthFACS face table:
    pose, light, occluder and all three right, and captions with a repeated 4-gram (fractions of
    the faces)."""
    rows = general_rows(captions, rendered_truth(faces))
    occluded = rows[rows["drawn_occluder"].notna()]
    return {
        "faces": float(len(rows)),
        **{k: float(rows[k].mean()) for k in ATTRIBUTES},
        "all three": float(rows[list(ATTRIBUTES)].all(axis=1).mean()),
        # most faces have no occluder, so "occluder right" is high for a captioner that never
        # names one: the occluded faces alone say whether it sees them
        "occluded faces": float(len(occluded)),
        "occluder right, occluded faces": float(occluded["occluder"].mean())
        if len(occluded)
        else float("nan"),
        "repeated 4-gram": float(rows["repeated 4-gram"].mean()),
    }


SCENE = ("yaw", "pitch", "light_x")  # what the renderer drew that general captions speak of


def scene_probe(
    train_x: np.ndarray, train_truth: pd.DataFrame, test_x: np.ndarray, test_truth: pd.DataFrame
) -> dict[str, float]:
    """How much of the pose and the light an image encoder's features hold: a ridge regression
    (its penalty chosen by cross-validation on the training faces) per :data:`SCENE` quantity,
    fitted on ``train_x`` and scored by R^2 on ``test_x`` (``*_truth``: rows of
    :func:`~facecap_lib.data.synth.corpus.rendered_truth`). 0 is no better than the mean; a
    captioner cannot say which way a head turns from features that do not hold it."""
    from sklearn.linear_model import RidgeCV

    out = {}
    for name in SCENE:
        ridge = RidgeCV(alphas=np.logspace(-2, 4, 13)).fit(train_x, train_truth[name])
        out[f"{name} R2"] = float(ridge.score(test_x, test_truth[name]))
    return out
