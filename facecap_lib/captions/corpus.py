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
from facecap_lib.lexicon import AU_COLUMNS
from facecap_lib.paths import cache_root

STRATEGIES = ("mix", "cat", "exp")


def corpus_dir(faces: pd.DataFrame, describer, pseudo=None, work: str | Path | None = None) -> Path:
    """The folder of the caption corpus of these faces (images, splits and labels), describer and
    pseudo-captioner: change any of them and the corpus is built anew."""
    pseudo = pseudo or fusion.PrototypePseudoCaptioner()
    labels = faces.assign(image_id=image_ids(faces), emotions=faces["emotions"].map("+".join))
    labels = labels[["image_id", "split", *AU_COLUMNS, "emotions"]].sort_values("image_id")
    digest = hashlib.sha256(labels.to_csv(index=False).encode())
    digest.update(f"{describer.source}\0{getattr(pseudo, 'name', 'model')}".encode())
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
    missing = captions.attrs.get("missing", 0) + tables["exp"].attrs.get("missing", 0)
    if missing:
        raise RuntimeError(
            f"{missing} captions got no answer (budget reached or endpoint refused, see the log); "
            "nothing was saved. Run again to resume: answers already paid for are cached."
        )
    folder.mkdir(parents=True, exist_ok=True)
    numbers = export.image_numbers(captions)
    for name in STRATEGIES:
        export.to_lavis_json(tables[name], folder / f"{name}_lavis.json", numbers)
        export.to_parquet(tables[name], captions, folder / f"{name}_images.parquet")
    export.references_table(captions).to_parquet(folder / "references.parquet", index=False)
    for name, table in tables.items():  # last: their presence marks a finished corpus
        tmp = folder / f".{name}.parquet.tmp"
        table.to_parquet(tmp, index=False)
        tmp.replace(folder / f"{name}.parquet")
    return tables
