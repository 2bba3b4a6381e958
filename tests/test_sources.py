"""Dataset loaders: round trips through the writers, hand-written quirky files, every bad input."""

import numpy as np
import pandas as pd
import pytest

from facecap_lib.data import sources
from facecap_lib.data.problems import DataFormatError
from facecap_lib.data.sources import affectnet, bp4d, disfa, emotionet, faceme, gft, rafau, rafdb
from facecap_lib.data.sources.common import intensity_column
from facecap_lib.data.table import face_table, validate_face_table
from facecap_lib.lexicon import AU_NUMBERS, COMPOUND_BY_NAME


def touch(root, relative):
    path = root / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"\xff\xd8")
    return path


def same_labels(a: pd.DataFrame, b: pd.DataFrame, aus) -> bool:
    cols = [f"AU{n}" for n in aus]
    left = a.sort_values("image_path")[cols].to_numpy(dtype=float)
    right = b.sort_values("image_path")[cols].to_numpy(dtype=float)
    return np.array_equal(np.nan_to_num(left, nan=-1), np.nan_to_num(right, nan=-1))


def random_frames(rng, subjects, sequences, n, aus, unknown=0.0):
    rows = []
    for subject in subjects:
        for sequence in sequences:
            for frame in range(5, 5 + n):
                row = {"subject": subject, "sequence": sequence or subject, "frame": frame}
                for au in aus:
                    level = int(rng.integers(0, 6))
                    row[intensity_column(au)] = float(level)
                    row[f"AU{au}"] = (
                        np.nan if rng.uniform() < unknown else float(rng.uniform() < 0.4)
                    )
                rows.append(row)
    return face_table(rows)


# --- round trips ------------------------------------------------------------------------------


def test_bp4d_round_trip(tmp_path):
    table = random_frames(
        np.random.default_rng(0), ["F001", "M010"], ["T1", "T2"], 12, bp4d.AUS, 0.1
    )
    bp4d.write(tmp_path, table)
    table["image_path"] = [
        bp4d.image_path(s, q, int(f))
        for s, q, f in zip(table.subject, table.sequence, table.frame, strict=False)
    ]
    for p in table["image_path"]:
        touch(tmp_path, p)
    loaded = bp4d.load(tmp_path)
    validate_face_table(loaded)
    assert len(loaded) == 48 and set(loaded["dataset"]) == {"bp4d"}
    assert same_labels(loaded, table, bp4d.AUS)
    assert loaded[[f"AU{n}" for n in set(AU_NUMBERS) - set(bp4d.AUS)]].isna().all().all()
    assert "Sequences_2D+3D/M010/T1/005.jpg" in set(
        loaded["image_path"]
    )  # 3-digit padding resolved


def test_disfa_round_trip_and_threshold(tmp_path):
    table = random_frames(np.random.default_rng(1), ["SN001"], [None], 8, disfa.AUS)
    table["frame"] = range(1, 9)
    disfa.write(tmp_path, table)
    for f in range(1, 9):
        touch(tmp_path, disfa.image_path("SN001", f))
    loaded = disfa.load(tmp_path)
    levels = table[intensity_column(12)].to_numpy()
    assert np.array_equal(loaded[intensity_column(12)].to_numpy(), levels)
    assert np.array_equal(loaded["AU12"].to_numpy(), (levels >= 2).astype(float))
    assert np.array_equal(
        disfa.load(tmp_path, threshold=1)["AU12"].to_numpy(), (levels >= 1).astype(float)
    )
    assert loaded["image_path"].iloc[0] == "frames/SN001/0.jpg"
    with pytest.raises(ValueError, match="threshold"):
        disfa.load(tmp_path, threshold=0)


def test_gft_round_trip(tmp_path):
    table = random_frames(np.random.default_rng(2), ["001A", "002C"], [None], 6, gft.AUS, 0.1)
    gft.write(tmp_path, table)
    for s, f in zip(table.subject, table.frame, strict=False):
        touch(tmp_path, gft.image_path(s, int(f)))
    assert same_labels(
        gft.load(tmp_path).assign(image_path=lambda d: d.image_path),
        table.assign(
            image_path=[
                gft.image_path(s, int(f)) for s, f in zip(table.subject, table.frame, strict=False)
            ]
        ),
        gft.AUS,
    )


@pytest.mark.parametrize("like", sorted(sources.MODULES))
def test_every_synthfacs_corpus_loads(like, tmp_path):
    from facecap_lib.data.synth.corpus import TRUTH_FILE, CorpusConfig, synthesize

    cfg = CorpusConfig(subjects=2, sequences=1, frames=8, images=12, size=32)
    root = synthesize(like, tmp_path / like, cfg, workers=1, progress=False)
    loaded = sources.load(like, root)
    validate_face_table(loaded)
    assert len(loaded) == (16 if like in ("bp4d", "disfa", "gft") else 12)
    assert loaded.attrs["problems"] == {}
    truth = pd.read_parquet(root / TRUTH_FILE)
    assert set(truth["image_path"]) >= set(loaded["image_path"])


# --- hand-written files with every quirk of datasets.md -----------------------------------------


def test_bp4d_named_header_trailing_column_and_unknowns(tmp_path):
    labels = tmp_path / bp4d.LABEL_DIR
    labels.mkdir(parents=True)
    (labels / "F002_T3.csv").write_text("0,1,2,4,6,occluded\n643,1,0,9,1,0\n644,0,0,1,1,1\n")
    touch(tmp_path, "2D+3D/F002/T3/643.jpg")
    touch(tmp_path, "2D+3D/F002/T3/0644.jpg")
    loaded = bp4d.load(tmp_path)
    assert list(loaded["image_path"]) == ["2D+3D/F002/T3/643.jpg", "2D+3D/F002/T3/0644.jpg"]
    assert loaded["AU1"].tolist() == [1.0, 0.0] and np.isnan(loaded["AU4"].iloc[0])
    assert loaded["AU7"].isna().all()  # not a column: unknown, not absent


def test_disfa_short_file_keeps_nan(tmp_path):
    table = random_frames(np.random.default_rng(3), ["SN010"], [None], 5, disfa.AUS)
    table["frame"] = range(1, 6)
    disfa.write(tmp_path, table)
    short = tmp_path / disfa.LABEL_DIR / "SN010" / "SN010_au26.txt"
    short.write_text("\n".join(short.read_text().splitlines()[:-1]) + "\n")
    loaded = disfa.load(tmp_path, check_images=False)
    assert len(loaded) == 5 and np.isnan(loaded["AU26"].iloc[-1]) and loaded["AU1"].notna().all()
    assert loaded.attrs["partial_frames"] == {"SN010": 1}  # kept with NaN, and said


def test_rafau_quirks(tmp_path):
    lines = [
        "0001.jpg 1+4+25",
        "0002.jpg null",
        "0003.jpg L12+24",
        "0004.jpg 25 ",
        "0005.jpg 15+17+B22+T24",
        "0007.jpg  AD19+t23",
        "0008.jpg 26+26",
        "0009.jpg L12L+R14",
        "0010.jpg 15+B22+17",
        "0011.jpg 1+32+39",
    ]
    (tmp_path / "RAFAU_label.txt").write_text("\n".join(lines) + "\n")
    for line in lines:
        touch(tmp_path, rafau.image_path(line.split()[0][:4]))
    loaded = rafau.load(tmp_path)
    got = {
        p[8:12]: {n for n in AU_NUMBERS if row[f"AU{n}"] == 1}
        for p, (_, row) in zip(loaded.image_path, loaded.iterrows(), strict=False)
    }
    assert got == {
        "0001": {1, 4, 25},
        "0002": set(),
        "0003": {12, 24},
        "0004": {25},
        "0005": {15, 17, 22, 24},
        "0007": {19, 23},
        "0008": {26},
        "0009": {12, 14},
        "0010": {15, 17, 22},
        "0011": {1},
    }
    assert loaded[[f"AU{n}" for n in rafau.AUS]].notna().all().all()  # RAF-AU codes every AU it has
    assert loaded[["AU8", "AU11"]].isna().all().all()  # ... but never AU8 or AU11
    assert loaded.attrs["dropped_tokens"] == {"32": 1, "39": 1}
    assert loaded["raw_label"].iloc[4] == "15+17+B22+T24"


def test_emotionet_quotes_999_and_missing_image(tmp_path):
    header = "URL,URL orig," + ",".join(f"'AU {n}'" for n in range(1, 61))

    def row(name, codes):
        values = [str(codes.get(n, 999)) for n in range(1, 61)]
        return f"https://x/Images/N_1/{name}',http://o/{name}," + ",".join(values)

    (tmp_path / emotionet.LABEL_FILE).write_text(
        "\n".join(
            [
                header,
                row("a.jpg", {1: 1, 2: 0, 12: 1}),
                row("b.jpg", {1: 0, 43: 1}),
                row("gone.jpg", {1: 1}),
            ]
        )
        + "\n"
    )
    touch(tmp_path, "images/a.jpg")
    touch(tmp_path, "images/b.jpg")
    with pytest.raises(DataFormatError, match=r"EmotioNet_FACS_aws_2020_24600.csv:4: .*gone.jpg"):
        emotionet.load(tmp_path)
    loaded = emotionet.load(tmp_path, strict=False)
    assert loaded.attrs["problems"] == {"missing-image": 1}
    assert loaded["AU1"].tolist() == [1.0, 0.0] and loaded["AU43"].tolist()[1] == 1.0
    assert np.isnan(loaded["AU4"].iloc[0])  # 999: unknown, not absent


def test_affectnet_headerless_validation_and_non_emotions(tmp_path):
    lists = tmp_path / affectnet.LIST_DIR
    lists.mkdir(parents=True)
    marks = ";".join(["1.0"] * 136)
    rows = [
        f"1/a{i}.jpg,1,2,30,30,{marks},{code},0.5,0.2" for i, code in enumerate([0, 1, 7, 8, 9, 10])
    ]
    (lists / "training.csv").write_text(",".join(affectnet.COLUMNS) + "\n" + "\n".join(rows) + "\n")
    (lists / "validation.csv").write_text(f"2/v.jpg,1,2,30,30,{marks},3,-2,-2\n")
    for i in range(6):
        touch(tmp_path, f"{affectnet.IMAGE_DIR}/1/a{i}.jpg")
    touch(tmp_path, f"{affectnet.IMAGE_DIR}/2/v.jpg")
    loaded = affectnet.load(tmp_path)
    assert loaded["emotions"].tolist() == [["neutral"], ["happiness"], ["contempt"], ["surprise"]]
    assert loaded["split"].tolist() == ["train"] * 3 + ["test"]
    assert loaded.attrs["non_emotion_rows"] == 3 and np.isnan(loaded["valence"].iloc[-1])
    assert len(affectnet.load(tmp_path, keep_non_emotion=True)) == 7


def test_rafdb_names_and_codes(tmp_path):
    label = tmp_path / "compound" / rafdb.LABEL_FILE
    label.parent.mkdir(parents=True)
    label.write_text("train_0001.jpg 1\ntest_0001.jpg 11\n")
    touch(tmp_path, rafdb.image_path("compound", "train_0001.jpg"))
    touch(tmp_path, rafdb.image_path("compound", "test_0001.jpg"))
    loaded = rafdb.load(tmp_path)
    assert loaded["emotions"].tolist() == [["happiness", "surprise"], ["disgust", "surprise"]]
    assert loaded["split"].tolist() == ["train", "test"]
    basic = tmp_path / "basic" / rafdb.LABEL_FILE
    basic.parent.mkdir(parents=True)
    basic.write_text("train_00001.jpg 4\ntest_0001.jpg 7\n")
    assert rafdb.load(tmp_path, subset="basic", check_images=False)["emotions"].tolist() == [
        ["happiness"],
        ["neutral"],
    ]


def test_faceme_consensus(tmp_path):
    votes = pd.DataFrame(
        [
            ("1.jpg", "a", "happy"),
            ("1.jpg", "b", "Happiness"),
            ("1.jpg", "c", "sad"),
            ("1.jpg", "a", "thinking"),
            ("1.jpg", "b", "thinking"),
            ("2.jpg", "a", "fear"),
        ],
        columns=faceme.HEADER,
    )
    faceme.write(tmp_path, votes)
    touch(tmp_path, "images/1.jpg")
    touch(tmp_path, "images/2.jpg")
    loaded = faceme.load(tmp_path)
    assert loaded["emotions"].tolist() == [["happiness"], []]
    assert loaded["other_labels"].tolist() == [["thinking"], []]
    assert set(loaded["split"]) == {"train"}


# --- bad input: strict names file and line, lenient skips and counts ----------------------------


def bp4d_fixture(tmp_path, body):
    labels = tmp_path / bp4d.LABEL_DIR
    labels.mkdir(parents=True, exist_ok=True)
    header = ",".join(str(i) for i in range(100))
    rows = [",".join([str(f)] + [c] * 99) for f, c in body]
    (labels / "F001_T1.csv").write_text(header + "\n" + "\n".join(rows) + "\n")
    for f, _ in body:
        touch(tmp_path, f"Sequences_2D+3D/F001/T1/{f:04d}.jpg" if str(f).isdigit() else "x")
    return labels / "F001_T1.csv"


@pytest.mark.parametrize(
    "body, reason, line",
    [
        ([(1, "0"), (2, "x")], "not-a-number", 3),
        ([(1, "0"), (2, "5")], "bad-code", 3),
        ([(1, "0"), (1, "1")], "duplicate-row", 3),
    ],
)
def test_bp4d_bad_rows(tmp_path, body, reason, line):
    path = bp4d_fixture(tmp_path, body)
    with pytest.raises(DataFormatError) as info:
        bp4d.load(tmp_path)
    assert (
        info.value.reason == reason
        and info.value.line == line
        and f"{path}:{line}" in str(info.value)
    )
    lenient = bp4d.load(tmp_path, strict=False)
    assert lenient.attrs["problems"] == {reason: 1} and len(lenient) == 1


def test_bp4d_frame_without_image(tmp_path):
    path = bp4d_fixture(tmp_path, [(1, "0"), (2, "0")])
    (tmp_path / "Sequences_2D+3D/F001/T1/0002.jpg").unlink()
    with pytest.raises(DataFormatError, match=f"{path}:3: .*does not exist"):
        bp4d.load(tmp_path)
    assert len(bp4d.load(tmp_path, strict=False)) == 1
    assert len(bp4d.load(tmp_path, check_images=False)) == 2


def test_header_mismatch(tmp_path):
    labels = tmp_path / bp4d.LABEL_DIR
    labels.mkdir(parents=True)
    (labels / "F001_T1.csv").write_text(
        ",".join(f"c{i}" for i in range(100)) + "\n" + ",".join(["1"] * 100) + "\n"
    )
    with pytest.raises(DataFormatError, match="F001_T1.csv:1: expected the header 0,1,...,99"):
        bp4d.load(tmp_path, check_images=False)
    (tmp_path / "labels").mkdir()
    (tmp_path / "labels" / "001A.csv").write_text("frame,AU1,AUx\n1,0,0\n")
    with pytest.raises(DataFormatError, match="001A.csv:1: .*lexicon AU columns"):
        gft.load(tmp_path, check_images=False)


def test_missing_folders_are_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="BP4D AU_OCC label folder"):
        bp4d.load(tmp_path)
    with pytest.raises(FileNotFoundError, match="RAF-AU label file"):
        rafau.load(tmp_path)
    with pytest.raises(ValueError, match="unknown dataset 'ck'"):
        sources.load("ck", tmp_path)


def test_rafau_malformed_token_and_duplicate(tmp_path):
    (tmp_path / "RAFAU_label.txt").write_text("0001.jpg 1+L12X\n0002.jpg 4\n0002.jpg 4\n")
    with pytest.raises(DataFormatError, match="RAFAU_label.txt:1: .*'L12X'"):
        rafau.load(tmp_path, check_images=False)
    lenient = rafau.load(tmp_path, strict=False, check_images=False)
    assert (
        lenient.attrs["problems"] == {"malformed-token": 1, "duplicate-row": 1}
        and len(lenient) == 1
    )


def test_disfa_malformed_line(tmp_path):
    folder = tmp_path / disfa.LABEL_DIR / "SN001"
    folder.mkdir(parents=True)
    for au in disfa.AUS:
        (folder / f"SN001_au{au}.txt").write_text("1,0\n2,x\n3,7\n")
    with pytest.raises(DataFormatError, match="SN001_au1.txt:2: expected '<frame>,<intensity>'"):
        disfa.load(tmp_path, check_images=False)
    lenient = disfa.load(tmp_path, strict=False, check_images=False)
    assert lenient.attrs["problems"] == {"malformed-line": 12, "bad-code": 12} and len(lenient) == 1


def test_affectnet_null_row(tmp_path):
    lists = tmp_path / affectnet.LIST_DIR
    lists.mkdir(parents=True)
    marks = ";".join(["1.0"] * 136)
    (lists / "training.csv").write_text(
        ",".join(affectnet.COLUMNS)
        + f"\n1/a.jpg,NULL,2,3,4,{marks},1,0,0\n1/b.jpg,1,2,3,4,{marks},12,0,0\n"
    )
    (lists / "validation.csv").write_text("")
    with pytest.raises(DataFormatError, match="training.csv:2: a field holds NULL"):
        affectnet.load(tmp_path, check_images=False)


def test_rafdb_bad_name(tmp_path):
    label = tmp_path / "compound" / rafdb.LABEL_FILE
    label.parent.mkdir(parents=True)
    label.write_text("train_00001.jpg 1\n")  # 5 digits is the basic subset's pattern
    with pytest.raises(
        DataFormatError,
        match="list_patition_label.txt:1: 'train_00001.jpg' is not a RAF-DB compound",
    ):
        rafdb.load(tmp_path, check_images=False)


# --- review round: ragged rows, blank lines, BOMs, misread strings, truth round trips -------------


def test_ragged_row_names_its_line_and_lenient_counts_it(tmp_path):
    lists = tmp_path / affectnet.LIST_DIR
    lists.mkdir(parents=True)
    marks = ";".join(["1.0"] * 136)
    good = f"1/a.jpg,1,2,3,4,{marks},1,0.1,0.1"
    (lists / "training.csv").write_text(
        ",".join(affectnet.COLUMNS) + f"\n{good}\n\n1/b.jpg,1,2,3,4,{marks},1,0,0,EXTRA\n"
    )
    (lists / "validation.csv").write_text("")
    with pytest.raises(DataFormatError, match="training.csv:4: wrong number of fields"):
        affectnet.load(tmp_path, check_images=False)
    lenient = affectnet.load(tmp_path, strict=False, check_images=False)
    assert lenient.attrs["problems"] == {"malformed-row": 1, "empty-file": 1} and len(lenient) == 1


def test_line_numbers_count_blank_lines(tmp_path):
    (tmp_path / "labels").mkdir()
    (tmp_path / "labels" / "001A.csv").write_text("frame,AU1\n1,0\n\n2,x\n")
    with pytest.raises(DataFormatError, match="001A.csv:4: column AU1 holds 'x'"):
        gft.load(tmp_path, check_images=False)


def test_byte_order_mark_is_tolerated(tmp_path):
    (tmp_path / "RAFAU_label.txt").write_text("\ufeff0001.jpg 12\n", encoding="utf-8")
    assert rafau.load(tmp_path, check_images=False)["image_path"].tolist() == [
        "aligned/0001_aligned.jpg"
    ]
    labels = tmp_path / bp4d.LABEL_DIR
    labels.mkdir(parents=True)
    (labels / "F001_T1.csv").write_text(
        "\ufeff" + ",".join(str(i) for i in range(100)) + "\n" + ",".join(["1"] * 100) + "\n"
    )
    assert len(bp4d.load(tmp_path, check_images=False)) == 1


def test_rafau_two_label_strings_are_not_glued(tmp_path):
    (tmp_path / "RAFAU_label.txt").write_text("0001.jpg 1+2 4\n0002.jpg 1 + 2\n")
    with pytest.raises(DataFormatError, match="RAFAU_label.txt:1: .*more than one AU string"):
        rafau.load(tmp_path, check_images=False)
    lenient = rafau.load(tmp_path, strict=False, check_images=False)
    assert len(lenient) == 1 and lenient.loc[0, "AU2"] == 1.0  # "1 + 2" is one string


def test_disfa_frame_zero_is_refused(tmp_path):
    folder = tmp_path / disfa.LABEL_DIR / "SN001"
    folder.mkdir(parents=True)
    for au in disfa.AUS:
        (folder / f"SN001_au{au}.txt").write_text("0,0\n1,3\n")
    with pytest.raises(DataFormatError, match="SN001_au1.txt:1: frame 0"):
        disfa.load(tmp_path, check_images=False)


def test_a_duplicate_of_a_rejected_row_is_kept(tmp_path):
    bp4d_fixture(tmp_path, [(1, "5"), (1, "0")])
    lenient = bp4d.load(tmp_path, strict=False)
    assert lenient.attrs["problems"] == {"bad-code": 1} and lenient["frame"].tolist() == [1]


def test_emotionet_repeated_header(tmp_path):
    (tmp_path / emotionet.LABEL_FILE).write_text(
        "URL,URL orig,'AU 1','AU 1'\nhttps://x/a.jpg,o,1,0\n"
    )
    with pytest.raises(DataFormatError, match="'AU 1' appears twice"):
        emotionet.load(tmp_path, check_images=False)


@pytest.mark.parametrize("like", ["rafau", "emotionet", "affectnet", "rafdb"])
def test_still_corpora_labels_match_what_was_rendered(like, tmp_path):
    from facecap_lib.data.synth.actions import RENDERED_AUS
    from facecap_lib.data.synth.corpus import TRUTH_FILE, CorpusConfig, synthesize

    root = synthesize(like, tmp_path, CorpusConfig(images=30, size=32), workers=1, progress=False)
    loaded = sources.load(like, root).set_index("image_path")
    truth = pd.read_parquet(root / TRUTH_FILE).set_index("image_path").loc[loaded.index]
    if like in ("rafau", "emotionet"):
        coded = [au for au in RENDERED_AUS if loaded[f"AU{au}"].notna().any()]
        assert len(coded) >= 10
        for au in coded:
            assert (loaded[f"AU{au}"] == (truth[f"I{au}"] >= 1)).all(), f"AU{au}"
    else:
        for emotions, portrayed in zip(loaded["emotions"], truth["emotion"], strict=True):
            expected = (
                [portrayed] if like == "affectnet" else list(COMPOUND_BY_NAME[portrayed].components)
            )
            assert emotions == expected
