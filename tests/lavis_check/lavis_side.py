"""The LAVIS half of ``make lavis-check``: run in its own environment (salesforce-lavis 1.0.2,
transformers 4.26.1, timm 0.4.12), never imported by facecap.

``build``: a tiny ``Blip2OPT`` made of LAVIS's own classes, in the shapes facecap wrote to
``shapes.json``. Only what ``Blip2OPT.__init__`` downloads is replaced: EVA-CLIP's weights (a small
``eva_vit.VisionTransformer``), ``bert-base-uncased``'s config (a local ``BertConfig``) and OPT's
weights and tokenizer (a random ``modeling_opt.OPTForCausalLM`` and facecap's tokenizer files).
Writes a full checkpoint, a trainer checkpoint (``requires_grad`` parameters only, filtered as
LAVIS's ``RunnerBase._save_checkpoint`` does), the logits of ``Blip2OPT.forward`` on a batch and
the greedy captions of ``Blip2OPT.generate``.

``load``: a fresh ``Blip2OPT`` of the same shape loads facecap's export as LAVIS loads any
checkpoint (``load_state_dict(strict=False)``) and must find no key missing or unexpected, and
give the same logits and captions.

Usage: ``python lavis_side.py {build,load} FOLDER``.
"""

from __future__ import annotations

import importlib.util
import json
import sys
import types
from functools import partial
from pathlib import Path

import torch
from torch import nn


def import_lavis():
    """LAVIS's BLIP-2 OPT modules without ``lavis/__init__.py`` and ``lavis/models/__init__.py``,
    which import every model and dataset (decord, opencv, webdataset ...). PyPI's torchvision C
    extension does not load beside CPU torch; LAVIS needs only its Python parts."""
    sys.modules["torchvision._meta_registrations"] = types.ModuleType("_meta_registrations")
    root = Path(importlib.util.find_spec("lavis").submodule_search_locations[0])
    for name, folder in (("lavis", root), ("lavis.models", root / "models")):
        package = types.ModuleType(name)
        package.__path__ = [str(folder)]
        sys.modules[name] = package
    from lavis.models.base_model import BaseModel

    sys.modules["lavis.models"].BaseModel = BaseModel  # the registry's decorator imports it here
    from lavis.models import eva_vit
    from lavis.models.blip2_models import Qformer, blip2, blip2_opt, modeling_opt

    return types.SimpleNamespace(
        Blip2OPT=blip2_opt.Blip2OPT,
        LayerNorm=blip2.LayerNorm,
        disabled_train=blip2.disabled_train,
        BertConfig=Qformer.BertConfig,
        BertLMHeadModel=Qformer.BertLMHeadModel,
        VisionTransformer=eva_vit.VisionTransformer,
        OPTForCausalLM=modeling_opt.OPTForCausalLM,
        OPTConfig=modeling_opt.OPTConfig,
    )


def build_blip2_opt(lavis, shapes: dict, folder: Path, seed: int):
    """``Blip2OPT.__init__`` step by step (freeze_vit=True, prompt ""), downloads replaced."""
    from transformers import GPT2Tokenizer

    torch.manual_seed(seed)
    v, q, lm = shapes["vision"], shapes["qformer"], shapes["opt"]
    model = lavis.Blip2OPT.__new__(lavis.Blip2OPT)
    nn.Module.__init__(model)
    model.visual_encoder = lavis.VisionTransformer(
        img_size=v["image_size"],
        patch_size=v["patch_size"],
        use_mean_pooling=False,
        embed_dim=v["hidden_size"],
        depth=v["num_hidden_layers"],
        num_heads=v["num_attention_heads"],
        mlp_ratio=v["intermediate_size"] / v["hidden_size"],
        qkv_bias=True,
        norm_layer=partial(nn.LayerNorm, eps=v["layer_norm_eps"]),
    )
    model.ln_vision = lavis.LayerNorm(model.visual_encoder.num_features)
    for param in model.visual_encoder.parameters():
        param.requires_grad = False
    model.visual_encoder = model.visual_encoder.eval()
    model.visual_encoder.train = lavis.disabled_train

    config = lavis.BertConfig(  # Blip2Base.init_Qformer, over a local config
        hidden_size=q["hidden_size"],
        num_hidden_layers=q["num_hidden_layers"],
        num_attention_heads=q["num_attention_heads"],
        intermediate_size=q["intermediate_size"],
        layer_norm_eps=q["layer_norm_eps"],
    )
    config.encoder_width = model.visual_encoder.num_features
    config.add_cross_attention = True
    config.cross_attention_freq = q["cross_attention_frequency"]
    config.query_length = shapes["num_query_tokens"]
    model.Qformer = lavis.BertLMHeadModel(config)
    model.query_tokens = nn.Parameter(torch.zeros(1, config.query_length, config.hidden_size))
    model.query_tokens.data.normal_(mean=0.0, std=config.initializer_range)
    model.Qformer.cls = None
    model.Qformer.bert.embeddings.word_embeddings = None
    model.Qformer.bert.embeddings.position_embeddings = None
    for layer in model.Qformer.bert.encoder.layer:
        layer.output = None
        layer.intermediate = None

    model.opt_tokenizer = GPT2Tokenizer(
        str(folder / "vocab.json"),
        str(folder / "merges.txt"),
        add_bos_token=True,  # OPT's tokenizer starts every text with </s>
        **shapes["special_tokens"],
    )
    model.opt_model = lavis.OPTForCausalLM(lavis.OPTConfig(**lm))
    for param in model.opt_model.parameters():
        param.requires_grad = False
    model.eos_token_id = model.opt_tokenizer("\n", add_special_tokens=False).input_ids[0]
    model.opt_proj = nn.Linear(config.hidden_size, model.opt_model.config.hidden_size)
    model.max_txt_len, model.prompt = 32, ""
    model.prompt_length = model.opt_tokenizer("", return_tensors="pt").attention_mask.sum(1)

    with torch.no_grad():  # LayerNorms and biases off their 1 / 0 starts: every tensor counts
        for name, param in model.named_parameters():
            if name.endswith("bias") or "norm" in name.lower() or name.endswith("_bias"):
                param.add_(0.1 * torch.randn_like(param))
        for layer in model.opt_model.model.decoder.layers:  # a random OPT with its default
            attention = layer.self_attn
            for linear in (
                layer.fc1,
                layer.fc2,
                attention.q_proj,
                attention.k_proj,
                attention.v_proj,
            ):
                linear.weight.normal_(0, 0.5)  # init repeats its input token: make it vary
    return model.eval()


def forward_logits(model, batch: dict) -> torch.Tensor:
    """The OPT logits inside ``Blip2OPT.forward`` (captured by a hook: the method returns only
    the loss), ``[B, queries + T, vocab]``."""
    captured = {}

    def keep(module, args, output) -> None:  # returns None: the output goes on unchanged
        captured["logits"] = output.logits

    hook = model.opt_model.register_forward_hook(keep)
    try:
        with torch.no_grad():
            model.forward({"image": batch["image"], "text_input": batch["text_input"]})
    finally:
        hook.remove()
    return captured["logits"]


def greedy(model, batch: dict, max_new_tokens: int) -> dict:
    """``Blip2OPT.generate``'s greedy captions, with the token ids behind them (decoded
    captions alone could hide a difference in special tokens)."""
    captured = {}
    generate = model.opt_model.generate

    def keep(*args, **kwargs):
        captured["ids"] = generate(*args, **kwargs)
        return captured["ids"]

    model.opt_model.generate = keep
    try:
        texts = model.generate(
            {"image": batch["image"], "prompt": ""}, num_beams=1, max_length=max_new_tokens
        )
    finally:
        del model.opt_model.generate
    return {"texts": texts, "ids": captured["ids"][:, 1:].tolist()}  # less the prompt's </s>


def trainer_state(model) -> dict[str, torch.Tensor]:
    """What LAVIS's runner saves (``RunnerBase._save_checkpoint``): the state dict less every
    parameter that does not require a gradient. Buffers stay, and so does the tied
    ``opt_model.lm_head.weight``, which ``named_parameters()`` does not list."""
    requires_grad = {k: p.requires_grad for k, p in model.named_parameters()}
    state = model.state_dict()
    return {k: v for k, v in state.items() if requires_grad.get(k, True)}


def main(command: str, folder: Path) -> None:
    lavis = import_lavis()
    shapes = json.loads((folder / "shapes.json").read_text())
    inputs = torch.load(folder / "inputs.pt", weights_only=True)
    batch = {"image": inputs["image"], "text_input": shapes["captions"]}
    steps = shapes["max_new_tokens"]
    if command == "build":
        model = build_blip2_opt(lavis, shapes, folder, seed=0)
        torch.save({"model": model.state_dict(), "epoch": 0}, folder / "lavis_full.pth")
        torch.save({"model": trainer_state(model), "epoch": 0}, folder / "lavis_trainer.pth")
        text = [t + "\n" for t in shapes["captions"]]
        tokens = model.opt_tokenizer(text, return_tensors="pt", padding="longest")
        with torch.no_grad():
            image_embeds = model.ln_vision(model.visual_encoder(batch["image"]))
        torch.save(
            {
                "image_embeds": image_embeds,
                "logits": forward_logits(model, batch),
                "input_ids": tokens.input_ids,
                "attention_mask": tokens.attention_mask,
                "eos_token_id": model.eos_token_id,
            },
            folder / "lavis_outputs.pt",
        )
        (folder / "lavis_captions.json").write_text(json.dumps(greedy(model, batch, steps)))
        print(f"LAVIS Blip2OPT built: {sum(p.numel() for p in model.parameters())} parameters")
    elif command == "load":
        model = build_blip2_opt(lavis, shapes, folder, seed=1)
        state = torch.load(folder / "facecap_export.pth", weights_only=True)["model"]
        result = model.load_state_dict(state, strict=False)
        assert not result.missing_keys, f"missing in facecap's export: {result.missing_keys}"
        assert not result.unexpected_keys, f"unexpected: {result.unexpected_keys}"
        expected = torch.load(folder / "lavis_outputs.pt", weights_only=True)["logits"]
        difference = (forward_logits(model, batch) - expected).abs().max().item()
        assert difference <= 1e-5, f"logits differ by {difference:.2e}"
        captions = greedy(model, batch, steps)
        assert captions == json.loads((folder / "lavis_captions.json").read_text()), captions
        print(
            f"LAVIS loads facecap's export: no key missing or unexpected, logits within {difference:.1e}"
        )
    else:
        raise SystemExit(f"unknown command {command!r}: build or load")


if __name__ == "__main__":
    main(sys.argv[1], Path(sys.argv[2]))
