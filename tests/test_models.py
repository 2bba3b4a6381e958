"""Tiny BLIP-2 models: presets, tokenizer, caption encoding, forward, loss, generation; images."""

from dataclasses import replace

import numpy as np
import pytest
import torch
from PIL import Image

from facecap_lib.captions.rules import au_caption, emotion_caption
from facecap_lib.data.images import Augment, load_rgb, to_tensor
from facecap_lib.models.captions import IGNORE, encode_captions, prompt_ids
from facecap_lib.models.presets import PRESETS, blip2_config, build_model, preset
from facecap_lib.models.tokenizer import IMAGE_TOKEN, load_tokenizer, train_tokenizer

CAPTIONS = [au_caption(s) for s in ({1, 2}, {6, 12}, {4, 7, 23}, {10, 25, 26})] + [
    emotion_caption(["happiness"]),
    emotion_caption(["anger", "surprise"]),
]


@pytest.fixture(scope="module")
def tokenizer():
    return train_tokenizer(CAPTIONS * 5, vocab_size=400, min_frequency=1)


def test_tokenizer_round_trip_and_specials(tokenizer, tmp_path):
    ids = tokenizer("It is a people who raises cheek.", add_special_tokens=False)["input_ids"]
    assert tokenizer.decode(ids).strip() == "It is a people who raises cheek."
    assert (
        tokenizer.bos_token == tokenizer.eos_token == "</s>"
        and IMAGE_TOKEN in tokenizer.get_vocab()
    )
    tokenizer.save_pretrained(tmp_path)
    again = load_tokenizer(tmp_path)
    assert again("raises cheek")["input_ids"] == tokenizer("raises cheek")["input_ids"]


def test_caption_encoding(tokenizer):
    batch = encode_captions(
        tokenizer, ["The face shows happiness.", "It is a people who drops jaw."], 4
    )
    image = tokenizer.convert_tokens_to_ids(IMAGE_TOKEN)
    ids, labels, mask = batch["input_ids"], batch["labels"], batch["attention_mask"]
    assert (ids[:, :4] == image).all() and (ids[:, 4] == tokenizer.bos_token_id).all()
    assert (labels[:, :5] == IGNORE).all() and (labels[mask == 0] == IGNORE).all()
    caption = labels[0][labels[0] != IGNORE].tolist()
    assert caption[-1] == tokenizer.eos_token_id
    assert tokenizer.decode(caption[:-1]).strip() == "The face shows happiness."


def test_paper_presets_have_the_papers_shapes():
    g = preset("vitg-opt2.7b")
    assert (g.vision.layers, g.vision.hidden, g.vision.patch_size, g.vision.mlp) == (
        39,
        1408,
        14,
        6144,
    )
    assert (g.qformer.layers, g.qformer.hidden, g.qformer.queries) == (12, 768, 32)
    assert (g.lm.hidden, g.lm.layers, g.lm.ffn) == (2560, 32, 10240)
    assert preset("vitg-opt6.7b").lm.hidden == 4096 and preset("vitb-opt2.7b").vision.hidden == 768
    config = blip2_config(
        g, vocab_size=50272, image_token_id=50265, pad_token_id=1, bos_token_id=2, eos_token_id=2
    )
    assert config.qformer_config.encoder_hidden_size == 1408 and config.num_query_tokens == 32
    with pytest.raises(ValueError, match="unknown preset"):
        preset("huge")
    assert set(PRESETS) == {"tiny", "small", "vitb-opt2.7b", "vitg-opt2.7b", "vitg-opt6.7b"}


def test_tiny_model_learns_and_generates(tokenizer):
    torch.manual_seed(0)
    spec = preset("tiny")
    model = build_model(spec, tokenizer)
    batch = encode_captions(tokenizer, CAPTIONS[:4], spec.qformer.queries)
    size = spec.vision.image_size
    pixels = torch.randn(
        4, 3, size, size, generator=torch.Generator().manual_seed(1)
    )  # 4 distinct images
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    losses = []
    for _ in range(200):
        loss = model(pixel_values=pixels, **batch).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < 0.1 * losses[0]  # it can fit four captions to four images
    model.eval()
    out = model.generate(
        pixel_values=pixels,
        **prompt_ids(tokenizer, 4, spec.qformer.queries),
        max_new_tokens=24,
        num_beams=1,
        do_sample=False,
    )
    texts = tokenizer.batch_decode(out[:, spec.qformer.queries + 1 :], skip_special_tokens=True)
    assert [t.strip() for t in texts] == CAPTIONS[:4]  # each image gets its own caption: it sees


def test_vision_weights_are_initialised_to_learn(tokenizer):
    model = build_model(preset("tiny"), tokenizer)
    assert (
        model.vision_model.embeddings.patch_embedding.weight.std() > 1e-3
    )  # not transformers' 1e-10


def test_images_load_whatever_their_format(tmp_path):
    rgba = Image.new("RGBA", (40, 30), (255, 0, 0, 128))
    rgba.save(tmp_path / "a.png")
    Image.new("L", (20, 20), 128).save(tmp_path / "g.jpg")
    rotated = Image.new("RGB", (40, 20), (0, 0, 255))
    exif = rotated.getexif()
    exif[0x0112] = 6  # rotate 90 degrees on display
    rotated.save(tmp_path / "r.jpg", exif=exif)
    assert load_rgb(tmp_path / "a.png").mode == "RGB" and load_rgb(tmp_path / "g.jpg").mode == "RGB"
    assert load_rgb(tmp_path / "r.jpg").size == (20, 40)
    (tmp_path / "bad.jpg").write_bytes(b"not an image")
    with pytest.raises(ValueError, match="cannot read image .*bad.jpg"):
        load_rgb(tmp_path / "bad.jpg")
    batch = to_tensor([load_rgb(tmp_path / "a.png"), np.zeros((8, 8, 3), dtype=np.uint8)], 16)
    assert batch.shape == (2, 3, 16, 16) and batch.dtype == torch.float32


def test_augmentation_is_seeded():
    image = Image.fromarray(np.random.default_rng(0).integers(0, 255, (32, 32, 3), dtype=np.uint8))
    a = [np.asarray(Augment(seed=1)(image)) for _ in range(2)]
    assert np.array_equal(a[0], a[1])
    sizes = {Augment(seed=s)(image).size for s in range(10)}
    assert len(sizes) > 1


def test_language_model_pretraining_learns_the_caption_language(tokenizer, tmp_path):
    from facecap_lib.captions.mentions import mentioned_aus
    from facecap_lib.models.language import install_language_model
    from facecap_lib.training.pretrain import LanguageModelConfig, pretrain_language_model

    spec = preset("tiny")
    fit = replace(LanguageModelConfig().fit, max_steps=120, batch_size=16)
    lm = pretrain_language_model(spec, tokenizer, CAPTIONS, tmp_path, LanguageModelConfig(fit=fit))
    start = tokenizer("It is a people who", add_special_tokens=False)["input_ids"]
    out = lm.generate(
        torch.tensor([[tokenizer.bos_token_id, *start]]), max_new_tokens=16, do_sample=False
    )
    text = tokenizer.decode(out[0], skip_special_tokens=True).strip()
    assert text in CAPTIONS and mentioned_aus(text)  # a caption of the corpus, AUs and all
    captioner = build_model(spec, tokenizer)
    install_language_model(captioner, lm)
    assert torch.equal(captioner.language_model.lm_head.weight, lm.lm_head.weight) or torch.equal(
        captioner.language_model.get_input_embeddings().weight, lm.get_input_embeddings().weight
    )
    with pytest.raises(ValueError, match="does not fit"):
        install_language_model(build_model(preset("small"), tokenizer), lm)


def test_perplexity_is_the_pretraining_loss_over_all_tokens(tokenizer):
    from transformers import OPTForCausalLM

    from facecap_lib.evaluation.language import perplexity
    from facecap_lib.models.language import language_model_config

    torch.manual_seed(0)
    lm = OPTForCausalLM(language_model_config(preset("tiny"), tokenizer)).eval()
    text = CAPTIONS[0]
    ids = torch.tensor(
        [
            [
                tokenizer.eos_token_id,
                *tokenizer(text, add_special_tokens=False)["input_ids"],
                tokenizer.eos_token_id,
            ]
        ]
    )
    with torch.no_grad():
        loss = lm(input_ids=ids, labels=ids).loss
    assert perplexity(lm, tokenizer, [text]) == pytest.approx(float(loss.exp()), rel=1e-4)
    short, long = CAPTIONS[1], CAPTIONS[2]  # padded in one batch as scored one by one
    together = perplexity(lm, tokenizer, [short, long], batch_size=2)
    apart = [perplexity(lm, tokenizer, [t]) for t in (short, long)]
    assert min(apart) < together < max(apart)
    assert perplexity(lm, tokenizer, [short, long], batch_size=1) == pytest.approx(
        together, rel=1e-5
    )
    with pytest.raises(ValueError, match="no texts"):
        perplexity(lm, tokenizer, [])


@pytest.mark.parametrize("init, lowest, highest", [("xavier", 0.01, 1.0), ("bert", 0.0, 0.002)])
def test_a_random_qformer_sees_the_image_only_when_xavier_initialised(
    tokenizer, init, lowest, highest
):
    """With BERT-base's N(0, 0.02) a narrow from-scratch Q-Former gives every image nearly the same
    output, which stage 1's ITC and the captioners cannot start from: the share of its output
    variance that is across eight solid grey images is about 100 times smaller than with Xavier."""
    from dataclasses import replace

    spec = preset("tiny")
    torch.manual_seed(0)
    model = build_model(replace(spec, qformer=replace(spec.qformer, init=init)), tokenizer).eval()
    pixels = torch.stack([torch.full((3, 64, 64), v) for v in torch.linspace(-1.5, 1.5, 8)])
    with torch.no_grad():
        image = model.vision_model(pixel_values=pixels).last_hidden_state
        queries = model.query_tokens.expand(8, -1, -1)
        out = model.qformer(query_embeds=queries, encoder_hidden_states=image).last_hidden_state
    share = (out.var(0).sum(-1).mean() / out.pow(2).sum(-1).mean()).item()
    assert lowest <= share <= highest


def test_an_unknown_qformer_init_is_refused(tokenizer):
    from dataclasses import replace

    spec = preset("tiny")
    with pytest.raises(ValueError, match="unknown Q-Former init 'normal'"):
        build_model(replace(spec, qformer=replace(spec.qformer, init="normal")), tokenizer)


def test_the_caption_limit_is_the_longest_caption_and_what_is_cut_is_counted(tokenizer):
    from facecap_lib.models.captions import caption_lengths, caption_token_lengths

    captions = [au_caption({1, 2}), au_caption({1, 2, 4, 5, 6, 7, 12, 25}), "smile"]
    lengths = caption_token_lengths(tokenizer, captions)
    auto = caption_lengths(tokenizer, captions)
    assert auto.limit == lengths.max() and auto.cut == 0 and auto.chosen == "the longest caption"
    ids = encode_captions(tokenizer, captions, 2, auto.limit)["input_ids"]
    assert (ids != tokenizer.pad_token_id).sum(1).max() == 2 + lengths.max()  # nothing cut
    short = caption_lengths(tokenizer, captions, limit=int(lengths[0]))
    assert short.cut == int((lengths > lengths[0]).sum()) > 0
    assert f"{short.cut} of 3 captions cut" in short.summary()
    capped = caption_lengths(tokenizer, captions, positions=int(lengths.min()))
    assert capped.limit == lengths.min() and capped.chosen == "the language model's positions"
