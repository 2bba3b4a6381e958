"""The 27 Action Units of the Exp-BLIP captions (supplementary Table 1) and their word forms.

Conventions:
- AUs are identified by their FACS number (``int``); table columns are named ``AU<n>``
  without zero padding (``AU1``, ``AU12``), see :func:`au_column`.
- ``noun`` is the FACS name as printed in supplementary Table 1 (it writes "lip stretch" where the
  FACS manual says "lip stretcher"); the one-shot GPT prompt lists AUs by these nouns.
- ``verb`` is the paper's own imperative verb phrase ("raise inner eyebrow"); rule-based captions use
  its third-person singular form ``verb_3sg`` ("raises inner eyebrow"), made by appending s/es to the
  first word as the supplementary describes.
- ``region`` says where on the face the action shows: ``upper`` (brows, lids, cheeks, eyes),
  ``lower`` (nose, lips, jaw, tongue, chin) or ``other`` (neck). Occlusion analyses rely on it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Region = Literal["upper", "lower", "other"]
REGIONS: tuple[Region, ...] = ("upper", "lower", "other")


def third_person(verb_phrase: str) -> str:
    """Third-person singular of an imperative verb phrase: inflect its first word only.

    ``"press lips"`` → ``"presses lips"``; ``"stretch mouth"`` → ``"stretches mouth"``;
    ``"pull lips toward each other"`` → ``"pulls lips toward each other"``.
    """
    if not verb_phrase.strip():
        raise ValueError("third_person() needs a non-empty verb phrase")
    verb, _, rest = verb_phrase.strip().partition(" ")
    if verb.endswith(("s", "sh", "ch", "x", "z", "o")):
        verb += "es"
    elif len(verb) > 1 and verb.endswith("y") and verb[-2] not in "aeiou":
        verb = verb[:-1] + "ies"
    else:
        verb += "s"
    return f"{verb} {rest}" if rest else verb


@dataclass(frozen=True)
class ActionUnit:
    """One FACS Action Unit with the word forms used in captions."""

    number: int
    noun: str
    verb: str
    region: Region

    @property
    def code(self) -> str:
        """``"AU12"``: the code as captions and prompts write it."""
        return f"AU{self.number}"

    @property
    def verb_3sg(self) -> str:
        """``"pulls lip corner"``: the form used in rule-based captions."""
        return third_person(self.verb)


AUS: tuple[ActionUnit, ...] = (
    ActionUnit(1, "inner brow raiser", "raise inner eyebrow", "upper"),
    ActionUnit(2, "outer brow raiser", "raise outer eyebrow", "upper"),
    ActionUnit(4, "brow lowerer", "lower brow", "upper"),
    ActionUnit(5, "upper lid raiser", "raise upper lid", "upper"),
    ActionUnit(6, "cheek raiser", "raise cheek", "upper"),
    ActionUnit(7, "lid tightener", "tighten lids", "upper"),
    ActionUnit(8, "lips toward each other", "pull lips toward each other", "lower"),
    ActionUnit(9, "nose wrinkler", "wrinkle nose", "lower"),
    ActionUnit(10, "upper lip raiser", "raise upper lip", "lower"),
    ActionUnit(11, "nasolabial deepener", "deepen nasolabial", "lower"),
    ActionUnit(12, "lip corner puller", "pull lip corner", "lower"),
    ActionUnit(14, "dimpler", "tighten lip corner", "lower"),
    ActionUnit(15, "lip corner depressor", "depress lip corner", "lower"),
    ActionUnit(16, "lower lip depressor", "depress lower lip", "lower"),
    ActionUnit(17, "chin raiser", "raise chin", "lower"),
    ActionUnit(18, "lip pucker", "pucker lips", "lower"),
    ActionUnit(19, "tongue show", "stick tongue out", "lower"),
    ActionUnit(20, "lip stretch", "stretch lips", "lower"),
    ActionUnit(21, "neck tightener", "tighten neck", "other"),
    ActionUnit(22, "lip funneler", "show lip funneler", "lower"),
    ActionUnit(23, "lip tightener", "tighten lips", "lower"),
    ActionUnit(24, "lip pressor", "press lips", "lower"),
    ActionUnit(25, "lips part", "separate lips", "lower"),
    ActionUnit(26, "jaw drop", "drop jaw", "lower"),
    ActionUnit(27, "mouth stretch", "stretch mouth", "lower"),
    ActionUnit(28, "lip suck", "suck lips", "lower"),
    ActionUnit(43, "eyes closed", "close eyes", "upper"),
)
"""The 27 AUs in ascending order of number (supplementary Table 1)."""

AU_NUMBERS: tuple[int, ...] = tuple(a.number for a in AUS)
AU_BY_NUMBER: dict[int, ActionUnit] = {a.number: a for a in AUS}


def au(number: int) -> ActionUnit:
    """The lexicon entry of AU ``number``; ``KeyError`` names AUs outside the 27."""
    try:
        return AU_BY_NUMBER[int(number)]
    except KeyError:
        raise KeyError(f"AU{number} is not one of the 27 lexicon AUs {list(AU_NUMBERS)}") from None


def au_column(number: int) -> str:
    """Name of the face-table column holding AU ``number``: ``au_column(1) == "AU1"``."""
    return au(number).code


AU_COLUMNS: tuple[str, ...] = tuple(a.code for a in AUS)

NO_AU_DESCRIPTION = (
    "The eyes may be open and looking straight ahead, with the mouth closed or slightly open in a "
    "relaxed position. The forehead may be relatively smooth with minimal wrinkles or creases. "
    "The eyebrows may be in a natural position, not raised or furrowed."
)
"""The paper's fixed description of a face with no AU (supplementary §1.2), verbatim."""

FACE_WORDS: tuple[str, ...] = (
    "face",
    "facial",
    "forehead",
    "brow",
    "brows",
    "eyebrow",
    "eyebrows",
    "eye",
    "eyes",
    "eyelid",
    "eyelids",
    "lid",
    "lids",
    "cheek",
    "cheeks",
    "nose",
    "nostril",
    "nostrils",
    "lip",
    "lips",
    "mouth",
    "jaw",
    "chin",
    "teeth",
    "tongue",
    "dimple",
    "dimples",
    "wrinkle",
    "wrinkles",
    "neck",
    "nasolabial",
    "furrow",
    "furrows",
    "crease",
    "creases",
)
"""Words for parts of the face: a caption about a face uses at least one."""
