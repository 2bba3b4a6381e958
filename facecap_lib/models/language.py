"""The small language model of a from-scratch preset (pre-trained by
:func:`facecap_lib.training.pretrain.pretrain_language_model`).

BLIP-2 keeps its language model frozen and teaches the Q-Former to prompt it, which presumes a
language model that already knows the language. The paper's is OPT, pre-trained on 180B tokens;
offline there are no OPT weights, so the ``tiny`` and ``small`` presets pre-train their OPT on the
text they will have to write: the caption corpus (rule-based, described and fused captions, the
fixed no-AU text). That is the whole language of the task, so a frozen model that has learned it
can be steered, as BLIP-2 steers OPT. (With real weights, load them instead.)
"""

from __future__ import annotations

from transformers import OPTForCausalLM

from facecap_lib.models.presets import Preset, blip2_config, tokenizer_ids


def language_model_config(spec: Preset, tokenizer):
    """The ``OPTConfig`` of a preset's language model for this tokenizer."""
    return blip2_config(spec, vocab_size=len(tokenizer), **tokenizer_ids(tokenizer)).text_config


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
