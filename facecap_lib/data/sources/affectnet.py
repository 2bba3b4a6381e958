"""AffectNet: ~420k manually annotated web faces, one categorical expression each (no AUs).

Layout (original release)::

    Manually_Annotated_file_lists/training.csv     with a header
    Manually_Annotated_file_lists/validation.csv   the same columns, *without* a header
    Manually_Annotated/Manually_Annotated_Images/<folder>/<hash>.<ext>

Columns: subDirectory_filePath, face_x, face_y, face_width, face_height, facial_landmarks
(136 numbers joined by ';'), expression, valence, arousal. Expression codes 0-7 are neutral,
happiness, sadness, surprise, fear, disgust, anger, contempt; 8 (none), 9 (uncertain) and
10 (no-face) carry no emotion and are left out unless ``keep_non_emotion`` (they are counted in
``df.attrs["non_emotion_rows"]``). Valence/arousal -2 (not available) become NaN. Rows holding
``NULL`` are problems. training → split ``train``; validation (the paper's test set) → ``test``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from facecap_lib.data.problems import ProblemLog
from facecap_lib.data.sources.common import ENCODING, image_exists, read_csv, require_dir
from facecap_lib.data.table import face_table
from facecap_lib.lexicon import AFFECTNET_CODES, affectnet_emotion

LIST_DIR = "Manually_Annotated_file_lists"
IMAGE_DIR = "Manually_Annotated/Manually_Annotated_Images"
COLUMNS = (
    "subDirectory_filePath",
    "face_x",
    "face_y",
    "face_width",
    "face_height",
    "facial_landmarks",
    "expression",
    "valence",
    "arousal",
)
FILES = {"training.csv": "train", "validation.csv": "test"}


def load(
    root: str | Path,
    *,
    strict: bool = True,
    check_images: bool = True,
    keep_non_emotion: bool = False,
) -> pd.DataFrame:
    """Read AffectNet's manually annotated lists into a face table (emotions, no AU labels)."""
    root = Path(root)
    lists = require_dir(root / LIST_DIR, "AffectNet file-list folder")
    problems = ProblemLog(strict)
    rows, seen, non_emotion = [], set(), 0
    for file_name, split in FILES.items():
        path = lists / file_name
        if not path.is_file():
            problems.report(path, None, "missing-file", f"AffectNet list {file_name} not found")
            continue
        with path.open(encoding=ENCODING) as handle:
            has_header = handle.readline().split(",")[0].strip() == COLUMNS[0]
        raw, lines = read_csv(path, problems, header=has_header)
        if raw is None:
            continue
        if raw.shape[1] != len(COLUMNS):
            problems.report(
                path,
                1,
                "bad-header",
                f"expected {len(COLUMNS)} columns {COLUMNS}, got {raw.shape[1]}",
            )
            continue
        raw.columns = COLUMNS
        for line, record in zip(lines, raw.itertuples(index=False), strict=True):
            line = int(line)
            if any(str(v).strip().upper() == "NULL" for v in record):
                problems.report(path, line, "null-field", "a field holds NULL")
                continue
            try:
                code = int(record.expression)
                box = [
                    float(v)
                    for v in (record.face_x, record.face_y, record.face_width, record.face_height)
                ]
                valence, arousal = float(record.valence), float(record.arousal)
            except ValueError:
                problems.report(
                    path,
                    line,
                    "not-a-number",
                    f"expression/box/valence/arousal must be numbers: {tuple(record)[1:5]} {record.expression!r}",
                )
                continue
            if code not in AFFECTNET_CODES:
                problems.report(
                    path, line, "bad-code", f"expression {code} is not an AffectNet code 0-10"
                )
                continue
            landmarks = record.facial_landmarks.split(";") if record.facial_landmarks else []
            if landmarks and len(landmarks) != 136:
                problems.report(
                    path, line, "bad-landmarks", f"{len(landmarks)} landmark numbers, expected 136"
                )
                continue
            emotion = affectnet_emotion(code)
            if emotion is None:
                non_emotion += 1
                if not keep_non_emotion:
                    continue
            relative = f"{IMAGE_DIR}/{record.subDirectory_filePath}"
            if relative in seen:
                problems.report(
                    path, line, "duplicate-row", f"{record.subDirectory_filePath} is listed twice"
                )
                continue
            seen.add(relative)
            if not image_exists(root, relative, problems, path, line, check_images):
                continue
            rows.append(
                {
                    "image_path": relative,
                    "split": split,
                    "emotions": [emotion] if emotion else [],
                    "label_file": f"{LIST_DIR}/{file_name}",
                    "label_line": line,
                    "affectnet_code": code,
                    "face_box": box,
                    "valence": np.nan if valence == -2 else valence,
                    "arousal": np.nan if arousal == -2 else arousal,
                }
            )
    df = face_table(rows)
    df["dataset"] = "affectnet"
    df.attrs["non_emotion_rows"] = non_emotion
    return problems.attach(df, f"AffectNet {root}")


def write(root: str | Path, table: pd.DataFrame) -> list[Path]:
    """Write training.csv (with header) and validation.csv (without) from a face table with
    ``split``, ``affectnet_code``, ``face_box`` [x, y, w, h], ``landmarks`` ([68, 2]),
    ``valence`` and ``arousal`` columns; ``image_path`` must lie under :data:`IMAGE_DIR`."""
    folder = Path(root) / LIST_DIR
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for file_name, split in FILES.items():
        part = table[table["split"] == split]
        records = []
        for _, row in part.iterrows():
            x, y, w, h = row["face_box"]
            marks = ";".join(f"{v:.2f}" for v in np.asarray(row["landmarks"]).reshape(-1))
            records.append(
                [
                    row["image_path"].removeprefix(IMAGE_DIR + "/"),
                    int(x),
                    int(y),
                    int(w),
                    int(h),
                    marks,
                    int(row["affectnet_code"]),
                    f"{row['valence']:.6f}",
                    f"{row['arousal']:.6f}",
                ]
            )
        path = folder / file_name
        pd.DataFrame(records, columns=list(COLUMNS)).to_csv(
            path, index=False, header=(split == "train")
        )
        written.append(path)
    return written
