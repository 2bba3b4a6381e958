"""The single source of facecap's vocabulary: AUs, emotions, dataset codes, prototypes.

Everything else in ``facecap_lib`` imports its words from here. Pure Python (pandas only for the
table views); importing it has no side effects.
"""

from facecap_lib.lexicon.aus import (
    AU_BY_NUMBER,
    AU_COLUMNS,
    AU_NUMBERS,
    AUS,
    NO_AU_DESCRIPTION,
    REGIONS,
    ActionUnit,
    Region,
    au,
    au_column,
    third_person,
)
from facecap_lib.lexicon.codes import (
    ParsedAUCodes,
    SkippedToken,
    format_au_codes,
    parse_au_codes,
    parse_au_tokens,
)
from facecap_lib.lexicon.emotions import (
    AFFECTNET_CODES,
    AFFECTNET_NON_EMOTIONS,
    BASIC_EMOTIONS,
    COMPOUND_BY_NAME,
    COMPOUND_EMOTIONS,
    EMOTION_BY_NAME,
    EMOTION_NAMES,
    EMOTIONS,
    RAFDB_BASIC_CODES,
    RAFDB_COMPOUND_CODES,
    CompoundEmotion,
    Emotion,
    affectnet_emotion,
    canonical_emotion,
    rafdb_basic_emotion,
    rafdb_compound_emotions,
)
from facecap_lib.lexicon.prototypes import (
    BASIC_PROTOTYPES,
    COMPOUND_PROTOTYPES,
    PROTOTYPE_SOURCES,
    Prototype,
    PrototypeSource,
)
from facecap_lib.lexicon.tables import au_table, prototype_matrix

__all__ = [
    "AFFECTNET_CODES",
    "AFFECTNET_NON_EMOTIONS",
    "AUS",
    "AU_BY_NUMBER",
    "AU_COLUMNS",
    "AU_NUMBERS",
    "BASIC_EMOTIONS",
    "BASIC_PROTOTYPES",
    "COMPOUND_BY_NAME",
    "COMPOUND_EMOTIONS",
    "COMPOUND_PROTOTYPES",
    "EMOTIONS",
    "EMOTION_BY_NAME",
    "EMOTION_NAMES",
    "NO_AU_DESCRIPTION",
    "PROTOTYPE_SOURCES",
    "RAFDB_BASIC_CODES",
    "RAFDB_COMPOUND_CODES",
    "REGIONS",
    "ActionUnit",
    "CompoundEmotion",
    "Emotion",
    "ParsedAUCodes",
    "Prototype",
    "PrototypeSource",
    "Region",
    "SkippedToken",
    "affectnet_emotion",
    "au",
    "au_column",
    "au_table",
    "canonical_emotion",
    "format_au_codes",
    "parse_au_codes",
    "parse_au_tokens",
    "prototype_matrix",
    "rafdb_basic_emotion",
    "rafdb_compound_emotions",
    "third_person",
]
