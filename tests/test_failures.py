"""Failure analysis: the repetition detector, occlusion probes with stand-in captioners whose
answers are known, the emotion confusion and per-face scores."""

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from facecap_lib.data.synth.batch import FaceSpec, render_arrays
from facecap_lib.data.synth.render import Scene
from facecap_lib.evaluation.failures import (
    emotion_confusion,
    occluder_recall,
    occlusion_map,
    per_face,
    repetition,
    repetition_table,
)


def test_repetition_finds_looping_sentences_and_ngrams():
    loop = "No action unit is active. No action unit is active. no action unit is active"
    found = repetition(loop)
    assert found.sentences == ("no action unit is active",) and found.repetitive
    assert "no action unit is" in found.ngrams
    paper = (  # an Exp-BLIP caption of the paper: no repetition
        "The person is raising the inner and outer brows and dropping the jaw, "
        "which suggests surprise."
    )
    assert not repetition(paper).repetitive
    assert repetition("the brow is raised and the lid is raised").ngrams == ()  # 3-grams only
    assert repetition("the brow is raised and the brow is raised", n=4).ngrams == (
        "the brow is raised",
    )
    table = repetition_table({"Exp": [paper, loop], "AU": [paper]})
    assert (
        table.loc["Exp", "repeated sentence %"] == 50 and table.loc["AU", "repeated 4-gram %"] == 0
    )
    assert table.loc["Exp", "example"] == loop


def test_occluder_recall_renders_clean_and_occluded_twins():
    specs = [FaceSpec({1: 4, 12: 3}, identity=i, scene=Scene()) for i in range(3)]
    clean = [a.tobytes() for a in render_arrays(specs, size=48, progress=False)]

    def sees_only_clean_faces(images):  # mentions AU1 for exactly the unoccluded renders
        return ["raises inner eyebrow" if np.asarray(i).tobytes() in clean else "" for i in images]

    table = occluder_recall(specs, sees_only_clean_faces, ["sunglasses", "mask"], size=48)
    assert set(table["occluder"]) == {"sunglasses", "mask"} and set(table["au"]) == {"AU1", "AU12"}
    au1 = table[table["au"] == "AU1"]
    assert (au1["recall clean"] == 1).all() and (au1["recall occluded"] == 0).all()
    assert (au1["drop"] == 1).all() and (table["positives"] == 3).all()
    assert (table[table["au"] == "AU12"]["recall clean"] == 0).all()


def test_occlusion_map_marks_the_cell_that_matters():
    image = Image.new("RGB", (40, 40), (20, 20, 20))
    image.paste((255, 0, 0), (0, 30, 10, 40))  # a red mark in the bottom-left cell of a 4x4 grid

    def reads_the_mark(images):
        red = [(np.asarray(i)[..., 0] == 255).any() for i in images]
        return ["lip corner puller" if r else "brow lowerer" for r in red]

    base, maps = occlusion_map(image, reads_the_mark, grid=4)
    assert base == {12}
    expected = np.zeros((4, 4))
    expected[3, 0] = -1
    assert np.array_equal(maps[12], expected) and np.array_equal(maps[4], -expected)


@pytest.fixture()
def faces():
    rows = [
        {"image_id": "a", "AU1": 1.0, "AU12": 0.0, "emotions": ["happiness"]},
        {"image_id": "b", "AU1": 0.0, "AU12": 1.0, "emotions": ["happiness", "surprise"]},
        {"image_id": "c", "AU1": 0.0, "AU12": 0.0, "emotions": []},
        {"image_id": "d", "AU1": np.nan, "AU12": 0.0, "emotions": ["contempt"]},
    ]
    return pd.DataFrame(rows)


CAPTIONS = [
    "The person raises inner eyebrow and looks happy.",
    "Lip corner puller: a happy and surprised face.",
    "",
    "The person raises inner eyebrow and looks happy.",
]


def test_emotion_confusion_keeps_compound_labels(faces):
    table = emotion_confusion(CAPTIONS, faces)
    assert table.loc["happiness", "happiness"] == 1
    assert table.loc["happiness+surprise", "happiness+surprise"] == 1
    assert table.loc["contempt", "happiness"] == 1  # the paper's "contempt described as happy"
    assert table.to_numpy().sum() == 3  # face c has no emotion label


def test_per_face_scores_missed_and_invented(faces):
    table = per_face(CAPTIONS, faces).set_index("image_id")
    assert table.loc["a", "au_f1"] == 1 and table.loc["b", "au_f1"] == 1
    assert table.loc["c", "au_f1"] == 1  # nothing labelled, nothing said
    assert table.loc["d", "mentioned"] == []  # AU1 is not labelled on d: not counted
    assert table.loc["b", "emotion_hit"] and not table.loc["d", "emotion_hit"]
    assert np.isnan(table.loc["c", "emotion_hit"])
    wrong = per_face(["lip corner puller", "", "", ""], faces).set_index("image_id")
    assert wrong.loc["a", "missed"] == [1] and wrong.loc["a", "invented"] == [12]
    assert wrong.loc["a", "au_f1"] == 0
