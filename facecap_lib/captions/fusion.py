"""Stage 3 training sets: Mix, Cat and Exp (paper Sec. 3.3 and 4.3).

Each image of the training split has labels for one aspect only (AUs or emotions). The missing
aspect comes from a *pseudo-captioner*: in the paper, AU-BLIP captions the emotion-labelled images
and Emot-BLIP the AU-labelled ones. Any callable ``pseudo(faces, aspect) -> list[str]`` with a
``name`` attribute plugs in (``aspect`` is ``"au"`` or ``"emotion"``); the training chapter plugs in
the trained models. Until then :class:`PrototypePseudoCaptioner` stands in, from the labels and
the lexicon's prototypes, and says so in the ``generator`` column.

- **Mix**: the union: every image with the caption(s) of its own aspect.
- **Cat**: AU caption and emotion caption concatenated (two sentences, no fusion), one pair per AU
  caption of the image (rule-based and described, as the paper's Cat-BLIP outputs show both).
- **Exp**: AU caption and emotion caption fused by the describer (LLM or offline). As in the paper,
  only *described* AU captions (LLM or offline, not the rule-based ones) feed Exp.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

import numpy as np
import pandas as pd

from facecap_lib.captions.llm import Estimate, Request
from facecap_lib.captions.prompts import fusion_prompt
from facecap_lib.captions.rules import au_caption, emotion_caption
from facecap_lib.captions.synthesize import (
    au_labelled,
    caption_rows,
    emotion_labelled,
    synthesize_captions,
    written_rows,
)
from facecap_lib.data.table import au_sets, image_ids
from facecap_lib.lexicon import BASIC_PROTOTYPES, COMPOUND_PROTOTYPES, NO_AU_DESCRIPTION

PseudoCaptioner = Callable[[pd.DataFrame, str], list[str]]
DESCRIBED = ("llm", "offline", "fixed")
FUSED_TOKENS = 90  # a fused caption's length in tokens, for estimates before it is written


class PrototypePseudoCaptioner:
    """A stand-in for AU-BLIP and Emot-BLIP built from labels and prototypes, not a model.

    - aspect ``"emotion"`` (for AU-labelled images): the basic emotion whose EMFACS prototype best
      overlaps the image's AUs (Jaccard), neutral when none overlaps;
    - aspect ``"au"`` (for emotion-labelled images): the rule caption of its emotions' prototype AUs.

    It reads no ground truth beyond the labels, so its captions are as good as prototypes are.
    """

    name = "prototype"

    def __call__(self, faces: pd.DataFrame, aspect: str) -> list[str]:
        if aspect == "emotion":
            return [emotion_caption([self.nearest_emotion(aus)]) for aus in au_sets(faces)]
        if aspect == "au":
            return [
                au_caption(set().union(*(self.prototype(e) for e in emotions))) or NO_AU_DESCRIPTION
                for emotions in faces["emotions"]
            ]
        raise ValueError(f"aspect must be 'au' or 'emotion', got {aspect!r}")

    @staticmethod
    def prototype(emotion: str) -> set[int]:
        for p in BASIC_PROTOTYPES + COMPOUND_PROTOTYPES:
            if p.emotion == emotion:
                return set(p.aus)
        return set()

    @staticmethod
    def nearest_emotion(aus: frozenset[int]) -> str:
        scores = [(len(aus & p.aus) / len(aus | p.aus), p.emotion) for p in BASIC_PROTOTYPES]
        best = max(scores)
        return best[1] if best[0] > 0 else "neutral"


def _train(faces: pd.DataFrame) -> pd.DataFrame:
    return faces[faces["split"] == "train"]


def mix(captions: pd.DataFrame) -> pd.DataFrame:
    """Mix-BLIP pairs: every training caption of an image's own aspect."""
    pairs = captions[(captions["split"] == "train") & captions["kind"].isin(["au", "emotion"])]
    return pairs.assign(strategy="mix").reset_index(drop=True)


def _own_and_pseudo(faces, captions, pseudo: PseudoCaptioner, described_only: bool):
    """(image rows, AU sentence, emotion sentence, pseudo note) for every training image: one entry
    per AU caption of the image (only described ones if ``described_only``), the missing aspect
    from the pseudo-captioner."""
    train = _train(faces)
    ids = image_ids(train).to_numpy()
    au_rows = captions[captions["kind"] == "au"]
    if described_only:
        au_rows = au_rows[au_rows["generator"].isin(DESCRIBED)]
    au_text = au_rows.groupby("image_id", sort=False)["caption"].agg(list)
    emo_text = (
        captions[captions["kind"] == "emotion"]
        .drop_duplicates("image_id")
        .set_index("image_id")["caption"]
    )
    has_au = au_labelled(train).to_numpy()
    has_emo = emotion_labelled(train).to_numpy()
    need_emo, need_au = has_au & ~has_emo, has_emo & ~has_au
    au_lists = [au_text.get(i, []) for i in ids]
    emo_sentences = [emo_text.get(i) for i in ids]
    if need_emo.any():
        for k, text in zip(
            np.flatnonzero(need_emo), pseudo(train[need_emo], "emotion"), strict=True
        ):
            emo_sentences[k] = text
    if need_au.any():
        for k, text in zip(np.flatnonzero(need_au), pseudo(train[need_au], "au"), strict=True):
            au_lists[k] = [text]
    name = getattr(pseudo, "name", "model")
    positions, au_out, emo_out, notes = [], [], [], []
    for k in range(len(train)):
        if emo_sentences[k] is None:
            continue
        note = (
            f"pseudo-{name}:emotion"
            if need_emo[k]
            else f"pseudo-{name}:au"
            if need_au[k]
            else "labels"
        )
        for text in au_lists[k]:
            positions.append(k)
            au_out.append(text)
            emo_out.append(emo_sentences[k])
            notes.append(note)
    return train.iloc[positions], au_out, emo_out, notes


def cat(faces: pd.DataFrame, captions: pd.DataFrame, pseudo: PseudoCaptioner) -> pd.DataFrame:
    """Cat-BLIP pairs: "<AU caption> <emotion caption>" for every training image."""
    rows, au_s, emo_s, notes = _own_and_pseudo(faces, captions, pseudo, described_only=False)
    texts = [f"{a.strip()} {e.strip()}" for a, e in zip(au_s, emo_s, strict=True)]
    return caption_rows(rows, texts, "cat", "concatenation", notes).assign(strategy="cat")


def exp_items(
    faces: pd.DataFrame, captions: pd.DataFrame, pseudo: PseudoCaptioner
) -> list[tuple[str, str, str]]:
    """(image id, AU sentence, emotion sentence) of every fusion :func:`exp` asks for: what a
    describer's ``fuse`` receives, and what a dry run prices."""
    rows, au_s, emo_s, _ = _own_and_pseudo(faces, captions, pseudo, described_only=True)
    return list(zip(image_ids(rows), au_s, emo_s, strict=True))


def exp(
    faces: pd.DataFrame, captions: pd.DataFrame, pseudo: PseudoCaptioner, describer
) -> pd.DataFrame:
    """Exp-BLIP pairs: the describer fuses each training image's AU and emotion sentences."""
    rows, au_s, emo_s, notes = _own_and_pseudo(faces, captions, pseudo, described_only=True)
    written = describer.fuse(list(zip(image_ids(rows), au_s, emo_s, strict=True)))
    written = [replace(w, source=f"{w.source}+{n}") for w, n in zip(written, notes, strict=True)]
    table = written_rows(rows, written, "fused").assign(strategy="exp")
    table.attrs["missing"] = sum(w.missing for w in written)
    return table


def estimate(describer, faces: pd.DataFrame, captions: pd.DataFrame, pseudo) -> Estimate:
    """What Exp's fusion would cost an LLM ``describer`` now: its real requests (so the cache is
    found), built from the AU and emotion ``captions`` and the ``pseudo``-captioner's
    sentences."""
    requests = describer.fusion_requests(exp_items(faces, captions, pseudo))
    return describer.client.estimate(requests, completion_tokens=FUSED_TOKENS)


def fusion_lines(
    faces: pd.DataFrame, describer, au_cached: bool, captions: pd.DataFrame | None = None
) -> list[str]:
    """A dry run's account of Exp's fusion requests with the AU prototypes' pseudo-captions (the
    caption corpus's): exact (their real requests, so the cache is found) when every AU caption
    is cached (``au_cached``; the caption table ``captions``, or read from the cache: no call),
    else their count, priced at a typical prompt."""
    if au_cached:
        if captions is None:
            captions = synthesize_captions(faces, describer)  # every answer cached: no call
        return [f"fusion: {estimate(describer, faces, captions, PrototypePseudoCaptioner())}"]
    train = image_ids(faces[faces["split"] == "train"])
    typical = fusion_prompt(au_caption({6, 12, 25}), emotion_caption(["happiness"]))
    requests = [Request.user(typical, tag) for tag in train]
    cost = describer.client.estimate(requests, completion_tokens=FUSED_TOKENS).cost
    return [
        f"fusion: up to {len(requests)} requests (one per training image), about ${cost:,.2f} if "
        "none is cached (priced at a typical prompt); their prompts hold the AU captions, so what "
        "is cached is known once those are"
    ]
