"""DISFA: 27 subjects watching a video, every frame coded for 12 AUs with intensity 0-5.

Layout::

    ActionUnit_Labels/SN001/SN001_au1.txt ... SN001_au26.txt   one line per frame: "<frame>,<intensity>"
    frames/SN001/0.jpg ...                                      frames extracted from the left video

Label lines are 1-based frame numbers with integer intensities 0 (absent) to 5 (E), no header.
Frames are not part of the release (tools extract them from the AVIs); this project's layout is
``frames/<subject>/<frame - 1>.jpg`` (0-based, as ME-GraphAU and JAA-Net number them), set by
``frame_pattern``. Occurrence is intensity >= ``threshold`` (the standard 2); the intensities are
kept in ``AU<n>_intensity`` columns. A frame missing from some AU files (SN010 has 4,844 lines, not
4,845) keeps NaN for those AUs.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from facecap_lib.data.problems import ProblemLog, log
from facecap_lib.data.sources.common import ENCODING, image_exists, intensity_column, require_dir
from facecap_lib.data.table import face_table

LABEL_DIR = "ActionUnit_Labels"
FRAME_PATTERN = "frames/{subject}/{index}.jpg"
AUS: tuple[int, ...] = (1, 2, 4, 5, 6, 9, 12, 15, 17, 20, 25, 26)
SUBJECTS: tuple[str, ...] = tuple(
    f"SN{n:03d}" for n in (*range(1, 14), 16, 17, 18, 21, *range(23, 33))
)
FOLDS: dict[int, tuple[str, ...]] = {
    1: ("SN001", "SN002", "SN009", "SN010", "SN016", "SN026", "SN027", "SN030", "SN032"),
    2: ("SN006", "SN011", "SN012", "SN013", "SN018", "SN021", "SN024", "SN028", "SN031"),
    3: ("SN003", "SN004", "SN005", "SN007", "SN008", "SN017", "SN023", "SN025", "SN029"),
}


def image_path(subject: str, frame: int, frame_pattern: str = FRAME_PATTERN) -> str:
    """Image of 1-based label frame ``frame``."""
    return frame_pattern.format(subject=subject, index=frame - 1)


def _read_au_file(path: Path, problems: ProblemLog) -> dict[int, tuple[int, int]]:
    """frame → (intensity, line) of one ``SNxxx_au<N>.txt``."""
    out: dict[int, tuple[int, int]] = {}
    for number, line in enumerate(path.read_text(encoding=ENCODING).splitlines(), start=1):
        if not line.strip():
            continue
        fields = [f.strip() for f in line.split(",")]
        if len(fields) != 2 or not all(f.isdigit() for f in fields):
            problems.report(
                path, number, "malformed-line", f"expected '<frame>,<intensity>', got {line!r}"
            )
            continue
        frame, level = int(fields[0]), int(fields[1])
        if frame < 1:
            problems.report(
                path, number, "bad-frame", f"frame {frame}: DISFA frames are numbered from 1"
            )
            continue
        if level > 5:
            problems.report(path, number, "bad-code", f"intensity {level} is outside 0-5")
            continue
        if frame in out:
            problems.report(path, number, "duplicate-row", f"frame {frame} is listed twice")
            continue
        out[frame] = (level, number)
    return out


def load(
    root: str | Path,
    *,
    threshold: int = 2,
    aus: tuple[int, ...] = AUS,
    strict: bool = True,
    check_images: bool = True,
    frame_pattern: str = FRAME_PATTERN,
) -> pd.DataFrame:
    """Read a DISFA copy into a face table; AU present when intensity >= ``threshold`` (1-5)."""
    if not 1 <= threshold <= 5:
        raise ValueError(f"DISFA threshold {threshold} must be an intensity 1-5 (standard: 2)")
    root = Path(root)
    labels = require_dir(root / LABEL_DIR, "DISFA ActionUnit_Labels folder")
    problems = ProblemLog(strict)
    parts, partial_frames = [], {}
    for folder in sorted(p for p in labels.iterdir() if p.is_dir()):
        subject = folder.name
        levels: dict[int, dict[int, tuple[int, int]]] = {}
        for au in aus:
            path = folder / f"{subject}_au{au}.txt"
            if not path.is_file():
                problems.report(
                    path, None, "missing-file", f"no label file for AU{au} of {subject}"
                )
                continue
            levels[au] = _read_au_file(path, problems)
        if not levels:
            continue
        frames = sorted(set().union(*(set(v) for v in levels.values())))
        partial = sum(1 for f in frames if any(f not in v for v in levels.values()))
        if partial:  # kept, with NaN for the AUs whose file lacks the frame (not silently)
            partial_frames[subject] = partial
            log.warning(
                "DISFA %s: %d frames are missing from some AU files (NaN there)", subject, partial
            )
        part = pd.DataFrame({"frame": frames})
        for au in aus:
            got = levels.get(au, {})
            intensity = np.array([got[f][0] if f in got else np.nan for f in frames], dtype=float)
            part[intensity_column(au)] = intensity
            part[f"AU{au}"] = np.where(
                np.isnan(intensity), np.nan, (intensity >= threshold).astype(float)
            )
        first = next(iter(levels))
        part["label_file"] = str((folder / f"{subject}_au{first}.txt").relative_to(root))
        part["label_line"] = [levels[first].get(f, (0, pd.NA))[1] for f in frames]
        part["subject"] = subject
        part["sequence"] = subject
        part["image_path"] = [image_path(subject, f, frame_pattern) for f in frames]
        if check_images:
            ok = [
                image_exists(root, p, problems, folder / f"{subject}_au{first}.txt", f, True)
                for p, f in zip(part["image_path"], frames, strict=True)
            ]
            part = part[ok]
        parts.append(part)
    df = face_table(pd.concat(parts, ignore_index=True) if parts else [])
    df["dataset"] = "disfa"
    df.attrs["partial_frames"] = partial_frames
    return problems.attach(df, f"DISFA {root}")


def write(root: str | Path, table: pd.DataFrame, *, aus: tuple[int, ...] = AUS) -> list[Path]:
    """Write ``SNxxx_au<N>.txt`` files from a face table with ``AU<n>_intensity`` columns
    (rows: subject, frame 1..n). Missing intensities are an error: DISFA codes every frame."""
    root = Path(root)
    written = []
    for subject, group in table.sort_values("frame").groupby("subject", sort=True):
        folder = root / LABEL_DIR / subject
        folder.mkdir(parents=True, exist_ok=True)
        for au in aus:
            levels = group[intensity_column(au)].to_numpy(dtype=float)
            if np.isnan(levels).any():
                raise ValueError(f"DISFA writer: {subject} has frames without an AU{au} intensity")
            lines = [f"{int(f)},{int(v)}" for f, v in zip(group["frame"], levels, strict=True)]
            path = folder / f"{subject}_au{au}.txt"
            path.write_text("\n".join(lines) + "\n", encoding="utf-8")
            written.append(path)
    return written
