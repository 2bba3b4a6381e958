"""The caption corpus of a face table: the caption table and the Mix / Cat / Exp training sets,
written to the work folder (Parquet for ``datasets``, LAVIS JSON for the authors' configs).

Chapter 3 builds it; later chapters call :func:`caption_corpus` with the same inputs and get the
saved files back. The folder is named by a hash of the images, the describer and the
pseudo-captioner, so different settings never mix. LLM answers are also cached call by call.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import pandas as pd

from facecap_lib.captions import export, fusion
from facecap_lib.captions.synthesize import synthesize_captions
from facecap_lib.data.table import image_ids
from facecap_lib.paths import cache_root

STRATEGIES = ("mix", "cat", "exp")


def corpus_dir(faces: pd.DataFrame, describer, pseudo=None, work: str | Path | None = None) -> Path:
    """The folder of the caption corpus of these faces, describer and pseudo-captioner."""
    pseudo = pseudo or fusion.PrototypePseudoCaptioner()
    digest = hashlib.sha256()
    for part in (*sorted(image_ids(faces)), describer.source, getattr(pseudo, "name", "model")):
        digest.update(str(part).encode() + b"\0")
    return cache_root(work) / "captions" / digest.hexdigest()[:12]


def caption_corpus(
    faces: pd.DataFrame, describer, pseudo=None, *, work: str | Path | None = None
) -> dict[str, pd.DataFrame]:
    """``{"captions": ..., "mix": ..., "cat": ..., "exp": ...}`` for ``faces`` (cached)."""
    pseudo = pseudo or fusion.PrototypePseudoCaptioner()
    folder = corpus_dir(faces, describer, pseudo, work)
    names = ("captions", *STRATEGIES)
    if all((folder / f"{name}.parquet").exists() for name in names):
        return {name: pd.read_parquet(folder / f"{name}.parquet") for name in names}
    captions = synthesize_captions(faces, describer)
    tables = {
        "captions": captions,
        "mix": fusion.mix(captions),
        "cat": fusion.cat(faces, captions, pseudo),
        "exp": fusion.exp(faces, captions, pseudo, describer),
    }
    folder.mkdir(parents=True, exist_ok=True)
    for name in STRATEGIES:
        export.to_lavis_json(tables[name], folder / f"{name}_lavis.json")
        export.to_parquet(tables[name], captions, folder / f"{name}_images.parquet")
    for name, table in tables.items():  # last: their presence marks a finished corpus
        tmp = folder / f".{name}.parquet.tmp"
        table.to_parquet(tmp, index=False)
        tmp.replace(folder / f"{name}.parquet")
    return tables
