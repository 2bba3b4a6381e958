"""The described table: AUs and emotions read from each face's caption, and its three formats."""

import io
import json

import pandas as pd
import pytest

from facecap_lib.describing import COLUMNS, records, table, text_lines, write
from facecap_lib.inference import Description
from facecap_lib.lexicon import AU_COLUMNS, EMOTION_NAMES

CAPTION = "Raises cheek and pulls lip corner. The face shows happiness and surprise."


@pytest.fixture
def described():
    return [
        Description("group.jpg", CAPTION, None, (10, 20, 30, 40), 0, "blazeface", 0.91),
        Description("group.jpg", "The brows are not lowered.", None, (90, 20, 30, 40), 1, "haar", 1.0),
        Description("sky.jpg", None, "no face found in sky.jpg"),
    ]  # fmt: skip


def test_the_table_holds_what_each_caption_names(described):
    frame = table(described)
    assert tuple(frame.columns) == COLUMNS
    first = frame.iloc[0]
    assert [c for c in AU_COLUMNS if first[c] == 1] == ["AU6", "AU12"]
    assert [e for e in EMOTION_NAMES if first[e] == 1] == ["happiness", "surprise"]
    assert first["aus"] == "AU6 cheek raiser; AU12 lip corner puller"
    negated = frame.iloc[1]
    assert negated[list(AU_COLUMNS)].sum() == 0 and "negated" in negated["unsure"]
    empty = frame.iloc[2]
    assert empty[list(AU_COLUMNS) + list(EMOTION_NAMES)].isna().all()
    assert empty["error"] == "no face found in sky.jpg" and pd.isna(empty["face"])


def test_json_lines_name_every_au_and_keep_the_box(described):
    stream = io.StringIO()
    write(table(described), "json", stream)
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert lines[0]["box"] == [10, 20, 30, 40] and lines[0]["face"] == 0
    assert lines[0]["aus"] == [
        {"au": 6, "name": "cheek raiser"},
        {"au": 12, "name": "lip corner puller"},
    ]
    assert lines[0]["emotions"] == ["happiness", "surprise"]
    assert lines[2] == records(table(described))[2]
    assert lines[2]["box"] is None and lines[2]["aus"] is None and lines[2]["error"]


def test_csv_round_trips_with_empty_cells_for_faceless_rows(described):
    stream = io.StringIO()
    write(table(described), "csv", stream)
    back = pd.read_csv(io.StringIO(stream.getvalue()))
    assert tuple(back.columns) == COLUMNS and len(back) == 3
    assert back.loc[0, "AU12"] == 1 and pd.isna(back.loc[2, "AU12"])


def test_text_says_which_face_of_how_many(described):
    lines = text_lines(table(described))
    assert lines[0] == f"group.jpg [face 1/2, blazeface 0.91, box 10,20,30,40]: {CAPTION}"
    assert (
        lines[1]
        == "    AUs: AU6 cheek raiser, AU12 lip corner puller; emotions: happiness, surprise"
    )
    assert lines[3] == "    AUs: none; emotions: none"
    assert lines[4] == "sky.jpg: no face found in sky.jpg"
    twice = text_lines(table([described[0], described[0]]))  # one face each, given twice
    assert twice[0].startswith("group.jpg [face 1/1,") and twice[2].startswith(
        "group.jpg [face 1/1,"
    )
    with pytest.raises(ValueError, match="format must be one of"):
        write(table(described), "xml", io.StringIO())
