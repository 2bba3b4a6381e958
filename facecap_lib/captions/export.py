"""Exports of caption tables: LAVIS caption JSON and Parquet for the ``datasets`` library.

- :func:`to_lavis_json` writes the annotation format the authors' LAVIS configs read: a JSON list
  of ``{"image": <path relative to the image root>, "caption": ..., "image_id": ...}``. Image paths
  are ``<dataset>/<image_path>``, so the image root is the folder holding one folder per dataset
  (the SynthFACS corpora are laid out that way; link real datasets in by those names).
- :func:`to_parquet` writes one row per image with its training caption(s) and all its reference
  captions (every caption of the image, for evaluation by maximum over references, as the paper
  scores), loadable with ``datasets.load_dataset("parquet", data_files=...)``;
  :func:`references_table` does the same for every image, test images included.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd


def image_numbers(captions: pd.DataFrame) -> dict[str, int]:
    """Integer ids for LAVIS, one per image of the caption table (shared by every export)."""
    return {image: n for n, image in enumerate(sorted(captions["image_id"].unique()))}


def to_lavis_json(
    pairs: pd.DataFrame, path: str | Path, numbers: dict[str, int] | None = None
) -> Path:
    """One LAVIS record per (image, caption) pair; ``numbers`` (see :func:`image_numbers`) keeps
    image ids the same across the Mix, Cat and Exp files."""
    ids = numbers or image_numbers(pairs)
    records = [
        {"image": image, "caption": caption, "image_id": ids[image]}
        for image, caption in zip(pairs["image_id"], pairs["caption"], strict=True)
    ]
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(records, indent=1, ensure_ascii=False), encoding="utf-8")
    tmp.replace(path)
    return path


def references(captions: pd.DataFrame) -> pd.Series:
    """Every caption of each image (all kinds and generators), by image id, in table order."""
    return captions.groupby("image_id", sort=False)["caption"].agg(list)


def references_table(captions: pd.DataFrame) -> pd.DataFrame:
    """Every image of the caption table (train and test) with all its reference captions."""
    first = captions.groupby("image_id", sort=False)[["dataset", "image_path", "split"]].first()
    first["references"] = references(captions)
    return first.reset_index()


def to_parquet(pairs: pd.DataFrame, captions: pd.DataFrame, path: str | Path) -> Path:
    """Images with their training captions (``captions``: list) and ``references`` (all captions)."""
    grouped = pairs.groupby("image_id", sort=False).agg(
        dataset=("dataset", "first"),
        image_path=("image_path", "first"),
        split=("split", "first"),
        captions=("caption", list),
    )
    refs = references(captions)
    grouped["references"] = [refs.get(i, []) for i in grouped.index]
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    grouped.reset_index().to_parquet(tmp, index=False)
    tmp.replace(path)
    return path
