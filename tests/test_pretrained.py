"""Starting from pre-trained weights: a local Hugging Face folder, and the authors' LAVIS
checkpoints converted by key mapping (tested on a tiny LAVIS-named state dict)."""

from dataclasses import replace

import pytest
import torch

from facecap_lib.captions.rules import au_caption
from facecap_lib.models.lavis import (
    LN_VISION_EPS,
    lavis_key,
    load_lavis_checkpoint,
    to_lavis_key,
    to_lavis_state_dict,
)
from facecap_lib.models.presets import build_model, preset
from facecap_lib.models.pretrained import load_pretrained
from facecap_lib.models.tokenizer import train_tokenizer

CAPTIONS = [au_caption(s) for s in ({1, 2}, {6, 12}, {4, 7, 23})]
TINY = preset("tiny")
PATCH_TINY = replace(TINY, vision=replace(TINY.vision, stem=()))  # LAVIS encoders: patch embedding


@pytest.fixture(scope="module")
def tokenizer():
    return train_tokenizer(CAPTIONS * 4, vocab_size=300, min_frequency=1)


def to_lavis(model) -> dict[str, torch.Tensor]:
    """A LAVIS Blip2OPT state dict, written by hand from LAVIS's module names (the inverse of the
    mapping under test, spelled out independently)."""
    out = {}
    for name, tensor in model.state_dict().items():
        n = name
        if n.startswith("vision_model.embeddings."):
            n = {
                "class_embedding": "visual_encoder.cls_token",
                "position_embedding": "visual_encoder.pos_embed",
                "patch_embedding.weight": "visual_encoder.patch_embed.proj.weight",
                "patch_embedding.bias": "visual_encoder.patch_embed.proj.bias",
            }[n.split("embeddings.")[1]]
        elif n.startswith("vision_model.post_layernorm."):
            n = "ln_vision." + n.rsplit(".", 1)[1]
        elif n.startswith("vision_model.encoder.layers."):
            layer, rest = n[len("vision_model.encoder.layers.") :].split(".", 1)
            if rest == "self_attn.qkv.bias":  # EVA keeps q and v biases, no key bias
                third = tensor.shape[0] // 3
                out[f"visual_encoder.blocks.{layer}.attn.q_bias"] = tensor[:third].clone()
                out[f"visual_encoder.blocks.{layer}.attn.v_bias"] = tensor[2 * third :].clone()
                continue
            rest = (
                rest.replace("layer_norm1", "norm1")
                .replace("layer_norm2", "norm2")
                .replace("self_attn.qkv", "attn.qkv")
                .replace("self_attn.projection", "attn.proj")
            )
            n = f"visual_encoder.blocks.{layer}.{rest}"
        elif n == "qformer.layernorm.weight" or n == "qformer.layernorm.bias":
            n = "Qformer.bert.embeddings.LayerNorm." + n.rsplit(".", 1)[1]
        elif n.startswith("qformer.encoder."):
            n = "Qformer.bert.encoder." + n[len("qformer.encoder.") :]
            n = n.replace(".attention.attention.", ".attention.self.").replace(
                ".crossattention.attention.", ".crossattention.self."
            )
        elif n.startswith("language_projection."):
            n = "opt_proj." + n.split(".", 1)[1]
        elif n.startswith("language_model."):
            continue  # frozen: LAVIS does not save it
        out[n] = tensor.clone()
    hidden = model.config.qformer_config.hidden_size
    out["Qformer.cls.predictions.bias"] = torch.zeros(7)  # the ITG head: no place in a captioner
    out["Qformer.bert.embeddings.word_embeddings.weight"] = torch.zeros(7, hidden)
    out["Qformer.bert.encoder.layer.0.intermediate.dense.weight"] = torch.zeros(4, hidden)
    return out


def test_lavis_keys_map_like_transformers_conversion_script():
    assert lavis_key("visual_encoder.blocks.3.attn.proj.weight") == (
        "vision_model.encoder.layers.3.self_attn.projection.weight"
    )
    assert lavis_key("Qformer.bert.encoder.layer.2.crossattention.self.key.bias") == (
        "qformer.encoder.layer.2.crossattention.attention.key.bias"
    )
    assert lavis_key("Qformer.bert.encoder.layer.2.output_query.LayerNorm.weight") == (
        "qformer.encoder.layer.2.output_query.LayerNorm.weight"
    )
    assert lavis_key("opt_model.model.decoder.layers.0.fc1.weight") == (
        "language_model.model.decoder.layers.0.fc1.weight"
    )
    assert lavis_key("Qformer.bert.encoder.layer.2.output.dense.weight") is None  # text-only
    assert lavis_key("Qformer.cls.predictions.transform.dense.weight") is None
    assert lavis_key("visual_encoder.norm.weight") is None  # a timm ViT's final norm: no place


def test_every_captioner_key_maps_to_lavis_and_back(tokenizer):
    model = build_model(PATCH_TINY, tokenizer)
    for name in model.state_dict():
        if name.endswith("self_attn.qkv.bias"):  # split into EVA's q and v biases on export
            continue
        assert lavis_key(to_lavis_key(name)) == name, name
    exported = set(to_lavis_state_dict(model, language_model=False))
    by_hand = set(to_lavis(model)) - {  # the text-only parts to_lavis adds, with no place here
        "Qformer.cls.predictions.bias",
        "Qformer.bert.embeddings.word_embeddings.weight",
        "Qformer.bert.encoder.layer.0.intermediate.dense.weight",
    }
    assert exported == by_hand | {"Qformer.bert.embeddings.position_ids"}  # a buffer LAVIS keeps


def test_lavis_checkpoint_round_trip(tokenizer, tmp_path):
    torch.manual_seed(0)
    source = build_model(PATCH_TINY, tokenizer)
    with torch.no_grad():  # EVA has no key bias: make the source agree
        for layer in source.vision_model.encoder.layers:
            bias = layer.self_attn.qkv.bias
            bias[bias.shape[0] // 3 : 2 * bias.shape[0] // 3] = 0
            bias[: bias.shape[0] // 3] += 0.5
    path = tmp_path / "checkpoint_best.pth"
    torch.save({"model": to_lavis(source), "epoch": 3, "config": {"run": {}}}, path)

    torch.manual_seed(1)
    target = build_model(PATCH_TINY, tokenizer)
    lm_before = {k: v.clone() for k, v in target.language_model.state_dict().items()}
    report = load_lavis_checkpoint(target, path)
    for name, tensor in source.state_dict().items():
        if not name.startswith("language_model."):
            assert torch.equal(target.state_dict()[name], tensor), name
    assert all(k.startswith("language_model.") for k in report.missing) and report.missing
    for name, tensor in target.language_model.state_dict().items():  # untouched, not zeroed
        assert torch.equal(tensor, lm_before[name])
    assert set(report.unused) == {
        "Qformer.cls.predictions.bias",
        "Qformer.bert.embeddings.word_embeddings.weight",
        "Qformer.bert.encoder.layer.0.intermediate.dense.weight",
    }
    assert "missing" in report.summary() and "unused 3" in report.summary()
    assert report.lm_head == "absent"
    assert target.vision_model.post_layernorm.eps == LN_VISION_EPS == 1e-5  # LAVIS's ln_vision
    assert source.vision_model.post_layernorm.eps == 1e-6
    source.vision_model.post_layernorm.eps = LN_VISION_EPS
    pixels = torch.randn(1, 3, 64, 64)
    source.eval(), target.eval()
    with torch.no_grad():
        a = source.get_image_features(pixel_values=pixels, return_dict=True)
        b = target.get_image_features(pixel_values=pixels, return_dict=True)
    assert torch.allclose(a.pooler_output, b.pooler_output)


def test_lavis_checkpoint_errors_name_the_problem(tokenizer, tmp_path):
    model = build_model(PATCH_TINY, tokenizer)
    bad = tmp_path / "other_shape.pth"
    state = to_lavis(model)
    state["opt_proj.weight"] = torch.zeros(3, 3)
    torch.save(state, bad)  # a bare state dict is accepted too
    with pytest.raises(ValueError, match="language_projection.weight has shape"):
        load_lavis_checkpoint(model, bad)
    junk = tmp_path / "junk.pth"
    junk.write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="junk.pth: not a readable"):
        load_lavis_checkpoint(model, junk)


def test_the_ln_vision_eps_survives_save_and_load(tokenizer, tmp_path):
    model = build_model(PATCH_TINY, tokenizer)
    path = tmp_path / "checkpoint.pth"
    torch.save(to_lavis(model), path)
    load_lavis_checkpoint(model, path)
    model.save_pretrained(tmp_path / "blip2")
    tokenizer.save_pretrained(tmp_path / "blip2")
    loaded, _ = load_pretrained(tmp_path / "blip2")
    assert loaded.vision_model.post_layernorm.eps == 1e-5
    assert loaded.vision_model.encoder.layers[0].layer_norm1.eps == 1e-6  # the blocks keep theirs


def test_a_tied_lm_head_is_compared_not_written_over_the_embeddings(tokenizer, tmp_path):
    torch.manual_seed(0)
    model = build_model(PATCH_TINY, tokenizer)
    embeddings = model.language_model.get_input_embeddings().weight.detach().clone()
    state = to_lavis(model)  # a trainer checkpoint: no frozen OPT, but its tied lm_head
    state["opt_model.lm_head.weight"] = embeddings.clone()
    torch.save(state, tmp_path / "same.pth")
    assert load_lavis_checkpoint(model, tmp_path / "same.pth").lm_head == "matches"
    state["opt_model.lm_head.weight"] = torch.randn(50272, 8)  # LAVIS's OPT-2.7b: another shape
    torch.save(state, tmp_path / "other.pth")
    report = load_lavis_checkpoint(model, tmp_path / "other.pth")
    assert report.lm_head == "differs" and "kept the captioner's" in report.summary()
    assert torch.equal(model.language_model.get_input_embeddings().weight, embeddings)
    state["opt_model.lm_head.weight"] = embeddings + 1  # untied in the checkpoint, tied here
    state["opt_model.model.decoder.embed_tokens.weight"] = embeddings
    torch.save(state, tmp_path / "untied.pth")
    with pytest.raises(ValueError, match="lm_head.weight differs from .*embed_tokens"):
        load_lavis_checkpoint(model, tmp_path / "untied.pth")


def test_keys_with_no_place_are_errors_unless_ignored(tokenizer, tmp_path):
    model = build_model(PATCH_TINY, tokenizer)
    width = model.config.vision_config.hidden_size
    state = to_lavis(model)
    state["visual_encoder.norm.weight"] = torch.ones(width)  # a timm ViT-B's final norm
    state["visual_encoder.norm.bias"] = torch.zeros(width)
    state["visual_encoder.blocks.99.norm1.weight"] = torch.ones(width)  # a deeper encoder
    state["vision_proj.weight"] = torch.zeros(4, 4)  # stage 1's head: a known role, unused
    path = tmp_path / "vit_b.pth"
    torch.save(state, path)
    with pytest.raises(ValueError, match=r"vit_b.pth: 3 checkpoint keys .*blocks.99.*norm.bias"):
        load_lavis_checkpoint(model, path)
    ignore = ("visual_encoder.norm", "visual_encoder.blocks.99.norm1.weight")
    report = load_lavis_checkpoint(model, path, ignore=ignore)
    assert len(report.ignored) == 3 and "vision_proj.weight" in report.unused
    assert "ignored 3" in report.summary()


def test_a_captioner_exported_to_lavis_loads_back_exactly(tokenizer, tmp_path):
    torch.manual_seed(2)
    source = build_model(PATCH_TINY, tokenizer)
    path = tmp_path / "exported.pth"
    torch.save({"model": to_lavis_state_dict(source)}, path)
    saved = torch.load(path, weights_only=True)["model"]
    assert "opt_model.lm_head.weight" in saved and "visual_encoder.blocks.0.attn.q_bias" in saved
    assert "visual_encoder.blocks.0.attn.qkv.bias" not in saved  # EVA has no key bias
    torch.manual_seed(3)
    target = build_model(PATCH_TINY, tokenizer)
    report = load_lavis_checkpoint(target, path)
    assert report.missing == [] and report.lm_head == "matches"
    source.vision_model.post_layernorm.eps = LN_VISION_EPS
    source.eval(), target.eval()
    ids = torch.tensor([[tokenizer.bos_token_id or 0, 5, 6, 7]])
    pixels = torch.randn(2, 3, 64, 64)
    with torch.no_grad():  # the key bias dropped on export changes no attention weight
        a = source(pixel_values=pixels, input_ids=ids.expand(2, -1)).logits
        b = target(pixel_values=pixels, input_ids=ids.expand(2, -1)).logits
    assert torch.allclose(a, b, atol=1e-5)
    with pytest.raises(ValueError, match="conv stem"):
        to_lavis_state_dict(build_model(TINY, tokenizer))


def test_load_pretrained_from_a_local_folder(tokenizer, tmp_path):
    torch.manual_seed(0)
    model = build_model(TINY, tokenizer)
    model.save_pretrained(tmp_path / "blip2")
    tokenizer.save_pretrained(tmp_path / "blip2")
    loaded, loaded_tokenizer = load_pretrained(tmp_path / "blip2")
    assert loaded_tokenizer.get_vocab() == tokenizer.get_vocab()
    for a, b in zip(model.state_dict().values(), loaded.state_dict().values(), strict=True):
        assert torch.equal(a, b)
    with pytest.raises(ValueError, match="cannot load a BLIP-2 captioner from"):
        load_pretrained(tmp_path / "nothing-here")


def test_training_starts_from_pretrained_weights_and_a_lavis_checkpoint(tokenizer, tmp_path):
    from facecap_lib.data.synth.batch import FaceSpec, render_to_files
    from facecap_lib.training.captioner import CaptionerConfig, train_captioner
    from facecap_lib.training.config import FitConfig
    from facecap_lib.training.data import Pair

    torch.manual_seed(0)
    base = build_model(PATCH_TINY, tokenizer)
    base.save_pretrained(tmp_path / "base")
    tokenizer.save_pretrained(tmp_path / "base")
    torch.manual_seed(5)
    finetuned = build_model(PATCH_TINY, tokenizer)  # stands in for the authors' AU-BLIP
    torch.save({"model": to_lavis(finetuned)}, tmp_path / "au_blip.pth")
    specs = [FaceSpec({1: 4}, identity=i, path=f"{i}.png") for i in range(2)]
    render_to_files(specs, tmp_path / "faces", size=64, workers=1, progress=False)
    pairs = [Pair(str(tmp_path / "faces" / s.path), CAPTIONS[0]) for s in specs]
    logged = []
    config = CaptionerConfig(
        fit=FitConfig(max_steps=1, batch_size=2, warmup_steps=1, lr=1e-12),
        augment=False,
        init=str(tmp_path / "base"),
        lavis_checkpoint=str(tmp_path / "au_blip.pth"),
    )
    result = train_captioner(pairs, tmp_path / "run", config, log=logged.append, device="cpu")
    state = result.model.state_dict()
    assert torch.equal(  # the frozen language model comes from the Hugging Face folder
        state["language_model.model.decoder.layers.0.fc1.weight"],
        base.state_dict()["language_model.model.decoder.layers.0.fc1.weight"],
    )
    assert torch.allclose(  # everything else from the LAVIS checkpoint (lr ~0: barely moved)
        state["qformer.encoder.layer.0.attention.attention.query.weight"],
        finetuned.state_dict()["qformer.encoder.layer.0.attention.attention.query.weight"],
        atol=1e-6,
    )
    assert any("au_blip.pth: loaded" in line for line in logged)


def test_export_lavis_from_the_command_line(tokenizer, tmp_path, capsys):
    from facecap_lib.cli import main

    torch.manual_seed(4)
    model = build_model(PATCH_TINY, tokenizer)
    model.save_pretrained(tmp_path / "captioner")
    tokenizer.save_pretrained(tmp_path / "captioner")
    out = tmp_path / "lavis" / "au_blip.pth"
    assert main(["export-lavis", str(tmp_path / "captioner"), "--out", str(out)]) == 0
    target = build_model(PATCH_TINY, tokenizer)
    assert load_lavis_checkpoint(target, out).missing == []
    for name, tensor in target.state_dict().items():
        if not name.endswith("self_attn.qkv.bias"):  # the key third is dropped (exact)
            assert torch.equal(tensor, model.state_dict()[name]), name
    assert (
        main(
            ["export-lavis", str(tmp_path / "captioner"), "--out", str(out), "--no-language-model"]
        )
        == 0
    )
    assert not any(k.startswith("opt_model.") for k in torch.load(out, weights_only=True)["model"])
    stem = build_model(TINY, tokenizer)
    stem.save_pretrained(tmp_path / "stem")
    tokenizer.save_pretrained(tmp_path / "stem")
    assert main(["export-lavis", str(tmp_path / "stem"), "--out", str(tmp_path / "x.pth")]) == 1
    assert "conv stem" in capsys.readouterr().err
