"""The paper's four headline claims, each checked on the evaluation's tables
(:mod:`.protocol`: caption metrics, probes and strategies per dataset), with a verdict that
weighs every difference against the spread over seeds of the quantity it compares
(:mod:`.measured`).

1. A task-specific captioner beats a general one on AU-caption metrics: AU-BLIP against the
   ``general`` captioner (the same training on captions that never describe the expression),
   METEOR and ROUGE-L on each caption test set.
2. Vision-to-language training improves linear-probe features over the plain encoder: each
   probed captioner's encoder against the ``untrained`` one (the plain pre-trained encoder every
   captioner starts from), pair by pair, mean AU F1 on each AU train / test pair.
3. Q-Former features beat the encoder's, captioner by captioner, on the same pairs.
4. Exp captions are the most complete (automatic most-complete votes over every dataset).

A claim is *reproduced* only where every difference exceeds the spread; with no spread measured
a single run says only whether the direction agrees.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import pandas as pd

METRICS = ("METEOR", "ROUGE-L")  # the caption metrics claim (1) compares
PLAIN = "untrained encoder"  # the plain encoder of the probes


def _verdict(differences: Sequence[float], spread: float | None) -> str:
    """``reproduced`` when every difference exceeds the seed-to-seed ``spread``; ``not
    reproduced`` when none is positive; ``within the spread`` between; ``one seed`` when no
    spread was measured (the direction alone cannot carry a claim)."""
    if spread is None:
        return "one seed: " + ("same direction" if all(d > 0 for d in differences) else "not")
    if all(d > spread for d in differences):
        return "reproduced"
    if all(d <= 0 for d in differences):
        return "not reproduced"
    return "within the spread"


def au_probe_rows(probes: pd.DataFrame) -> pd.DataFrame:
    """The linear-probe rows of Table 3 on AU train / test pairs, one column per feature source
    (``avg F1``), one row per ``(dataset, protocol)``."""
    if "avg F1" not in probes:  # no AU train / test pair
        return pd.DataFrame()
    linear = probes[(probes["strategy"] == "linear probe") & probes["avg F1"].notna()]
    if linear.empty:
        return pd.DataFrame()
    return linear.pivot_table(
        index=["dataset", "protocol"], columns="features", values="avg F1", sort=False
    )


def quantities(captions: pd.DataFrame, probes: pd.DataFrame) -> dict[str, dict[str, float]]:
    """What the findings compare, keyed so that runs of other seeds line up: METEOR and ROUGE-L
    of AU-BLIP and the general captioner per caption test set (``"gft AU-BLIP"``), and the mean
    AU F1 of every linear probe per AU pair (``"bp4d train / test split AU-BLIP encoder"``)."""
    pair = captions[captions["captioner"].isin(["AU-BLIP", "general"])]
    out = {
        metric: {
            f"{d} {c}": float(v)
            for d, c, v in zip(pair["dataset"], pair["captioner"], pair[metric], strict=True)
        }
        for metric in METRICS
    }
    rows = au_probe_rows(probes)
    out["probe F1"] = {
        f"{d} {p} {f}": float(rows.loc[(d, p), f])
        for d, p in rows.index
        for f in rows.columns
        if pd.notna(rows.loc[(d, p), f])
    }
    return out


def findings(
    captions: pd.DataFrame,
    probes: pd.DataFrame,
    strategies: pd.DataFrame,
    spread: Mapping[str, float] | None = None,
) -> pd.DataFrame:
    """The four claims (see the module docstring) on the evaluation's ``captions``, ``probes``
    and ``strategies`` tables: the evidence and a verdict (:func:`_verdict`) per claim.
    ``spread`` holds the seed-to-seed spread of each compared quantity (``"METEOR"``,
    ``"ROUGE-L"``, ``"probe F1"``: the largest range over seeds among the compared values of
    :func:`quantities`, from ``benchmarks/chapter4_seeds.py``)."""
    spread = dict(spread or {})
    rows = [_general_claim(captions, spread)]
    probe_rows = au_probe_rows(probes)
    titles = [
        f[: -len(" encoder")]
        for f in probe_rows.columns
        if f.endswith(" encoder")
        and f != PLAIN
        and f"{f[: -len(' encoder')]} Q-Former" in probe_rows
    ]
    where = [f"{d} ({p})" if p != "train / test split" else d for d, p in probe_rows.index]
    gains = {
        f"{t} on {w}": float(row[f"{t} encoder"] - row[PLAIN])
        for w, (_, row) in zip(where, probe_rows.iterrows(), strict=True)
        for t in titles
    }
    rows.append(
        {
            "claim": "(2) captioning training improves the encoder's features (linear probe)",
            "evidence": "mean AU F1 minus the plain encoder's: "
            + ", ".join(f"{k} {g:+.1f}" for k, g in gains.items())
            + f" (spread {_spread(spread, 'probe F1')})",
            "verdict": _verdict(list(gains.values()), spread.get("probe F1"))
            if gains
            else "no AU probe pairs",
        }
    )
    pairs = {
        f"{t} on {w}": float(row[f"{t} Q-Former"] - row[f"{t} encoder"])
        for w, (_, row) in zip(where, probe_rows.iterrows(), strict=True)
        for t in titles
    }
    rows.append(
        {
            "claim": "(3) Q-Former features beat the encoder's (mean AU F1)",
            "evidence": ", ".join(f"{k} {d:+.1f}" for k, d in pairs.items())
            + f" (Q-Former minus encoder; spread {_spread(spread, 'probe F1')})",
            "verdict": _verdict(list(pairs.values()), spread.get("probe F1"))
            if pairs
            else "no AU probe pairs",
        }
    )
    most = strategies[strategies["dataset"] == "all"].set_index("strategy")["most complete %"]
    rows.append(
        {
            "claim": "(4) Exp captions are the most complete",
            "evidence": ", ".join(f"{k} {v:.0f}%" for k, v in most.items())
            + " of most-complete votes over every dataset's test faces",
            "verdict": "reproduced" if most.idxmax().startswith("Exp") else "not reproduced",
        }
    )
    return pd.DataFrame(rows)


def _general_claim(captions: pd.DataFrame, spread: Mapping[str, float]) -> dict:
    """Claim (1) on every caption test set where the general captioner was scored."""
    claim = "(1) AU-BLIP beats a general captioner on AU-caption metrics"
    table = captions.set_index(["dataset", "captioner"])
    sets = [d for d in captions["dataset"].unique() if (d, "general") in table.index]
    if not sets:
        return {
            "claim": claim,
            "evidence": "no general captioner: its training captions describe what SynthFACS "
            "rendered, so it is trained only where every face is a SynthFACS render",
            "verdict": "not measured",
        }
    gaps = {
        (d, m): float(table.loc[(d, "AU-BLIP"), m] - table.loc[(d, "general"), m])
        for d in sets
        for m in METRICS
    }
    evidence = "; ".join(
        f"{d} {m} {table.loc[(d, 'AU-BLIP'), m]:.3f} vs {table.loc[(d, 'general'), m]:.3f} "
        f"({g:+.3f}, spread {_spread(spread, m)})"
        for (d, m), g in gaps.items()
    )
    verdicts = [_verdict([g], spread.get(m)) for (_, m), g in gaps.items()]
    return {"claim": claim, "evidence": evidence, "verdict": _worst(verdicts)}


def _spread(spread: Mapping[str, float], name: str) -> str:
    return f"{spread[name]:.3g}" if name in spread else "not measured"


def _worst(verdicts: Sequence[str]) -> str:
    """The weakest of several verdicts on one claim."""
    order = ("not reproduced", "one seed: not", "within the spread", "one seed: same direction")
    return next((v for v in order if v in verdicts), "reproduced")
