"""BP4D-Spontaneous: frame-level AU occurrence of 41 subjects × 8 tasks.

Layout (as distributed)::

    AUCoding/AU_OCC/<SUBJ>_<TASK>.csv     e.g. F001_T1.csv; header 0,1,...,99
    Sequences_2D+3D/<SUBJ>/<TASK>/<frame>.jpg   (also "2D+3D" or "2D_img" in some copies)

In an AU_OCC file column ``0`` is the frame number and column ``n`` the occurrence of AU n:
1 present, 0 absent, 9 unknown (→ NaN). A re-released variant names the coded AUs in the header
instead (fewer than 50 columns); a trailing occlusion column is ignored. Frame file names are padded
inconsistently across copies (``643.jpg``, ``0643.jpg``); the loader matches them by number.
Only the 12 benchmark AUs are read by default: the other columns are not coded.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from facecap_lib.data.problems import ProblemLog
from facecap_lib.data.sources.common import (
    ENCODING,
    check_frame_codes,
    image_exists,
    numeric,
    occurrence,
    read_csv,
    require_dir,
)
from facecap_lib.data.table import face_table
from facecap_lib.lexicon import AU_BY_NUMBER

LABEL_DIR = "AUCoding/AU_OCC"
IMAGE_DIRS = ("Sequences_2D+3D", "2D+3D", "2D_img")
AUS: tuple[int, ...] = (1, 2, 4, 6, 7, 10, 12, 14, 15, 17, 23, 24)
TASKS = tuple(f"T{i}" for i in range(1, 9))
UNKNOWN = 9
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp")
FOLDS: dict[int, tuple[str, ...]] = {
    1: (
        "F001",
        "F002",
        "F008",
        "F009",
        "F010",
        "F016",
        "F018",
        "F023",
        "M001",
        "M004",
        "M007",
        "M008",
        "M012",
        "M014",
    ),
    2: (
        "F003",
        "F005",
        "F011",
        "F013",
        "F020",
        "F022",
        "M002",
        "M005",
        "M010",
        "M011",
        "M013",
        "M016",
        "M017",
        "M018",
    ),
    3: (
        "F004",
        "F006",
        "F007",
        "F012",
        "F014",
        "F015",
        "F017",
        "F019",
        "F021",
        "M003",
        "M006",
        "M009",
        "M015",
    ),
}
"""The 3-fold subject partition of JAA-Net / ME-GraphAU (Exp-BLIP tests on part 3)."""


def frame_name(subject: str, frame: int) -> str:
    """File name of a frame as the writer lays it out: 4-digit padding, 3-digit for M009-M018
    (as in one public copy), to exercise the loader's padding tolerance."""
    width = 3 if subject[0] == "M" and int(subject[1:]) >= 9 else 4
    return f"{frame:0{width}d}.jpg"


def image_path(subject: str, task: str, frame: int) -> str:
    return f"{IMAGE_DIRS[0]}/{subject}/{task}/{frame_name(subject, frame)}"


def _columns(header: list[str], path: Path, problems: ProblemLog) -> dict[int, int] | None:
    """Map AU number → column position, for both header variants."""
    names = [h.strip() for h in header]
    if len(names) >= 50:
        if names[:100] != [str(i) for i in range(100)]:
            problems.report(
                path, 1, "bad-header", "expected the header 0,1,...,99 of an AU_OCC file"
            )
            return None
        return {n: n for n in range(1, 100)}
    if not any(n.isdigit() for n in names[1:]) or names[0].lower() not in ("0", "frame", ""):
        problems.report(path, 1, "bad-header", f"cannot read AU columns from header {names[:6]}...")
        return None
    return {int(n): i for i, n in enumerate(names) if i > 0 and n.isdigit()}


def _frame_files(folder: Path) -> dict[int, list[str]]:
    """Image files of a frame folder by frame number (any padding)."""
    found: dict[int, list[str]] = {}
    if folder.is_dir():
        for entry in folder.iterdir():
            if entry.suffix.lower() in IMAGE_SUFFIXES and entry.stem.isdigit():
                found.setdefault(int(entry.stem), []).append(entry.name)
    return found


def load(
    root: str | Path, *, aus: tuple[int, ...] = AUS, strict: bool = True, check_images: bool = True
) -> pd.DataFrame:
    """Read a BP4D copy into a face table (one row per coded frame).

    Args:
        root: the BP4D folder (holding ``AUCoding/`` and the frame folders).
        aus: AUs to read (default the 12 coded ones); others stay NaN.
        strict: raise on the first problem (default) or skip and count (see :mod:`..problems`).
        check_images: require every labelled frame's image to exist.
    """
    root = Path(root)
    labels = require_dir(root / LABEL_DIR, "BP4D AU_OCC label folder")
    images = next((root / d for d in IMAGE_DIRS if (root / d).is_dir()), None)
    if check_images and images is None:
        raise FileNotFoundError(
            f"BP4D frame folder not found under {root}: expected one of {IMAGE_DIRS}"
        )
    unknown_aus = [a for a in aus if a not in AU_BY_NUMBER]
    if unknown_aus:
        raise ValueError(f"BP4D: AUs {unknown_aus} are not lexicon AUs")
    problems = ProblemLog(strict)
    parts = []
    for path in sorted(labels.glob("*.csv")):
        subject, _, task = path.stem.partition("_")
        if not (len(subject) == 4 and subject[0] in "FM" and subject[1:].isdigit() and task):
            problems.report(
                path, None, "bad-file-name", "expected <SUBJECT>_<TASK>.csv, e.g. F001_T1.csv"
            )
            continue
        with path.open(encoding=ENCODING) as handle:
            header = handle.readline().rstrip("\r\n").split(",")
        columns = _columns(header, path, problems)
        if columns is None:
            continue
        wanted = {a: columns.get(a) for a in aus}
        positions = [0] + [c for c in wanted.values() if c is not None]
        text, lines = read_csv(path, problems, usecols=positions, dtype=None)
        if text is None:
            continue
        text = text[[header[p] for p in positions]]
        values = numeric(text)
        names = ["frame"] + [f"AU{header[p].strip()}" for p in positions[1:]]
        keep = check_frame_codes(path, names, text, values, lines, problems, (0, 1, UNKNOWN))
        frames = values[:, 0]
        by_position = dict(zip(positions, values.T, strict=True))
        part = {"frame": frames[keep].astype(int), "label_line": lines[keep]}
        for au, position in wanted.items():
            part[f"AU{au}"] = (
                occurrence(by_position[position][keep], {UNKNOWN})
                if position
                else np.full(keep.sum(), np.nan)
            )
        part = pd.DataFrame(part)
        part["label_file"] = str(path.relative_to(root))
        part["subject"], part["sequence"] = subject, task
        part["image_path"] = _resolve(
            root,
            images,
            subject,
            task,
            part["frame"],
            part["label_line"],
            path,
            problems,
            check_images,
        )
        parts.append(part[part["image_path"].notna()])
    df = face_table(pd.concat(parts, ignore_index=True) if parts else [])
    df["dataset"] = "bp4d"
    return problems.attach(df, f"BP4D {root}")


def _resolve(root, images, subject, task, frames, lines, label_file, problems, check):
    """Frame numbers → image paths, matching file names by number whatever their padding."""
    folder = (images if images is not None else root / IMAGE_DIRS[0]) / subject / task
    prefix = f"{folder.relative_to(root).as_posix()}/"
    if not check:
        return [prefix + frame_name(subject, int(f)) for f in frames]
    files = _frame_files(folder)
    out = []
    for frame, line in zip(frames, lines, strict=True):
        names = files.get(int(frame), [])
        if not names:
            image_exists(root, f"{prefix}{int(frame)}.jpg", problems, label_file, int(line), True)
        elif len(names) > 1:
            problems.report(
                label_file,
                int(line),
                "ambiguous-image",
                f"frame {int(frame)} matches {sorted(names)} in {folder}",
            )
        out.append(prefix + names[0] if len(names) == 1 else None)
    return out


def write(root: str | Path, table: pd.DataFrame, *, aus: tuple[int, ...] = AUS) -> list[Path]:
    """Write the AU_OCC label files of a face table (rows with subject, sequence = task, frame).

    Columns of AUs outside ``aus`` and NaN labels are written as 9 (unknown). Returns the files.
    """
    root = Path(root)
    folder = root / LABEL_DIR
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for (subject, task), group in table.sort_values("frame").groupby(
        ["subject", "sequence"], sort=True
    ):
        codes = np.full((len(group), 100), UNKNOWN, dtype=np.int64)
        codes[:, 0] = group["frame"].to_numpy(dtype=np.int64)
        for au in aus:
            values = group[f"AU{au}"].to_numpy(dtype=float)
            codes[:, au] = np.where(np.isnan(values), UNKNOWN, values).astype(np.int64)
        path = folder / f"{subject}_{task}.csv"
        pd.DataFrame(codes, columns=[str(i) for i in range(100)]).to_csv(path, index=False)
        written.append(path)
    return written
