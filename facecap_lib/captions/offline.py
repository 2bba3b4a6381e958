"""The offline describer: varied natural captions without a language model.

When no LLM endpoint is configured, this deterministic generator stands in for the paper's GPT-3.5
calls so that every later chapter has text to train on. It writes the same *content* the prompts
ask for, in varied wording: AU descriptions from per-AU appearance phrases and sentence frames,
and fused captions that link each emotion to the AUs of its prototypes. It is not an LLM and is
labelled ``generator="offline"`` wherever its captions go.

Variation is deterministic: the wording is drawn from a random generator seeded by the content and
a ``key`` (e.g. the image id), so the same image always gets the same caption and different images
with the same AUs get different wordings.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

import numpy as np

from facecap_lib.captions.mentions import mentioned_aus
from facecap_lib.captions.rules import join_phrases
from facecap_lib.captions.validate import named_emotions
from facecap_lib.lexicon import (
    AU_APPEARANCE,
    AU_BY_NUMBER,
    BASIC_PROTOTYPES,
    COMPOUND_PROTOTYPES,
    EMOTION_BY_NAME,
    NO_AU_DESCRIPTION,
)

GENERATOR = "offline"


AU_FRAMES = (
    "The face shows {0}.",
    "The face has {0}.",
    "One can see {0}.",
    "The picture shows {0}.",
)
LINK_FRAMES = (  # no verb agrees with the phrases, so any number of them reads well
    "The face expresses {emotion}, as shown by {aus}.",
    "{emotion} can be inferred from {aus}.",
    "Given {aus}, the person appears to feel {adjective}.",
    "{emotion} is suggested by {aus}.",
)
UNLINKED_FRAMES = (
    "The overall expression suggests {emotion}.",
    "Taken together, the face conveys {emotion}.",
)

_PROTOTYPE_AUS: dict[str, set[int]] = {}
for _p in BASIC_PROTOTYPES + COMPOUND_PROTOTYPES:
    _PROTOTYPE_AUS.setdefault(_p.emotion, set()).update(_p.aus | _p.optional)


def _rng(*parts: object) -> np.random.Generator:
    digest = hashlib.sha256("\x1f".join(str(p) for p in parts).encode()).digest()
    return np.random.default_rng(int.from_bytes(digest[:8], "little"))


def _phrase(au: int, rng: np.random.Generator) -> str:
    return str(rng.choice(AU_APPEARANCE[au]))


def describe_aus(aus: Iterable[int], key: object = "") -> str:
    """An AU description in the manner of the one-shot prompt's answer; the fixed text for no AU."""
    numbers = sorted(set(int(n) for n in aus))
    if not numbers:
        return NO_AU_DESCRIPTION
    rng = _rng("aus", numbers, key)
    upper = [n for n in numbers if AU_BY_NUMBER[n].region == "upper"]
    rest = [n for n in numbers if n not in upper]
    groups = [g for g in (upper, rest) if g]
    if len(groups) == 1 or rng.uniform() < 0.5:
        groups = [numbers]
    sentences = []
    for group in groups:
        frame = str(rng.choice(AU_FRAMES))
        sentences.append(frame.format(join_phrases([_phrase(n, rng) for n in group])))
    return " ".join(sentences)


def _capitalise(text: str) -> str:
    return text[:1].upper() + text[1:]


def fuse(aus: Iterable[int], emotions: Iterable[str], key: object = "") -> str:
    """A caption that names every emotion and says which of the AUs point to it."""
    numbers = sorted(set(int(n) for n in aus))
    names = list(dict.fromkeys(emotions))
    if not names:
        raise ValueError("fuse() needs at least one emotion")
    rng = _rng("fuse", numbers, names, key)
    phrases = {n: _phrase(n, rng) for n in numbers}
    used: set[int] = set()
    sentences = []
    for emotion in names:
        support = [n for n in numbers if n in _PROTOTYPE_AUS.get(emotion, set()) and n not in used]
        word = emotion if emotion != "neutral" else "a neutral state"
        adjective = EMOTION_BY_NAME[emotion].adjective
        if support:
            used.update(support)
            listed = join_phrases([phrases[n] for n in support])
            frame = str(rng.choice(LINK_FRAMES))
            sentences.append(
                _capitalise(frame.format(aus=listed, emotion=word, adjective=adjective))
            )
        else:
            sentences.append(str(rng.choice(UNLINKED_FRAMES)).format(emotion=word))
    rest = [n for n in numbers if n not in used]
    if rest:
        sentences.insert(
            0, str(rng.choice(AU_FRAMES)).format(join_phrases([phrases[n] for n in rest]))
        )
    elif not numbers:
        sentences.insert(
            0, "The facial features are relaxed, with no marked action of the brows, eyes or mouth."
        )
    return " ".join(sentences)


def fuse_sentences(au_sentence: str, emotion_sentence: str, key: object = "") -> str:
    """Fuse two *sentences* (as the LLM prompt does): read the AUs and emotions they mention, then
    :func:`fuse`. Used when one side is a model's pseudo-caption rather than a label."""
    emotions = sorted(named_emotions(emotion_sentence)) or ["neutral"]
    return fuse(mentioned_aus(au_sentence), emotions, key)
