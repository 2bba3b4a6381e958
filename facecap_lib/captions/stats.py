"""Caption statistics and the cost of caption jobs."""

from __future__ import annotations

import re

import pandas as pd

from facecap_lib.captions.llm import PRICES, Price, approx_tokens
from facecap_lib.captions.prompts import au_prompt, fusion_prompt
from facecap_lib.captions.rules import au_caption, emotion_caption

PAPER_AU_IMAGES = 72_000  # AU-labelled training images (one GPT AU caption each)
PAPER_PAIRS = 372_000  # all training images (one GPT fusion each)


def words(text: str) -> list[str]:
    return re.findall(r"[a-z']+", text.lower())


def caption_statistics(
    table: pd.DataFrame, by: tuple[str, ...] = ("kind", "generator")
) -> pd.DataFrame:
    """Per group: captions, distinct captions, mean and max length in words, vocabulary size."""
    rows = []
    for key, part in table.groupby(list(by), sort=True):
        tokens = [words(c) for c in part["caption"]]
        lengths = pd.Series([len(t) for t in tokens])
        rows.append(
            {
                **dict(zip(by, key if isinstance(key, tuple) else (key,), strict=True)),
                "captions": len(part),
                "distinct": part["caption"].nunique(),
                "mean words": round(float(lengths.mean()), 1),
                "max words": int(lengths.max()),
                "vocabulary": len(set().union(*map(set, tokens))),
            }
        )
    return pd.DataFrame(rows).set_index(list(by))


def paper_job_cost(
    prices: dict[str, Price] | None = None,
    au_answer_tokens: int = 60,
    fused_answer_tokens: int = 90,
) -> pd.DataFrame:
    """What the paper's GPT jobs would cost today: one one-shot AU prompt per AU-labelled image
    (72k) and one fusion prompt per training pair (372k), with this project's prompts for a
    typical face (AU6+AU12+AU25) and answer lengths as given. Token counts are approximations
    (4 characters a token)."""
    au_tokens = approx_tokens(au_prompt({6, 12, 25}))
    fusion_tokens = approx_tokens(
        fusion_prompt(au_caption({6, 12, 25}), emotion_caption(["happiness"]))
    )
    rows = []
    for model, price in (prices or PRICES).items():
        au = PAPER_AU_IMAGES * (au_tokens * price.input + au_answer_tokens * price.output) / 1e6
        fused = (
            PAPER_PAIRS * (fusion_tokens * price.input + fused_answer_tokens * price.output) / 1e6
        )
        rows.append(
            {
                "model": model,
                "AU captions ($)": round(au, 2),
                "fusion ($)": round(fused, 2),
                "total ($)": round(au + fused, 2),
            }
        )
    table = pd.DataFrame(rows).set_index("model")
    table.attrs["tokens"] = {"AU prompt": au_tokens, "fusion prompt": fusion_tokens}
    return table
