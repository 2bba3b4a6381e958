"""The lexicon: every AU, every conjugation, every parse case, bad codes, emotions, prototypes."""

import pytest

from facecap_lib import lexicon
from facecap_lib.lexicon import parse_au_codes, parse_au_tokens

# Supplementary Table 1, typed in by hand, with the third-person form each caption uses.
TABLE_1 = [
    (1, "inner brow raiser", "raise inner eyebrow", "raises inner eyebrow", "upper"),
    (2, "outer brow raiser", "raise outer eyebrow", "raises outer eyebrow", "upper"),
    (4, "brow lowerer", "lower brow", "lowers brow", "upper"),
    (5, "upper lid raiser", "raise upper lid", "raises upper lid", "upper"),
    (6, "cheek raiser", "raise cheek", "raises cheek", "upper"),
    (7, "lid tightener", "tighten lids", "tightens lids", "upper"),
    (
        8,
        "lips toward each other",
        "pull lips toward each other",
        "pulls lips toward each other",
        "lower",
    ),
    (9, "nose wrinkler", "wrinkle nose", "wrinkles nose", "lower"),
    (10, "upper lip raiser", "raise upper lip", "raises upper lip", "lower"),
    (11, "nasolabial deepener", "deepen nasolabial", "deepens nasolabial", "lower"),
    (12, "lip corner puller", "pull lip corner", "pulls lip corner", "lower"),
    (14, "dimpler", "tighten lip corner", "tightens lip corner", "lower"),
    (15, "lip corner depressor", "depress lip corner", "depresses lip corner", "lower"),
    (16, "lower lip depressor", "depress lower lip", "depresses lower lip", "lower"),
    (17, "chin raiser", "raise chin", "raises chin", "lower"),
    (18, "lip pucker", "pucker lips", "puckers lips", "lower"),
    (19, "tongue show", "stick tongue out", "sticks tongue out", "lower"),
    (20, "lip stretch", "stretch lips", "stretches lips", "lower"),
    (21, "neck tightener", "tighten neck", "tightens neck", "other"),
    (22, "lip funneler", "show lip funneler", "shows lip funneler", "lower"),
    (23, "lip tightener", "tighten lips", "tightens lips", "lower"),
    (24, "lip pressor", "press lips", "presses lips", "lower"),
    (25, "lips part", "separate lips", "separates lips", "lower"),
    (26, "jaw drop", "drop jaw", "drops jaw", "lower"),
    (27, "mouth stretch", "stretch mouth", "stretches mouth", "lower"),
    (28, "lip suck", "suck lips", "sucks lips", "lower"),
    (43, "eyes closed", "close eyes", "closes eyes", "upper"),
]


def test_aus_are_table_1_in_order():
    assert [a.number for a in lexicon.AUS] == [row[0] for row in TABLE_1]
    assert lexicon.AU_NUMBERS == (
        1,
        2,
        4,
        5,
        6,
        7,
        8,
        9,
        10,
        11,
        12,
        14,
        15,
        16,
        17,
        18,
        19,
        20,
        21,
        22,
        23,
        24,
        25,
        26,
        27,
        28,
        43,
    )


@pytest.mark.parametrize("number, noun, verb, verb_3sg, region", TABLE_1)
def test_every_au(number, noun, verb, verb_3sg, region):
    entry = lexicon.au(number)
    assert entry is lexicon.AU_BY_NUMBER[number]
    assert (entry.noun, entry.verb, entry.verb_3sg, entry.region) == (noun, verb, verb_3sg, region)
    assert entry.code == lexicon.au_column(number) == f"AU{number}"


@pytest.mark.parametrize(
    "phrase, expected",
    [
        ("raise inner eyebrow", "raises inner eyebrow"),
        ("press lips", "presses lips"),
        ("stretch mouth", "stretches mouth"),
        ("pull lips toward each other", "pulls lips toward each other"),
        ("wash", "washes"),
        ("fix", "fixes"),
        ("go", "goes"),
        ("buzz", "buzzes"),
        ("carry face", "carries face"),
        ("play", "plays"),
        ("  drop jaw ", "drops jaw"),
    ],
)
def test_third_person(phrase, expected):
    assert lexicon.third_person(phrase) == expected


def test_third_person_rejects_empty():
    with pytest.raises(ValueError):
        lexicon.third_person("  ")


def test_unknown_au_lookup_names_it():
    with pytest.raises(KeyError, match="AU3 is not one of the 27"):
        lexicon.au(3)
    with pytest.raises(KeyError, match="AU13"):
        lexicon.au_column(13)


def test_au_columns_and_table():
    assert lexicon.AU_COLUMNS[:3] == ("AU1", "AU2", "AU4") and lexicon.AU_COLUMNS[-1] == "AU43"
    table = lexicon.au_table()
    assert table.shape == (27, 5)
    assert table.loc[14, "verb_3sg"] == "tightens lip corner"
    assert table["region"].value_counts().to_dict() == {"lower": 19, "upper": 7, "other": 1}


def test_no_au_description_is_verbatim():
    assert lexicon.NO_AU_DESCRIPTION == (
        "The eyes may be open and looking straight ahead, with the mouth closed or slightly open "
        "in a relaxed position. The forehead may be relatively smooth with minimal wrinkles or "
        "creases. The eyebrows may be in a natural position, not raised or furrowed."
    )


@pytest.mark.parametrize(
    "text, expected",
    [
        ("AU12", {12}),
        ("12", {12}),
        ("L12", {12}),
        ("R12", {12}),
        ("B22", {22}),
        ("T24", {24}),
        ("17+B22+T24", {17, 22, 24}),
        ("l12+r14", {12, 14}),
        ("t23", {23}),
        ("au6+Au12", {6, 12}),
        ("26+26", {26}),
        ("43+43+1", {1, 43}),
        ("  1+4+25  ", {1, 4, 25}),
        ("25 ", {25}),
        ("1 + 2", {1, 2}),
        ("15+B22+17", {15, 17, 22}),
        ("AD19", {19}),
        ("L12L", {12}),
        ("AU 12", {12}),
        ("l12r", {12}),
        ("TL22", {22}),
        ("BL18", {18}),
        ("RB18", {18}),
        ("5B", {5}),
        ("R12A+R14A", {12, 14}),
        ("1+2+5B+26", {1, 2, 5, 26}),
        ("null", set()),
        ("NULL", set()),
        (" null ", set()),
        ("", set()),
        ("   ", set()),
    ],
)
def test_parse_au_codes(text, expected):
    parsed = parse_au_codes(text)
    assert isinstance(parsed, frozenset)
    assert parsed == expected


@pytest.mark.parametrize(
    "text, token, reason",
    [
        ("L12X", "L12X", "malformed"),
        ("1+L12X", "L12X", "malformed"),
        ("12.0", "12.0", "malformed"),
        ("\uff11\uff12", "\uff11\uff12", "malformed"),  # full-width digits
        ("UU12", "UU12", "malformed"),
        ("LR12", "LR12", "malformed"),
        ("AD1", "AD1", "malformed"),
        ("AD12", "AD12", "malformed"),
        ("1" * 40, "1" * 40, "malformed"),
        ("1++2", "", "malformed"),
        ("1+", "", "malformed"),
        ("AU", "AU", "malformed"),
        ("smile", "smile", "malformed"),
        ("12X", "12X", "malformed"),
        ("1.5", "1.5", "malformed"),
        ("-1", "-1", "malformed"),
        ("32", "32", "unknown"),
        ("1+AU3", "AU3", "unknown"),
        ("L39", "L39", "unknown"),
        ("0", "0", "unknown"),
        ("AD32", "AD32", "unknown"),
    ],
)
def test_bad_codes_raise_naming_the_token(text, token, reason):
    with pytest.raises(ValueError) as info:
        parse_au_codes(text)
    assert f"{reason} AU token {token!r}" in str(info.value)
    assert repr(text) in str(info.value)


def test_lenient_parse_skips_and_counts():
    parsed = parse_au_tokens("1+32+L12X+B22+AU3")
    assert parsed.aus == {1, 22}
    assert parsed.n_skipped == 3
    assert [(s.token, s.reason) for s in parsed.skipped] == [
        ("32", "unknown"),
        ("L12X", "malformed"),
        ("AU3", "unknown"),
    ]
    assert parse_au_codes("1+32+L12X", strict=False) == {1}
    assert parse_au_tokens("null").n_skipped == 0


@pytest.mark.parametrize("value", [12, None, float("nan")])
def test_parse_rejects_non_strings(value):
    with pytest.raises(TypeError, match="must be a string.*missing label"):
        parse_au_codes(value)  # type: ignore[arg-type]


def test_format_round_trips():
    assert lexicon.format_au_codes({24, 17, 22}) == "AU17+AU22+AU24"
    assert lexicon.format_au_codes([]) == "null"
    for aus in ({1}, {6, 12}, set(lexicon.AU_NUMBERS), set()):
        assert parse_au_codes(lexicon.format_au_codes(aus)) == aus
    with pytest.raises(ValueError, match="AU32"):
        lexicon.format_au_codes({32})
    with pytest.raises(ValueError, match="integers"):
        lexicon.format_au_codes([True])


def test_emotion_vocabulary():
    assert lexicon.EMOTION_NAMES == (
        "neutral",
        "happiness",
        "sadness",
        "surprise",
        "fear",
        "disgust",
        "anger",
        "contempt",
    )
    assert set(lexicon.BASIC_EMOTIONS) == set(lexicon.EMOTION_NAMES) - {"neutral", "contempt"}
    for name in ("Happy", "happiness", " HAPPY ", "joy"):
        assert lexicon.canonical_emotion(name) == "happiness"
    assert lexicon.canonical_emotion("Angry") == "anger"
    assert lexicon.canonical_emotion("Neutral") == "neutral"
    with pytest.raises(ValueError, match="unknown emotion label 'bored'"):
        lexicon.canonical_emotion("bored")


def test_affectnet_codes():
    expected = [
        "neutral",
        "happiness",
        "sadness",
        "surprise",
        "fear",
        "disgust",
        "anger",
        "contempt",
        None,
        None,
        None,
    ]
    assert [lexicon.affectnet_emotion(code) for code in range(11)] == expected
    assert lexicon.affectnet_emotion("3") == "surprise"
    assert lexicon.AFFECTNET_NON_EMOTIONS == {8: "none", 9: "uncertain", 10: "no-face"}
    with pytest.raises(ValueError, match="AffectNet emotion code 11"):
        lexicon.affectnet_emotion(11)
    with pytest.raises(ValueError, match="not an integer"):
        lexicon.affectnet_emotion("happy")


def test_rafdb_codes():
    assert [lexicon.rafdb_basic_emotion(c) for c in range(1, 8)] == [
        "surprise",
        "fear",
        "disgust",
        "happiness",
        "sadness",
        "anger",
        "neutral",
    ]
    compound = {code: lexicon.rafdb_compound_emotions(code) for code in range(1, 12)}
    assert compound == {
        1: ("happiness", "surprise"),
        2: ("happiness", "disgust"),
        3: ("sadness", "fear"),
        4: ("sadness", "anger"),
        5: ("sadness", "surprise"),
        6: ("sadness", "disgust"),
        7: ("fear", "anger"),
        8: ("fear", "surprise"),
        9: ("anger", "surprise"),
        10: ("anger", "disgust"),
        11: ("disgust", "surprise"),
    }
    names = [lexicon.RAFDB_COMPOUND_CODES[c].name for c in (1, 3, 7, 11)]
    assert names == [
        "happily surprised",
        "sadly fearful",
        "fearfully angry",
        "disgustedly surprised",
    ]
    for bad in (0, 8):
        with pytest.raises(ValueError, match="RAF-DB basic"):
            lexicon.rafdb_basic_emotion(bad)
    with pytest.raises(ValueError, match="RAF-DB compound emotion code 12"):
        lexicon.rafdb_compound_emotions(12)


def test_compound_emotions_of_du_2014():
    assert len(lexicon.COMPOUND_EMOTIONS) == 15
    assert "fearfully disgusted" in lexicon.COMPOUND_BY_NAME
    assert "fearfully disgusted" not in {c.name for c in lexicon.RAFDB_COMPOUND_CODES.values()}
    for compound in lexicon.COMPOUND_EMOTIONS[:12]:
        assert len(compound.components) == 2
        assert set(compound.components) <= set(lexicon.BASIC_EMOTIONS)


def test_basic_prototypes():
    protos = {p.emotion: p for p in lexicon.BASIC_PROTOTYPES}
    assert {name: set(p.aus) for name, p in protos.items()} == {
        "happiness": {6, 12},
        "sadness": {1, 4, 15},
        "surprise": {1, 2, 5, 26},
        "fear": {1, 2, 4, 5, 20, 26},
        "anger": {4, 5, 7, 23},
        "disgust": {9, 15, 16},
        "contempt": {12, 14},
    }
    assert protos["surprise"].codes == "1+2+5B+26"
    assert protos["fear"].optional == {7}
    assert all(p.source == "emfacs" for p in protos.values())


def test_compound_prototypes():
    protos = {p.emotion: p for p in lexicon.COMPOUND_PROTOTYPES}
    assert len(protos) == 21  # 6 basic + 15 compound
    assert set(protos) == set(lexicon.BASIC_EMOTIONS) | set(lexicon.COMPOUND_BY_NAME)
    assert protos["happily surprised"].aus == {1, 2, 12, 25}
    assert protos["happily surprised"].optional == {5, 26}
    assert protos["sadly disgusted"].optional == {1, 6, 9, 11, 15, 17, 25}
    assert protos["awed"].aus == {1, 2, 5, 25}
    for p in protos.values():
        assert p.source == "du2014" and not (p.aus & p.optional)


def test_prototype_sources_are_cited_in_the_book(repo):
    bib = (repo / "book" / "references.bib").read_text()
    for source in lexicon.PROTOTYPE_SOURCES.values():
        assert "@" in bib and f"{{{source.key}," in bib


def test_prototype_validation():
    with pytest.raises(ValueError, match="unknown emotion 'glee'"):
        lexicon.Prototype("glee", "6+12", "emfacs")
    with pytest.raises(ValueError, match="unknown source"):
        lexicon.Prototype("happiness", "6+12", "wikipedia")
    with pytest.raises(ValueError, match="unknown AU token '32'"):
        lexicon.Prototype("happiness", "6+32", "emfacs")


def test_prototype_matrix():
    matrix = lexicon.prototype_matrix(lexicon.BASIC_PROTOTYPES)
    assert list(matrix.index) == list(lexicon.AU_COLUMNS)
    assert list(matrix.columns) == [p.emotion for p in lexicon.BASIC_PROTOTYPES]
    assert matrix.loc["AU6", "happiness"] == 1.0 and matrix.loc["AU7", "fear"] == 0.5
    assert matrix.loc["AU43", "happiness"] == 0.0
    assert matrix.to_numpy().sum() == sum(
        len(p.aus) + 0.5 * len(p.optional) for p in lexicon.BASIC_PROTOTYPES
    )
    with pytest.raises(ValueError, match="appears twice"):
        lexicon.prototype_matrix(lexicon.BASIC_PROTOTYPES + lexicon.COMPOUND_PROTOTYPES)
