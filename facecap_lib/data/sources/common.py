"""Helpers shared by the dataset modules: paths, image checks, intensity columns."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from facecap_lib.data.problems import ProblemLog
from facecap_lib.lexicon import AU_BY_NUMBER


def require_dir(path: Path, what: str) -> Path:
    """``path`` if it is a folder, else a ``FileNotFoundError`` that says what was expected there."""
    if not path.is_dir():
        raise FileNotFoundError(f"{what} not found: {path} is not a folder")
    return path


def require_file(path: Path, what: str) -> Path:
    if not path.is_file():
        raise FileNotFoundError(f"{what} not found: {path}")
    return path


def image_exists(
    root: Path,
    relative: str,
    problems: ProblemLog,
    label_file: Path,
    line: int | None,
    check: bool,
) -> bool:
    """True if the image is there (or not checked); else report ``missing-image``."""
    if not check or (root / relative).is_file():
        return True
    problems.report(
        label_file,
        line,
        "missing-image",
        f"labels list {relative!r}, which does not exist under {root}",
    )
    return False


def intensity_column(au: int) -> str:
    """Name of the optional column holding the FACS intensity (0-5) of an AU: ``AU12_intensity``."""
    return f"{AU_BY_NUMBER[au].code}_intensity"


def occurrence(values: np.ndarray, unknown: set[int] | None = None) -> np.ndarray:
    """0/1 codes to floats, unknown codes (e.g. 9, 999) to NaN."""
    out = np.asarray(values, dtype=float).copy()
    for code in unknown or ():
        out[out == code] = np.nan
    return out


def stem_int(name: str) -> int | None:
    """``"0643.jpg"`` → 643; ``None`` when the stem is not a number."""
    stem = Path(name).stem
    return int(stem) if stem.isdigit() else None


def first_per_row(mask: np.ndarray) -> list[tuple[int, int]]:
    """(row, first flagged column) for each row of a boolean matrix with a flag."""
    rows = np.flatnonzero(mask.any(axis=1))
    return [(int(r), int(np.argmax(mask[r]))) for r in rows]
