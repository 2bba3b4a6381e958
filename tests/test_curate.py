"""Curation: the sampling rule on hand-made sequences, subject-disjoint splits, statistics."""

import numpy as np
import pandas as pd
import pytest

from facecap_lib.data import curate
from facecap_lib.data.sources import bp4d
from facecap_lib.data.table import face_table


def video(subject, labels, dataset="bp4d", sequence="T1", start=1):
    """A video whose frame t has the AU12 label labels[t] (None = unknown)."""
    return [
        {
            "image_path": f"{subject}/{sequence}/{start + t}.jpg",
            "dataset": dataset,
            "subject": subject,
            "sequence": sequence,
            "frame": start + t,
            "AU12": np.nan if v is None else float(v),
        }
        for t, v in enumerate(labels)
    ]


def kept_frames(rows, every=10):
    return sorted(curate.sample_frames(face_table(rows), every)["frame"].tolist())


def test_one_in_ten_when_nothing_changes():
    assert kept_frames(video("F001", [0] * 25)) == [1, 11, 21]


def test_label_changes_are_kept():
    labels = [0] * 25
    labels[4:7] = [1, 1, 1]  # onset at frame 5, offset at frame 8
    assert kept_frames(video("F001", labels)) == [1, 5, 8, 11, 21]


def test_unknown_counts_as_a_change_and_equals_unknown():
    labels = [0, 0, None, None, 0, 0]
    assert kept_frames(video("F001", labels), every=10) == [1, 3, 5]


def test_videos_are_independent_and_ordered():
    rows = video("F001", [1] * 12) + video("F002", [0] * 12)
    shuffled = list(reversed(rows))
    out = curate.sample_frames(face_table(shuffled))
    assert out[["subject", "frame"]].values.tolist() == [
        ["F001", 1],
        ["F001", 11],
        ["F002", 1],
        ["F002", 11],
    ]


def test_first_frame_of_a_video_is_not_a_change_from_the_previous_video():
    rows = video("F001", [1] * 3) + video("F002", [0] * 3)
    assert kept_frames(rows) == [1, 1]


def test_stills_are_kept():
    rows = [{"image_path": f"{i}.jpg", "dataset": "rafau"} for i in range(5)]
    assert len(curate.sample_frames(face_table(rows))) == 5


def test_duplicate_frames_are_refused():
    with pytest.raises(ValueError, match="frame 2 of bp4d F001 T1 appears twice"):
        curate.sample_frames(
            face_table(
                video("F001", [0, 0, 0])
                + video("F001", [0], start=2)[:0]
                + [
                    {
                        "image_path": "dup.jpg",
                        "dataset": "bp4d",
                        "subject": "F001",
                        "sequence": "T1",
                        "frame": 2,
                    }
                ]
            )
        )


def many_subjects():
    rows = []
    for s in range(10):
        rows += video(f"F{s:03d}", [0] * 4, dataset="gft")
    rows += [{"image_path": f"r{i}.jpg", "dataset": "rafau"} for i in range(50)]
    rows += [
        {"image_path": f"a{i}.jpg", "dataset": "affectnet", "split": "test", "emotions": ["fear"]}
        for i in range(3)
    ]
    return face_table(rows)


def test_random_split_is_subject_disjoint_and_seeded():
    table = many_subjects()
    a = curate.split_subjects(table, 0.3, seed=1)
    assert a["split"].notna().all()
    by_subject = a[a.dataset == "gft"].groupby("subject")["split"].nunique()
    assert (by_subject == 1).all()
    assert a[a.dataset == "gft"].groupby("split")["subject"].nunique().to_dict() == {
        "test": 3,
        "train": 7,
    }
    assert (a[a.dataset == "rafau"]["split"] == "test").sum() == 15
    assert (a[a.dataset == "affectnet"]["split"] == "test").all()  # official split kept
    assert a["split"].tolist() == curate.split_subjects(table, 0.3, seed=1)["split"].tolist()
    assert a["split"].tolist() != curate.split_subjects(table, 0.3, seed=2)["split"].tolist()


def test_fold_split_and_unknown_subject():
    rows = video("F001", [0] * 3) + video("F004", [0] * 3)
    table = curate.split_folds(face_table(rows), "bp4d", bp4d.FOLDS, [3])
    assert table.groupby("subject")["split"].first().to_dict() == {"F001": "train", "F004": "test"}
    with pytest.raises(ValueError, match=r"subjects \['X001'\] are in no fold"):
        curate.split_folds(face_table(video("X001", [0])), "bp4d", bp4d.FOLDS, [3])


def test_leak_is_detected():
    rows = face_table(video("F001", [0] * 2))
    rows["split"] = ["train", "test"]
    with pytest.raises(ValueError, match="F001 is in both train and test"):
        curate.check_disjoint(rows)


def test_curate_applies_the_paper_protocol():
    table = face_table(
        video("F001", [0] * 30)
        + video("F004", [0] * 30)
        + video("001A", [0] * 30, dataset="gft")
        + video("002A", [0] * 30, dataset="gft")
    )
    out = curate.curate([table], folds={"bp4d": (bp4d.FOLDS, [3])}, test_fraction=0.5)
    counts = out.groupby(["dataset", "split"]).size().to_dict()
    assert counts == {
        ("bp4d", "test"): 30,
        ("bp4d", "train"): 3,
        ("gft", "test"): 3,
        ("gft", "train"): 3,
    }
    stats = curate.statistics(out)
    assert stats.loc["bp4d", "train images"] == 3 and stats.loc["bp4d", "test subjects"] == 1
    assert stats.loc["bp4d", "labels"] == "1 AUs"


def test_statistics_shape():
    table = curate.split_subjects(many_subjects(), 0.3, seed=0)
    stats = curate.statistics(table)
    assert list(stats.columns) == [
        "labels",
        "train images",
        "train subjects",
        "test images",
        "test subjects",
    ]
    assert stats.loc["affectnet", "labels"] == "emotions" and pd.isna(
        stats.loc["rafau", "train subjects"]
    )
