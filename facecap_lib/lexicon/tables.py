"""Table views of the lexicon for notebooks and plots (pandas; derived, never edited by hand)."""

from __future__ import annotations

from collections.abc import Iterable

import pandas as pd

from facecap_lib.lexicon.aus import AUS
from facecap_lib.lexicon.prototypes import Prototype


def au_table() -> pd.DataFrame:
    """One row per lexicon AU: ``code``, ``noun``, ``verb``, ``verb_3sg``, ``region``; index = AU number."""
    rows = [
        {"code": a.code, "noun": a.noun, "verb": a.verb, "verb_3sg": a.verb_3sg, "region": a.region}
        for a in AUS
    ]
    return pd.DataFrame(rows, index=pd.Index([a.number for a in AUS], name="AU"))


def prototype_matrix(prototypes: Iterable[Prototype], optional_weight: float = 0.5) -> pd.DataFrame:
    """AU × emotion matrix: 1.0 for a prototypical AU, ``optional_weight`` for an optional one, else 0.

    Rows are every lexicon AU code (``AU1`` … ``AU43``) in lexicon order; columns follow the order of
    ``prototypes``. Raises ``ValueError`` when two prototypes name the same emotion.
    """
    prototypes = list(prototypes)
    names = [p.emotion for p in prototypes]
    if len(set(names)) != len(names):
        raise ValueError(f"prototype_matrix: an emotion appears twice in {names}")
    matrix = pd.DataFrame(0.0, index=[a.code for a in AUS], columns=names)
    for p in prototypes:
        for n in p.optional:
            matrix.loc[f"AU{n}", p.emotion] = optional_weight
        for n in p.aus:
            matrix.loc[f"AU{n}", p.emotion] = 1.0
    matrix.index.name = "AU"
    return matrix
