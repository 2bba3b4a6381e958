"""Checks of generated captions against the paper's restrictions.

- An AU caption must not name an emotion (any word of :data:`~facecap_lib.lexicon.EMOTION_WORDS`,
  or "emotion") and must not say "AU" or "action unit": the prompt forbids both, and outputs that
  break them are defects (paper §3.1).
- A fused caption must name every emotion of its label (any of that emotion's words) and must stay
  about the face (at least one word of :data:`~facecap_lib.lexicon.FACE_WORDS`).

Each check returns a list of problems; an empty list means the caption passes.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from facecap_lib.lexicon import EMOTION_WORDS, FACE_WORDS


def _words(text: str) -> set[str]:
    return set(re.findall(r"[a-z]+", text.lower()))


def named_emotions(text: str) -> set[str]:
    """Canonical emotions a text names with any of their words."""
    words = _words(text)
    return {emotion for emotion, forms in EMOTION_WORDS.items() if words & set(forms)}


EXPRESSION_WORDS = (
    "emotion",
    "emotions",
    "expression",
    "expressions",
    "smile",
    "smiles",
    "smiling",
    "frown",
    "frowns",
    "frowning",
    "grimace",
    "grimacing",
    "scowl",
    "scowling",
)
"""Words that describe a facial *expression* rather than facial actions (the AU prompt forbids)."""


def clean_answer(text: str) -> str:
    """An LLM answer without a leading "Answer:" label or wrapping quotes."""
    text = re.sub(r"^\s*answer\s*:\s*", "", text.strip(), flags=re.IGNORECASE)
    return text.strip().strip('"').strip()


def check_au_caption(text: str) -> list[str]:
    """Problems of an AU caption: empty, names an emotion or an expression, or mentions AUs."""
    problems = []
    text = clean_answer(text)
    if not text:
        problems.append("empty caption")
    named = sorted(named_emotions(text) - {"neutral"}) + sorted(
        _words(text) & set(EXPRESSION_WORDS)
    )
    if named:
        problems.append(f"names an emotion ({', '.join(named)})")
    if re.search(r"\bAUs?\b|\bAU\s?\d+|action units?", text, flags=re.IGNORECASE):
        problems.append("mentions AU")
    return problems


def check_fused_caption(text: str, emotions: Iterable[str]) -> list[str]:
    """Problems of a fused caption: an emotion of the label missing, or nothing about the face."""
    problems = []
    missing = sorted(set(emotions) - named_emotions(text))
    if missing:
        problems.append(f"does not mention {', '.join(missing)}")
    if not _words(text) & set(FACE_WORDS):
        problems.append("says nothing about the face")
    return problems
