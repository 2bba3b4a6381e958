"""How AUs look, in words: noun phrases for the visible change of each AU.

Captions written without a language model use these (several wordings per AU), and caption parsers
read them back. No phrase names an emotion.
"""

from __future__ import annotations

AU_APPEARANCE: dict[int, tuple[str, ...]] = {
    1: (
        "the inner corners of the eyebrows raised",
        "raised inner eyebrows",
        "inner brows lifted upward",
    ),
    2: ("the outer eyebrows raised", "lifted outer brows", "outer brow corners pulled up"),
    4: (
        "the eyebrows lowered and drawn together",
        "a furrowed brow",
        "lowered brows with creases between them",
    ),
    5: ("the upper eyelids raised", "widened eyes", "eyes opened wide"),
    6: ("raised cheeks", "cheeks lifted with wrinkles at the eye corners", "cheeks pushed upward"),
    7: ("tightened eyelids", "narrowed eyes", "tensed lower eyelids"),
    8: ("lips drawn toward each other", "lips pushed together", "lips moved toward each other"),
    9: ("a wrinkled nose", "wrinkles across the bridge of the nose", "the nose wrinkled upward"),
    10: ("a raised upper lip", "the upper lip pulled up", "the upper lip lifted toward the nose"),
    11: (
        "deepened nasolabial folds",
        "deeper lines from the nose to the mouth",
        "pronounced nasolabial furrows",
    ),
    12: (
        "the lip corners pulled up",
        "the corners of the mouth drawn upward",
        "upturned mouth corners",
    ),
    14: ("dimpled lip corners", "tightened mouth corners", "dimples beside the mouth"),
    15: ("the lip corners pulled down", "downturned mouth corners", "depressed lip corners"),
    16: ("the lower lip pulled down", "a lowered lower lip", "the lower lip drawn downward"),
    17: ("a raised chin", "the chin pushed up", "a wrinkled chin"),
    18: ("puckered lips", "lips pushed forward into a pucker", "pursed lips"),
    19: ("the tongue showing", "the tongue stuck out", "a visible tongue"),
    20: ("stretched lips", "lips stretched sideways", "the mouth stretched horizontally"),
    21: ("a tightened neck", "tensed neck muscles", "a strained neck"),
    22: ("funneled lips", "lips pushed out into a funnel", "lips rounded outward"),
    23: ("tightened lips", "thin, tense lips", "lips narrowed and tightened"),
    24: ("lips pressed together", "firmly pressed lips", "the lips pressed tight"),
    25: ("parted lips", "lips slightly apart", "a small gap between the lips"),
    26: ("a dropped jaw", "the jaw lowered", "a slack, open jaw"),
    27: ("a widely stretched mouth", "the mouth stretched wide open", "a gaping mouth"),
    28: ("lips sucked in", "the lips drawn into the mouth", "lips pulled inward"),
    43: ("closed eyes", "the eyes shut", "eyelids fully closed"),
}
"""Noun phrases for the visible change of each AU, several wordings each."""
