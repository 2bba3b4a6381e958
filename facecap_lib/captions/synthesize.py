"""Stage 1 of the paper: turn the labels of a face table into a caption table.

Every AU-labelled image gets a rule-based AU caption (when it has an AU) and a described one
(language model or offline describer; the fixed no-AU text when it has none); every
emotion-labelled image gets a rule-based emotion caption. The caption table has one row per
caption:

- ``image_id`` (``dataset/image_path``), ``dataset``, ``image_path``, ``split``;
- ``caption``; ``kind``: ``au``, ``emotion``, ``fused`` or ``cat``;
- ``generator``: ``rule``, ``llm``, ``offline``, ``fixed`` (the paper's no-AU text), or the
  pseudo-captioner's name; ``source``: the model or prompt that wrote it;
- ``problems``: rule checks the caption fails (empty list when it passes).

A describer is either :class:`OfflineDescriber` or :class:`LLMDescriber`; :func:`default_describer`
picks the LLM when the environment configures an endpoint, and says which it picked.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import pandas as pd

from facecap_lib.captions import offline
from facecap_lib.captions.llm import EndpointConfig, LLMClient, Request
from facecap_lib.captions.prompts import PROMPT_VERSION, au_prompt, fusion_prompt
from facecap_lib.captions.rules import au_caption, emotion_caption
from facecap_lib.captions.validate import (
    check_au_caption,
    check_fused_caption,
    clean_answer,
    named_emotions,
)
from facecap_lib.data.table import au_sets, image_ids
from facecap_lib.lexicon import AU_COLUMNS, NO_AU_DESCRIPTION

log = logging.getLogger("facecap.captions")
CAPTION_COLUMNS = (
    "image_id",
    "dataset",
    "image_path",
    "split",
    "caption",
    "kind",
    "generator",
    "source",
    "problems",
)


@dataclass(frozen=True)
class Written:
    """A caption a describer wrote, with the rule checks it fails; ``missing`` when there is no
    answer (budget, endpoint refusal): such a caption never enters a table."""

    text: str
    generator: str
    source: str
    problems: tuple[str, ...] = ()
    missing: bool = False


class OfflineDescriber:
    """The deterministic offline describer (see :mod:`.offline`); no network, no cost."""

    generator = offline.GENERATOR
    source = f"offline-{PROMPT_VERSION}"

    def describe(self, items: Sequence[tuple[str, frozenset[int]]]) -> list[Written]:
        out = []
        for key, aus in items:
            if not aus:
                out.append(Written(NO_AU_DESCRIPTION, "fixed", "paper"))
            else:
                text = offline.describe_aus(aus, key)
                out.append(
                    Written(text, self.generator, self.source, tuple(check_au_caption(text)))
                )
        return out

    def fuse(self, items: Sequence[tuple[str, str, str]]) -> list[Written]:
        out = []
        for key, au_text, emotion_text in items:
            text = offline.fuse_sentences(au_text, emotion_text, key)
            problems = check_fused_caption(text, named_emotions(emotion_text))
            out.append(Written(text, self.generator, self.source, tuple(problems)))
        return out


class LLMDescriber:
    """The paper's GPT path: one-shot AU prompts and zero-shot fusion through :class:`LLMClient`."""

    generator = "llm"

    def __init__(self, client: LLMClient, progress: bool = True):
        self.client = client
        self.source = f"{client.config.model}/{PROMPT_VERSION}"
        self.progress = progress

    def describe(self, items: Sequence[tuple[str, frozenset[int]]]) -> list[Written]:
        requests = au_requests(items)
        asked = {r.tag for r in requests}
        answers = {
            r.request.tag: r
            for r in self.client.complete(requests, check_au_caption, self.progress)
        }
        out = []
        for key, _ in items:
            if key not in asked:  # no AU: the paper's fixed text
                out.append(Written(NO_AU_DESCRIPTION, "fixed", "paper"))
            else:
                out.append(self._written(answers[key]))
        return out

    def fusion_requests(self, items: Sequence[tuple[str, str, str]]) -> list[Request]:
        """The requests of :meth:`fuse` (``items``: image id, AU sentence, emotion sentence)."""
        return [
            Request.user(
                fusion_prompt(a, e), key, check=partial(_check_fused, emotions=named_emotions(e))
            )
            for key, a, e in items
        ]

    def fuse(self, items: Sequence[tuple[str, str, str]]) -> list[Written]:
        requests = self.fusion_requests(items)
        return [self._written(r) for r in self.client.complete(requests, None, self.progress)]

    def _written(self, result) -> Written:
        if result.text is None:
            return Written(
                "", self.generator, self.source, (f"no answer: {result.error}",), missing=True
            )
        return Written(
            clean_answer(result.text), self.generator, self.source, tuple(result.problems)
        )


def _check_fused(text: str, emotions: set[str]) -> list[str]:
    return check_fused_caption(text, emotions)


def default_describer(cache: str | Path, progress: bool = True) -> OfflineDescriber | LLMDescriber:
    """The LLM describer if the environment configures an endpoint (``FACECAP_LLM_MODEL``), else the
    offline describer. ``cache`` is the SQLite answer cache of the LLM path."""
    config = EndpointConfig.from_env()
    if config is None:
        log.info("no LLM endpoint configured (FACECAP_LLM_MODEL): using the offline describer")
        return OfflineDescriber()
    log.info("LLM endpoint: %s", config.describe())
    return LLMDescriber(LLMClient(config, cache), progress)


def au_items(faces: pd.DataFrame) -> list[tuple[str, frozenset[int]]]:
    """(image id, AUs present) of every AU-labelled face: what a describer is asked to write."""
    au_faces = faces[au_labelled(faces)]
    return list(zip(image_ids(au_faces), au_sets(au_faces), strict=True))


def au_requests(items: Sequence[tuple[str, frozenset[int]]]) -> list[Request]:
    """The LLM requests of :func:`au_items`, one per face with an AU (a face with none gets the
    fixed text, no call), tagged with its image id: the cache key of the real call."""
    prompts = ((key, au_prompt(aus)) for key, aus in items)
    return [Request.user(prompt, key) for key, prompt in prompts if prompt is not None]


def au_labelled(faces: pd.DataFrame) -> pd.Series:
    """Rows with at least one AU labelled (not NaN)."""
    return faces[list(AU_COLUMNS)].notna().any(axis=1)


def emotion_labelled(faces: pd.DataFrame) -> pd.Series:
    return faces["emotions"].map(len) > 0


def caption_rows(
    faces: pd.DataFrame, captions: Sequence[str], kind: str, generator, source, problems=None
) -> pd.DataFrame:
    n = len(faces)
    return pd.DataFrame(
        {
            "image_id": image_ids(faces).to_numpy(),
            "dataset": faces["dataset"].to_numpy(),
            "image_path": faces["image_path"].to_numpy(),
            "split": faces["split"].to_numpy(),
            "caption": list(captions),
            "kind": kind,
            "generator": generator if isinstance(generator, list) else [generator] * n,
            "source": source if isinstance(source, list) else [source] * n,
            "problems": problems if problems is not None else [[] for _ in range(n)],
        }
    )


def written_rows(faces: pd.DataFrame, written: Sequence[Written], kind: str) -> pd.DataFrame:
    """Caption rows of what a describer wrote; missing answers are left out (and counted by the
    caller), never turned into empty captions."""
    keep = [not w.missing for w in written]
    rows, kept = faces[keep], [w for w in written if not w.missing]
    return caption_rows(
        rows,
        [w.text for w in kept],
        kind,
        [w.generator for w in kept],
        [w.source for w in kept],
        [list(w.problems) for w in kept],
    )


def synthesize_captions(faces: pd.DataFrame, describer) -> pd.DataFrame:
    """The caption table of stage 1 (see the module docstring)."""
    au_faces = faces[au_labelled(faces)]
    items = au_items(faces)
    present = [aus for _, aus in items]
    rule_faces = au_faces[[bool(s) for s in present]]
    parts = [caption_rows(rule_faces, [au_caption(s) for s in present if s], "au", "rule", "rules")]
    written = describer.describe(items)
    parts.append(written_rows(au_faces, written, "au"))
    emo_faces = faces[emotion_labelled(faces)]
    parts.append(
        caption_rows(
            emo_faces,
            [emotion_caption(e) for e in emo_faces["emotions"]],
            "emotion",
            "rule",
            "rules",
        )
    )
    table = pd.concat(parts, ignore_index=True)
    table.attrs["missing"] = sum(w.missing for w in written)
    flagged = table["problems"].map(len).gt(0).sum()
    if flagged:
        log.warning("%d captions break the paper's rules (see the problems column)", flagged)
    return table
