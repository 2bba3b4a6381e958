"""The general captioner's captions read back: pose, light and occluder against the renderer's truth."""

import itertools

import numpy as np
import pandas as pd
import pytest

from facecap_lib.captions.general import (
    OCCLUDED,
    general_caption,
    general_labels,
    general_statement,
)
from facecap_lib.evaluation.general import UNSAID, general_rows, read_general


@pytest.fixture
def truth():
    grid = itertools.product(
        [-15.0, 0.0, 15.0], [-8.0, 0.0, 8.0], [-0.6, 0.0, 0.6], [None, *OCCLUDED]
    )
    return pd.DataFrame(
        [{"identity": 2000 + i, "yaw": y, "pitch": p, "light_x": x, "occluder": o}
         for i, (y, p, x, o) in enumerate(grid)]
    )  # fmt: skip


def test_the_training_captions_read_back_exactly(truth):
    captions = [general_caption(row, key=str(i)) for i, row in truth.iterrows()]
    rows = general_rows(captions, truth)
    assert len(rows) == 108
    assert rows[["pose", "light", "occluder"]].all(axis=None)  # every wording, every fact
    assert not rows["repeated 4-gram"].any()


def test_what_is_unsaid_or_wrong_counts_against(truth):
    first = truth.iloc[[0]].reset_index(drop=True)  # turned left, tilted down, lit from the left
    degenerate = "The face shows fear surprise surprise surprise surprise surprise surprise."
    rows = general_rows([degenerate], first)
    assert not rows.loc[0, ["pose", "light"]].any() and rows.loc[0, "repeated 4-gram"]
    assert read_general(degenerate) == {
        "turn": UNSAID,
        "tilt": UNSAID,
        "light": UNSAID,
        "occluder": None,
    }
    wrong = "A person facing the camera, lit from the right and lit from the left."
    assert read_general(wrong) == {"turn": None, "tilt": None, "light": UNSAID, "occluder": None}
    assert general_rows([wrong], first).loc[0, ["pose", "light"]].tolist() == [False, False]
    with pytest.raises(ValueError, match="2 captions for 1 faces"):
        general_rows([wrong, wrong], first)


def test_a_statement_says_what_its_caption_says(truth):
    """The language model reads each general caption also after a statement of it (as it reads
    an expression caption after its content statement): the statement names exactly the facts."""
    for i, row in truth.iterrows():
        caption = general_caption(row, key=str(i))
        statement = general_statement(caption)
        labels = general_labels(row)
        assert (f"turned {labels['turn']}" in statement) == (labels["turn"] is not None)
        assert (f"tilted {labels['tilt']}" in statement) == (labels["tilt"] is not None)
        assert f"Light from the {labels['light']}." in statement
        assert (labels["occluder"] or "").capitalize() in statement
        assert ("to the camera" in statement) == (labels["turn"] is None and labels["tilt"] is None)
    assert general_statement("The face shows fear.") == "Nothing said."


def test_the_scene_probe_finds_pose_only_where_the_features_hold_it():
    from facecap_lib.evaluation.general import scene_probe

    rng = np.random.default_rng(0)
    truth = pd.DataFrame(
        {
            "yaw": rng.normal(0, 8, 400),
            "pitch": rng.normal(0, 5, 400),
            "light_x": rng.normal(0, 0.4, 400),
        }
    )
    noise = rng.normal(size=(400, 16))
    holding = np.column_stack([truth["yaw"], noise])  # yaw in one feature, nothing else
    scores = scene_probe(holding[:300], truth[:300], holding[300:], truth[300:])
    assert scores["yaw R2"] > 0.99
    assert scores["pitch R2"] < 0.1 and scores["light_x R2"] < 0.1
