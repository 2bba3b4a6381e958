"""Helpers shared by the dataset modules: paths, image checks, intensity columns."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd

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


ENCODING = "utf-8-sig"  # tolerate a byte-order mark (spreadsheet exports)


def data_lines(path: Path, header: bool = True) -> np.ndarray:
    """Physical line numbers (1-based) of the data rows pandas reads: non-blank lines after the
    header. Row ``i`` of the table came from line ``data_lines(path)[i]``."""
    with path.open(encoding=ENCODING) as handle:
        numbers = [n for n, line in enumerate(handle, start=1) if line.strip()]
    return np.array(numbers[1:] if header else numbers, dtype=np.int64)


def read_csv(path: Path, problems: ProblemLog, header: bool = True, **options):
    """``pandas.read_csv`` that turns unreadable files and ragged rows into reported problems.

    A row with the wrong number of fields is an error naming its line (strict) or is skipped and
    counted (lenient); an empty file is reported. Returns ``(table, lines)`` where ``lines[i]`` is
    the physical line of row ``i``, or ``(None, None)`` when nothing could be read.
    """
    import warnings

    options = {
        "encoding": ENCODING,
        "keep_default_na": False,
        "dtype": str,
        "header": 0 if header else None,
        **options,
    }
    lines = data_lines(path, header)
    try:
        return pd.read_csv(path, **options), lines
    except pd.errors.EmptyDataError:
        problems.report(path, None, "empty-file", "the file is empty")
        return None, None
    except pd.errors.ParserError as err:
        if problems.strict:
            match = re.search(r"line (\d+)", str(err))
            line = int(match.group(1)) if match else None
            problems.report(
                path, line, "malformed-row", f"wrong number of fields ({str(err).strip()})"
            )
    with warnings.catch_warnings(record=True) as caught:  # lenient: skip and count ragged rows
        warnings.simplefilter("always")
        table = pd.read_csv(path, on_bad_lines="warn", **options)
    skipped = set()
    for warning in caught:
        for match in re.finditer(r"Skipping line (\d+): (.*)", str(warning.message)):
            skipped.add(int(match.group(1)))
            problems.report(path, int(match.group(1)), "malformed-row", match.group(2))
    return table, lines[~np.isin(lines, list(skipped))]


def numeric(text: pd.DataFrame) -> np.ndarray:
    """A table of number strings (or numbers) as floats; cells that are not numbers become NaN."""
    if all(pd.api.types.is_numeric_dtype(text[c]) for c in text.columns):
        return text.to_numpy(dtype=float)
    return text.apply(lambda col: pd.to_numeric(col, errors="coerce")).to_numpy(dtype=float)


def check_frame_codes(
    path: Path,
    names: list[str],
    text: pd.DataFrame,
    values: np.ndarray,
    lines: np.ndarray,
    problems: ProblemLog,
    codes: tuple[int, ...],
) -> np.ndarray:
    """Check a per-frame label table (column 0 the frame number, then one code column per AU,
    display ``names``): every cell a number, frames whole numbers >= 0 and unique, codes among
    ``codes``. Reports each problem with its line; returns the mask of rows to keep."""
    keep = np.ones(len(values), dtype=bool)
    for row, col in first_per_row(np.isnan(values)):
        problems.report(
            path, lines[row], "not-a-number", f"column {names[col]} holds {text.iat[row, col]!r}"
        )
        keep[row] = False
    frames = values[:, 0]
    for row in np.flatnonzero(keep & ((frames < 0) | (frames != np.floor(frames)))):
        problems.report(
            path,
            lines[row],
            "bad-frame",
            f"frame number {frames[row]:g} is not a whole number >= 0",
        )
        keep[row] = False
    expected = ", ".join(str(c) for c in codes)
    for row, col in first_per_row(~np.isin(values[:, 1:], codes) & keep[:, None]):
        problems.report(
            path,
            lines[row],
            "bad-code",
            f"{names[col + 1]} is {values[row, col + 1]:g}, expected {expected}",
        )
        keep[row] = False
    for row in np.flatnonzero(
        pd.Series(np.where(keep, frames, np.nan)).duplicated().to_numpy() & keep
    ):
        problems.report(
            path, lines[row], "duplicate-row", f"frame {int(frames[row])} is listed twice"
        )
        keep[row] = False
    return keep
