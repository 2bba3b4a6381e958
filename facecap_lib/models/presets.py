"""Model presets: the shapes of the image encoder, the Q-Former and the language model.

``tiny`` trains on two CPU cores in minutes; ``small`` is a one-GPU model; ``vitb-opt2.7b``,
``vitg-opt2.7b`` and ``vitg-opt6.7b`` are the paper's models (supplementary Tables 9-11: ViT-B/16
pre-trained with MAE, or EVA ViT-g/14; BERT-base Q-Former with 32 queries and cross-attention in
every other layer; OPT-2.7B or OPT-6.7B). :func:`blip2_config` turns a preset and a tokenizer into
a transformers ``Blip2Config``; :func:`build_model` builds it with random weights.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from transformers import (
    Blip2Config,
    Blip2ForConditionalGeneration,
    Blip2QFormerConfig,
    Blip2VisionConfig,
    Blip2VisionModel,
    OPTConfig,
)

from facecap_lib.models.stem import LAYOUTS, check_layout, check_stem, install_conv_stem
from facecap_lib.models.tokenizer import IMAGE_TOKEN


@dataclass(frozen=True)
class VisionShape:
    image_size: int
    patch_size: int
    hidden: int
    layers: int
    heads: int
    mlp: int
    stem: tuple[int, ...] = ()  # conv stem channels (models.stem); () keeps the patch embedding
    stem_layout: str = LAYOUTS[0]  # the order of each stem layer (models.stem.LAYOUTS)


@dataclass(frozen=True)
class QFormerShape:
    hidden: int
    layers: int
    heads: int
    intermediate: int
    queries: int
    cross_attention_frequency: int = 2  # BLIP-2: cross-attention in every other block
    embed_dim: int = 256  # BLIP-2: the ITC embedding (stage 1)
    # BERT's 0.1 suits BLIP-2's Q-Former, initialised from BERT-base. From scratch, the image
    # signal in its hidden states starts far smaller than dropout's noise: with 0.1, ITC never
    # leaves log(batch) even on 32 solid colours, and captioners learn to ignore the image.
    dropout: float = 0.1
    # How its linear layers start when built with random weights: "xavier" (see init_qformer)
    # or "bert" (N(0, 0.02), transformers' default, meant to be overwritten by BERT-base).
    init: str = "xavier"


@dataclass(frozen=True)
class LMShape:
    hidden: int
    layers: int
    heads: int
    ffn: int
    max_positions: int = 2048
    vocab_size: int | None = None  # None: the tokenizer's (from-scratch presets)


@dataclass(frozen=True)
class Preset:
    name: str
    vision: VisionShape
    qformer: QFormerShape
    lm: LMShape
    pretrained: str | None = None  # a Hugging Face id whose weights and tokenizer fit this shape


PRESETS: dict[str, Preset] = {
    "tiny": Preset(
        "tiny",
        VisionShape(
            image_size=64, patch_size=8, hidden=128, layers=3, heads=4, mlp=256, stem=(16, 64, 128)
        ),
        QFormerShape(
            hidden=128, layers=2, heads=4, intermediate=256, queries=8, embed_dim=64, dropout=0.0
        ),
        LMShape(hidden=128, layers=2, heads=4, ffn=256, max_positions=256),
    ),
    "small": Preset(
        "small",
        VisionShape(
            image_size=224,
            patch_size=16,
            hidden=384,
            layers=12,
            heads=6,
            mlp=1536,
            stem=(32, 64, 128, 256),
        ),
        QFormerShape(hidden=384, layers=6, heads=6, intermediate=1536, queries=32, dropout=0.0),
        LMShape(hidden=768, layers=12, heads=12, ffn=3072, max_positions=512),
    ),
    "vitb-opt2.7b": Preset(
        "vitb-opt2.7b",
        VisionShape(image_size=224, patch_size=16, hidden=768, layers=12, heads=12, mlp=3072),
        QFormerShape(hidden=768, layers=12, heads=12, intermediate=3072, queries=32),
        LMShape(hidden=2560, layers=32, heads=32, ffn=10240, vocab_size=50272),
        pretrained="facebook/opt-2.7b",
    ),
    "vitg-opt2.7b": Preset(
        "vitg-opt2.7b",
        VisionShape(image_size=224, patch_size=14, hidden=1408, layers=39, heads=16, mlp=6144),
        QFormerShape(hidden=768, layers=12, heads=12, intermediate=3072, queries=32),
        LMShape(hidden=2560, layers=32, heads=32, ffn=10240, vocab_size=50272),
        pretrained="Salesforce/blip2-opt-2.7b",
    ),
    "vitg-opt6.7b": Preset(
        "vitg-opt6.7b",
        VisionShape(image_size=224, patch_size=14, hidden=1408, layers=39, heads=16, mlp=6144),
        QFormerShape(hidden=768, layers=12, heads=12, intermediate=3072, queries=32),
        LMShape(hidden=4096, layers=32, heads=32, ffn=16384, vocab_size=50272),
        pretrained="Salesforce/blip2-opt-6.7b",
    ),
}


def preset(name: str) -> Preset:
    try:
        return PRESETS[name]
    except KeyError:
        raise ValueError(f"unknown preset {name!r}; known: {list(PRESETS)}") from None


def blip2_config(
    spec: Preset,
    *,
    vocab_size: int,
    image_token_id: int,
    pad_token_id: int,
    bos_token_id: int,
    eos_token_id: int,
) -> Blip2Config:
    """A ``Blip2Config`` of this shape for a tokenizer with these special tokens."""
    v, q, lm = spec.vision, spec.qformer, spec.lm
    vision = vision_config(spec)
    qformer = Blip2QFormerConfig(
        hidden_size=q.hidden,
        num_hidden_layers=q.layers,
        num_attention_heads=q.heads,
        intermediate_size=q.intermediate,
        cross_attention_frequency=q.cross_attention_frequency,
        encoder_hidden_size=v.hidden,
        hidden_dropout_prob=q.dropout,
        attention_probs_dropout_prob=q.dropout,
        vocab_size=vocab_size,
        pad_token_id=pad_token_id,
    )
    text = OPTConfig(
        vocab_size=lm.vocab_size or vocab_size,
        hidden_size=lm.hidden,
        num_hidden_layers=lm.layers,
        num_attention_heads=lm.heads,
        ffn_dim=lm.ffn,
        word_embed_proj_dim=lm.hidden,
        max_position_embeddings=lm.max_positions,
        pad_token_id=pad_token_id,
        bos_token_id=bos_token_id,
        eos_token_id=eos_token_id,
    )
    return Blip2Config(
        vision_config=vision.to_dict(),
        qformer_config=qformer.to_dict(),
        text_config=text.to_dict(),
        num_query_tokens=q.queries,
        image_token_index=image_token_id,
    )


def vision_config(spec: Preset) -> Blip2VisionConfig:
    """The ``Blip2VisionConfig`` of a preset's image encoder (its conv stem included)."""
    v = spec.vision
    vision = Blip2VisionConfig(
        image_size=v.image_size,
        patch_size=v.patch_size,
        hidden_size=v.hidden,
        num_hidden_layers=v.layers,
        num_attention_heads=v.heads,
        intermediate_size=v.mlp,
        initializer_range=0.02,  # transformers' code default is 1e-10: a from-scratch ViT would see nothing
    )
    if v.stem:
        check_stem(v.stem, v.patch_size)
        check_layout(v.stem_layout)
        vision.conv_stem = list(v.stem)
        vision.conv_stem_layout = v.stem_layout
    return vision


def build_vision_encoder(spec: Preset):
    """A preset's image encoder alone (``Blip2VisionModel``, conv stem installed), random weights."""
    encoder = Blip2VisionModel(vision_config(spec))
    install_conv_stem(encoder)
    return encoder


def build_model(spec: Preset, tokenizer) -> Blip2ForConditionalGeneration:
    """A BLIP-2 captioner of this shape with random weights, for a tokenizer of :mod:`.tokenizer`."""
    ids = tokenizer_ids(tokenizer)
    config = blip2_config(spec, vocab_size=len(tokenizer), **ids)
    model = init_qformer(Blip2ForConditionalGeneration(config), spec.qformer.init)
    install_conv_stem(model)
    return model


QFORMER_INITS = ("xavier", "bert")
# the Q-Former and the projections of its outputs (a classifier head such as ITM's keeps its
# small initialisation, so that its first losses are those of a model that knows nothing)
QFORMER_LINEARS = ("qformer", "language_projection", "vision_projection", "text_projection")


def init_qformer(model, init: str = "xavier"):
    """Start a randomly built Q-Former (of a captioner or a stage-1 model) as BLIP-2 needs.

    - The learned queries: N(0, 0.02), BLIP-2's initialisation (:func:`init_query_tokens`).
    - With ``init="xavier"``, every linear layer of the Q-Former and of the heads on its outputs
      (projection to the LM; stage 1's ITC projections): Xavier-uniform weights,
      zero biases. BLIP-2 starts its Q-Former from BERT-base; from scratch, transformers'
      N(0, 0.02) (scaled for BERT-base's width, 768) leaves a narrow Q-Former's outputs almost
      input-independent: each block adds about 5% to the LayerNorm-ed residual of the queries
      (or of the text's first token) at width 128, against about 40% at 768. With it, the
      ``tiny`` preset's queries gave every face the same output (cosine 1.000), stage 1's ITC sat
      at log(batch) and AU-BLIP wrote 14 distinct captions for chapter 4's 400 held-out faces
      (its soft prompt: 9% of the variance across faces). With Xavier: 35 to 50 distinct
      captions, 26-34% of the variance across faces, ITC 3.47 -> 3.26 in 400 steps (2026-11-26).
    - ``init="bert"`` keeps transformers' initialisation (weights loaded over it anyway).
    """
    if init not in QFORMER_INITS:
        raise ValueError(f"unknown Q-Former init {init!r}; known: {list(QFORMER_INITS)}")
    init_query_tokens(model)
    if init == "xavier":
        with torch.no_grad():
            for name in QFORMER_LINEARS:
                part = getattr(model, name, None)
                for module in part.modules() if part is not None else ():
                    if isinstance(module, nn.Linear):
                        nn.init.xavier_uniform_(module.weight)
                        if module.bias is not None:
                            module.bias.zero_()
    return model


def init_query_tokens(model):
    """Give the learned queries BLIP-2's initialisation, N(0, 0.02) (LAVIS ``init_Qformer``).

    transformers initialises ``query_tokens`` to zeros, which is harmless when pre-trained weights
    are loaded over them but fatal from scratch: identical queries get identical gradients, so
    they stay identical and the Q-Former hands the language model one query repeated, not
    ``num_query_tokens`` different ones."""
    with torch.no_grad():
        model.query_tokens.normal_(0.0, model.config.qformer_config.initializer_range)
    return model


def tokenizer_ids(tokenizer) -> dict[str, int]:
    return {
        "image_token_id": tokenizer.convert_tokens_to_ids(IMAGE_TOKEN),
        "pad_token_id": tokenizer.pad_token_id,
        "bos_token_id": tokenizer.bos_token_id,
        "eos_token_id": tokenizer.eos_token_id,
    }
