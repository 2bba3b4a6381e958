"""Turning captions into the inputs BLIP-2 trains on.

``input_ids`` are ``num_query_tokens`` image tokens (replaced inside the model by the Q-Former's
query outputs), then ``</s>`` (OPT's beginning of text), the caption's tokens and ``</s>``, padded on
the right. ``labels`` equal ``input_ids`` except -100 on the image tokens, the first ``</s>`` and
padding, so the loss covers exactly the caption and its end.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from facecap_lib.models.tokenizer import IMAGE_TOKEN

IGNORE = -100


def label_tokens(labels: torch.Tensor) -> torch.Tensor:
    """How many tokens a causal language-model loss averages over for these ``labels`` (each
    position predicts the next label; ``IGNORE`` is left out)."""
    return (labels[:, 1:] != IGNORE).sum()


def encode_captions(
    tokenizer, captions: Sequence[str], num_query_tokens: int, max_length: int = 96
) -> dict[str, torch.Tensor]:
    """``input_ids``, ``attention_mask`` and ``labels`` (``[B, Q + 1 + T]``, long) for a batch."""
    image_id = tokenizer.convert_tokens_to_ids(IMAGE_TOKEN)
    bos, eos, pad = tokenizer.bos_token_id, tokenizer.eos_token_id, tokenizer.pad_token_id
    texts = [
        tokenizer(c.strip(), add_special_tokens=False)["input_ids"][: max_length - 2]
        for c in captions
    ]
    length = num_query_tokens + 1 + max(len(t) for t in texts) + 1
    input_ids = torch.full((len(texts), length), pad, dtype=torch.long)
    labels = torch.full_like(input_ids, IGNORE)
    attention = torch.zeros_like(input_ids)
    for row, tokens in enumerate(texts):
        sequence = [image_id] * num_query_tokens + [bos] + tokens + [eos]
        input_ids[row, : len(sequence)] = torch.tensor(sequence)
        attention[row, : len(sequence)] = 1
        labels[row, num_query_tokens + 1 : len(sequence)] = torch.tensor(tokens + [eos])
    return {"input_ids": input_ids, "attention_mask": attention, "labels": labels}


def prompt_ids(tokenizer, batch_size: int, num_query_tokens: int) -> dict[str, torch.Tensor]:
    """Generation inputs: the image tokens and ``</s>``, from which the caption is generated."""
    image_id = tokenizer.convert_tokens_to_ids(IMAGE_TOKEN)
    row = [image_id] * num_query_tokens + [tokenizer.bos_token_id]
    ids = torch.tensor([row] * batch_size, dtype=torch.long)
    return {"input_ids": ids, "attention_mask": torch.ones_like(ids)}


def caption_token_lengths(tokenizer, captions: Sequence[str]) -> np.ndarray:
    """Tokens per caption as the models read it: its own tokens and its two ends (``</s>`` or
    stage 1's ``[DEC]`` before, ``</s>`` after)."""
    ids = tokenizer([c.strip() for c in captions], add_special_tokens=False)["input_ids"]
    return np.array([len(t) + 2 for t in ids], dtype=int)


@dataclass(frozen=True)
class CaptionLengths:
    """The token lengths of a training corpus and the limit captions are cut at. Exp-BLIP's own
    code cuts at 32 tokens by accident (its ``max_txt_len`` is never read); here the limit is
    the corpus's longest caption unless set, and whatever is still cut is counted."""

    median: float
    p95: float
    longest: int
    limit: int
    cut: int  # captions longer than the limit
    count: int
    chosen: str  # "the longest caption", "set", or "the language model's positions"

    def summary(self) -> str:
        return (
            f"caption tokens: median {self.median:.0f}, 95th percentile {self.p95:.0f}, longest "
            f"{self.longest}; limit {self.limit} ({self.chosen}): {self.cut} of {self.count} "
            "captions cut"
        )


def caption_lengths(
    tokenizer, captions: Sequence[str], limit: int | None = None, positions: int | None = None
) -> CaptionLengths:
    """The lengths of ``captions`` and the limit to train them at: ``limit`` where set, else the
    longest caption; never more than ``positions`` (what the language model can hold after its
    queries)."""
    lengths = caption_token_lengths(tokenizer, captions)
    longest = int(lengths.max()) if len(lengths) else 2
    chosen = "set" if limit is not None else "the longest caption"
    value = limit if limit is not None else longest
    if positions is not None and value > positions:
        value, chosen = positions, "the language model's positions"
    return CaptionLengths(
        median=float(np.median(lengths)) if len(lengths) else 0.0,
        p95=float(np.percentile(lengths, 95)) if len(lengths) else 0.0,
        longest=longest,
        limit=int(value),
        cut=int((lengths > value).sum()),
        count=len(lengths),
        chosen=chosen,
    )
