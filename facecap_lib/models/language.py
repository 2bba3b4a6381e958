"""Pre-training the small language model of a from-scratch preset.

BLIP-2 keeps its language model frozen and teaches the Q-Former to prompt it, which presumes a
language model that already knows the language. The paper's is OPT, pre-trained on 180B tokens;
offline there are no OPT weights, so the ``tiny`` and ``small`` presets pre-train their OPT on the
text they will have to write: the caption corpus (rule-based, described and fused captions, the
fixed no-AU text). That is the whole language of the task, so a frozen model that has learned it
can be steered, as BLIP-2 steers OPT. (With real weights, load them instead.)
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from transformers import OPTForCausalLM

from facecap_lib.models.presets import Preset, blip2_config, tokenizer_ids


def pretrain_language_model(
    spec: Preset,
    tokenizer,
    texts: Sequence[str],
    *,
    steps: int = 300,
    batch_size: int = 32,
    lr: float = 2e-3,
    seed: int = 0,
    log=None,
) -> OPTForCausalLM:
    """Train the preset's OPT from scratch on ``texts`` (next-token prediction); returns it."""
    config = blip2_config(spec, vocab_size=len(tokenizer), **tokenizer_ids(tokenizer)).text_config
    torch.manual_seed(seed)
    model = OPTForCausalLM(config)
    rng = np.random.default_rng(seed)
    encoded = [tokenizer(t, add_special_tokens=False)["input_ids"][:126] for t in texts]
    bos, eos, pad = tokenizer.bos_token_id, tokenizer.eos_token_id, tokenizer.pad_token_id
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.01)
    model.train()
    for step in range(steps):
        rows = [[bos, *encoded[i], eos] for i in rng.integers(0, len(encoded), batch_size)]
        width = max(map(len, rows))
        ids = torch.full((len(rows), width), pad)
        for r, row in enumerate(rows):
            ids[r, : len(row)] = torch.tensor(row)
        mask = (ids != pad).long()
        labels = ids.masked_fill(mask == 0, -100)
        scale = min(1.0, (step + 1) / 20) * 0.5 * (1 + np.cos(np.pi * step / steps))
        for group in optimizer.param_groups:
            group["lr"] = lr * scale
        loss = model(input_ids=ids, attention_mask=mask, labels=labels).loss
        optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        if log and (step + 1) % 50 == 0:
            log(f"language model step {step + 1}/{steps} loss {loss.item():.3f}")
    return model.eval()


def install_language_model(captioner, language_model: OPTForCausalLM) -> None:
    """Put pre-trained language-model weights into a BLIP-2 captioner (same shape)."""
    try:
        missing, unexpected = captioner.language_model.load_state_dict(
            language_model.state_dict(), strict=False
        )
    except RuntimeError as error:  # shapes differ
        raise ValueError(
            f"language model does not fit the captioner: {str(error).splitlines()[1].strip()}"
        ) from None
    if unexpected or [k for k in missing if "lm_head" not in k]:
        raise ValueError(
            f"language model does not fit the captioner: missing {missing}, unexpected {unexpected}"
        )
