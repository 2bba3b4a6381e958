"""Starting from pre-trained weights: a Hugging Face model id or a local folder.

``load_pretrained("Salesforce/blip2-opt-2.7b")`` (or the folder of a ``save_pretrained`` copy)
gives a ``Blip2ForConditionalGeneration`` and its own tokenizer, ready for
:func:`facecap_lib.training.captioner.train_captioner` (``CaptionerConfig.init``). Nothing is downloaded when
``HF_HUB_OFFLINE=1``: the weights must then be in the local cache or folder. A tokenizer without
BLIP-2's ``<image>`` placeholder gets it added, and the model's embeddings grow to match.
"""

from __future__ import annotations

from pathlib import Path

from transformers import AutoTokenizer, Blip2ForConditionalGeneration

from facecap_lib.models.stem import from_pretrained
from facecap_lib.models.tokenizer import IMAGE_TOKEN


def load_pretrained(name_or_path: str | Path) -> tuple[Blip2ForConditionalGeneration, object]:
    """The captioner and tokenizer at a Hugging Face id or local folder."""
    where = str(name_or_path)
    try:
        model = from_pretrained(Blip2ForConditionalGeneration, where)
        tokenizer = AutoTokenizer.from_pretrained(where)
    except OSError as error:
        raise ValueError(
            f"cannot load a BLIP-2 captioner from {where!r}: {str(error).splitlines()[0]} "
            "(a Hugging Face id needs network access or a filled cache; a folder needs "
            "config.json, the weights and the tokenizer files)"
        ) from None
    if IMAGE_TOKEN not in tokenizer.get_vocab():
        tokenizer.add_special_tokens({"additional_special_tokens": [IMAGE_TOKEN]})
        model.resize_token_embeddings(len(tokenizer))
    model.config.image_token_index = tokenizer.convert_tokens_to_ids(IMAGE_TOKEN)
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    return model, tokenizer
