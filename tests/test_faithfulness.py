"""Captions scored against labels: per-AU precision, recall and F1, and emotions named."""

import numpy as np
import pandas as pd
import pytest

from facecap_lib.captions.offline import describe_aus
from facecap_lib.captions.rules import au_caption, emotion_caption
from facecap_lib.data.synth.actions import RENDERED_AUS
from facecap_lib.data.table import face_table
from facecap_lib.evaluation.faithfulness import (
    au_scores,
    emotion_named,
    parse_caption,
    strategy_scores,
    unsure_parses,
)


def test_au_scores_by_hand():
    faces = face_table(
        [
            {"image_path": "a", "dataset": "rafau", "AU1": 1.0, "AU12": 1.0},
            {"image_path": "b", "dataset": "rafau", "AU1": 0.0, "AU12": 1.0},
            {"image_path": "c", "dataset": "rafau", "AU1": 1.0},  # AU12 not labelled here
        ]
    )
    captions = [au_caption({1}), au_caption({1, 12}), au_caption({12})]
    table = au_scores(captions, faces).set_index("au")
    assert list(table.index) == ["AU1", "AU12"]
    # AU1: said for a (tp) and b (fp), not for c (fn)
    assert table.loc["AU1", ["positives", "mentioned"]].tolist() == [2, 2]
    assert table.loc["AU1", "precision"] == pytest.approx(0.5)
    assert table.loc["AU1", "recall"] == pytest.approx(0.5)
    assert table.loc["AU1", "f1"] == pytest.approx(0.5)
    # AU12: labelled on a and b only; said for b (tp), missed on a; c's mention does not count
    assert table.loc["AU12", ["labelled", "positives", "mentioned"]].tolist() == [2, 2, 1]
    assert table.loc["AU12", "f1"] == pytest.approx(2 / 3)


def test_no_positives_and_no_mentions_score_zero_and_lengths_must_match():
    faces = face_table([{"image_path": "a", "dataset": "rafau", "AU4": 0.0}])
    table = au_scores([au_caption({12})], faces)
    assert table.loc[0, "f1"] == 0.0 and table.loc[0, "positives"] == 0
    with pytest.raises(ValueError, match="2 captions for 1 faces"):
        au_scores(["a", "b"], faces)


def test_emotion_named():
    faces = face_table(
        [
            {"image_path": "a", "dataset": "affectnet", "emotions": ["happiness"]},
            {"image_path": "b", "dataset": "rafdb", "emotions": ["fear", "surprise"]},
            {"image_path": "c", "dataset": "rafau", "AU1": 1.0},  # no emotion label: skipped
        ]
    )
    captions = [emotion_caption(["happiness"]), emotion_caption(["surprise"]), "x"]
    table = emotion_named(captions, faces)
    assert isinstance(table, pd.DataFrame) and len(table) == 2
    assert table["hit"].tolist() == [True, False]
    assert table.loc[1, "labels"] == "fear+surprise" and table.loc[1, "named"] == "surprise"


# Hand-labelled captions: (caption, AUs, emotions, unsure?). The first two are the paper's own
# examples (the AU-prompt example answer and the neutral-face answer, paper Sec. 3.1).
HAND = [
    (
        "The face shows the outer eyebrows raised, forehead wrinkles, a wrinkled nose, a "
        "stretched lip, and either parted lips or a dropped jaw.",
        {2, 9, 20},
        set(),
        True,  # "either ... or": neither AU25 nor AU26 is counted
    ),
    (
        "The eyes may be open and looking straight ahead, with the mouth closed or slightly open "
        "in a relaxed position. The eyebrows may be in a natural position, not raised or furrowed.",
        set(),
        set(),
        True,
    ),
    (
        "It is a people who raises upper lip, tightens lip corner, raises chin and presses lips.",
        {10, 14, 17, 24},
        set(),
        False,
    ),
    ("The raised cheeks and pulled lip corners indicate happiness.", {6, 12}, {"happiness"}, False),
    (
        "The inner and outer brows are lifted and the jaw drops, which suggests surprise.",
        {1, 2, 26},
        {"surprise"},
        False,
    ),
    (
        "The person is frowning with lowered brows and tightened lips, showing anger.",
        {4, 23},
        {"anger"},
        False,
    ),
    ("The eyes are closed and the lips are pressed together.", {24, 43}, set(), False),
    (
        "The lip corners pulled down and the lower lip pulled down suggest sadness.",
        {15, 16},
        {"sadness"},
        False,
    ),
    ("Raised eyebrows and wide open eyes show fear.", {1, 2, 5}, {"fear"}, True),
    ("She does not look angry.", set(), set(), True),
    ("The face shows happiness and surprise.", set(), {"happiness", "surprise"}, False),
]


@pytest.mark.parametrize("caption, aus, emotions, unsure", HAND)
def test_parser_on_hand_labelled_captions(caption, aus, emotions, unsure):
    parsed = parse_caption(caption)
    assert set(parsed.aus) == aus and set(parsed.emotions) == emotions
    assert bool(parsed.unsure) == unsure, parsed.unsure


def test_parser_reads_every_synthesized_caption_like_the_lexicon():
    rng = np.random.default_rng(7)
    for i in range(300):
        aus = sorted(rng.choice(RENDERED_AUS, rng.integers(1, 5), replace=False).tolist())
        for caption in (describe_aus(aus, key=str(i)), au_caption(set(aus))):
            parsed = parse_caption(caption)
            assert set(parsed.aus) == set(aus) and not parsed.unsure, caption


def test_unsure_parses_are_listed():
    table = unsure_parses([HAND[0][0], HAND[3][0], HAND[9][0]])
    assert (
        table["index"].tolist() == [0, 2]
        and table["reason"].str.startswith(("hedged", "negated")).all()
    )


def test_strategy_scores_by_hand():
    faces = face_table(
        [
            {
                "image_path": "a",
                "dataset": "rafau",
                "AU6": 1.0,
                "AU12": 1.0,
                "emotions": ["happiness"],
            },
            {
                "image_path": "b",
                "dataset": "rafau",
                "AU6": 0.0,
                "AU12": 0.0,
                "emotions": ["sadness"],
            },
        ]
    )
    captions = {
        "Mix": ["The cheeks are raised.", "The face shows sadness."],
        "Cat": [
            "It is a people who raises cheek. The face shows anger.",
            "The face shows sadness.",
        ],
        "Exp": [
            "The raised cheeks and pulled lip corners indicate happiness.",
            "The face shows sadness.",
        ],
    }
    table = strategy_scores(captions, faces)
    # face a: Mix says AU6 (right): correctness 1, completeness 1/3; Cat says AU6 and anger:
    # correctness 1/2, completeness 1/3; Exp says AU6, AU12, happiness: 1 and 1.
    assert table.loc["Mix", "correctness %"] == pytest.approx(100.0)
    assert table.loc["Cat", "correctness %"] == pytest.approx(75.0)
    assert table.loc["Exp", "completeness %"] == pytest.approx(100.0)
    assert table.loc["Mix", "completeness %"] == pytest.approx(100 * (1 / 3 + 1) / 2)
    # only face a votes (b is a three-way tie): Exp most complete; Mix and Cat share least
    assert table.loc["Exp", "most complete %"] == 100
    assert table.loc["Mix", "least complete %"] == table.loc["Cat", "least complete %"] == 50
