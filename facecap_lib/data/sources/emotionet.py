"""EmotioNet: web images with manual FACS annotations (the publicly released ~24.6k set).

Layout::

    EmotioNet_FACS_aws_2020_24600.csv    URL, URL orig, 'AU 1', 'AU 2', ..., 'AU 60'
    images/<file name of the URL>

The distributed spreadsheet (often ``.xlsx``; save it as CSV) has quoted AU headers with a space
(``'AU 1'``), URLs with stray quotes, and codes 1 present, 0 absent, 999 unknown (→ NaN). Images are
not distributed: you download them, so they live in a flat folder named by the URL's last part.
Headers of AUs outside the lexicon are ignored. There is no official split.
"""

from __future__ import annotations

import csv
import re
from pathlib import Path

import numpy as np
import pandas as pd

from facecap_lib.data.problems import ProblemLog
from facecap_lib.data.sources.common import (
    ENCODING,
    first_per_row,
    image_exists,
    occurrence,
    read_csv,
    require_file,
)
from facecap_lib.data.table import face_table

LABEL_FILE = "EmotioNet_FACS_aws_2020_24600.csv"
AUS: tuple[int, ...] = (1, 2, 4, 5, 6, 9, 12, 17, 20, 25, 26, 43)
UNKNOWN = 999
URL_ROOT = "https://s3.us-east-2.amazonaws.com/emotionet/Images"


def _clean(text: str) -> str:
    return str(text).strip().strip("'\"").strip()


def image_name(url: str) -> str:
    return _clean(url).rsplit("/", 1)[-1]


def load(
    root: str | Path,
    *,
    aus: tuple[int, ...] = AUS,
    strict: bool = True,
    check_images: bool = True,
    label_file: str = LABEL_FILE,
) -> pd.DataFrame:
    """Read the EmotioNet manual-annotation CSV and the downloaded images into a face table.

    Only ``aus`` (default: the 11 challenge AUs and AU43) are read: the file has columns for
    AU 1-60, but the others are not reliably coded; they stay NaN.
    """
    root = Path(root)
    path = require_file(root / label_file, "EmotioNet annotation CSV")
    problems = ProblemLog(strict)
    empty = face_table([]).assign(dataset="emotionet")
    raw, lines = read_csv(path, problems)
    if raw is None:
        return problems.attach(empty, f"EmotioNet {root}")
    with path.open(encoding=ENCODING, newline="") as handle:
        header = [_clean(h) for h in next(csv.reader(handle))]  # as written: pandas renames repeats
    if not header or header[0].upper() != "URL":
        problems.report(path, 1, "bad-header", f"first column must be URL, got {header[:3]}")
        return problems.attach(empty, f"EmotioNet {root}")
    au_columns: dict[int, int] = {}
    for position, name in enumerate(header):
        match = re.fullmatch(r"AU\s*(\d+)", name, flags=re.IGNORECASE)
        if match and int(match.group(1)) in aus:
            if int(match.group(1)) in au_columns:
                problems.report(
                    path, 1, "bad-header", f"column 'AU {match.group(1)}' appears twice"
                )
                return problems.attach(empty, f"EmotioNet {root}")
            au_columns[int(match.group(1))] = position
    values = (
        raw.iloc[:, list(au_columns.values())]
        .apply(pd.to_numeric, errors="coerce")
        .to_numpy(dtype=float)
    )
    keep = np.ones(len(raw), dtype=bool)
    names = list(au_columns)
    for row, col in first_per_row(np.isnan(values)):
        problems.report(
            path,
            lines[row],
            "not-a-number",
            f"'AU {names[col]}' holds {raw.iat[row, list(au_columns.values())[col]]!r}",
        )
        keep[row] = False
    for row, col in first_per_row(~np.isin(values, [0, 1, UNKNOWN]) & keep[:, None]):
        problems.report(
            path,
            lines[row],
            "bad-code",
            f"'AU {names[col]}' is {values[row, col]:g}, expected 0, 1 or 999",
        )
        keep[row] = False
    rows, seen = [], set()
    for row in np.flatnonzero(keep):
        if not image_name(raw.iat[row, 0]):
            problems.report(path, lines[row], "malformed-row", "the URL is empty")
            continue
        relative = f"images/{image_name(raw.iat[row, 0])}"
        if relative in seen:
            problems.report(path, lines[row], "duplicate-row", f"{relative} is listed twice")
            continue
        seen.add(relative)
        if not image_exists(root, relative, problems, path, lines[row], check_images):
            continue
        record = {"image_path": relative, "label_file": label_file, "label_line": int(lines[row])}
        record.update(
            {
                f"AU{au}": occurrence(values[row, i : i + 1], {UNKNOWN})[0]
                for i, au in enumerate(names)
            }
        )
        rows.append(record)
    df = face_table(rows)
    df["dataset"] = "emotionet"
    return problems.attach(df, f"EmotioNet {root}")


def write(
    root: str | Path,
    table: pd.DataFrame,
    *,
    aus: tuple[int, ...] = AUS,
    label_file: str = LABEL_FILE,
) -> Path:
    """Write the annotation CSV the way the distributed file looks (quoted 'AU n' headers for AU
    1-60, 999 for AUs not coded, a stray quote after the URL). ``image_path`` must be images/<name>."""
    records = []
    for _, row in table.iterrows():
        name = Path(row["image_path"]).name
        folder = name.split("_")[0] if "_" in name else "N_0000000001"
        record = {"URL": f"{URL_ROOT}/{folder}/{name}'", "URL orig": f"http://example.org/{name}"}
        for n in range(1, 61):
            value = row.get(f"AU{n}") if n in aus else np.nan
            record[f"'AU {n}'"] = UNKNOWN if value is None or np.isnan(value) else int(value)
        records.append(record)
    path = Path(root) / label_file
    path.parent.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(records).to_csv(path, index=False)
    return path
