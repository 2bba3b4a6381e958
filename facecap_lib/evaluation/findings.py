"""The paper's four headline claims, each checked on the evaluation's tables, with a verdict
that weighs each difference against the spread over seeds (:mod:`.measured`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import pandas as pd


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


def findings(
    metrics: pd.DataFrame,
    probe: pd.DataFrame,
    strategies: pd.DataFrame,
    spread: Mapping[str, float] | None = None,
) -> pd.DataFrame:
    """The paper's four headline claims, each checked on these tables: the evidence and a
    verdict (:func:`_verdict`).

    (1) a task-specific captioner beats a general one on AU-caption metrics: AU-BLIP against
    the ``general`` captioner (the same training on captions that never describe the
    expression), METEOR and ROUGE-L; (2) vision-to-language training improves linear-probe
    features over the plain encoder: each captioner's encoder against the ``untrained`` one (the
    plain pre-trained encoder that every captioner starts from), pair by pair, mean AU F1; (3)
    Q-Former features beat the encoder's, per captioner; (4) Exp captions are the most complete
    (automatic most-complete votes). ``spread`` holds the seed-to-seed spread of each compared
    quantity (``"METEOR"``, ``"ROUGE-L"``, ``"probe F1"``: the largest range over seeds of the
    compared models, from ``benchmarks/chapter4_seeds.py``); a claim is reproduced only where
    the difference exceeds it."""
    spread = dict(spread or {})
    rows = []
    au, base = metrics.loc["AU-BLIP"], metrics.loc["general"]
    gaps = {m: float(au[m] - base[m]) for m in ("METEOR", "ROUGE-L")}
    rows.append(
        {
            "claim": "(1) AU-BLIP beats a general captioner on AU-caption metrics",
            "evidence": "; ".join(
                f"{m} {au[m]:.3f} vs {base[m]:.3f} ({gaps[m]:+.3f}, spread {_spread(spread, m)})"
                for m in gaps
            ),
            "verdict": _worst([_verdict([g], spread.get(m)) for m, g in gaps.items()]),
        }
    )
    encoders = probe[probe.index.str.endswith(" encoder")]["avg F1"]
    plain = encoders["untrained encoder"]
    trained = encoders.drop(["untrained encoder", "general encoder"], errors="ignore")
    gains = {name[: -len(" encoder")]: float(v - plain) for name, v in trained.items()}
    rows.append(
        {
            "claim": "(2) captioning training improves the encoder's features (linear probe)",
            "evidence": f"mean AU F1 against the plain encoder's {plain:.1f}: "
            + ", ".join(f"{t} {g:+.1f}" for t, g in gains.items())
            + f" (spread {_spread(spread, 'probe F1')})",
            "verdict": _verdict(list(gains.values()), spread.get("probe F1")),
        }
    )
    pairs = {
        title: float(
            probe.loc[f"{title} Q-Former", "avg F1"] - probe.loc[f"{title} encoder", "avg F1"]
        )
        for title in gains
    }
    rows.append(
        {
            "claim": "(3) Q-Former features beat the encoder's (mean AU F1)",
            "evidence": ", ".join(f"{t} {d:+.1f}" for t, d in pairs.items())
            + f" (Q-Former minus encoder; spread {_spread(spread, 'probe F1')})",
            "verdict": _verdict(list(pairs.values()), spread.get("probe F1")),
        }
    )
    most = strategies["most complete %"]
    rows.append(
        {
            "claim": "(4) Exp captions are the most complete",
            "evidence": ", ".join(f"{k} {v:.0f}%" for k, v in most.items())
            + " of most-complete votes",
            "verdict": "reproduced" if most.idxmax().startswith("Exp") else "not reproduced",
        }
    )
    return pd.DataFrame(rows).set_index("claim")


def _spread(spread: Mapping[str, float], name: str) -> str:
    return f"{spread[name]:.3g}" if name in spread else "not measured"


def _worst(verdicts: Sequence[str]) -> str:
    """The weakest of several verdicts on one claim."""
    order = ("not reproduced", "one seed: not", "within the spread", "one seed: same direction")
    return next((v for v in order if v in verdicts), "reproduced")
