"""AU prototypes of emotions, as data with their sources.

Each :class:`Prototype` holds the prototypical AUs of one emotion (``aus``), the AUs only some people
add (``optional``), and the notation as the source prints it (``codes``, e.g. ``"1+2+5B+26"``; intensity
letters and side prefixes are kept there and dropped from ``aus``). ``source`` is a key of
:data:`PROTOTYPE_SOURCES`, whose entries name the BibTeX key used in the book's references.

- :data:`BASIC_PROTOTYPES`: the EMFACS-style table of the basic emotions and contempt commonly quoted
  from Friesen & Ekman's EMFACS-7 (a summary, not the full EMFACS dictionary). Fear's AU7 is listed
  as optional because sources disagree on it.
- :data:`COMPOUND_PROTOTYPES`: Du, Tao & Martinez (2014), Table 1: 6 basic and 15 compound
  categories; ``aus`` are the AUs used by most subjects ("required"), ``optional`` the AUs a subset
  added, as transcribed in the public ``jmgirard/facs`` data (``du2014_raw.csv``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from facecap_lib.lexicon.codes import parse_au_codes
from facecap_lib.lexicon.emotions import COMPOUND_BY_NAME, EMOTION_BY_NAME


@dataclass(frozen=True)
class PrototypeSource:
    """Where a prototype table comes from."""

    key: str  # BibTeX key in book/references.bib
    citation: str
    note: str = ""


PROTOTYPE_SOURCES: dict[str, PrototypeSource] = {
    "emfacs": PrototypeSource(
        "friesen1983emfacs",
        "Friesen, W. V. & Ekman, P. (1983). EMFACS-7: Emotional Facial Action Coding System. "
        "Unpublished manuscript, University of California at San Francisco.",
        "The commonly quoted summary table (e.g. Wikipedia, 'Facial Action Coding System').",
    ),
    "du2014": PrototypeSource(
        "du2014compound",
        "Du, S., Tao, Y. & Martinez, A. M. (2014). Compound facial expressions of emotion. "
        "PNAS 111(15), E1454-E1462.",
        "Table 1 as transcribed in jmgirard/facs (du2014_raw.csv): required and optional AUs.",
    ),
}


@dataclass(frozen=True)
class Prototype:
    """The AUs that express one emotion according to one source."""

    emotion: str  # canonical basic name ("happiness") or compound name ("happily surprised")
    codes: str  # as printed by the source, e.g. "1+2+5B+26"
    source: str  # key of PROTOTYPE_SOURCES
    optional_codes: str = ""
    aus: frozenset[int] = field(init=False)
    optional: frozenset[int] = field(init=False)

    def __post_init__(self) -> None:
        if self.source not in PROTOTYPE_SOURCES:
            raise ValueError(f"prototype of {self.emotion!r}: unknown source {self.source!r}")
        if self.emotion not in EMOTION_BY_NAME and self.emotion not in COMPOUND_BY_NAME:
            raise ValueError(f"prototype source {self.source!r}: unknown emotion {self.emotion!r}")
        object.__setattr__(self, "aus", parse_au_codes(self.codes))
        object.__setattr__(self, "optional", parse_au_codes(self.optional_codes))


BASIC_PROTOTYPES: tuple[Prototype, ...] = (
    Prototype("happiness", "6+12", "emfacs"),
    Prototype("sadness", "1+4+15", "emfacs"),
    Prototype("surprise", "1+2+5B+26", "emfacs"),
    Prototype("fear", "1+2+4+5+20+26", "emfacs", optional_codes="7"),
    Prototype("anger", "4+5+7+23", "emfacs"),
    Prototype("disgust", "9+15+16", "emfacs"),
    Prototype("contempt", "R12A+R14A", "emfacs"),
)

_DU = "du2014"
COMPOUND_PROTOTYPES: tuple[Prototype, ...] = (
    Prototype("happiness", "12+25", _DU, "6"),
    Prototype("sadness", "4+15", _DU, "1+6+11+17"),
    Prototype("fear", "1+4+20+25", _DU, "2+5+26"),
    Prototype("anger", "4+7+24", _DU, "10+17+23"),
    Prototype("surprise", "1+2+25+26", _DU, "5"),
    Prototype("disgust", "9+10+17", _DU, "4+24"),
    Prototype("happily surprised", "1+2+12+25", _DU, "5+26"),
    Prototype("happily disgusted", "10+12+25", _DU, "4+6+9"),
    Prototype("sadly fearful", "1+4+20+25", _DU, "2+5+6+15"),
    Prototype("sadly angry", "4+15", _DU, "6+7+11+17"),
    Prototype("sadly surprised", "1+4+25+26", _DU, "2+6"),
    Prototype("sadly disgusted", "4+10", _DU, "1+6+9+11+15+17+25"),
    Prototype("fearfully angry", "4+20+25", _DU, "5+7+10+11"),
    Prototype("fearfully surprised", "1+2+5+20+25", _DU, "4+10+11+26"),
    Prototype("fearfully disgusted", "1+4+10+20+25", _DU, "2+5+6+9+15"),
    Prototype("angrily surprised", "4+25+26", _DU, "5+7+10"),
    Prototype("angrily disgusted", "4+10+17", _DU, "7+9+24"),
    Prototype("disgustedly surprised", "1+2+5+10", _DU, "4+9+17+24"),
    Prototype("appalled", "4+10", _DU, "6+9+17+24"),
    Prototype("hatred", "4+10", _DU, "7+9+17+24"),
    Prototype("awed", "1+2+5+25", _DU, "4+20+26"),
)
