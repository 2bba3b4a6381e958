"""Which faces each evaluation table is measured on: held-out test faces per dataset and label,
the train / test pairs of the probes (paper Table 3's protocol, BP4D's and DISFA's three
subject-independent folds included) and the emotion class of a one-emotion face. Test faces are
always of the test split (people the captioners never saw), drawn with a fixed seed so that every
table and chapter that asks for the same faces gets the same ones.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from facecap_lib.data import sources
from facecap_lib.data.synth.actions import RENDERED_AUS
from facecap_lib.lexicon import AU_COLUMNS, EMOTION_NAMES

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


def emotion_index(faces: pd.DataFrame) -> np.ndarray:
    """Class index (in :data:`~facecap_lib.lexicon.EMOTION_NAMES`) of single-label emotion
    faces, -1 for the others."""
    return np.array([EMOTION_NAMES.index(e[0]) if len(e) == 1 else -1 for e in faces["emotions"]])


CAPTION_SETS = (
    "gft",
    "rafau",
)  # paper Table 2: GFT's test set (in the lab), RAF-AU's (in the wild)


def test_faces(faces: pd.DataFrame, dataset: str, kind: str, n: int, seed: int = 1) -> pd.DataFrame:
    """Up to ``n`` test-split faces of ``dataset`` labelled with ``kind`` (``au``: any AU;
    ``emotion``), sampled with ``seed``."""

    part = faces[(faces["dataset"] == dataset) & (faces["split"] == "test")]
    if kind == "au":
        part = part[part[list(AU_COLUMNS)].notna().any(axis=1)]
    elif kind == "emotion":
        part = part[part["emotions"].map(len) > 0]
    else:
        raise ValueError(f"kind must be 'au' or 'emotion', got {kind!r}")
    return part.sample(min(n, len(part)), random_state=seed)


def caption_sets(faces: pd.DataFrame) -> list[str]:
    """The datasets Table 2 is measured on: the paper's where the project has their AU-labelled
    test faces, else every dataset with some."""
    has = [d for d in sorted(faces["dataset"].unique()) if len(test_faces(faces, d, "au", 1))]
    paper = [d for d in CAPTION_SETS if d in has]
    return paper or has


@dataclass(frozen=True)
class ProbeSet:
    """One train / test pair of Table 3's protocol: a dataset's AUs (``columns``) or, with
    ``columns`` empty, its one-emotion faces."""

    dataset: str
    protocol: str
    train: pd.DataFrame
    test: pd.DataFrame
    columns: tuple[str, ...]
    fold: int | None = None  # of a 3-fold protocol: its rows are averaged over the folds

    @classmethod
    def sampled(cls, dataset, protocol, train, test, columns, n_train, n_test, seed=0, fold=None):
        """The pair with up to ``n_train`` and ``n_test`` of these faces, drawn with ``seed``."""
        return cls(
            dataset, protocol, train.sample(min(n_train, len(train)), random_state=seed),
            test.sample(min(n_test, len(test)), random_state=seed), tuple(columns), fold,
        )  # fmt: skip


def probe_sets(faces: pd.DataFrame, n_train: int, n_test: int) -> list[ProbeSet]:
    """Every train / test pair Table 3 is measured on (see the module docstring)."""

    sets = []
    for dataset in sorted(faces["dataset"].unique()):
        part = faces[faces["dataset"] == dataset]
        columns = tuple(c for c in AU_COLUMNS if part[c].notna().any())
        if columns:
            labelled = part[part[list(columns)].notna().any(axis=1)]
            train = labelled[labelled["split"] == "train"]
            test = labelled[labelled["split"] == "test"]
            if len(train) and len(test):
                sets.append(ProbeSet.sampled(
                    dataset, "train / test split", train, test, columns, n_train, n_test
                ))  # fmt: skip
            if dataset in FOLDED:
                sets += _fold_sets(dataset, labelled, columns, n_train, n_test)
        single = part[part["emotions"].map(len) == 1]
        train, test = single[single["split"] == "train"], single[single["split"] == "test"]
        if len(train) and len(test) and train["emotions"].map(tuple).nunique() > 1:
            sets.append(ProbeSet.sampled(
                dataset, "one-emotion faces", train, test, (), n_train, n_test
            ))  # fmt: skip
    return sets


FOLDED = ("bp4d", "disfa")  # the datasets of the 3-fold subject-independent protocol


def _fold_sets(dataset, labelled, columns, n_train, n_test) -> list[ProbeSet]:
    """BP4D's or DISFA's subject-independent 3-fold protocol: trained on two folds' subjects,
    tested on the third's; none for a copy without every fold's subjects."""

    folds = getattr(sources, dataset).FOLDS
    fold_of = {subject: k for k, subjects in folds.items() for subject in subjects}
    fold = labelled["subject"].map(fold_of)
    sets = []
    for k in sorted(folds):
        train, test = labelled[(fold != k) & fold.notna()], labelled[fold == k]
        if not len(train) or not len(test):
            return []
        sets.append(ProbeSet.sampled(
            dataset, "3 folds, subject-independent", train, test, columns, n_train, n_test,
            seed=k, fold=k,
        ))  # fmt: skip
    return sets


def labelled_test_faces(
    faces: pd.DataFrame, n: int, kinds: tuple[str, ...] = ("au", "emotion")
) -> dict[str, pd.DataFrame]:
    """Per dataset, its :func:`test_faces` of each of ``kinds`` together (a face labelled with
    both once): the faces the faithfulness and strategy tables score, by dataset."""
    out = {}
    for dataset in sorted(faces["dataset"].unique()):
        part = pd.concat([test_faces(faces, dataset, kind, n) for kind in kinds])
        part = part[~part.index.duplicated()]
        if not part.empty:
            out[dataset] = part
    return out
