"""The human-evaluation kit: sheet round trip, checks on completed sheets, Table 5 and agreement."""

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from facecap_lib.evaluation.human import (
    RATING_COLUMNS,
    agreement,
    krippendorff_alpha,
    make_sheet,
    read_ratings,
    summary,
    write_kit,
)

NAN = np.nan
# Krippendorff (2011), "Computing Krippendorff's alpha-reliability", the 4 observers x 12 units
# example with missing values; published: nominal 0.743, interval 0.849.
RELIABILITY = np.array(
    [
        [1, 2, 3, 3, 2, 1, 4, 1, 2, NAN, NAN, NAN],
        [1, 2, 3, 3, 2, 2, 4, 1, 2, 5, NAN, 3],
        [NAN, 3, 3, 3, 2, 3, 4, 2, 2, 5, 1, NAN],
        [1, 2, 3, 3, 2, 4, 4, 1, 2, 5, 1, NAN],
    ]
)


def test_krippendorff_alpha_matches_the_published_example():
    assert krippendorff_alpha(RELIABILITY, "nominal") == pytest.approx(0.743, abs=5e-4)
    assert krippendorff_alpha(RELIABILITY, "interval") == pytest.approx(0.849, abs=5e-4)
    assert krippendorff_alpha(np.array([[1, 2, 3], [1, 2, 3]])) == 1.0
    with pytest.raises(ValueError, match="metric"):
        krippendorff_alpha(RELIABILITY, "ordinal")


@pytest.fixture()
def faces(tmp_path):
    root = tmp_path / "data"
    root.mkdir()
    rows = []
    for i in range(8):
        Image.new("RGB", (32, 32), (i * 30, 0, 0)).save(root / f"{i}.png")
        rows.append({"image_id": f"synth/{i}", "data_root": str(root), "image_path": f"{i}.png"})
    return pd.DataFrame(rows)


CAPTIONS = {
    "Mix": [f"mix caption {i}" for i in range(8)],
    "Cat": [f"cat caption {i}, with <b>markup</b>" for i in range(8)],
    "Exp": [f"exp caption {i}" for i in range(8)],
}


def fill(sheet: pd.DataFrame, key: pd.DataFrame, scores: dict[str, int]) -> pd.DataFrame:
    """A rater who gives each strategy a fixed score, and finds Exp most and Cat least complete."""
    letter = {(r.item, r.strategy): r.letter for r in key.itertuples()}
    done = sheet.astype({c: object for c in RATING_COLUMNS})
    for i, row in done.iterrows():
        for strategy, score in scores.items():
            done.loc[i, f"correct_{letter[(row['item'], strategy)]}"] = str(score)
        done.loc[i, "most_complete"] = letter[(row["item"], "Exp")]
        done.loc[i, "least_complete"] = letter[(row["item"], "Cat")]
    return done


def test_sheet_round_trip_gives_table_5_and_agreement(faces, tmp_path):
    sheet, key = make_sheet(faces, CAPTIONS, n=5, seed=3)
    again, _ = make_sheet(faces, CAPTIONS, n=5, seed=3)
    assert sheet.equals(again) and len(sheet) == 5 and len(key) == 15  # seeded
    assert len(make_sheet(faces, CAPTIONS, n=505)[0]) == 8  # no more than there are
    kit = write_kit(sheet, key, tmp_path / "kit")
    form = (kit / "form.html").read_text()
    assert "&lt;b&gt;markup&lt;/b&gt;" in form and "<b>markup</b>" not in form.split("<script")[0]
    assert len(list((kit / "images").iterdir())) == 5
    public = pd.read_csv(kit / "sheet.csv")
    assert public["image"].str.startswith("images/").all()
    assert (
        public.filter(like="caption_").apply(lambda c: c.str.startswith("exp")).sum(axis=1) == 1
    ).all()

    scores = {"Mix": 7, "Cat": 5, "Exp": 9}
    for rater in ("ann", "bob"):
        fill(public, key, scores).to_csv(tmp_path / f"{rater}.csv", index=False)
    ratings = read_ratings([tmp_path / "ann.csv", tmp_path / "bob.csv"], kit / "key.csv")
    table = summary(ratings)
    assert table["correctness"].to_dict() == {"Cat": 5.0, "Exp": 9.0, "Mix": 7.0}
    assert (
        table.loc["Exp", "most complete %"] == 100 and table.loc["Cat", "least complete %"] == 100
    )
    assert table.loc["Mix", "most complete %"] == 0
    alphas = agreement(ratings)
    assert alphas["correctness (interval)"] == 1.0 and alphas["most complete (nominal)"] == 1.0


def test_bad_ratings_name_file_line_and_column(faces, tmp_path):
    sheet, key = make_sheet(faces, CAPTIONS, n=3)
    done = fill(sheet, key, {"Mix": 7, "Cat": 5, "Exp": 9})
    cases = {
        "correct_B": (11, r"line 3, correct_B: 11 is outside \(1, 10\)"),
        "most_complete": ("D", r"line 3, most_complete: 'D' is not one of"),
        "least_complete": (None, r"line 3: . is both the most and the least complete"),
        "item": (99, r"line 3, item: 99 is not in the key"),
    }
    for column, (value, message) in cases.items():
        bad = done.copy()
        bad[column] = bad[column].astype(object)
        bad.loc[1, column] = bad.loc[1, "most_complete"] if value is None else value
        path = tmp_path / f"{column}.csv"
        bad.to_csv(path, index=False)
        with pytest.raises(ValueError, match=f"{column}.csv, {message}"):
            read_ratings([path], key)
    blank = done.copy()
    blank.loc[0, "correct_A"] = ""
    blank.to_csv(tmp_path / "blank.csv", index=False)
    assert read_ratings([tmp_path / "blank.csv"], key)["correct"].isna().sum() == 1  # allowed
