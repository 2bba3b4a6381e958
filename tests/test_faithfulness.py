"""Captions scored against labels: per-AU precision, recall and F1, and emotions named."""

import pandas as pd
import pytest

from facecap_lib.captions.rules import au_caption, emotion_caption
from facecap_lib.data.table import face_table
from facecap_lib.evaluation.faithfulness import au_scores, emotion_named


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
