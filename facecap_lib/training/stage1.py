"""Stage 1 of BLIP-2: vision-language representation learning of the Q-Former (paper Sec. 3.1).

The image encoder is frozen (its features are read, not changed); the Q-Former's queries learn to
pull out of them what the text talks about, through three losses that share one Q-Former and
differ only in who may attend to whom (Li et al. 2023, Fig. 2):

- **ITC**, image-text contrastive: the best-matching query of each image against the text's first
  token, over the whole batch (all ranks), symmetric, learned temperature. Captions are often
  identical across faces (the same AUs give the same rule caption), so every pair with the same
  text counts as a positive, as BLIP does for pairs sharing an image id. Queries and text do not
  see each other.
- **ITM**, image-text matching: a binary classifier over query outputs that attend to the text
  too (bidirectional mask); negatives are *hard*: for each image a text sampled in proportion to
  its ITC similarity, and for each text an image likewise, never one with the same caption.
- **ITG**, image-grounded text generation: the text is generated from the queries; queries see only
  queries, text tokens see all queries and the text before them (a causal mask), so the only
  path from image to text goes through the queries.

transformers provides the modules (``Blip2ForImageTextRetrieval``: image encoder, queries, Q-Former
with text input, projections, ITM head) but none of the losses and no Q-Former language-model head;
:class:`QFormerPretrainer` adds the head (BERT's, tied to the word embeddings) and the temperature.
:func:`install_qformer` moves the trained image encoder, queries and Q-Former into a stage-2
captioner.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from transformers import Blip2ForImageTextRetrieval

from facecap_lib.data.images import load_rgb, to_tensor
from facecap_lib.models.captions import caption_lengths
from facecap_lib.models.presets import Preset, blip2_config, init_qformer, preset, tokenizer_ids
from facecap_lib.models.stem import from_pretrained, install_conv_stem
from facecap_lib.models.tokenizer import DEC_TOKEN, load_tokenizer, train_tokenizer
from facecap_lib.training import distributed
from facecap_lib.training.config import FitConfig, own_settings
from facecap_lib.training.data import Pair, image_batches
from facecap_lib.training.fit import FitResult, Task, building_on, fit

HEADS_FILE = "stage1_heads.pt"
LABEL_SMOOTHING = 0.1  # LAVIS blip2_qformer: ITC and ITG


# ---------------------------------------------------------------- the model


class QFormerPretrainer(nn.Module):
    """``Blip2ForImageTextRetrieval`` plus what stage 1 needs beyond it: the ITG head and the
    learned ITC temperature."""

    def __init__(self, retrieval: Blip2ForImageTextRetrieval):
        super().__init__()
        self.retrieval = retrieval
        hidden = retrieval.config.qformer_config.hidden_size
        self.itg_transform = nn.Sequential(
            nn.Linear(hidden, hidden),
            nn.GELU(),
            nn.LayerNorm(hidden, eps=retrieval.config.qformer_config.layer_norm_eps),
        )
        self.itg_bias = nn.Parameter(torch.zeros(retrieval.config.qformer_config.vocab_size))
        # BLIP-2's initial temperature; one element, not a scalar (FSDP cannot shard scalars)
        self.temp = nn.Parameter(torch.tensor([0.07]))

    @property
    def config(self):
        return self.retrieval.config

    def itg_logits(self, hidden: torch.Tensor) -> torch.Tensor:
        """BERT's prediction head; the decoder shares the Q-Former's word embeddings."""
        weight = self.retrieval.embeddings.word_embeddings.weight
        return F.linear(self.itg_transform(hidden), weight, self.itg_bias)

    def forward(self, **batch) -> dict[str, torch.Tensor]:
        """The stage-1 losses of a batch (see :func:`stage1_losses`); a ``forward`` so that DDP
        sees the computation."""
        return stage1_losses(self, **batch)

    def save(self, folder: Path, weights: dict | None = None) -> None:
        """``retrieval`` in ``save_pretrained`` form and the heads in :data:`HEADS_FILE`
        (``weights``: the whole state dict, when gathered from shards)."""
        weights = self.state_dict() if weights is None else weights
        prefix = "retrieval."
        own = {k[len(prefix) :]: v for k, v in weights.items() if k.startswith(prefix)}
        self.retrieval.save_pretrained(folder, state_dict=own)
        heads = {k: v for k, v in weights.items() if not k.startswith(prefix)}
        torch.save(heads, folder / HEADS_FILE)

    @classmethod
    def load(cls, folder: str | Path) -> QFormerPretrainer:
        folder = Path(folder)
        model = cls(from_pretrained(Blip2ForImageTextRetrieval, folder))
        heads = torch.load(folder / HEADS_FILE, map_location="cpu", weights_only=True)
        heads["temp"] = heads["temp"].reshape(1)  # saved as a scalar before 2026-12-04
        model.load_state_dict(heads, strict=False)
        return model


def build_pretrainer(spec, tokenizer) -> QFormerPretrainer:
    """A stage-1 model of a preset's shape with random weights (Q-Former with text input)."""
    config = blip2_config(spec, vocab_size=len(tokenizer), **tokenizer_ids(tokenizer))
    config.qformer_config.use_qformer_text_input = True
    config.image_text_hidden_size = spec.qformer.embed_dim
    retrieval = init_qformer(Blip2ForImageTextRetrieval(config), spec.qformer.init)
    install_conv_stem(retrieval)
    return QFormerPretrainer(retrieval)


def text_token_ids(tokenizer) -> tuple[int, int]:
    """The Q-Former's first-token ids: ``(cls, dec)``. ITC and ITM read the text at ``cls``; ITG
    starts generation from ``dec`` (BLIP-2's ``[DEC]``)."""
    vocab = tokenizer.get_vocab()
    cls_id = (
        tokenizer.cls_token_id if tokenizer.cls_token_id is not None else tokenizer.bos_token_id
    )
    for name in (DEC_TOKEN, "[DEC]"):
        if name in vocab:
            return cls_id, vocab[name]
    raise ValueError(
        f"the tokenizer has no {DEC_TOKEN} (or [DEC]) token for ITG: add it as a special token "
        "and resize the Q-Former's word embeddings"
    )


def encode_texts(tokenizer, captions: Sequence[str], max_length: int) -> dict[str, torch.Tensor]:
    """``input_ids`` (``cls``, caption, ``eos``, right-padded) and ``attention_mask`` for the
    Q-Former's text side."""
    cls_id, _ = text_token_ids(tokenizer)
    rows = [
        [cls_id, *tokenizer(c.strip(), add_special_tokens=False)["input_ids"][: max_length - 2]]
        + [tokenizer.eos_token_id]
        for c in captions
    ]
    ids = torch.full((len(rows), max(map(len, rows))), tokenizer.pad_token_id, dtype=torch.long)
    mask = torch.zeros_like(ids)
    for r, row in enumerate(rows):
        ids[r, : len(row)] = torch.tensor(row)
        mask[r, : len(row)] = 1
    return {"input_ids": ids, "attention_mask": mask}


# ---------------------------------------------------------------- the losses (pure)


def itc_loss(
    image_feats: torch.Tensor,
    text_feats: torch.Tensor,
    all_image_feats: torch.Tensor,
    all_text_feats: torch.Tensor,
    temp: torch.Tensor,
    same: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Image-text contrastive loss, both ways (the mean of image-to-text and text-to-image).

    Args:
        image_feats: ``[B, Q, D]`` normalized query embeddings of this rank's images.
        text_feats: ``[B, D]`` normalized first-token embeddings of this rank's texts.
        all_image_feats, all_text_feats: the same for every rank (``[N, ...]``, N >= B; equal to
            the local ones in one process).
        temp: the temperature.
        same: ``[B, N]`` bool, True where local pair b and global pair n have the same caption.
    Returns:
        the loss, ``sim_i2t`` (local images against all texts, ``[B, N]``; the best query) and
        ``sim_t2i`` (local texts against all images, ``[B, N]``).
    """
    with torch.autocast(image_feats.device.type, enabled=False):  # similarities in fp32
        image_feats, text_feats = image_feats.float(), text_feats.float()
        all_image_feats, all_text_feats = all_image_feats.float(), all_text_feats.float()
        sim_i2t = torch.einsum("bqd,nd->bnq", image_feats, all_text_feats).amax(-1) / temp.float()
        sim_t2i = torch.einsum("bd,nqd->bnq", text_feats, all_image_feats).amax(-1) / temp.float()
    targets = same.float() / same.float().sum(1, keepdim=True)
    loss = (
        F.cross_entropy(sim_i2t, targets, label_smoothing=LABEL_SMOOTHING)
        + F.cross_entropy(sim_t2i, targets, label_smoothing=LABEL_SMOOTHING)
    ) / 2
    return loss, sim_i2t, sim_t2i


def hard_negatives(
    sim_i2t: torch.Tensor, sim_t2i: torch.Tensor, same: torch.Tensor, generator: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Sample one hard negative text per image and one hard negative image per text, in
    proportion to ``softmax`` of the ITC similarity, never a pair with the same caption.

    Returns ``(images, texts_for_images, texts, images_for_texts)``: indices of the rows that have a
    negative at all (a batch whose captions are all equal has none) and their negatives.
    """
    out = []
    for sim in (sim_i2t, sim_t2i):
        weights = torch.softmax(sim.detach().float().cpu(), dim=1).masked_fill(same.cpu(), 0.0)
        rows = torch.nonzero(weights.sum(1) > 0).flatten()
        picks = torch.multinomial(weights[rows], 1, generator=generator).flatten()
        out += [rows, picks]
    return tuple(out)


def itm_pairs(
    positives: torch.Tensor,
    images: torch.Tensor,
    neg_texts: torch.Tensor,
    texts: torch.Tensor,
    neg_images: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The ITM batch: every positive pair (``positives``: the indices of this rank's pairs in the
    global batch; label 1), then each image with its hard negative text and each text with its
    hard negative image (label 0). Returns image indices, text indices and labels."""
    pair_images = torch.cat([positives, images, neg_images])
    pair_texts = torch.cat([positives, neg_texts, texts])
    labels = (torch.arange(len(pair_images), device=images.device) < len(positives)).long()
    return pair_images, pair_texts, labels


def itg_attention_mask(query_length: int, text_mask: torch.Tensor) -> torch.Tensor:
    """The ``[B, 1, Q + T, Q + T]`` boolean mask of ITG (True: may attend): queries see queries;
    text token t sees all queries and text tokens up to t that are not padding."""
    batch, length = text_mask.shape
    total = query_length + length
    mask = torch.zeros(batch, total, total, dtype=torch.bool, device=text_mask.device)
    mask[:, :query_length, :query_length] = True
    mask[:, query_length:, :query_length] = True
    causal = torch.tril(torch.ones(length, length, dtype=torch.bool, device=text_mask.device))
    mask[:, query_length:, query_length:] = causal & text_mask.bool()[:, None, :]
    return mask[:, None]


def stage1_losses(
    model: QFormerPretrainer,
    pixel_values: torch.Tensor,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor,
    caption_ids: torch.Tensor,
    generator: torch.Generator,
    dec_id: int,
) -> dict[str, torch.Tensor]:
    """``{"itc", "itm", "itg", "loss"}`` of one batch (``loss`` is their sum, as in BLIP-2).

    ``input_ids`` / ``attention_mask`` come from :func:`encode_texts`; ``caption_ids`` ``[B]``
    number the distinct captions (equal id: same text), which decides the positives of ITC and
    excludes them as ITM negatives; ``generator`` draws the hard negatives.
    """
    r = model.retrieval
    ids, mask = input_ids, attention_mask
    batch = ids.shape[0]
    queries = r.query_tokens.expand(batch, -1, -1)
    q = queries.shape[1]

    image_embeds = r.vision_model(pixel_values=pixel_values).last_hidden_state
    query_out = r.qformer(query_embeds=queries, encoder_hidden_states=image_embeds)
    image_feats = F.normalize(r.vision_projection(query_out.last_hidden_state), dim=-1)
    text_out = r.qformer(
        query_embeds=r.embeddings(input_ids=ids), query_length=0, attention_mask=mask
    )
    text_feats = F.normalize(r.text_projection(text_out.last_hidden_state[:, 0]), dim=-1)

    # ITC against the texts and images of every rank
    same = caption_ids[:, None] == distributed.gather(caption_ids)[None, :]
    with torch.no_grad():
        model.temp.clamp_(0.001, 0.5)
    itc, sim_i2t, sim_t2i = itc_loss(
        image_feats,
        text_feats,
        distributed.gather_with_grad(image_feats),
        distributed.gather_with_grad(text_feats),
        model.temp,
        same,
    )

    # ITM on this rank's pairs, with hard negatives drawn from every rank's (as LAVIS's): the draw
    # is made over the whole batch with one seed on every rank, each keeping its own rows, so
    # that the pairs do not depend on how many processes share the batch
    offset = distributed.rank() * batch
    mine = torch.arange(offset, offset + batch)
    every_same = distributed.gather(same)
    drawn = hard_negatives(
        distributed.gather(sim_i2t.detach()), distributed.gather(sim_t2i.detach()), every_same,
        generator,
    )  # fmt: skip
    images, neg_texts, texts, neg_images = (
        t[(rows >= offset) & (rows < offset + batch)].to(ids.device)
        for t, rows in zip(drawn, (drawn[0], drawn[0], drawn[2], drawn[2]), strict=True)
    )
    pair_images, pair_texts, labels = itm_pairs(
        mine.to(ids.device), images, neg_texts, texts, neg_images
    )
    every_ids = distributed.gather_padded(ids, r.config.qformer_config.pad_token_id)
    every_mask = distributed.gather_padded(mask, 0)
    itm_mask = torch.cat(
        [
            torch.ones(len(pair_images), q, dtype=mask.dtype, device=ids.device),
            every_mask[pair_texts],
        ],
        dim=1,
    )
    itm_out = r.qformer(
        query_embeds=r.embeddings(
            input_ids=every_ids[pair_texts],
            query_embeds=r.query_tokens.expand(len(pair_images), -1, -1),
        ),
        query_length=q,
        attention_mask=itm_mask,
        encoder_hidden_states=distributed.gather_with_grad(image_embeds)[pair_images],
    )
    itm = F.cross_entropy(r.itm_head(itm_out.last_hidden_state[:, :q]).mean(1), labels)
    itm = distributed.global_mean(itm, len(labels))

    # ITG: the text generated from the queries alone
    dec_ids = ids.clone()
    dec_ids[:, 0] = dec_id
    itg_out = r.qformer(
        query_embeds=r.embeddings(input_ids=dec_ids, query_embeds=queries),
        query_length=q,
        attention_mask=itg_attention_mask(q, mask),
        encoder_hidden_states=image_embeds,
    )
    logits = model.itg_logits(itg_out.last_hidden_state[:, q:-1])
    target = ids[:, 1:].masked_fill(mask[:, 1:] == 0, -100)
    itg = F.cross_entropy(
        logits.reshape(-1, logits.shape[-1]), target.reshape(-1), label_smoothing=LABEL_SMOOTHING
    )
    itg = distributed.global_mean(itg, (target != -100).sum())
    return {"itc": itc, "itm": itm, "itg": itg, "loss": itc + itm + itg}


@torch.no_grad()
def retrieval_recall(
    model: QFormerPretrainer,
    tokenizer,
    images: Sequence,
    captions: Sequence[str],
    ks: Sequence[int] = (1, 5),
    *,
    max_caption_tokens: int = 96,
    batch_size: int = 64,
) -> dict[str, float]:
    """Image-to-text and text-to-image recall@k of stage 1's ITC similarity (the best query
    against the text's first token) on ``images`` and their ``captions``: the share of images
    whose caption ranks in the top ``k`` of all the captions, and of captions whose image does.
    Captions are often identical across faces (the same AUs give the same rule caption), so an
    image's hit is any caption with its text, and a caption's any image with that text, as ITC
    counts its positives. Returns ``{"i2t@1": ..., "t2i@1": ..., ...}`` in [0, 1]."""

    model.eval()
    r = model.retrieval
    device = next(model.parameters()).device
    size = r.config.vision_config.image_size
    image_feats, text_feats = [], []
    for start in range(0, len(images), batch_size):
        chunk = [
            load_rgb(i) if isinstance(i, str | Path) else i
            for i in images[start : start + batch_size]
        ]
        embeds = r.vision_model(pixel_values=to_tensor(chunk, size).to(device)).last_hidden_state
        queries = r.query_tokens.expand(len(chunk), -1, -1)
        out = r.qformer(query_embeds=queries, encoder_hidden_states=embeds).last_hidden_state
        image_feats.append(F.normalize(r.vision_projection(out), dim=-1).float())
        texts = encode_texts(tokenizer, captions[start : start + batch_size], max_caption_tokens)
        text_out = r.qformer(
            query_embeds=r.embeddings(input_ids=texts["input_ids"].to(device)), query_length=0,
            attention_mask=texts["attention_mask"].to(device),
        )  # fmt: skip
        text_feats.append(
            F.normalize(r.text_projection(text_out.last_hidden_state[:, 0]), dim=-1).float()
        )
    image_feats, text_feats = torch.cat(image_feats), torch.cat(text_feats)
    sim = torch.einsum("iqd,td->itq", image_feats, text_feats).amax(-1)  # [images, texts]
    numbers = {c: n for n, c in enumerate(sorted(set(captions)))}
    ids = torch.tensor([numbers[c] for c in captions], device=sim.device)
    same = ids[:, None] == ids[None, :]
    out = {}
    for k in ks:
        k = min(k, len(captions))
        top_texts = sim.topk(k, dim=1).indices  # each image's best captions
        top_images = sim.topk(k, dim=0).indices.T  # each caption's best images
        out[f"i2t@{k}"] = same.gather(1, top_texts).any(1).float().mean().item()
        out[f"t2i@{k}"] = same.gather(1, top_images).any(1).float().mean().item()
    return out


# ---------------------------------------------------------------- moving into stage 2


def install_qformer(captioner, pretrainer: QFormerPretrainer) -> None:
    """Copy the image encoder, the queries and the Q-Former of a stage-1 model into a stage-2
    captioner (``Blip2ForConditionalGeneration``) of the same shape. The Q-Former's text-only
    parts (word embeddings, text feed-forward layers) stay behind: stage 2 has no text input."""
    r = pretrainer.retrieval
    captioner.vision_model.load_state_dict(r.vision_model.state_dict())
    with torch.no_grad():
        captioner.query_tokens.copy_(r.query_tokens)
    missing, unexpected = captioner.qformer.load_state_dict(r.qformer.state_dict(), strict=False)
    text_only = [k for k in unexpected if ".intermediate." not in k and ".output." not in k]
    if missing or text_only:
        raise ValueError(
            f"stage-1 Q-Former does not fit the captioner: missing {missing}, unexpected {text_only}"
        )


# ---------------------------------------------------------------- the task


@dataclass(frozen=True)
class QFormerConfig:
    """Stage 1's settings. ``fit``: the authors' step-1 YAML, batch 28, peak lr 1e-4, minimum
    1e-5 (warm-up 5000 of ~130k steps; scaled)."""

    fit: FitConfig = FitConfig(batch_size=28, lr=1e-4, min_lr=1e-5)
    freeze_vision: bool = True  # BLIP-2 stage 1 reads a frozen image encoder
    max_caption_tokens: int | None = None  # None: the longest training caption (reported)
    augment: bool = True  # random resized crop and flip, as stage 2

    @classmethod
    def smoke(cls) -> QFormerConfig:
        return cls(fit=FitConfig.smoke(max_steps=4, warmup_steps=1, save_every=2))


class QFormerTask(Task):
    """Stage 1 on ``pairs``: the queries and the Q-Former learn ITC + ITM + ITG.

    Args:
        pairs: image files with captions.
        spec: the preset the model is built as.
        config: see :class:`QFormerConfig`.
        tokenizer: one with a ``<dec>`` token; trained on the captions unless given.
        image_encoder: called with a new model's ``vision_model`` to put pre-trained weights in
            (e.g. ``lambda v: install_mae_encoder(...)``).
    """

    name = "stage 1"

    def __init__(
        self,
        pairs: Sequence[Pair],
        spec: Preset,
        config: QFormerConfig,
        *,
        tokenizer=None,
        image_encoder: Callable[[nn.Module], None] | None = None,
        log: Callable[[str], None] | None = None,
    ):
        self.pairs, self.spec, self.config = pairs, spec, config
        self.tokenizer, self.image_encoder, self.log = tokenizer, image_encoder, log
        self.numbers = {c: i for i, c in enumerate(sorted({p.caption for p in pairs}))}

    def build(self, device):
        self.tokenizer = self.tokenizer or train_tokenizer([p.caption for p in self.pairs])
        with building_on(device):
            model = build_pretrainer(self.spec, self.tokenizer)
        if self.image_encoder is not None:
            self.image_encoder(model.retrieval.vision_model)
        return model

    def load(self, folder: Path):
        self.tokenizer = load_tokenizer(folder)
        return QFormerPretrainer.load(folder)

    def save(self, model, folder: Path, weights: dict | None) -> None:
        model.save(folder, weights)
        self.tokenizer.save_pretrained(folder)

    def freeze(self, model) -> None:
        if self.config.freeze_vision:
            model.retrieval.vision_model.requires_grad_(False)

    def train_mode(self, model) -> None:
        """``model.train()``, a frozen image encoder in eval mode (see the captioner's)."""
        model.train()
        if self.config.freeze_vision:
            model.retrieval.vision_model.eval()

    def batches(self, model, config: FitConfig, device):
        _, dec_id = text_token_ids(self.tokenizer)
        positions = model.retrieval.config.qformer_config.max_position_embeddings
        lengths = caption_lengths(
            self.tokenizer, [p.caption for p in self.pairs], self.config.max_caption_tokens,
            positions,
        )  # fmt: skip
        if self.log and distributed.is_main():
            self.log(f"{self.name}: {lengths.summary()}")

        def texts(indices, step: int, micro: int) -> dict:
            captions = [self.pairs[i].caption for i in indices]
            # the hard negatives' seed, the same on every rank (the "/0" keeps the seeds that
            # one-process runs always had)
            seed = f"{config.seed}/{step}/{micro}/0"
            return {
                **encode_texts(self.tokenizer, captions, lengths.limit),
                "caption_ids": torch.tensor([self.numbers[c] for c in captions]),
                "generator": torch.Generator().manual_seed(zlib.crc32(seed.encode())),
                "dec_id": dec_id,
            }

        size = model.config.vision_config.image_size
        images = [p.image for p in self.pairs]
        return image_batches(images, config, size, device, self.config.augment, texts)

    def loss(self, model, batch: dict) -> dict:
        return model(**batch)

    def settings(self) -> dict:
        return {"preset": self.spec.name, **own_settings(self.config)}


def train_qformer(
    pairs: Sequence[Pair],
    out_dir: str | Path,
    config: QFormerConfig | None = None,
    *,
    spec: Preset | str = "tiny",
    device: str = "auto",
    tokenizer=None,
    image_encoder: Callable[[nn.Module], None] | None = None,
    log: Callable[[str], None] | None = print,
    progress: bool = False,
    stop_after: int | None = None,
) -> FitResult:
    """Stage 1 (resumable; loaded when finished): :class:`QFormerTask` through
    :func:`~facecap_lib.training.fit.fit`. The result carries the tokenizer."""
    config = config or QFormerConfig()
    spec = preset(spec) if isinstance(spec, str) else spec
    task = QFormerTask(
        pairs, spec, config, tokenizer=tokenizer, image_encoder=image_encoder, log=log
    )
    return fit(
        task, out_dir, config.fit, device=device, log=log, progress=progress,
        stop_after=stop_after,
    )  # fmt: skip
