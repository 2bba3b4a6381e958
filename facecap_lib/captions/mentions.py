"""Which AUs a caption mentions: a phrase matcher over the lexicon's words.

A caption mentions an AU when it contains one of that AU's phrases: the verb phrase of
supplementary Table 1 (imperative or third person, "raises cheek"), its FACS noun ("cheek raiser")
or one of the appearance phrases of :data:`~facecap_lib.lexicon.AU_APPEARANCE` ("raised cheeks").
Matching is case-insensitive on whole words. It reads rule-based and offline captions exactly;
free text from language models is the business of the evaluation chapter's faithfulness parser.
"""

from __future__ import annotations

import re
from functools import lru_cache

from facecap_lib.lexicon import AU_APPEARANCE, AUS


@lru_cache(maxsize=1)
def _patterns() -> list[tuple[int, re.Pattern]]:
    out = []
    for a in AUS:
        phrases = {a.verb, a.verb_3sg, a.noun, *AU_APPEARANCE.get(a.number, ())}
        for phrase in sorted(phrases, key=len, reverse=True):
            out.append((a.number, re.compile(r"\b" + re.escape(phrase.lower()) + r"\b")))
    return out


def mentioned_aus(text: str) -> frozenset[int]:
    """AU numbers whose phrases occur in ``text``."""
    lowered = " ".join(text.lower().split())
    return frozenset(number for number, pattern in _patterns() if pattern.search(lowered))
