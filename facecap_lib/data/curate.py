"""Curation: the paper's frame sampling, subject-disjoint splits and Table-1 statistics.

- :func:`sample_frames`: per video (dataset, subject, sequence), in frame order, keep one frame in
  ``every`` (positions 0, 10, 20, ...) plus every frame whose AU vector differs from the previous
  frame's. Unknown (NaN) equals unknown; a change between unknown and known counts as a change.
  Stills (no frame number) are all kept.
- :func:`split_subjects` (random, seeded) and :func:`split_folds` (fixed subject lists such as the
  BP4D/DISFA 3-fold partition) assign ``split`` so that no subject is in both train and test; rows
  that already have a split (official ones from the loaders: AffectNet, RAF-DB, FaceME) keep it.
  Datasets without subjects (RAF-AU, EmotioNet) are split by image.
- :func:`curate` applies the paper's protocol to a set of loaded tables: splits, then sampling of
  the training sets of BP4D, DISFA and GFT and of GFT's test set.
- :func:`statistics`: images and subjects per dataset and split, in the shape of the paper's Table 1.

The face table holds only lexicon AUs, so "only AUs of the lexicon" holds by construction.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import numpy as np
import pandas as pd

from facecap_lib.data.table import face_table, labelled_aus, validate_face_table
from facecap_lib.lexicon import AU_COLUMNS

VIDEO_KEY = ["dataset", "subject", "sequence"]
PAPER_SAMPLED: dict[str, tuple[str, ...]] = {
    "bp4d": ("train",),
    "disfa": ("train",),
    "gft": ("train", "test"),
}
"""Which splits of which datasets the paper samples (supplementary §2)."""


def sample_frames(df: pd.DataFrame, every: int = 10) -> pd.DataFrame:
    """The paper's sampling rule (see the module docstring); returns the kept rows in video order."""
    if every < 1:
        raise ValueError(f"every must be >= 1, got {every}")
    videos = df[df["frame"].notna()].sort_values(VIDEO_KEY + ["frame"], kind="stable")
    stills = df[df["frame"].isna()]
    if videos.empty:
        return df.copy()
    repeated = videos.duplicated(VIDEO_KEY + ["frame"], keep=False)
    if repeated.any():
        first = videos[repeated].iloc[0]
        raise ValueError(
            f"frame {first['frame']} of {first['dataset']} {first['subject']} {first['sequence']} "
            "appears twice: the 1-in-10 positions would be wrong"
        )
    group = videos.groupby(VIDEO_KEY, sort=False, dropna=False).ngroup().to_numpy()
    position = videos.groupby(VIDEO_KEY, sort=False, dropna=False).cumcount().to_numpy()
    labels = np.nan_to_num(videos[list(AU_COLUMNS)].to_numpy(dtype=float), nan=-1.0)
    changed = np.zeros(len(videos), dtype=bool)
    changed[1:] = (labels[1:] != labels[:-1]).any(axis=1) & (group[1:] == group[:-1])
    keep = (position % every == 0) | changed
    return pd.concat([videos[keep], stills]).reset_index(drop=True)


def _assign(df: pd.DataFrame, test_subjects: Mapping[str, set], mask: pd.Series) -> pd.Series:
    split = df["split"].copy()
    for dataset, tests in test_subjects.items():
        rows = mask & (df["dataset"] == dataset)
        split[rows] = np.where(df.loc[rows, "subject"].isin(tests), "test", "train")
    return split


def split_subjects(df: pd.DataFrame, test_fraction: float = 0.2, seed: int = 0) -> pd.DataFrame:
    """Random subject-disjoint split per dataset (by image where there are no subjects)."""
    if not 0.0 < test_fraction < 1.0:
        raise ValueError(f"test_fraction must be in (0, 1), got {test_fraction}")
    out = df.copy()
    open_rows = out["split"].isna()
    rng = np.random.default_rng(seed)
    tests: dict[str, set] = {}
    for dataset in sorted(out.loc[open_rows, "dataset"].unique()):
        rows = open_rows & (out["dataset"] == dataset)
        subjects = sorted(out.loc[rows, "subject"].dropna().unique())
        if subjects:
            n_test = max(1, int(round(len(subjects) * test_fraction))) if len(subjects) > 1 else 0
            tests[dataset] = set(rng.permutation(subjects)[:n_test].tolist())
        else:
            index = out.index[rows]
            n_test = int(round(len(index) * test_fraction))
            chosen = rng.permutation(index)[:n_test]
            out.loc[index, "split"] = "train"
            out.loc[chosen, "split"] = "test"
    out["split"] = _assign(out, tests, open_rows & out["subject"].notna())
    return check_disjoint(out)


def split_folds(
    df: pd.DataFrame, dataset: str, folds: Mapping[int, Iterable[str]], test_folds: Iterable[int]
) -> pd.DataFrame:
    """Split ``dataset`` by a fixed subject partition: subjects of ``test_folds`` test, the rest
    train. A subject in no fold is an error naming it."""
    folds = {k: set(v) for k, v in folds.items()}
    test_folds = set(test_folds)
    if not test_folds <= set(folds):
        raise ValueError(f"test folds {sorted(test_folds)} not among {sorted(folds)}")
    known = set().union(*folds.values())
    rows = df["dataset"] == dataset
    unknown = sorted(set(df.loc[rows, "subject"].dropna()) - known)
    if unknown:
        raise ValueError(f"{dataset}: subjects {unknown} are in no fold of the partition")
    tests = set().union(*(folds[k] for k in test_folds))
    out = df.copy()
    out["split"] = _assign(out, {dataset: tests}, rows)
    return check_disjoint(out)


def check_disjoint(df: pd.DataFrame) -> pd.DataFrame:
    """Raise ``ValueError`` if a subject of a dataset has both train and test rows."""
    with_subject = df[df["subject"].notna() & df["split"].notna()]
    both = with_subject.groupby(["dataset", "subject"])["split"].nunique()
    leaks = both[both > 1]
    if len(leaks):
        dataset, subject = leaks.index[0]
        raise ValueError(
            f"{dataset}: subject {subject} is in both train and test ({len(leaks)} such subjects)"
        )
    return df


def curate(
    tables: Iterable[pd.DataFrame],
    *,
    every: int = 10,
    test_fraction: float = 0.2,
    seed: int = 0,
    folds: Mapping[str, tuple[Mapping[int, Iterable[str]], Iterable[int]]] | None = None,
    sampled: Mapping[str, tuple[str, ...]] = PAPER_SAMPLED,
) -> pd.DataFrame:
    """Concatenate loaded face tables, split them (``folds`` per dataset, else random by subject),
    then sample the frames of the splits named in ``sampled``. Returns one validated face table."""
    df = face_table(pd.concat([face_table(t) for t in tables], ignore_index=True))
    for dataset, (partition, test_folds) in (folds or {}).items():
        if (df["dataset"] == dataset).any():
            df = split_folds(df, dataset, partition, test_folds)
    df = split_subjects(df, test_fraction, seed)
    chosen = np.zeros(len(df), dtype=bool)
    for dataset, splits in sampled.items():
        chosen |= (df["dataset"] == dataset).to_numpy() & df["split"].isin(splits).to_numpy()
    curated = pd.concat([sample_frames(df[chosen], every), df[~chosen]], ignore_index=True)
    return validate_face_table(curated, "curated table")


def label_type(df: pd.DataFrame) -> str:
    aus = labelled_aus(df)
    has_emotions = df["emotions"].map(len).gt(0).any()
    parts = [f"{len(aus)} AUs"] if aus else []
    if has_emotions:
        multi = df["emotions"].map(len).gt(1).any()
        parts.append("multi-label emotions" if multi else "emotions")
    return ", ".join(parts) or "none"


def statistics(df: pd.DataFrame) -> pd.DataFrame:
    """Images and subjects per dataset and split (the shape of the paper's Table 1)."""
    rows = []
    for dataset, part in df.groupby("dataset", sort=False):
        row = {"dataset": dataset, "labels": label_type(part)}
        for split in ("train", "test"):
            rows_split = part[part["split"] == split]
            row[f"{split} images"] = len(rows_split)
            subjects = rows_split["subject"].nunique()
            row[f"{split} subjects"] = subjects if subjects else None
        unassigned = int(part["split"].isna().sum())
        if unassigned:
            row["unsplit images"] = unassigned
        rows.append(row)
    return pd.DataFrame(rows).set_index("dataset")
