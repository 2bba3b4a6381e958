"""The canonical face table: one row per image, the same columns whatever the dataset.

Columns (in this order; extra columns, e.g. dataset-specific provenance, may follow):

- ``image_path`` (str): path of the image relative to the dataset root; unique within a dataset
  (``dataset`` + ``image_path`` identify an image across datasets, see :func:`image_ids`).
- ``dataset`` (str): ``bp4d``, ``disfa``, ``gft``, ``rafau``, ``emotionet``, ``affectnet``,
  ``rafdb``, ``faceme`` (see :data:`DATASETS`).
- ``subject`` (str or None): person id where the dataset has one; ``sequence`` (str or None): video
  or task id; ``frame`` (Int64, missing for stills): frame number as the labels give it.
- ``split`` (str or None): ``train`` / ``test`` once assigned (official splits come from the loader,
  the others from :mod:`facecap_lib.data.curate`).
- ``AU1`` … ``AU43``: one float column per lexicon AU, 1.0 present, 0.0 absent, NaN not labelled.
  Unknown is not absent: a dataset that does not code an AU, or codes it as unknown (BP4D ``9``,
  EmotioNet ``999``), leaves NaN.
- ``emotions`` (list of canonical emotion names): empty when the image has no emotion label.
- ``label_file``, ``label_line``: where the row's labels were read (provenance for errors).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path

import numpy as np
import pandas as pd

from facecap_lib.lexicon import AU_COLUMNS, AU_NUMBERS, EMOTION_NAMES

DATASETS: tuple[str, ...] = (
    "bp4d",
    "disfa",
    "gft",
    "rafau",
    "emotionet",
    "affectnet",
    "rafdb",
    "faceme",
)
ID_COLUMNS: tuple[str, ...] = ("image_path", "dataset", "subject", "sequence", "frame", "split")
FACE_COLUMNS: tuple[str, ...] = (
    *ID_COLUMNS,
    *AU_COLUMNS,
    "emotions",
    "label_file",
    "label_line",
)
SPLITS = ("train", "test")


def face_table(records: Iterable[Mapping] | pd.DataFrame) -> pd.DataFrame:
    """Build a face table from row dicts: missing columns get their "not labelled" default
    (NaN AUs, no emotions, no subject), columns are ordered and typed. Extra keys are kept."""
    df = pd.DataFrame(list(records)) if not isinstance(records, pd.DataFrame) else records.copy()
    n = len(df)
    for column in ("image_path", "dataset"):
        if column not in df:
            df[column] = pd.Series([None] * n, dtype=object)
    for column in ("subject", "sequence", "split", "label_file"):
        if column not in df:
            df[column] = None
        df[column] = df[column].astype(object).where(df[column].notna(), None)
    for column in ("frame", "label_line"):
        df[column] = pd.array(df[column] if column in df else [pd.NA] * n, dtype="Int64")
    for column in AU_COLUMNS:
        df[column] = df[column].astype("float64") if column in df else np.nan
    if "emotions" not in df:
        df["emotions"] = [[] for _ in range(n)]
    else:
        df["emotions"] = [
            list(e) if isinstance(e, (list, tuple, np.ndarray)) else [] for e in df["emotions"]
        ]
    extra = [c for c in df.columns if c not in FACE_COLUMNS]
    return df[list(FACE_COLUMNS) + extra].reset_index(drop=True)


def validate_face_table(df: pd.DataFrame, name: str = "face table") -> pd.DataFrame:
    """Check the invariants above; raise ``ValueError`` naming the column and a bad row."""
    missing = [c for c in FACE_COLUMNS if c not in df.columns]
    if missing:
        raise ValueError(f"{name}: missing columns {missing}")
    if df["image_path"].isna().any():
        raise ValueError(
            f"{name}: image_path is empty in row {int(df['image_path'].isna().idxmax())}"
        )
    dup = df.duplicated(["dataset", "image_path"], keep=False)
    if dup.any():
        raise ValueError(
            f"{name}: image_path repeats within a dataset, e.g. {df.loc[dup, 'image_path'].iloc[0]!r}"
        )
    bad_dataset = ~df["dataset"].isin(DATASETS)
    if bad_dataset.any():
        raise ValueError(f"{name}: unknown dataset {df.loc[bad_dataset, 'dataset'].iloc[0]!r}")
    bad_split = df["split"].notna() & ~df["split"].isin(SPLITS)
    if bad_split.any():
        raise ValueError(
            f"{name}: split must be one of {SPLITS}, got {df.loc[bad_split, 'split'].iloc[0]!r}"
        )
    aus = df[list(AU_COLUMNS)].to_numpy(dtype=float)
    bad = ~(np.isnan(aus) | (aus == 0) | (aus == 1))
    if bad.any():
        row, col = np.argwhere(bad)[0]
        raise ValueError(
            f"{name}: {AU_COLUMNS[col]} must be 0, 1 or NaN, got {aus[row, col]} in row {row}"
        )
    for row, emotions in enumerate(df["emotions"]):
        unknown = [e for e in emotions if e not in EMOTION_NAMES]
        if unknown:
            raise ValueError(f"{name}: row {row} has non-canonical emotions {unknown}")
    return df


def image_ids(df: pd.DataFrame) -> pd.Series:
    """``"<dataset>/<image_path>"``: the key of an image across datasets (captions, predictions);
    a table that already has an ``image_id`` column keeps it."""
    if "image_id" in df:
        return df["image_id"].astype(str)
    return df["dataset"].astype(str) + "/" + df["image_path"].astype(str)


def image_files(df: pd.DataFrame) -> list[str]:
    """Each row's image file, ``data_root / image_path`` (curated tables carry ``data_root``, the
    folder of the row's dataset): the one place a path is made from a row."""
    if "data_root" not in df:
        raise KeyError("the face table has no data_root column (curated tables have one)")
    roots, paths = df["data_root"], df["image_path"]
    return [str(Path(root) / path) for root, path in zip(roots, paths, strict=True)]


def au_sets(df: pd.DataFrame) -> list[frozenset[int]]:
    """The present AUs of each row (NaN counts as not present)."""
    aus = df[list(AU_COLUMNS)].to_numpy(dtype=float) == 1
    numbers = np.array(AU_NUMBERS)
    return [frozenset(numbers[row].tolist()) for row in aus]


def label_summary(df: pd.DataFrame) -> list[str]:
    """One short text per row: ``"AU 6+12"``, ``"no AU"``, ``"happiness + surprise"`` or both."""
    out = []
    for aus, emotions, known in zip(
        au_sets(df), df["emotions"], df[list(AU_COLUMNS)].notna().any(axis=1), strict=True
    ):
        parts = []
        if known:
            parts.append("AU " + "+".join(str(a) for a in sorted(aus)) if aus else "no AU")
        if len(emotions):
            parts.append(" + ".join(emotions))
        out.append("; ".join(parts) or "unlabelled")
    return out


def labelled_aus(df: pd.DataFrame) -> list[int]:
    """AUs labelled (not all NaN) somewhere in the table, in lexicon order."""
    return [n for n, c in zip(AU_NUMBERS, AU_COLUMNS, strict=True) if df[c].notna().any()]


def save_face_table(df: pd.DataFrame, path: str | Path) -> Path:
    """Write a face table to Parquet atomically (a crash never leaves half a file)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    validate_face_table(df, str(path)).to_parquet(tmp, index=False)
    tmp.replace(path)
    return path


def load_face_table(path: str | Path) -> pd.DataFrame:
    """Read a face table written by :func:`save_face_table`."""
    df = pd.read_parquet(path)
    df["emotions"] = [list(e) for e in df["emotions"]]
    return validate_face_table(face_table(df), str(path))
