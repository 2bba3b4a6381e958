"""The pre-training text of a from-scratch language model: each caption, and each caption after a
short statement of its content (:func:`lm_texts` says why)."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from facecap_lib.captions.mentions import mentioned_aus
from facecap_lib.captions.validate import named_emotions
from facecap_lib.lexicon import EMOTIONS


def content_statement(caption: str) -> str:
    """A short statement of what a caption says, from the caption itself (the mentions parser):
    ``"Action units 6 12. Emotion happiness."``."""
    aus = sorted(mentioned_aus(caption))
    named = named_emotions(caption)
    emotions = [e.name for e in EMOTIONS if e.name in named]  # lexicon order: deterministic
    parts = [f"Action units {' '.join(map(str, aus))}." if aus else "No action units."]
    if emotions:
        parts.append(f"Emotion {' and '.join(emotions)}.")
    return " ".join(parts)


def lm_texts(
    captions: Sequence[str],
    *,
    unique: bool = True,
    statement: Callable[[str], str] = content_statement,
) -> list[str]:
    """The pre-training text of a from-scratch language model: every caption, and every caption
    after a statement of its content; each distinct caption once (``unique``), or as often as
    the captions hold it, so that the model learns how likely each one is (the foundations:
    a caption that many faces share, such as the fixed no-AU text, must come easily to it).

    BLIP-2 relies on a frozen LLM that already conditions what it writes on what precedes it; the
    Q-Former learns to write that preceding context (the soft prompt). A small model trained on
    captions alone learns to write captions but never to read a context, so no soft prompt can
    steer it: its captions stay the same whatever the image. The statements teach it to read
    one. They are derived from the captions (no labels, no test images), and the Q-Former still
    has to find the content in the pixels. ``statement`` writes it (:func:`content_statement`
    for expression captions; :func:`facecap_lib.captions.general.general_statement` for general
    ones).
    """
    texts = sorted(set(captions)) if unique else list(captions)
    return texts + [f"{statement(c)} {c}" for c in texts]
