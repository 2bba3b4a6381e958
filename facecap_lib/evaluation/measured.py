"""What was measured over several seeds and kept in ``book/measured/`` (by
``benchmarks/chapter4_seeds.py`` and ``benchmarks/chapter4_levers.py``): each seed's figures, and
the spread that a difference must exceed before a chapter calls it reproduced.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import pandas as pd

from facecap_lib.paths import book_measurement


def seed_spread(runs: Sequence[Mapping[str, Mapping[str, float]]]) -> dict[str, float]:
    """The spread a finding's difference must exceed: for each quantity of
    :func:`~facecap_lib.evaluation.findings.quantities`, the largest range (max minus min over the seeds' ``runs``) among
    the models it is measured on."""
    out = {}
    for quantity in runs[0]:
        models = runs[0][quantity]
        out[quantity] = max(
            max(run[quantity][m] for run in runs) - min(run[quantity][m] for run in runs)
            for m in models
        )
    return out


def measured(kind: str, preset_name: str) -> dict | None:
    """A measurement kept in ``book/measured/<kind>-<preset>.json`` (``seeds``: see
    :func:`measured_seeds`; ``levers``: ``benchmarks/chapter4_levers.py --json``), or ``None``
    when it was never made for this preset (or outside a clone of the repository)."""
    return book_measurement(f"{kind}-{preset_name}")


def measured_seeds(preset_name: str) -> dict | None:
    """What ``benchmarks/chapter4_seeds.py --chapter5 --json`` measured for a preset over several
    seeds, kept in ``book/measured/seeds-<preset>.json``: ``seeds`` (each seed's
    :data:`TARGETS` figures, stage 1's figures and chapter 5's quantities), ``spread`` and
    ``provenance`` (command, commit, date). ``None`` when it was never measured for this preset."""
    return measured("seeds", preset_name)


# the image encoders whose captioners were measured over seeds, each to the name its
# measurement is kept under (``seeds-<preset><suffix>.json``): the shipped AU-supervised one,
# and the self-supervised one ``facecap pretrain --encoder contrastive`` builds
ENCODER_MEASUREMENTS = {"AU-supervised (shipped)": "", "contrastive (no labels)": "-contrastive"}


def seeds_by_encoder(preset_name: str) -> dict[str, dict]:
    """:func:`measured_seeds` of each of :data:`ENCODER_MEASUREMENTS` measured for a preset."""
    found = {
        name: measured("seeds", preset_name + suffix)
        for name, suffix in ENCODER_MEASUREMENTS.items()
    }
    return {name: seeds for name, seeds in found.items() if seeds is not None}


# rebuilds of ``seeds-<preset>.json``: the same seeds on other CPU kernels
# (``benchmarks/chapter4_seeds.py`` under ``ONEDNN_MAX_CPU_ISA=AVX2 ATEN_CPU_CAPABILITY=avx2``,
# as a machine without AVX-512 runs them), each kept as ``seeds-<preset><suffix>.json``
REBUILDS = ("-avx2",)


def builds(preset_name: str) -> dict[str, dict]:
    """:func:`measured_seeds` and its :data:`REBUILDS` measured for a preset, each named by the
    device its provenance records (and the commit, where they differ)."""
    found = [measured("seeds", preset_name + suffix) for suffix in ("", *REBUILDS)]
    found = [f for f in found if f is not None]
    commits = {f["provenance"].get("commit") for f in found}

    def name(f: dict) -> str:
        where = f["provenance"].get("device", "an unrecorded device")
        return where + (f" at {f['provenance'].get('commit')}" if len(commits) > 1 else "")

    named = {name(f): f for f in found}
    if len(named) < len(found):
        raise ValueError(f"two measurements of {preset_name}'s seeds name one device and commit")
    return named


def seed_figures(
    seeds: dict, names: Sequence[str], only: Sequence[str] | None = None
) -> pd.DataFrame:
    """One row per seed of :func:`measured_seeds` (or per seed of ``only``, in its order), the
    columns ``names``."""
    chosen = list(seeds["seeds"]) if only is None else only
    return pd.DataFrame([seeds["seeds"][s] for s in chosen])[list(names)]


def measured_spread(preset_name: str) -> tuple[dict[str, float] | None, dict | None]:
    """The seed-to-seed spread of chapter 5's compared quantities for a preset and where it comes
    from (:func:`measured_seeds`); ``(None, None)`` when it was never measured."""
    measured = measured_seeds(preset_name)
    if measured is None:
        return None, None
    return measured["spread"], measured["provenance"]
