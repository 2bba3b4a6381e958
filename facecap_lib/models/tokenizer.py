"""Tokenizers: a byte-level BPE trained on the caption corpus for from-scratch presets.

Special tokens: ``<pad>``, ``</s>`` (beginning and end of text, as OPT uses it), ``<unk>`` and
``<image>``, the placeholder BLIP-2 fills with query embeddings, and ``<dec>``, which starts the
Q-Former's text generation in stage 1 (BLIP-2's ``[DEC]``). Pretrained presets use the model's
own tokenizer instead (``AutoTokenizer.from_pretrained``), with ``<image>`` added when missing.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import PreTrainedTokenizerFast

PAD, EOS, UNK, IMAGE_TOKEN, DEC_TOKEN = "<pad>", "</s>", "<unk>", "<image>", "<dec>"
SPECIAL = (PAD, EOS, UNK, IMAGE_TOKEN, DEC_TOKEN)


def train_tokenizer(
    texts: Iterable[str], vocab_size: int = 2000, min_frequency: int = 2
) -> PreTrainedTokenizerFast:
    """Train a byte-level BPE on ``texts`` (the caption corpus); deterministic for the same texts."""
    core = Tokenizer(models.BPE(unk_token=UNK))
    core.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=True)
    core.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=min_frequency,
        special_tokens=list(SPECIAL),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    core.train_from_iterator(sorted(set(texts)), trainer=trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=core,
        bos_token=EOS,
        eos_token=EOS,
        unk_token=UNK,
        pad_token=PAD,
        additional_special_tokens=[IMAGE_TOKEN, DEC_TOKEN],
        padding_side="right",
    )


def load_tokenizer(path: str | Path) -> PreTrainedTokenizerFast:
    """A tokenizer saved with ``save_pretrained`` (here or with a model checkpoint)."""
    tokenizer = PreTrainedTokenizerFast.from_pretrained(str(path))
    if IMAGE_TOKEN not in tokenizer.get_vocab():
        raise ValueError(f"tokenizer at {path} has no {IMAGE_TOKEN} token")
    return tokenizer
