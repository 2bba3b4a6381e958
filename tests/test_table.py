"""The canonical face table and the default corpus built from it."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from facecap_lib.cli import main
from facecap_lib.data import default_corpus
from facecap_lib.data.table import (
    FACE_COLUMNS,
    face_table,
    image_files,
    image_ids,
    label_summary,
    load_face_table,
    save_face_table,
    validate_face_table,
)


def rows():
    return face_table(
        [
            {"image_path": "a.jpg", "dataset": "rafau", "AU6": 1.0, "AU12": 1.0, "AU1": 0.0},
            {
                "image_path": "b.jpg",
                "dataset": "affectnet",
                "emotions": ["happiness", "surprise"],
                "split": "train",
            },
            {
                "image_path": "c.jpg",
                "dataset": "bp4d",
                "subject": "F001",
                "sequence": "T1",
                "frame": 3,
                "AU1": 0.0,
            },
        ]
    )


def test_defaults_and_order():
    df = rows()
    assert list(df.columns[: len(FACE_COLUMNS)]) == list(FACE_COLUMNS)
    assert (
        np.isnan(df.loc[1, "AU12"]) and df.loc[0, "emotions"] == [] and df["frame"].dtype == "Int64"
    )
    assert label_summary(df) == ["AU 6+12", "happiness + surprise", "no AU"]
    assert image_ids(df).tolist() == ["rafau/a.jpg", "affectnet/b.jpg", "bp4d/c.jpg"]


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda d: d.assign(AU6=[2.0, np.nan, 0.0]), "AU6 must be 0, 1 or NaN"),
        (lambda d: d.assign(dataset=["rafau", "ck", "bp4d"]), "unknown dataset 'ck'"),
        (lambda d: d.assign(split=["val", None, None]), "split must be one of"),
        (
            lambda d: d.assign(image_path=["a.jpg", "b.jpg", "a.jpg"], dataset=["bp4d"] * 3),
            "repeats within a dataset",
        ),
        (lambda d: d.assign(emotions=[["joy"], [], []]), "non-canonical emotions"),
        (lambda d: d.drop(columns=["AU43"]), "missing columns"),
    ],
)
def test_validation_names_the_problem(change, message):
    with pytest.raises(ValueError, match=message):
        validate_face_table(change(rows()))


def test_same_path_in_two_datasets_is_fine():
    df = rows().assign(image_path=["x.jpg"] * 3)
    assert validate_face_table(df) is df


def test_parquet_round_trip(tmp_path):
    df = rows()
    back = load_face_table(save_face_table(df, tmp_path / "t.parquet"))
    pd.testing.assert_frame_equal(back, df)
    assert not list(tmp_path.glob("*.tmp"))


def test_default_corpus_is_built_once_and_cached(tmp_path):
    spec = default_corpus.DefaultCorpus.smoke()
    first = default_corpus.curated_faces(spec, work=tmp_path, progress=False)
    path = default_corpus.curated_path(tmp_path, spec)
    assert path.exists() and set(first["dataset"]) == set(default_corpus.FORMATS)
    stamp = path.stat().st_mtime_ns
    again = default_corpus.curated_faces(spec, work=tmp_path, progress=False)
    assert path.stat().st_mtime_ns == stamp and again.equals(first)
    files = image_files(first)
    assert len(files) == len(first) and all(Path(f).is_file() for f in files[:20])
    with pytest.raises(KeyError, match="data_root"):
        image_files(first.drop(columns="data_root"))
    with pytest.raises(ValueError, match="unknown datasets"):
        default_corpus.curated_faces(spec, work=tmp_path, real={"ck+": tmp_path})


def test_data_cli(tmp_path, capsys):
    out = tmp_path / "gft"
    assert (
        main(
            [
                "data",
                "synth",
                "--like",
                "gft",
                "--out",
                str(out),
                "--smoke",
                "--subjects",
                "2",
                "--frames",
                "5",
                "--workers",
                "1",
            ]
        )
        == 0
    )
    assert main(["data", "load", "gft", str(out), "--out", str(tmp_path / "t.parquet")]) == 0
    assert "10 AUs" in capsys.readouterr().out and (tmp_path / "t.parquet").exists()
    assert main(["data", "curate", f"gft={out}", "--out", str(tmp_path / "c.parquet")]) == 0
    assert main(["data", "load", "bp4d", str(tmp_path)]) == 1
    assert "BP4D AU_OCC label folder not found" in capsys.readouterr().err


def test_real_data_replaces_a_synthfacs_corpus(tmp_path):
    from facecap_lib.data.synth.corpus import CorpusConfig, synthesize

    spec = default_corpus.DefaultCorpus.smoke()
    mine = synthesize(
        "gft", tmp_path / "my_gft", CorpusConfig(subjects=2, frames=4, size=32), progress=False
    )
    table = default_corpus.curated_faces(
        spec, work=tmp_path, real={"gft": {"root": mine, "strict": False}}, progress=False
    )
    gft = table[table.dataset == "gft"]
    assert set(gft["data_root"]) == {str(mine.resolve())} and Path(image_files(gft)[0]).is_file()
    assert default_corpus.curated_path(tmp_path, spec, {"gft": mine}).name.startswith(
        "curated-real-"
    )
