"""Emotion vocabularies: canonical names and the codes each dataset uses for them.

Conventions:
- Canonical emotion names are lower-case nouns (``"happiness"``, ``"anger"``); every face table,
  caption and metric uses these and nothing else (``EMOTION_NAMES``).
- Compound labels (RAF-DB compound, Du et al. 2014) are kept as their two constituent basic
  emotions, in the order the compound's name gives them: "happily surprised" → (happiness, surprise).
  That is how the paper turns them into captions ("The face shows happiness and surprise.").
- Dataset codes that are not emotions (AffectNet 8 none, 9 uncertain, 10 no-face) decode to ``None``:
  the image has no usable emotion label, which is different from "neutral".
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Emotion:
    """A basic emotion (or neutral) and the word forms captions and compound names need."""

    name: str  # canonical noun: "happiness"
    adjective: str  # "happy", as in "looks happy"
    adverb: str | None  # "happily", first word of compound names; None where no compound uses it

    def __str__(self) -> str:
        return self.name


EMOTIONS: tuple[Emotion, ...] = (
    Emotion("neutral", "neutral", None),
    Emotion("happiness", "happy", "happily"),
    Emotion("sadness", "sad", "sadly"),
    Emotion("surprise", "surprised", None),
    Emotion("fear", "fearful", "fearfully"),
    Emotion("disgust", "disgusted", "disgustedly"),
    Emotion("anger", "angry", "angrily"),
    Emotion("contempt", "contemptuous", None),
)
"""Neutral, the six basic emotions and contempt, in AffectNet's code order (0-7)."""

EMOTION_NAMES: tuple[str, ...] = tuple(e.name for e in EMOTIONS)
EMOTION_BY_NAME: dict[str, Emotion] = {e.name: e for e in EMOTIONS}
BASIC_EMOTIONS: tuple[str, ...] = ("happiness", "sadness", "surprise", "fear", "disgust", "anger")
"""Ekman's six basic emotions (the constituents of every compound label)."""

_ALIASES: dict[str, str] = {
    **{e.name: e.name for e in EMOTIONS},
    **{e.adjective: e.name for e in EMOTIONS},
    "happy": "happiness",
    "joy": "happiness",
    "surprised": "surprise",
    "afraid": "fear",
    "scared": "fear",
    "disgusted": "disgust",
    "angry": "anger",
    "contemptuous": "contempt",
    "neutrality": "neutral",
}


EMOTION_WORDS: dict[str, tuple[str, ...]] = {
    "neutral": ("neutral", "neutrality", "calm", "expressionless"),
    "happiness": (
        "happiness",
        "happy",
        "happily",
        "joy",
        "joyful",
        "glad",
        "pleased",
        "amused",
        "amusement",
    ),
    "sadness": (
        "sadness",
        "sad",
        "sadly",
        "unhappy",
        "unhappiness",
        "sorrow",
        "sorrowful",
        "grief",
    ),
    "surprise": (
        "surprise",
        "surprised",
        "surprisedly",
        "astonished",
        "astonishment",
        "amazed",
        "amazement",
    ),
    "fear": (
        "fear",
        "fearful",
        "fearfully",
        "afraid",
        "scared",
        "frightened",
        "terrified",
        "anxious",
        "anxiety",
    ),
    "disgust": ("disgust", "disgusted", "disgustedly", "revulsion", "repulsed"),
    "anger": ("anger", "angry", "angrily", "furious", "fury", "rage", "irritated", "annoyed"),
    "contempt": ("contempt", "contemptuous", "contemptuously", "scorn", "disdain"),
}
"""Words that name or describe each emotion (noun, adjective, adverb, close synonyms), used to
check that an AU caption names no emotion and that a fused caption names every emotion."""


def canonical_emotion(label: str) -> str:
    """The canonical name of a dataset's emotion word: ``"Happy"`` → ``"happiness"``.

    Raises ``ValueError`` naming the label when it is not one of :data:`EMOTION_NAMES` or a known
    adjective or synonym of one.
    """
    key = " ".join(str(label).strip().lower().split())
    try:
        return _ALIASES[key]
    except KeyError:
        raise ValueError(
            f"unknown emotion label {label!r}: expected one of {list(EMOTION_NAMES)} "
            f"or an adjective such as 'happy'"
        ) from None


@dataclass(frozen=True)
class CompoundEmotion:
    """A compound emotion of Du, Tao & Martinez (2014), e.g. "happily surprised"."""

    name: str
    components: tuple[str, ...]  # canonical basic emotions; () where the name is not a pair


def _pair(first: str, second: str) -> CompoundEmotion:
    a, b = EMOTION_BY_NAME[first], EMOTION_BY_NAME[second]
    return CompoundEmotion(f"{a.adverb} {b.adjective}", (first, second))


COMPOUND_EMOTIONS: tuple[CompoundEmotion, ...] = (
    _pair("happiness", "surprise"),
    _pair("happiness", "disgust"),
    _pair("sadness", "fear"),
    _pair("sadness", "anger"),
    _pair("sadness", "surprise"),
    _pair("sadness", "disgust"),
    _pair("fear", "anger"),
    _pair("fear", "surprise"),
    _pair("fear", "disgust"),
    _pair("anger", "surprise"),
    _pair("anger", "disgust"),
    _pair("disgust", "surprise"),
    CompoundEmotion("appalled", ()),
    CompoundEmotion("hatred", ()),
    CompoundEmotion("awed", ()),
)
"""The 15 compound categories of Du, Tao & Martinez (2014), in the paper's order."""

COMPOUND_BY_NAME: dict[str, CompoundEmotion] = {c.name: c for c in COMPOUND_EMOTIONS}

# --- dataset codes --------------------------------------------------------------------------

AFFECTNET_CODES: dict[int, str | None] = {
    0: "neutral",
    1: "happiness",
    2: "sadness",
    3: "surprise",
    4: "fear",
    5: "disgust",
    6: "anger",
    7: "contempt",
    8: None,  # None: an expression outside the eight classes
    9: None,  # Uncertain
    10: None,  # No-Face
}
"""AffectNet ``expression`` codes 0-10; codes 8-10 carry no emotion label (see ``AFFECTNET_NON_EMOTIONS``)."""

AFFECTNET_NON_EMOTIONS: dict[int, str] = {8: "none", 9: "uncertain", 10: "no-face"}

RAFDB_BASIC_CODES: dict[int, str] = {
    1: "surprise",
    2: "fear",
    3: "disgust",
    4: "happiness",
    5: "sadness",
    6: "anger",
    7: "neutral",
}
"""RAF-DB basic subset, ``EmoLabel/list_patition_label.txt`` codes 1-7."""

RAFDB_COMPOUND_CODES: dict[int, CompoundEmotion] = {
    code: COMPOUND_BY_NAME[name]
    for code, name in enumerate(
        (
            "happily surprised",
            "happily disgusted",
            "sadly fearful",
            "sadly angry",
            "sadly surprised",
            "sadly disgusted",
            "fearfully angry",
            "fearfully surprised",
            "angrily surprised",
            "angrily disgusted",
            "disgustedly surprised",
        ),
        start=1,
    )
}
"""RAF-DB compound subset codes 1-11 (Du et al.'s pairs without "fearfully disgusted")."""


def _decode(table: dict, code: object, dataset: str):
    try:
        key = int(str(code).strip())
    except ValueError:
        raise ValueError(f"{dataset} emotion code {code!r} is not an integer") from None
    if key not in table:
        raise ValueError(f"{dataset} emotion code {key} is not one of {sorted(table)}")
    return table[key]


def affectnet_emotion(code: int | str) -> str | None:
    """Canonical emotion of an AffectNet code; ``None`` for 8 (none), 9 (uncertain), 10 (no-face)."""
    return _decode(AFFECTNET_CODES, code, "AffectNet")


def rafdb_basic_emotion(code: int | str) -> str:
    """Canonical emotion of a RAF-DB basic code 1-7."""
    return _decode(RAFDB_BASIC_CODES, code, "RAF-DB basic")


def rafdb_compound_emotions(code: int | str) -> tuple[str, ...]:
    """The two canonical basic emotions of a RAF-DB compound code 1-11."""
    return _decode(RAFDB_COMPOUND_CODES, code, "RAF-DB compound").components
