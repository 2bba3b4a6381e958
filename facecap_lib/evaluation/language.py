"""How well a language model knows a text: its perplexity, token by token, as it was trained.

A from-scratch preset's language model (:mod:`facecap_lib.training.foundations`) is trained on
``</s> text </s>`` (:class:`facecap_lib.training.pretrain.LanguageModelTask`); :func:`perplexity`
scores texts the same way: the exponential of the mean negative log-likelihood of every token
after the first ``</s>``, the closing ``</s>`` included, over all tokens of all texts.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import pandas as pd
import torch

from facecap_lib.captions.general import general_captions
from facecap_lib.data.english import english_passages
from facecap_lib.data.table import image_files
from facecap_lib.evaluation.faces import held_out


@torch.no_grad()
def perplexity(
    language_model, tokenizer, texts: Sequence[str], *, batch_size: int = 64, max_tokens: int = 128
) -> float:
    """The perplexity of ``language_model`` on ``texts`` (each cut to ``max_tokens`` tokens,
    ``</s>`` at both ends included, as in pre-training)."""
    if not texts:
        raise ValueError("perplexity of no texts")
    eos, pad = tokenizer.eos_token_id, tokenizer.pad_token_id
    device = next(language_model.parameters()).device
    language_model.eval()
    total, tokens = 0.0, 0
    for start in range(0, len(texts), batch_size):
        encoded = [
            [eos, *tokenizer(t, add_special_tokens=False)["input_ids"][: max_tokens - 2], eos]
            for t in texts[start : start + batch_size]
        ]
        width = max(map(len, encoded))
        ids = torch.full((len(encoded), width), pad, dtype=torch.long)
        mask = torch.zeros_like(ids)
        for row, seq in enumerate(encoded):
            ids[row, : len(seq)], mask[row, : len(seq)] = torch.tensor(seq), 1
        ids, mask = ids.to(device), mask.to(device)
        logits = language_model(input_ids=ids, attention_mask=mask).logits[:, :-1].float()
        target, keep = ids[:, 1:], mask[:, 1:].bool()
        nll = torch.nn.functional.cross_entropy(logits[keep], target[keep], reduction="sum")
        total, tokens = total + float(nll), tokens + int(keep.sum())
    return math.exp(total / tokens)


def unread_texts(recipe, n: int = 300, *, seed: int = 5) -> dict[str, list[str]]:
    """``n`` texts of each kind a from-scratch preset's language model may know, none of them
    read in its pre-training: the recipe's own expression captions (its corpus is not the
    pre-training corpus), the general captions of held-out faces of new people, and passages of
    :mod:`facecap_lib.data.english` that a ``language="general"`` build did not read."""
    settings = recipe.foundations().manifest["settings"] if recipe.foundations() else {}
    read = settings.get("english_passages", 0) if settings.get("language") == "general" else 0
    unseen = held_out(recipe, n, kind="au", seed=seed)
    captions = recipe.tables["captions"]["caption"]
    return {
        "expression captions, this book's corpus": captions.sample(
            min(n, len(captions)), random_state=0
        ).tolist(),
        "general captions, new faces": general_captions(unseen, image_files(unseen)),
        "English prose, held-out passages": english_passages(n, skip=read),
    }


def perplexities(language_model, tokenizer, texts: dict[str, Sequence[str]]) -> pd.Series:
    """:func:`perplexity` of each kind of ``texts`` (e.g. :func:`unread_texts`)."""
    values = {k: perplexity(language_model, tokenizer, v) for k, v in texts.items()}
    return pd.Series(values, name="perplexity")
