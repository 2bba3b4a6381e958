"""GFT (Sayette Group Formation Task): 96 participants in 32 three-person groups, 10 AUs.

The original distribution's file layout is not public, so this project defines one (after the
folder naming of a public re-partition, ``<3-digit group><participant letter>``)::

    images/001A/1.jpg ...                 frames of one participant
    labels/001A.csv                       header: frame,AU1,AU2,AU4,AU6,AU10,AU12,AU14,AU15,AU23,AU24

Values: 1 present, 0 absent, 9 unknown (→ NaN). Any subset of lexicon AUs may be columns.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd

from facecap_lib.data.problems import ProblemLog
from facecap_lib.data.sources.common import (
    check_frame_codes,
    image_exists,
    numeric,
    occurrence,
    read_csv,
    require_dir,
)
from facecap_lib.data.table import face_table
from facecap_lib.lexicon import AU_BY_NUMBER

AUS: tuple[int, ...] = (1, 2, 4, 6, 10, 12, 14, 15, 23, 24)
UNKNOWN = 9
SUBJECT = re.compile(r"^\d{3}[A-Z]$")


def image_path(subject: str, frame: int) -> str:
    return f"images/{subject}/{frame}.jpg"


def load(root: str | Path, *, strict: bool = True, check_images: bool = True) -> pd.DataFrame:
    """Read a GFT folder in the project layout above into a face table."""
    root = Path(root)
    labels = require_dir(root / "labels", "GFT label folder")
    problems = ProblemLog(strict)
    parts = []
    for path in sorted(labels.glob("*.csv")):
        subject = path.stem
        if not SUBJECT.match(subject):
            problems.report(
                path,
                None,
                "bad-file-name",
                "expected labels/<3-digit group><letter>.csv, e.g. 001A.csv",
            )
            continue
        raw, lines = read_csv(path, problems)
        if raw is None:
            continue
        header = [h.strip() for h in raw.columns]
        aus = [
            int(h[2:])
            for h in header[1:]
            if re.fullmatch(r"AU\d+", h) and int(h[2:]) in AU_BY_NUMBER
        ]
        if header[:1] != ["frame"] or len(aus) != len(header) - 1:
            problems.report(
                path,
                1,
                "bad-header",
                f"expected 'frame' then lexicon AU columns (AU1, ...), got {header}",
            )
            continue
        values = numeric(raw)
        keep = check_frame_codes(path, header, raw, values, lines, problems, (0, 1, UNKNOWN))
        part = pd.DataFrame({"frame": values[keep, 0].astype(int)})
        for i, au in enumerate(aus, start=1):
            part[f"AU{au}"] = occurrence(values[keep, i], {UNKNOWN})
        part["label_line"] = lines[keep]
        part["label_file"] = str(path.relative_to(root))
        part["subject"], part["sequence"] = subject, subject
        part["image_path"] = [image_path(subject, int(f)) for f in part["frame"]]
        ok = [
            image_exists(root, p, problems, path, int(n), check_images)
            for p, n in zip(part["image_path"], part["label_line"], strict=True)
        ]
        parts.append(part[ok])
    df = face_table(pd.concat(parts, ignore_index=True) if parts else [])
    df["dataset"] = "gft"
    return problems.attach(df, f"GFT {root}")


def write(root: str | Path, table: pd.DataFrame, *, aus: tuple[int, ...] = AUS) -> list[Path]:
    """Write ``labels/<subject>.csv`` files (NaN → 9) from a face table."""
    folder = Path(root) / "labels"
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for subject, group in table.sort_values("frame").groupby("subject", sort=True):
        out = pd.DataFrame({"frame": group["frame"].to_numpy(dtype=int)})
        for au in aus:
            values = group[f"AU{au}"].to_numpy(dtype=float)
            out[f"AU{au}"] = np.where(np.isnan(values), UNKNOWN, values).astype(int)
        path = folder / f"{subject}.csv"
        out.to_csv(path, index=False)
        written.append(path)
    return written
