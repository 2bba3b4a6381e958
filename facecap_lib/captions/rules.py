"""Rule-based captions, exactly in the paper's form.

- AU caption: ``"It is a people who <3rd-person verb phrases>."`` with the AUs in ascending order,
  phrases joined by commas and "and" before the last (the paper's wording, "a people" included).
  There is no rule-based AU caption for a face with no AU: :func:`au_caption` returns ``None``.
- Emotion caption: ``"The face shows <emotion>."``; several labels (multi-label or the two parts of a
  compound) are merged into one sentence: ``"The face shows happiness and surprise."``.
"""

from __future__ import annotations

from collections.abc import Iterable

from facecap_lib.lexicon import au, canonical_emotion


def join_phrases(phrases: Iterable[str]) -> str:
    """``["a", "b", "c"]`` → ``"a, b and c"``; one phrase stays as it is."""
    items = list(phrases)
    if not items:
        raise ValueError("join_phrases() needs at least one phrase")
    if len(items) == 1:
        return items[0]
    return f"{', '.join(items[:-1])} and {items[-1]}"


def au_caption(aus: Iterable[int]) -> str | None:
    """The rule-based AU caption of a set of AU numbers, or ``None`` when no AU is present.

    >>> au_caption({10, 14, 17, 24})
    'It is a people who raises upper lip, tightens lip corner, raises chin and presses lips.'
    """
    numbers = sorted(set(int(n) for n in aus))
    if not numbers:
        return None
    return f"It is a people who {join_phrases(au(n).verb_3sg for n in numbers)}."


def emotion_caption(emotions: Iterable[str]) -> str:
    """The rule-based emotion caption; labels are canonicalised and de-duplicated in order.

    >>> emotion_caption(["happiness", "surprise"])
    'The face shows happiness and surprise.'
    """
    names = list(dict.fromkeys(canonical_emotion(e) for e in emotions))
    if not names:
        raise ValueError("emotion_caption() needs at least one emotion label")
    return f"The face shows {join_phrases(names)}."
