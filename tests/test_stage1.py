"""Stage 1 (ITC, ITM with hard negatives, ITG) on hand-built batches, the trainer, and the hand-over
of the Q-Former to a stage-2 captioner."""

import math

import pytest
import torch
import torch.nn.functional as F

from facecap_lib.captions.rules import au_caption
from facecap_lib.data.synth.batch import FaceSpec, render_to_files
from facecap_lib.models.presets import build_model, preset
from facecap_lib.models.tokenizer import train_tokenizer
from facecap_lib.training.config import FitConfig
from facecap_lib.training.data import Pair
from facecap_lib.training.stage1 import (
    LABEL_SMOOTHING,
    QFormerConfig,
    QFormerPretrainer,
    build_pretrainer,
    encode_texts,
    hard_negatives,
    install_qformer,
    itc_loss,
    itg_attention_mask,
    itm_pairs,
    retrieval_recall,
    stage1_losses,
    text_token_ids,
    train_qformer,
)

AU_SETS = [{1, 2}, {6, 12}, {4, 7}, {25, 26}, {12, 25}, {9, 10}]


@pytest.fixture(scope="module")
def pairs(tmp_path_factory):
    root = tmp_path_factory.mktemp("faces")
    specs = [
        FaceSpec({au: 4 for au in aus}, identity=i, path=f"{i}.png")
        for i, aus in enumerate(AU_SETS + AU_SETS[:2])
    ]
    render_to_files(specs, root, size=64, workers=1, progress=False)
    return [
        Pair(str(root / s.path), au_caption(aus))
        for s, aus in zip(specs, AU_SETS + AU_SETS[:2], strict=True)
    ]


@pytest.fixture(scope="module")
def tokenizer(pairs):
    return train_tokenizer([p.caption for p in pairs], vocab_size=300, min_frequency=1)


def test_itc_is_symmetric_and_matches_a_hand_computation():
    a = F.normalize(torch.tensor([[1.0, 0.0], [0.6, 0.8]]), dim=-1)
    b = F.normalize(torch.tensor([[0.8, 0.6], [0.0, 1.0]]), dim=-1)
    same = torch.eye(2, dtype=torch.bool)
    temp = torch.tensor(0.5)
    loss_ab, sim_i2t, sim_t2i = itc_loss(a[:, None], b, a[:, None], b, temp, same)
    loss_ba, *_ = itc_loss(b[:, None], a, b[:, None], a, temp, same)
    assert loss_ab.item() == pytest.approx(loss_ba.item())  # swapping images and texts
    assert torch.allclose(sim_i2t, sim_t2i.t())

    def smoothed_ce(row, target):
        logp = torch.log_softmax(row, 0)
        return -(1 - LABEL_SMOOTHING) * logp[target] - LABEL_SMOOTHING * logp.mean()

    s = (a @ b.t()) / 0.5  # one query: the best query is the only one
    by_hand = (
        sum(smoothed_ce(s[i], i) for i in range(2)) / 2
        + sum(smoothed_ce(s.t()[i], i) for i in range(2)) / 2
    ) / 2
    assert loss_ab.item() == pytest.approx(by_hand.item(), rel=1e-6)


def test_itc_takes_the_best_query_and_counts_equal_captions_as_positives():
    texts = F.normalize(torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0]]), dim=-1)
    images = torch.stack([torch.stack([texts[1], texts[0]]) for _ in range(3)])  # 2 queries
    sim_i2t = itc_loss(images, texts, images, texts, torch.tensor(1.0), torch.eye(3).bool())[1]
    assert torch.allclose(sim_i2t, torch.ones(3, 3))  # whichever query matches best
    # texts 0 and 2 are the same caption: image 0 must not be pushed away from text 2
    texts = F.normalize(torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]]), dim=-1)
    same = torch.tensor([[1, 0, 1], [0, 1, 0], [1, 0, 1]], dtype=torch.bool)
    grads = []
    for positives in (torch.eye(3).bool(), same):
        own = texts[:, None].clone().requires_grad_(True)
        loss, *_ = itc_loss(own, texts, own, texts, torch.tensor(0.1), positives)
        grads.append(torch.autograd.grad(loss, own)[0][0, 0])
    # shared targets pull image 0 towards text 2 (its caption too) much harder than one-hot ones
    toward = [(-g @ (texts[2] - texts[0])).item() for g in grads]
    assert toward[1] > 5 * abs(toward[0])


def test_hard_negatives_follow_similarity_and_never_share_the_caption():
    sim = torch.tensor([[0.0, 50.0, 0.0, 0.0], [50.0, 0.0, 0.0, 0.0], [0.0, 0.0, 0.0, 50.0]] * 1)
    sim = torch.cat([sim, torch.tensor([[0.0, 0.0, 50.0, 0.0]])])
    same = torch.eye(4, dtype=torch.bool)
    generator = torch.Generator().manual_seed(0)
    images, neg_texts, texts, neg_images = hard_negatives(sim, sim, same, generator)
    assert images.tolist() == [0, 1, 2, 3] and neg_texts.tolist() == [1, 0, 3, 2]
    # a caption shared by all but one pair: those pairs may only pick the odd one out
    same = torch.tensor([[1, 1, 1, 0], [1, 1, 1, 0], [1, 1, 1, 0], [0, 0, 0, 1]], dtype=torch.bool)
    for seed in range(5):
        _, picks, _, _ = hard_negatives(
            torch.zeros(4, 4), torch.zeros(4, 4), same, torch.Generator().manual_seed(seed)
        )
        assert picks[:3].tolist() == [3, 3, 3] and picks[3].item() in (0, 1, 2)
    # every caption equal: no negatives at all, no row is made up
    rows, picks, *_ = hard_negatives(
        torch.zeros(3, 3), torch.zeros(3, 3), torch.ones(3, 3).bool(), generator
    )
    assert rows.numel() == 0 and picks.numel() == 0


def test_itm_labels_positives_then_negatives():
    pair_images, pair_texts, labels = itm_pairs(
        torch.arange(3), torch.tensor([0, 1]), torch.tensor([2, 0]), torch.tensor([2]),
        torch.tensor([1]),
    )  # fmt: skip
    assert pair_images.tolist() == [0, 1, 2, 0, 1, 1]
    assert pair_texts.tolist() == [0, 1, 2, 2, 0, 2]
    assert labels.tolist() == [1, 1, 1, 0, 0, 0]
    # a second rank's pairs: its positives are its own rows of the global batch
    pair_images, pair_texts, labels = itm_pairs(
        torch.arange(3, 5), torch.tensor([4]), torch.tensor([0]), torch.tensor([3]),
        torch.tensor([1]),
    )  # fmt: skip
    assert pair_images.tolist() == [3, 4, 4, 1] and pair_texts.tolist() == [3, 4, 0, 3]
    assert labels.tolist() == [1, 1, 0, 0]


def test_itg_mask_lets_text_see_queries_and_its_past_only():
    mask = itg_attention_mask(2, torch.tensor([[1, 1, 1, 0]]))[0, 0]
    assert mask.shape == (6, 6)
    assert mask[:2, :2].all() and not mask[:2, 2:].any()  # queries never see the text
    assert mask[2:, :2].all()  # text sees every query
    text = mask[2:, 2:]
    assert torch.equal(text[:, :3], torch.tril(torch.ones(4, 3, dtype=torch.bool)))
    assert not text[:, 3].any()  # padding is never attended


def test_itg_cannot_see_future_tokens(tokenizer):
    torch.manual_seed(0)
    model = build_pretrainer(preset("tiny"), tokenizer).eval()
    r = model.retrieval
    text = encode_texts(tokenizer, [au_caption({1, 2, 4})], 32)
    changed = text["input_ids"].clone()
    changed[0, 5:] = tokenizer.convert_tokens_to_ids("<unk>")
    image = r.vision_model(pixel_values=torch.randn(1, 3, 64, 64)).last_hidden_state
    q = r.config.num_query_tokens

    def hidden(ids):
        out = r.qformer(
            query_embeds=r.embeddings(input_ids=ids, query_embeds=r.query_tokens),
            query_length=q,
            attention_mask=itg_attention_mask(q, text["attention_mask"]),
            encoder_hidden_states=image,
        )
        return out.last_hidden_state

    with torch.no_grad():
        before, after = hidden(text["input_ids"]), hidden(changed)
    assert torch.allclose(before[:, : q + 5], after[:, : q + 5], atol=1e-6)
    assert not torch.allclose(before[:, q + 5 :], after[:, q + 5 :])


def test_stage1_losses_are_finite_and_near_their_starting_values(tokenizer, pairs):
    torch.manual_seed(0)
    model = build_pretrainer(preset("tiny"), tokenizer)
    captions = [p.caption for p in pairs[:6]]
    text = encode_texts(tokenizer, captions, 32)
    losses = stage1_losses(
        model,
        torch.randn(6, 3, 64, 64),
        text["input_ids"],
        text["attention_mask"],
        torch.arange(6),
        torch.Generator().manual_seed(0),
        text_token_ids(tokenizer)[1],
    )
    assert set(losses) == {"itc", "itm", "itg", "loss"}
    assert losses["itc"].item() == pytest.approx(math.log(6), rel=0.1)  # no knowledge yet
    assert losses["itm"].item() == pytest.approx(math.log(2), rel=0.2)
    assert losses["itg"].item() == pytest.approx(math.log(len(tokenizer)), rel=0.2)
    losses["loss"].backward()
    assert model.retrieval.query_tokens.grad.abs().sum() > 0 and model.temp.grad is not None


def test_tokenizer_without_dec_token_is_refused(tokenizer):
    class NoDec:
        cls_token_id = None
        bos_token_id = 1

        def get_vocab(self):
            return {"</s>": 1}

    assert text_token_ids(tokenizer)[1] == tokenizer.convert_tokens_to_ids("<dec>")
    with pytest.raises(ValueError, match="<dec>"):
        text_token_ids(NoDec())


def test_train_qformer_learns_keeps_the_encoder_frozen_and_hands_over(pairs, tokenizer, tmp_path):
    """Resuming, loading and the rest of the loop are tested for every task in test_training."""
    fit = FitConfig(max_steps=6, batch_size=4, warmup_steps=1, lr=1e-3, save_every=3, log_every=100)
    straight = train_qformer(
        pairs, tmp_path / "a", QFormerConfig(fit=fit), tokenizer=tokenizer, log=None
    )
    assert (tmp_path / "a" / "final" / "stage1_heads.pt").exists()
    assert straight.history[-1]["loss"] < straight.history[0]["loss"]
    assert list(straight.history[0]) == ["step", "loss", "itc", "itm", "itg", "lr"]
    torch.manual_seed(fit.seed)  # as the loop does before building
    initial = build_pretrainer(preset("tiny"), tokenizer)
    for a, b in zip(  # the image encoder stayed frozen (BLIP-2 stage 1)
        initial.retrieval.vision_model.state_dict().values(),
        straight.model.retrieval.vision_model.state_dict().values(),
        strict=True,
    ):
        assert torch.equal(a, b)
    assert not torch.equal(initial.retrieval.query_tokens, straight.model.retrieval.query_tokens)
    again = train_qformer(pairs, tmp_path / "a", QFormerConfig(fit=fit), log=None)  # loaded
    assert again.resumed_from == 6 and again.tokenizer is not None
    heads = tmp_path / "a" / "final" / "stage1_heads.pt"  # as saved before 2026-12-04:
    old = torch.load(heads, weights_only=True)
    torch.save({**old, "temp": old["temp"].reshape(())}, heads)  # a scalar temperature
    assert torch.equal(QFormerPretrainer.load(tmp_path / "a" / "final").temp, old["temp"])

    captioner = build_model(preset("tiny"), tokenizer).eval()
    install_qformer(captioner, straight.model)
    r = straight.model.retrieval.eval()
    pixels = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        image = r.vision_model(pixel_values=pixels).last_hidden_state
        expected = r.qformer(
            query_embeds=r.query_tokens.expand(2, -1, -1), encoder_hidden_states=image
        ).last_hidden_state
        got = captioner.get_image_features(pixel_values=pixels, return_dict=True)
    qformer_out = got.qformer_outputs.last_hidden_state
    assert torch.allclose(qformer_out, expected, atol=1e-5)


def test_itc_learns_from_scratch_to_match_colours_and_captions():
    """A from-scratch Q-Former must learn the easiest alignment there is: 16 solid colours, 16
    captions. With BERT's dropout (0.1) in the Q-Former, ITC stayed at log(16) here: the
    image signal of a new Q-Former is far smaller than dropout's noise (see ``QFormerShape``)."""
    from PIL import Image

    from facecap_lib.data.images import to_tensor

    colours = [(i * 15, 255 - i * 15, (i * 70) % 256) for i in range(16)]
    captions = [
        au_caption({au, 25}) for au in (1, 2, 4, 5, 6, 7, 9, 10, 12, 14, 15, 16, 17, 20, 23, 24)
    ]
    tokenizer = train_tokenizer(captions * 2, vocab_size=300, min_frequency=1)
    pixels = to_tensor([Image.new("RGB", (64, 64), c) for c in colours], 64)
    texts = encode_texts(tokenizer, captions, 64)
    torch.manual_seed(0)
    model = build_pretrainer(preset("tiny"), tokenizer)
    model.retrieval.vision_model.requires_grad_(False)
    model.train()
    model.retrieval.vision_model.eval()
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=5e-4)
    generator, dec = torch.Generator().manual_seed(0), text_token_ids(tokenizer)[1]
    ids = torch.arange(16)
    for _ in range(80):
        losses = stage1_losses(
            model, pixels, texts["input_ids"], texts["attention_mask"], ids, generator, dec
        )
        optimizer.zero_grad()
        losses["itc"].backward()
        optimizer.step()
    assert losses["itc"].item() < 0.7 * math.log(16)


def test_retrieval_recall_ranks_by_the_itc_similarity(pairs, tokenizer, monkeypatch):
    """Recall@k of stage 1's similarity: checked against a similarity we choose, through the
    same call; equal captions count as hits both ways."""
    torch.manual_seed(0)
    model = build_pretrainer(preset("tiny"), tokenizer)
    images, captions = [p.image for p in pairs], [p.caption for p in pairs]
    every = retrieval_recall(model, tokenizer, images, captions, ks=(1, len(pairs)))
    assert every[f"i2t@{len(pairs)}"] == every[f"t2i@{len(pairs)}"] == 1.0
    assert 0.0 <= every["i2t@1"] <= 1.0
    same = retrieval_recall(model, tokenizer, images, [captions[0]] * len(pairs), ks=(1,))
    assert same == {"i2t@1": 1.0, "t2i@1": 1.0}  # any caption with the image's text is a hit
    # projections that give each image and each caption the same vector: perfect recall
    text = {c: torch.nn.functional.normalize(torch.randn(64), dim=0) for c in set(captions)}
    own = torch.stack([text[c] for c in captions])
    r = model.retrieval
    image_side = type(
        "Own", (torch.nn.Module,), {"forward": lambda s, h: own[:, None].expand(-1, h.shape[1], -1)}
    )
    text_side = type("Own", (torch.nn.Module,), {"forward": lambda s, h: own})
    monkeypatch.setattr(r, "vision_projection", image_side())
    monkeypatch.setattr(r, "text_projection", text_side())
    perfect = retrieval_recall(model, tokenizer, images, captions, ks=(1,), batch_size=len(pairs))
    assert perfect == {"i2t@1": 1.0, "t2i@1": 1.0}
