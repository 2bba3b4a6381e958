"""A convolutional stem for from-scratch vision encoders ("Early convolutions help transformers
see better", Xiao et al., NeurIPS 2021).

A ViT cuts the image into patches with one linear map, so it must learn from data alone that a
raised brow is the same thing a few pixels to the left. Trained from scratch on a few thousand
faces with random poses, the tiny preset's ViT barely learns AUs at all (chapter 4,
``benchmarks/encoder_learnability.py``). A stack of 3x3 stride-2 convolutions in place of the
patch embedding gives the encoder the locality and translation equivariance of a CNN, keeps the
encoder a ViT in every other respect (the same tokens, shapes and Q-Former interface) and is the
standard fix. Pre-trained presets keep their patch embedding: their weights already see.

The stem's channels are stored in the vision config (``conv_stem``), so a checkpoint knows it has
one; :func:`install_conv_stem` rebuilds it before weights are loaded (:func:`from_pretrained`).

Each layer's order is its **layout**, also stored in the config (``conv_stem_layout``):

- ``conv-pool-norm`` (the default): 3x3 convolution, 2x2 max-pool, BatchNorm, ReLU.
- ``conv-norm-pool``: convolution, BatchNorm, ReLU, max-pool, the textbook order. Checkpoints
  whose config names no layout were saved with it and still load.

The two compute the same family of functions: max-pooling commutes with ReLU and with any
per-channel increasing affine map, which BatchNorm is at inference whenever its scale is positive
(the two differ only in which values BatchNorm's training statistics are taken over). Pooling
first normalises and activates a quarter of the values. On two CPU cores that makes the ``tiny``
stem 87 -> 70 ms per training step of 32 (forward and backward), and the supervised AU probe
(``benchmarks/encoder_probe.py --start none``, then ``caption_ceiling.py``) at 1000 steps
learns as well: mean F1 56.2 -> 55.6, ROC-AUC 0.841 -> 0.860. The ``tiny`` stem's first layer, the only one at full resolution, has 16
channels rather than 32: 70 -> 52 ms, and the same probe 57.7 / 0.853 (2026-11-26).
"""

from __future__ import annotations

import torch
from torch import nn

LAYOUTS = ("conv-pool-norm", "conv-norm-pool")
LEGACY_LAYOUT = "conv-norm-pool"  # what a config without ``conv_stem_layout`` was saved with


class ConvStem(nn.Module):
    """``len(channels)`` 3x3 convolutions, each followed by a 2x2 max-pool, BatchNorm and ReLU in
    the order ``layout`` names, then a 1x1 projection to the encoder width:
    (B, 3, H, W) -> (B, hidden, H / 2**n, W / 2**n), the shape of the patch embedding it replaces."""

    def __init__(self, channels: tuple[int, ...], hidden: int, layout: str = LAYOUTS[0]):
        super().__init__()
        check_layout(layout)
        layers, previous = [], 3
        for width in channels:  # a 3x3 at the current resolution, then halve the grid
            conv = nn.Conv2d(previous, width, 3, padding=1, bias=False)
            norm, act, pool = nn.BatchNorm2d(width), nn.ReLU(), nn.MaxPool2d(2)
            layers += (
                [conv, pool, norm, act] if layout == "conv-pool-norm" else [conv, norm, act, pool]
            )
            previous = width
        layers.append(nn.Conv2d(previous, hidden, 1))
        self.layers = nn.Sequential(*layers)
        self.layout = layout

    @property
    def weight(self):
        """The projection's weight: Blip2's embeddings read ``patch_embedding.weight.dtype``."""
        return self.layers[-1].weight

    def forward(self, pixels):
        # channels-last: oneDNN's convolutions and the max-pools run on it without reordering.
        # ``data.images.to_tensor``'s batches (a permuted HWC array) are channels-last already;
        # this makes the speed of other callers' tensors the same: the tiny stem's forward and
        # backward on a batch of 32 took 63 ms from an ordinary tensor and 43 ms from a
        # channels-last one, on two CPU cores (2026-11-26)
        return self.layers(pixels.contiguous(memory_format=torch.channels_last))


def check_stem(channels: tuple[int, ...], patch_size: int) -> None:
    if 2 ** len(channels) != patch_size:
        raise ValueError(
            f"conv_stem has {len(channels)} stride-2 layers, which make {2 ** len(channels)}-pixel "
            f"patches, but patch_size is {patch_size}: give log2(patch_size) channel widths"
        )


def check_layout(layout: str) -> None:
    if layout not in LAYOUTS:
        raise ValueError(f"unknown conv stem layout {layout!r}; known: {list(LAYOUTS)}")


def stem_layout(vision_config) -> str:
    """The layout a vision config names (:data:`LEGACY_LAYOUT` when it names none)."""
    return getattr(vision_config, "conv_stem_layout", None) or LEGACY_LAYOUT


def install_conv_stem(model) -> None:
    """Replace the patch embedding of ``model``'s vision encoder (a BLIP-2 model, or its
    ``Blip2VisionModel`` alone) by the :class:`ConvStem` that its vision config names
    (``conv_stem``); nothing to do when it names none."""
    config = getattr(model.config, "vision_config", model.config)
    channels = tuple(getattr(config, "conv_stem", None) or ())
    if not channels:
        return
    check_stem(channels, config.patch_size)
    embeddings = getattr(model, "vision_model", model).embeddings
    if isinstance(embeddings.patch_embedding, ConvStem):
        return
    embeddings.patch_embedding = ConvStem(channels, config.hidden_size, stem_layout(config))
    stem_dtype(model)


STEM_PREFIX = "vision_model.embeddings.patch_embedding."


def from_pretrained(model_class, path, **kwargs):
    """``model_class.from_pretrained(path)`` that also restores a conv stem and the eps of the
    vision encoder's final LayerNorm (:func:`restore_post_layernorm_eps`).

    transformers builds the stock patch embedding, so a stem's weights come back as "unexpected"
    and the patch convolution as "missing"; both are expected here and not reported. The stem is
    then installed and its weights (and BatchNorm statistics) loaded strictly from the same files."""
    from transformers import PretrainedConfig
    from transformers.utils import logging

    config = kwargs.pop("config", None) or model_class.config_class.from_pretrained(path)
    vision = getattr(config, "vision_config", config)
    if not isinstance(vision, PretrainedConfig) or not getattr(vision, "conv_stem", None):
        return restore_post_layernorm_eps(
            model_class.from_pretrained(path, config=config, **kwargs)
        )
    level = logging.get_verbosity()
    logging.set_verbosity_error()
    try:
        model = model_class.from_pretrained(path, config=config, **kwargs)
    finally:
        logging.set_verbosity(level)
    install_conv_stem(model)
    state = {
        k[len(STEM_PREFIX) :]: v
        for k, v in saved_weights(path).items()
        if k.startswith(STEM_PREFIX)
    }
    stem = model.vision_model.embeddings.patch_embedding
    try:
        stem.load_state_dict(state, strict=True)
    except RuntimeError as error:
        raise ValueError(f"{path}: conv stem weights do not fit the config: {error}") from None
    return restore_post_layernorm_eps(stem_dtype(model))


def restore_post_layernorm_eps(model):
    """Give the vision encoder's final LayerNorm the eps its config records in
    ``post_layernorm_eps`` (LAVIS's ``ln_vision`` uses 1e-5 where transformers' Blip2 inherits the
    encoder's ``layer_norm_eps``, see :mod:`facecap_lib.models.lavis`); nothing when none is recorded."""
    config = getattr(getattr(model, "config", None), "vision_config", None)
    eps = getattr(config, "post_layernorm_eps", None)
    vision = getattr(model, "vision_model", None)
    if eps is not None and vision is not None and hasattr(vision, "post_layernorm"):
        vision.post_layernorm.eps = float(eps)
    return model


def stem_dtype(model):
    """Give the stem the dtype of the vision encoder it was installed into."""
    embeddings = getattr(model, "vision_model", model).embeddings
    embeddings.patch_embedding.to(
        embeddings.class_embedding.device, embeddings.class_embedding.dtype
    )
    return model


def saved_weights(path) -> dict:
    """The whole state dict a ``save_pretrained`` folder holds (one file or shards)."""
    import json
    from pathlib import Path

    from safetensors.torch import load_file
    from transformers.utils import SAFE_WEIGHTS_INDEX_NAME, SAFE_WEIGHTS_NAME

    folder = Path(path)
    if (folder / SAFE_WEIGHTS_NAME).exists():
        return load_file(folder / SAFE_WEIGHTS_NAME)
    index = folder / SAFE_WEIGHTS_INDEX_NAME
    if not index.exists():
        raise FileNotFoundError(f"{folder}: no {SAFE_WEIGHTS_NAME} or {SAFE_WEIGHTS_INDEX_NAME}")
    shards = set(json.loads(index.read_text())["weight_map"].values())
    state = {}
    for shard in sorted(shards):
        state.update(load_file(folder / shard))
    return state
