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

Three things LAVIS does that transformers' Blip2 does not (checked against salesforce-lavis
1.0.2's own ``Blip2OPT``, ``make lavis-check``):

- ``ln_vision`` is a LayerNorm with eps **1e-5**; transformers' ``post_layernorm`` inherits the
  encoder's ``layer_norm_eps`` (1e-6). Loading a checkpoint sets the captioner's to 1e-5 and records
  it in the vision config (``post_layernorm_eps``), which :func:`facecap_lib.models.stem.from_pretrained`
  restores.
- OPT ties ``lm_head`` to its input embeddings, and LAVIS's trainer checkpoints (``requires_grad``
  parameters only) still carry ``opt_model.lm_head.weight``, a copy of *LAVIS's* OPT embeddings.
  It is never written over the captioner's tied embeddings: it is compared with them instead
  (:attr:`ConversionReport.lm_head`).
- EVA's attention has query and value biases but no key bias. transformers 5 fuses them into one
  ``qkv.bias`` with the key third zero. A key bias adds ``q . b_k`` to every score of a query,
  which the softmax cancels, so dropping it on export (:func:`to_lavis_state_dict`) is exact.

Keys with no place in a captioner but a known role are reported as ``unused``: the Q-Former's
text-only parts (word and position embeddings, the text feed-forward layers, the ITG head
``Qformer.cls``) and stage 1's heads (``vision_proj``, ``text_proj``, ``itm_head``, ``temp``). Any
other key the mapping cannot place, such as a timm ViT-B's final ``visual_encoder.norm`` or
``fc_norm`` (the converted model would silently skip a LayerNorm), is an error naming it, unless
the caller lists it in ``ignore``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import torch

LN_VISION_EPS = 1e-5  # LAVIS Blip2Base: ``ln_vision = LayerNorm(width)``, torch's default eps

_VISION_LAYER = [  # (LAVIS, transformers) name prefixes inside one ViT block
    ("norm1.", "layer_norm1."),
    ("norm2.", "layer_norm2."),
    ("attn.qkv.", "self_attn.qkv."),
    ("attn.proj.", "self_attn.projection."),
    ("attn.q_bias", "self_attn.q_bias"),
    ("attn.v_bias", "self_attn.v_bias"),
    ("mlp.fc1.", "mlp.fc1."),
    ("mlp.fc2.", "mlp.fc2."),
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
_KNOWN_UNUSED = re.compile(
    r"^Qformer\.(cls\.|bert\.embeddings\.(word_embeddings|position_embeddings|position_ids))"
    r"|^Qformer\.bert\.encoder\.layer\.\d+\.(intermediate|output)\."
    r"|^(vision_proj|text_proj|itm_head)\.|^temp$"
)
LM_HEAD = "opt_model.lm_head.weight"
LM_EMBEDDINGS = "opt_model.model.decoder.embed_tokens.weight"


def _swap_prefix(name: str, pairs: list[tuple[str, str]]) -> str | None:
    """``name`` with the first matching prefix replaced (a prefix without a trailing dot is a
    whole name), or ``None``."""
    for old, new in pairs:
        if name == old or (old.endswith(".") and name.startswith(old)):
            return new + name[len(old) :]
    return None


_BLOCKS = ("visual_encoder.blocks.", "vision_model.encoder.layers.")  # + "N." + a block's own name
_PREFIXES = [
    ("Qformer.bert.encoder.", "qformer.encoder."),
    ("opt_proj.", "language_projection."),
    ("opt_model.", "language_model."),
]
_ATTENTION = [  # inside the Q-Former's layers
    (".attention.self.", ".attention.attention."),
    (".crossattention.self.", ".crossattention.attention."),
]


def _translate(key: str, to_ours: bool) -> str | None:
    """A key in the other layout (LAVIS -> transformers when ``to_ours``, else back), or ``None``
    when the tables below have no place for it. One set of tables serves both directions."""

    fixed, blocks, layer, prefixes, attention = _ORIENTED[to_ours]
    if key in fixed:
        return fixed[key]
    source, target = blocks
    match = re.match(re.escape(source) + r"(\d+)\.(.*)$", key)
    if match:
        swapped = _swap_prefix(match.group(2), layer)
        return swapped and f"{target}{match.group(1)}.{swapped}"
    for prefix, _ in prefixes:
        if key.startswith(prefix):
            for old, new in attention:
                key = key.replace(old, new)
            return _swap_prefix(key, prefixes)
    return None


def _oriented(to_ours: bool) -> tuple:
    """The tables read in one direction: LAVIS -> transformers when ``to_ours``, else back."""

    def pairs(table):
        return [(a, b) if to_ours else (b, a) for a, b in table]

    blocks = _BLOCKS if to_ours else _BLOCKS[::-1]
    return (
        dict(pairs(_FIXED.items())),
        blocks,
        pairs(_VISION_LAYER),
        pairs(_PREFIXES),
        pairs(_ATTENTION),
    )


_ORIENTED = {to_ours: _oriented(to_ours) for to_ours in (True, False)}


def shape_mismatch(converted: dict, target: dict, skip: str | None = None):
    """The first converted tensor whose shape is not the target model's, as ``(name, its
    shape, the model's)``, or None; names starting with ``skip`` are not compared."""
    for name, tensor in converted.items():
        if skip and name.startswith(skip):
            continue
        if tuple(tensor.shape) != tuple(target[name].shape):
            return name, tuple(tensor.shape), tuple(target[name].shape)
    return None


def lavis_key(key: str) -> str | None:
    """The transformers name of a LAVIS key, or ``None`` for a key with no place in a captioner."""
    return None if _KNOWN_UNUSED.search(key) else _translate(key, to_ours=True)


def to_lavis_key(name: str) -> str | None:
    """The LAVIS name of a captioner key (the inverse of :func:`lavis_key`), or ``None`` for one
    LAVIS has no place for (a conv stem's layers)."""
    return _translate(name, to_ours=False)


@dataclass
class ConversionReport:
    """What a conversion did: the captioner's keys it filled, those it did not (``missing``),
    checkpoint keys with a known role but no place in the captioner (``unused``), those the caller
    chose to ignore (``ignored``), and what became of a tied ``lm_head`` (``lm_head``: ``"absent"``,
    ``"matches"`` the captioner's input embeddings, or ``"differs"``: the checkpoint was trained over
    another language model, whose embeddings were not copied)."""

    loaded: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    unused: list[str] = field(default_factory=list)
    ignored: list[str] = field(default_factory=list)
    lm_head: str = "absent"

    def summary(self) -> str:
        frozen_lm = sum(k.startswith("language_model.") for k in self.missing)
        text = (
            f"loaded {len(self.loaded)} tensors; missing {len(self.missing)} "
            f"({frozen_lm} of the language model); unused {len(self.unused)}"
        )
        if self.ignored:
            text += f"; ignored {len(self.ignored)}"
        if self.lm_head == "differs":
            text += (
                "; its tied lm_head differs from this captioner's input embeddings (it was trained "
                "over another language model): kept the captioner's"
            )
        return text


def _ignored(key: str, ignore: Iterable[str]) -> bool:
    return any(key == item or key.startswith(item.rstrip(".") + ".") for item in ignore)


def convert_lavis_state_dict(
    state: dict[str, torch.Tensor], target: dict[str, torch.Tensor], ignore: Iterable[str] = ()
) -> tuple[dict[str, torch.Tensor], ConversionReport]:
    """LAVIS tensors renamed (and EVA's q/v biases fused) to fit ``target`` (a captioner's state
    dict), and the report of what has no place. Raises ``ValueError`` naming every key that the
    mapping cannot place, has no known role and is not listed in ``ignore`` (keys or prefixes)."""
    ignore = tuple(ignore)
    out: dict[str, torch.Tensor] = {}
    origin: dict[str, str] = {}  # captioner key -> the checkpoint key it came from
    report = ConversionReport()
    unplaced: list[str] = []
    biases: dict[str, dict[str, torch.Tensor]] = {}
    for key, value in state.items():
        name = lavis_key(key)
        if _ignored(key, ignore):
            report.ignored.append(key)
        elif name is None:
            (report.unused if _KNOWN_UNUSED.search(key) else unplaced).append(key)
        elif name.endswith(("self_attn.q_bias", "self_attn.v_bias")):
            biases.setdefault(name.rsplit(".", 1)[0], {})[name.rsplit(".", 1)[1]] = value
            origin.setdefault(name.rsplit(".", 1)[0] + ".qkv.bias", key)
        else:
            out[name], origin[name] = value, key
    for prefix, pair in biases.items():
        if f"{prefix}.qkv.bias" in target:  # transformers 5: one fused bias, key bias zero
            q, v = pair["q_bias"], pair["v_bias"]
            out[f"{prefix}.qkv.bias"] = torch.cat([q, torch.zeros_like(q), v])
        else:
            for k, t in pair.items():
                out[f"{prefix}.{k}"], origin[f"{prefix}.{k}"] = t, origin[f"{prefix}.qkv.bias"]
    unplaced += [origin[name] for name in out if name not in target]
    if unplaced:
        shown = ", ".join(sorted(unplaced)[:8]) + (" ..." if len(unplaced) > 8 else "")
        raise ValueError(
            f"{len(unplaced)} checkpoint keys have no place in this captioner: {shown}. A final "
            "visual_encoder.norm or fc_norm belongs to a timm ViT whose forward pass the captioner "
            "would not reproduce; other keys mean another architecture or preset. Pass them in "
            "ignore (CaptionerConfig.lavis_ignore, a project's model.lavis_ignore) to load the rest anyway"
        )
    return out, report


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


def _tied(captioner) -> bool:
    lm = captioner.language_model
    head, embeddings = lm.get_output_embeddings(), lm.get_input_embeddings()
    return head is not None and head.weight is embeddings.weight


def _set_ln_vision_eps(captioner) -> None:
    captioner.vision_model.post_layernorm.eps = LN_VISION_EPS
    captioner.config.vision_config.post_layernorm_eps = LN_VISION_EPS


def load_lavis_checkpoint(
    captioner, path: str | Path, ignore: Iterable[str] = ()
) -> ConversionReport:
    """Load a LAVIS BLIP-2 OPT checkpoint into a ``Blip2ForConditionalGeneration`` of the same shape.

    Raises ``ValueError`` naming the key when a tensor's shape does not fit, or when keys have no
    place (see :func:`convert_lavis_state_dict`); keys the checkpoint does not hold (the frozen
    language model, usually) keep their current values and are listed in ``missing``. Sets the
    vision encoder's final LayerNorm to LAVIS's eps (1e-5).
    """
    state = dict(read_lavis_checkpoint(path))
    target = captioner.state_dict()
    report_lm_head = "absent"
    tied = _tied(captioner)
    if LM_HEAD in state and tied:
        head = state.pop(LM_HEAD)
        if LM_EMBEDDINGS in state:  # a full checkpoint: the embeddings it loads must be the head
            if not torch.equal(state[LM_EMBEDDINGS], head):
                raise ValueError(
                    f"{path}: {LM_HEAD} differs from {LM_EMBEDDINGS}, but this captioner's "
                    "language model ties the two"
                )
            report_lm_head = "matches"
        else:  # a trainer checkpoint: LAVIS's copy of its own OPT's embeddings
            ours = captioner.language_model.get_input_embeddings().weight.detach().cpu()
            same = head.shape == ours.shape and torch.equal(head.to(ours.dtype), ours)
            report_lm_head = "matches" if same else "differs"
    try:
        converted, report = convert_lavis_state_dict(state, target, ignore)
    except ValueError as error:
        raise ValueError(f"{path}: {error}") from None
    report.lm_head = report_lm_head
    if mismatch := shape_mismatch(converted, target):
        name, got, expected = mismatch
        whose = (
            "the checkpoint's language model is not this captioner's"
            if name.startswith("language_model.")
            else "the checkpoint is for another preset"
        )
        raise ValueError(f"{path}: {name} has shape {got}, the model expects {expected}: {whose}")
    report.loaded.extend(converted)
    captioner.load_state_dict(converted, strict=False)
    _set_ln_vision_eps(captioner)
    report.unused.sort()
    if tied and "language_model.model.decoder.embed_tokens.weight" in report.loaded:
        report.loaded.append("language_model.lm_head.weight")  # the same tensor
    report.missing = sorted(set(target) - set(report.loaded))
    return report


def to_lavis_state_dict(captioner, language_model: bool = True) -> dict[str, torch.Tensor]:
    """The captioner's weights under LAVIS ``Blip2OPT`` names, for ``model.load_state_dict``
    (``torch.save({"model": ...})`` makes a LAVIS checkpoint). ``language_model=False`` leaves out
    the frozen OPT, as LAVIS's trainer does; the tied ``lm_head`` is written when it is included.

    LAVIS's ``ln_vision`` uses eps 1e-5: a captioner whose ``post_layernorm`` uses another eps
    (one not loaded from LAVIS) gives image embeddings that differ by about that much. Raises
    ``ValueError`` for a captioner LAVIS cannot hold: a conv stem in place of the patch embedding.
    """
    out: dict[str, torch.Tensor] = {}
    for name, tensor in captioner.state_dict().items():
        if name.startswith("language_model.") and not language_model:
            continue
        tensor = tensor.detach().cpu().clone()
        match = re.match(r"(vision_model\.encoder\.layers\.\d+\.self_attn)\.qkv\.bias$", name)
        if match:  # EVA: q and v biases; the key bias drops out of the softmax (module docstring)
            third = tensor.shape[0] // 3
            block = to_lavis_key(match.group(1) + ".q_bias").rsplit(".", 1)[0]
            out[block + ".q_bias"], out[block + ".v_bias"] = tensor[:third], tensor[2 * third :]
            continue
        lavis = to_lavis_key(name)
        if lavis is None:
            raise ValueError(
                f"{name} has no place in a LAVIS Blip2OPT (LAVIS's ViT has a patch embedding, "
                "not a conv stem)"
            )
        out[lavis] = tensor
    positions = captioner.config.qformer_config.max_position_embeddings  # a buffer LAVIS saves
    out["Qformer.bert.embeddings.position_ids"] = torch.arange(positions).unsqueeze(0)
    return out
