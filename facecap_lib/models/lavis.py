"""The authors' LAVIS checkpoints (AU-BLIP, Exp-BLIP ``.pth``) in transformers' Blip2 layout.

A LAVIS training checkpoint is ``{"model": state_dict, "optimizer": ..., "config": ..., ...}``
and holds only the trained weights: the frozen OPT is usually absent (load it from its own weights
first, e.g. ``Salesforce/blip2-opt-2.7b``). The key mapping follows transformers' own BLIP-2
conversion script:

==============================================  ================================================
LAVIS                                           transformers ``Blip2ForConditionalGeneration``
==============================================  ================================================
``visual_encoder.cls_token`` / ``pos_embed``    ``vision_model.embeddings.class_embedding`` /
                                                ``position_embedding``
``visual_encoder.patch_embed.proj.*``           ``vision_model.embeddings.patch_embedding.*``
``visual_encoder.blocks.N.norm1`` / ``norm2``   ``vision_model.encoder.layers.N.layer_norm1/2``
``visual_encoder.blocks.N.attn.qkv.weight``     ``...layers.N.self_attn.qkv.weight``
``...attn.q_bias`` + ``v_bias`` (EVA)           ``...self_attn.qkv.bias`` (key bias 0), or
                                                ``q_bias`` / ``v_bias`` (transformers 4)
``visual_encoder.blocks.N.attn.proj.*``         ``...layers.N.self_attn.projection.*``
``visual_encoder.blocks.N.mlp.fc1/fc2.*``       ``...layers.N.mlp.fc1/fc2.*``
``ln_vision.*``                                 ``vision_model.post_layernorm.*``
``Qformer.bert.embeddings.LayerNorm.*``         ``qformer.layernorm.*``
``Qformer.bert.encoder.layer.N.*.self.*``       ``qformer.encoder.layer.N.*.attention.*``
``opt_proj.*``                                  ``language_projection.*``
``opt_model.*``                                 ``language_model.*``
==============================================  ================================================

The Q-Former's text-only parts (word and position embeddings, the text feed-forward layers, the
ITG head ``Qformer.cls``) have no place in the captioner and are reported as unused, not loaded.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import torch

_VISION_LAYER = [
    (r"norm1\.", "layer_norm1."),
    (r"norm2\.", "layer_norm2."),
    (r"attn\.qkv\.", "self_attn.qkv."),
    (r"attn\.proj\.", "self_attn.projection."),
    (r"attn\.q_bias$", "self_attn.q_bias"),
    (r"attn\.v_bias$", "self_attn.v_bias"),
    (r"mlp\.fc1\.", "mlp.fc1."),
    (r"mlp\.fc2\.", "mlp.fc2."),
]
_FIXED = {
    "visual_encoder.cls_token": "vision_model.embeddings.class_embedding",
    "visual_encoder.pos_embed": "vision_model.embeddings.position_embedding",
    "visual_encoder.patch_embed.proj.weight": "vision_model.embeddings.patch_embedding.weight",
    "visual_encoder.patch_embed.proj.bias": "vision_model.embeddings.patch_embedding.bias",
    "ln_vision.weight": "vision_model.post_layernorm.weight",
    "ln_vision.bias": "vision_model.post_layernorm.bias",
    "Qformer.bert.embeddings.LayerNorm.weight": "qformer.layernorm.weight",
    "Qformer.bert.embeddings.LayerNorm.bias": "qformer.layernorm.bias",
    "query_tokens": "query_tokens",
}
_TEXT_ONLY = re.compile(
    r"^Qformer\.(cls\.|bert\.embeddings\.(word_embeddings|position_embeddings|position_ids))"
    r"|^Qformer\.bert\.encoder\.layer\.\d+\.(intermediate|output)\."
)


def lavis_key(key: str) -> str | None:
    """The transformers name of a LAVIS key, or ``None`` for a key with no place in a captioner."""
    if key in _FIXED:
        return _FIXED[key]
    if _TEXT_ONLY.search(key):
        return None
    match = re.match(r"visual_encoder\.blocks\.(\d+)\.(.*)$", key)
    if match:
        rest = match.group(2)
        for pattern, replacement in _VISION_LAYER:
            if re.match(pattern, rest):
                return f"vision_model.encoder.layers.{match.group(1)}." + re.sub(
                    pattern, replacement, rest, count=1
                )
        return None
    if key.startswith("Qformer.bert.encoder."):
        key = "qformer.encoder." + key[len("Qformer.bert.encoder.") :]
        return key.replace(".attention.self.", ".attention.attention.").replace(
            ".crossattention.self.", ".crossattention.attention."
        )
    if key.startswith("opt_proj."):
        return "language_projection." + key[len("opt_proj.") :]
    if key.startswith("opt_model."):
        return "language_model." + key[len("opt_model.") :]
    return None


@dataclass
class ConversionReport:
    """What a conversion did: the captioner's keys it filled, those it did not (``missing``), and
    checkpoint keys with no place in the captioner (``unused``)."""

    loaded: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    unused: list[str] = field(default_factory=list)

    def summary(self) -> str:
        frozen_lm = sum(k.startswith("language_model.") for k in self.missing)
        return (
            f"loaded {len(self.loaded)} tensors; missing {len(self.missing)} "
            f"({frozen_lm} of the language model); unused {len(self.unused)}"
        )


def convert_lavis_state_dict(
    state: dict[str, torch.Tensor], target: dict[str, torch.Tensor]
) -> tuple[dict[str, torch.Tensor], list[str]]:
    """LAVIS tensors renamed (and EVA's q/v biases fused) to fit ``target`` (a captioner's state
    dict); returns them and the LAVIS keys left unused."""
    out: dict[str, torch.Tensor] = {}
    unused: list[str] = []
    biases: dict[str, dict[str, torch.Tensor]] = {}
    for key, value in state.items():
        name = lavis_key(key)
        if name is None:
            unused.append(key)
        elif name.endswith(("self_attn.q_bias", "self_attn.v_bias")):
            biases.setdefault(name.rsplit(".", 1)[0], {})[name.rsplit(".", 1)[1]] = value
        else:
            out[name] = value
    for prefix, pair in biases.items():
        if f"{prefix}.qkv.bias" in target:  # transformers 5: one fused bias, key bias zero
            q, v = pair["q_bias"], pair["v_bias"]
            out[f"{prefix}.qkv.bias"] = torch.cat([q, torch.zeros_like(q), v])
        else:
            out.update({f"{prefix}.{k}": t for k, t in pair.items()})
    return out, unused


def read_lavis_checkpoint(path: str | Path) -> dict[str, torch.Tensor]:
    """The state dict of a LAVIS ``.pth`` (a bare state dict or a training checkpoint)."""
    path = Path(path)
    try:
        loaded = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # noqa: BLE001 - any unpickling failure is a bad file
        raise ValueError(f"{path}: not a readable PyTorch checkpoint ({error})") from None
    state = loaded.get("model", loaded) if isinstance(loaded, dict) else None
    if not isinstance(state, dict) or not all(torch.is_tensor(v) for v in state.values()):
        raise ValueError(f"{path}: expected a state dict or {{'model': state dict}}")
    return state


def load_lavis_checkpoint(captioner, path: str | Path) -> ConversionReport:
    """Load a LAVIS BLIP-2 OPT checkpoint into a ``Blip2ForConditionalGeneration`` of the same shape.

    Raises ``ValueError`` naming the key when a tensor's shape does not fit; keys the checkpoint
    does not hold (the frozen language model, usually) keep their current values and are listed in
    ``missing``.
    """
    target = captioner.state_dict()
    converted, unused = convert_lavis_state_dict(read_lavis_checkpoint(path), target)
    report = ConversionReport(unused=sorted(unused))
    for name, tensor in converted.items():
        if name not in target:
            report.unused.append(name)
            continue
        if tuple(tensor.shape) != tuple(target[name].shape):
            raise ValueError(
                f"{path}: {name} has shape {tuple(tensor.shape)}, the model expects "
                f"{tuple(target[name].shape)}: the checkpoint is for another preset"
            )
        report.loaded.append(name)
    captioner.load_state_dict({k: converted[k] for k in report.loaded}, strict=False)
    report.missing = sorted(set(target) - set(report.loaded))
    return report
