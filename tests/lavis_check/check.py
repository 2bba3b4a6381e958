"""``make lavis-check``: facecap's LAVIS conversion against the real LAVIS, in both directions.

LAVIS (salesforce-lavis 1.0.2) pins transformers 4.26.1 and timm 0.4.12, so it lives in its own
environment (``build/lavis-venv``) and runs :mod:`lavis_side` as a separate process. This script,
in facecap's environment:

1. writes the shapes of a tiny captioner (the ``tiny`` preset with a patch embedding, as LAVIS's
   ViT has), its tokenizer and a batch of images and captions;
2. has LAVIS build a ``Blip2OPT`` of those shapes from its own classes and save a full checkpoint,
   a trainer checkpoint, its logits and its greedy captions;
3. loads both checkpoints into facecap captioners and asserts the same logits (max difference
   <= 1e-5) and the same greedy captions, then exports the captioner as a LAVIS state dict;
4. has LAVIS load that export: no key missing or unexpected, the same logits and captions.

Usage: ``python tests/lavis_check/check.py --lavis-python build/lavis-venv/bin/python [--out DIR]``.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from dataclasses import replace
from pathlib import Path

import torch

from facecap_lib.captions.rules import au_caption
from facecap_lib.models.lavis import load_lavis_checkpoint, to_lavis_state_dict
from facecap_lib.models.presets import build_model, preset
from facecap_lib.models.tokenizer import IMAGE_TOKEN, load_tokenizer, train_tokenizer

HERE = Path(__file__).resolve().parent
TOLERANCE = 1e-5
MAX_NEW_TOKENS = 8
TINY = preset("tiny")
SPEC = replace(TINY, vision=replace(TINY.vision, stem=()))  # LAVIS's ViT: a patch embedding
OPT_KEYS = (  # the OPTConfig arguments that transformers 4.26 knows
    "vocab_size", "hidden_size", "num_hidden_layers", "ffn_dim", "max_position_embeddings",
    "do_layer_norm_before", "word_embed_proj_dim", "dropout", "attention_dropout",
    "num_attention_heads", "activation_function", "layerdrop", "init_std", "pad_token_id",
    "bos_token_id", "eos_token_id",
)  # fmt: skip


def prepare(folder: Path) -> None:
    captions = [au_caption(s) for s in ({1, 2}, {6, 12}, {4, 7, 23}, {15, 17})]
    tokenizer = train_tokenizer(captions * 4, vocab_size=400, min_frequency=1)
    tokenizer.save_pretrained(folder / "tokenizer")
    tokenizer.backend_tokenizer.model.save(str(folder))  # vocab.json, merges.txt for GPT2Tokenizer
    config = build_model(SPEC, tokenizer).config
    vision, qformer = config.vision_config, config.qformer_config
    shapes = {
        "vision": {
            k: getattr(vision, k)
            for k in (
                "image_size",
                "patch_size",
                "hidden_size",
                "num_hidden_layers",
                "num_attention_heads",
                "intermediate_size",
                "layer_norm_eps",
            )
        },  # fmt: skip
        "qformer": {
            k: getattr(qformer, k)
            for k in (
                "hidden_size",
                "num_hidden_layers",
                "num_attention_heads",
                "intermediate_size",
                "cross_attention_frequency",
                "layer_norm_eps",
            )
        },  # fmt: skip
        "opt": {k: getattr(config.text_config, k) for k in OPT_KEYS},
        "num_query_tokens": config.num_query_tokens,
        "special_tokens": {
            "bos_token": tokenizer.bos_token,
            "eos_token": tokenizer.eos_token,
            "unk_token": tokenizer.unk_token,
            "pad_token": tokenizer.pad_token,
        },
        "captions": captions[:2],
        "max_new_tokens": MAX_NEW_TOKENS,
    }
    (folder / "shapes.json").write_text(json.dumps(shapes, indent=1))
    torch.manual_seed(0)
    torch.save(
        {"image": torch.randn(2, 3, vision.image_size, vision.image_size)}, folder / "inputs.pt"
    )


def facecap_outputs(model, tokenizer, folder: Path) -> tuple[torch.Tensor, dict]:
    """Logits on LAVIS's token ids (the queries' image tokens in front) and greedy captions."""
    lavis = torch.load(folder / "lavis_outputs.pt", weights_only=True)
    image = torch.load(folder / "inputs.pt", weights_only=True)["image"]
    queries = model.config.num_query_tokens
    rows = lavis["input_ids"].shape[0]
    image_ids = torch.full((rows, queries), tokenizer.convert_tokens_to_ids(IMAGE_TOKEN))
    ids = torch.cat([image_ids, lavis["input_ids"]], dim=1)
    mask = torch.cat([torch.ones_like(image_ids), lavis["attention_mask"]], dim=1)
    model.eval()
    with torch.no_grad():
        logits = model(pixel_values=image, input_ids=ids, attention_mask=mask).logits
        prompt = torch.cat([image_ids, torch.full((rows, 1), tokenizer.bos_token_id)], dim=1)
        generated = model.generate(
            pixel_values=image,
            input_ids=prompt,
            attention_mask=torch.ones_like(prompt),
            num_beams=1,
            do_sample=False,
            max_new_tokens=MAX_NEW_TOKENS,
            eos_token_id=lavis["eos_token_id"],  # Blip2OPT stops at "\n"
        )
    new = generated[:, prompt.shape[1] :]
    texts = [t.strip() for t in tokenizer.batch_decode(new, skip_special_tokens=True)]
    return logits, {"texts": texts, "ids": new.tolist()}


def compare(model, tokenizer, folder: Path, what: str) -> float:
    lavis = torch.load(folder / "lavis_outputs.pt", weights_only=True)
    logits, captions = facecap_outputs(model, tokenizer, folder)
    queries = model.config.num_query_tokens
    attended = torch.cat(  # padding rows are garbage in both and differ: compare the rest
        [torch.ones(logits.shape[0], queries, dtype=torch.bool), lavis["attention_mask"].bool()], 1
    )
    difference = (logits - lavis["logits"]).abs()[attended].max().item()
    image = torch.load(folder / "inputs.pt", weights_only=True)["image"]
    with torch.no_grad():  # ln_vision's eps shows here first (2e-4 with 1e-6 in its place)
        embeds = model.vision_model(pixel_values=image).last_hidden_state
    embeds_difference = (embeds - lavis["image_embeds"]).abs().max().item()
    assert embeds_difference <= TOLERANCE, (
        f"{what}: image embeddings differ by {embeds_difference:.2e}"
    )
    expected = json.loads((folder / "lavis_captions.json").read_text())
    assert difference <= TOLERANCE, f"{what}: logits differ from LAVIS's by {difference:.2e}"
    assert captions == expected, f"{what}: captions {captions} != LAVIS's {expected}"
    print(
        f"{what}: image embeddings within {embeds_difference:.1e} and logits within "
        f"{difference:.1e} of LAVIS's; greedy captions equal: {captions['texts']}"
    )
    return difference


def check_facecap_side(folder: Path) -> None:
    tokenizer = load_tokenizer(folder / "tokenizer")
    torch.manual_seed(5)
    full = build_model(SPEC, tokenizer)
    report = load_lavis_checkpoint(full, folder / "lavis_full.pth")
    assert report.missing == [], f"the full checkpoint left out {report.missing}"
    assert full.vision_model.post_layernorm.eps == 1e-5
    print(f"full checkpoint: {report.summary()}")
    compare(full, tokenizer, folder, "full checkpoint")

    torch.manual_seed(6)  # a trainer checkpoint goes over the frozen ViT and OPT it was trained on
    trained = build_model(SPEC, tokenizer)
    frozen = {
        k: v
        for k, v in full.state_dict().items()
        if k.startswith(("vision_model.embeddings", "vision_model.encoder", "language_model."))
    }
    trained.load_state_dict(frozen, strict=False)
    report = load_lavis_checkpoint(trained, folder / "lavis_trainer.pth")
    assert report.lm_head == "matches", report.lm_head
    print(f"trainer checkpoint: {report.summary()}; tied lm_head {report.lm_head}")
    compare(trained, tokenizer, folder, "trainer checkpoint")

    torch.save({"model": to_lavis_state_dict(full)}, folder / "facecap_export.pth")


def lavis(python: str, command: str, folder: Path) -> None:
    subprocess.run([python, str(HERE / "lavis_side.py"), command, str(folder)], check=True)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lavis-python", required=True, help="python of the LAVIS environment")
    parser.add_argument("--out", help="folder for the checkpoints (default: a temporary one)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(args.out or scratch)
        folder.mkdir(parents=True, exist_ok=True)
        prepare(folder)
        lavis(args.lavis_python, "build", folder)
        check_facecap_side(folder)
        lavis(args.lavis_python, "load", folder)
    print("lavis-check passed")


if __name__ == "__main__":
    sys.exit(main())
