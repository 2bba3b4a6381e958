"""Loaders (and format writers) of the eight datasets of the paper, one module each.

Every ``load(root, strict=True, check_images=True, ...)`` returns the canonical face table of
:mod:`facecap_lib.data.table`; every ``write(root, table, ...)`` lays labels out in the dataset's
own format (SynthFACS uses these to write its corpora). :func:`load` picks the module by name.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from facecap_lib.data.sources import affectnet, bp4d, disfa, emotionet, faceme, gft, rafau, rafdb

MODULES = {
    "bp4d": bp4d,
    "disfa": disfa,
    "gft": gft,
    "rafau": rafau,
    "emotionet": emotionet,
    "affectnet": affectnet,
    "rafdb": rafdb,
    "faceme": faceme,
}


def load(dataset: str, root: str | Path, **options) -> pd.DataFrame:
    """Load ``dataset`` (a key of :data:`MODULES`) from its folder ``root``."""
    try:
        module = MODULES[dataset]
    except KeyError:
        raise ValueError(f"unknown dataset {dataset!r}; known: {sorted(MODULES)}") from None
    return module.load(root, **options)
