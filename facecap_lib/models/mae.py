"""MAE pre-training of the image encoder, and moving its weights into BLIP-2's vision encoder.

The paper's ViT-B was pre-trained with MAE on AffectNet (200 epochs). :func:`mae_config` gives a
``ViTMAEConfig`` of a preset's encoder shape, :func:`facecap_lib.training.pretrain.pretrain_mae` trains ``ViTMAEForPreTraining``
on face images, and :func:`install_mae_encoder` copies the encoder into a BLIP-2 captioner:

- ViTMAE keeps separate query/key/value projections; BLIP-2 fuses them into one ``qkv`` matrix.
  transformers 5 gives it one fused bias (all three biases are copied); LAVIS and transformers 4
  keep query and value biases only, and the key bias is dropped: it adds the same ``q·b_k`` to
  every key of a query, which softmax ignores, so attention is unchanged;
- MAE's fixed sine-cosine position embeddings become BLIP-2's learned ones (as starting values);
- layer norms, MLPs and the final norm map one to one.

:func:`mae_to_blip2_state` reports every key it cannot place, so a mismatched checkpoint fails
loudly instead of loading half a model.
"""

from __future__ import annotations

import torch
from transformers import ViTMAEConfig, ViTMAEForPreTraining

from facecap_lib.models.presets import Preset
from facecap_lib.models.stem import ConvStem, check_stem

LAYER_NORM_EPS = 1e-6  # BLIP-2's vision encoder; MAE is configured to match


def mae_config(spec: Preset, mask_ratio: float = 0.75) -> ViTMAEConfig:
    v = spec.vision
    return ViTMAEConfig(
        hidden_size=v.hidden,
        num_hidden_layers=v.layers,
        num_attention_heads=v.heads,
        intermediate_size=v.mlp,
        image_size=v.image_size,
        patch_size=v.patch_size,
        qkv_bias=True,
        layer_norm_eps=LAYER_NORM_EPS,
        decoder_hidden_size=max(64, v.hidden // 2),
        decoder_num_hidden_layers=2,
        decoder_num_attention_heads=max(2, v.heads // 2),
        decoder_intermediate_size=max(128, v.mlp // 2),
        mask_ratio=mask_ratio,
        norm_pix_loss=True,
    )


def build_mae(spec: Preset, mask_ratio: float = 0.75) -> ViTMAEForPreTraining:
    """``ViTMAEForPreTraining`` of a preset's encoder shape with random weights; a preset with a
    conv stem gets it in place of MAE's patch projection, so the weights move across one to one.
    (The stem's receptive field reaches a few pixels into neighbouring patches, so masked patches
    leak a little into visible ones: reconstruction is slightly easier than with a linear
    projection, as in the hybrid ViTs that MAE-style methods such as ConvMAE mask explicitly.)"""
    mae = ViTMAEForPreTraining(mae_config(spec, mask_ratio))
    if spec.vision.stem:
        check_stem(spec.vision.stem, spec.vision.patch_size)
        mae.vit.embeddings.patch_embeddings.projection = ConvStem(
            spec.vision.stem, spec.vision.hidden, spec.vision.stem_layout
        )
    return mae


def mask_from_noise(noise: torch.Tensor, ratio: float) -> torch.Tensor:
    """The ``[B, patches]`` mask (1: masked) that ``ViTMAEEmbeddings.random_masking`` makes from
    the same ``noise``: the patches with the largest noise are masked."""
    keep = int(noise.shape[1] * (1 - ratio))
    order = torch.argsort(noise, dim=1)
    mask = torch.ones_like(noise)
    mask[:, :keep] = 0
    return torch.gather(mask, 1, torch.argsort(order, dim=1))


def mae_loss(mae: ViTMAEForPreTraining, pixel_values: torch.Tensor, noise=None):
    """MAE's loss and outputs, with the masked patches blanked in the **pixels** before a conv
    stem sees them (ConvMAE's fix, Gao et al. 2022): a stem's receptive field spans several
    patches, so without it every visible token carries a view of its masked neighbours and
    rebuilding them teaches little. The loss is against the true pixels of the masked patches,
    as ``ViTMAEForPreTraining`` computes it (per-patch normalised with ``norm_pix_loss``).
    Returns ``(loss, outputs)``; ``noise`` ``[B, patches]`` fixes the mask (default: random).
    ``mae`` may be wrapped for data parallelism (DDP): the forward pass goes through the wrapper,
    which synchronises the gradients, and the configuration is read from the model inside."""
    inner = getattr(mae, "module", mae)  # DDP keeps the model in .module; FSDP2 shards in place
    batch, patches = pixel_values.shape[0], inner.vit.embeddings.patch_embeddings.num_patches
    if noise is None:
        noise = torch.rand(batch, patches, device=pixel_values.device)
    seen = pixel_values
    if isinstance(inner.vit.embeddings.patch_embeddings.projection, ConvStem):
        grid, size = int(patches**0.5), inner.config.patch_size
        mask = mask_from_noise(noise, inner.config.mask_ratio).reshape(batch, 1, grid, grid)
        pixel_mask = mask.repeat_interleave(size, 2).repeat_interleave(size, 3)
        seen = pixel_values * (1 - pixel_mask).to(pixel_values.dtype)  # 0: the mean colour
    out = mae(pixel_values=seen, noise=noise)
    target = inner.patchify(pixel_values)
    if inner.config.norm_pix_loss:
        mean, var = target.mean(-1, keepdim=True), target.var(-1, keepdim=True)
        target = (target - mean) / (var + 1.0e-6) ** 0.5
    each = ((out.logits.float() - target.float()) ** 2).mean(-1)
    return (each * out.mask).sum() / out.mask.sum(), out


def mae_to_blip2_state(mae_state: dict[str, torch.Tensor], layers: int) -> dict[str, torch.Tensor]:
    """Encoder weights of a ``ViTMAEForPreTraining`` (or ``ViTMAEModel``) state dict, renamed and
    fused for ``Blip2VisionModel``. Raises ``KeyError`` naming a missing encoder weight."""
    prefix = "vit." if any(k.startswith("vit.") for k in mae_state) else ""

    def get(name: str) -> torch.Tensor:
        key = prefix + name
        if key not in mae_state:
            raise KeyError(f"MAE checkpoint has no {key!r}")
        return mae_state[key]

    out = {
        "embeddings.class_embedding": get("embeddings.cls_token"),
        "embeddings.position_embedding": get("embeddings.position_embeddings"),
        "post_layernorm.weight": get("layernorm.weight"),
        "post_layernorm.bias": get("layernorm.bias"),
    }
    projection = f"{prefix}embeddings.patch_embeddings.projection."
    moved = {  # one convolution, or a conv stem's layers and BatchNorm statistics
        "embeddings.patch_embedding." + key[len(projection) :]: value
        for key, value in mae_state.items()
        if key.startswith(projection)
    }
    if not moved:
        raise KeyError(f"MAE checkpoint has no {projection + 'weight'!r}")
    out.update(moved)
    for i in range(layers):
        dst = f"encoder.layers.{i}."
        # transformers 5 names (layers.i.attention.q_proj ...) or transformers 4 names, as older
        # MAE checkpoints have them (encoder.layer.i.attention.attention.query ...)
        new = any(k.startswith(f"{prefix}layers.{i}.") for k in mae_state)
        src = f"layers.{i}." if new else f"encoder.layer.{i}."
        names = (
            {
                "q": "attention.q_proj",
                "k": "attention.k_proj",
                "v": "attention.v_proj",
                "o": "attention.o_proj",
                "fc1": "mlp.fc1",
                "fc2": "mlp.fc2",
            }
            if new
            else {
                "q": "attention.attention.query",
                "k": "attention.attention.key",
                "v": "attention.attention.value",
                "o": "attention.output.dense",
                "fc1": "intermediate.dense",
                "fc2": "output.dense",
            }
        )
        q, k, v = (get(f"{src}{names[n]}.weight") for n in ("q", "k", "v"))
        out[dst + "self_attn.qkv.weight"] = torch.cat([q, k, v], dim=0)
        biases = [get(f"{src}{names[n]}.bias") for n in ("q", "k", "v")]
        out[dst + "self_attn.qkv.bias"] = torch.cat(biases)  # transformers 5: one fused bias
        out[dst + "self_attn.q_bias"] = biases[0]  # LAVIS / transformers 4: no key bias
        out[dst + "self_attn.v_bias"] = biases[2]
        pairs = {
            "self_attn.projection": names["o"],
            "mlp.fc1": names["fc1"],
            "mlp.fc2": names["fc2"],
            "layer_norm1": "layernorm_before",
            "layer_norm2": "layernorm_after",
        }
        for blip, mae in pairs.items():
            out[f"{dst}{blip}.weight"] = get(f"{src}{mae}.weight")
            out[f"{dst}{blip}.bias"] = get(f"{src}{mae}.bias")
    return out


def install_mae_encoder(captioner, mae: ViTMAEForPreTraining) -> None:
    """Copy an MAE encoder into a captioner's vision encoder (shapes must match exactly)."""
    state = mae_to_blip2_state(mae.state_dict(), captioner.config.vision_config.num_hidden_layers)
    target = captioner.vision_model.state_dict()
    layout = ("qkv.bias",) if any(k.endswith("qkv.bias") for k in target) else ("q_bias", "v_bias")
    state = {
        k: v
        for k, v in state.items()
        if not k.endswith(("qkv.bias", "q_bias", "v_bias")) or k.endswith(layout)
    }
    unknown = sorted(set(state) - set(target))
    unfilled = sorted(set(target) - set(state))
    wrong = [k for k in state if k in target and state[k].shape != target[k].shape]
    if unknown or unfilled or wrong:
        raise ValueError(
            f"MAE encoder does not fit: unknown {unknown}, not filled {unfilled}, shapes differ {wrong}"
        )
    captioner.vision_model.load_state_dict(state)


@torch.no_grad()
def reconstruct(
    mae: ViTMAEForPreTraining, pixel_values: torch.Tensor, seed: int = 0
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """What an MAE sees and rebuilds, in the input's pixel space (``[B, 3, H, W]``, normalised as
    the input): the image with its masked patches blanked, the reconstruction of the masked
    patches pasted into the visible ones, and the ``[B, patches]`` mask (1: masked). With
    ``norm_pix_loss`` the model predicts each patch normalised by its own mean and variance;
    those are taken from the true patch to draw it, as the MAE authors' demo does."""
    mae.eval()
    generator = torch.Generator().manual_seed(seed)
    patches = mae.config.num_channels * mae.config.patch_size**2
    noise = torch.rand(
        pixel_values.shape[0], mae.vit.embeddings.patch_embeddings.num_patches, generator=generator
    )
    _, out = mae_loss(mae, pixel_values, noise)
    target = mae.patchify(pixel_values)
    predicted = out.logits
    if mae.config.norm_pix_loss:
        mean, var = target.mean(-1, keepdim=True), target.var(-1, keepdim=True)
        predicted = predicted * (var + 1.0e-6) ** 0.5 + mean
    mask = out.mask[..., None].expand(-1, -1, patches)
    masked = mae.unpatchify(target * (1 - mask))
    pasted = mae.unpatchify(target * (1 - mask) + predicted * mask)
    return masked, pasted, out.mask
