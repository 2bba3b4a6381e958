"""RAF-DB: in-the-wild faces with a basic (7 classes) and a compound (11 classes) subset.

Layout::

    <subset>/EmoLabel/list_patition_label.txt    "<name> <code>" per line ("patition", sic)
    <subset>/Image/aligned/<stem>_aligned.jpg

Names are ``train_NNNNN`` / ``test_NNNN`` (digits) in the basic subset and ``train_NNNN`` / ``test_NNNN`` in
the compound subset; the prefix is the official split. Basic codes 1-7 (surprise, fear, disgust,
happiness, sadness, anger, neutral); compound codes 1-11 become their two basic emotions
(1 happily surprised → happiness + surprise). Exp-BLIP uses the compound subset.
"""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd

from facecap_lib.data.problems import ProblemLog
from facecap_lib.data.sources.common import ENCODING, image_exists, require_file
from facecap_lib.data.table import face_table
from facecap_lib.lexicon import rafdb_basic_emotion, rafdb_compound_emotions

LABEL_FILE = "EmoLabel/list_patition_label.txt"
NAME = {
    "basic": re.compile(r"^(train)_\d{5}\.jpg$|^(test)_\d{4}\.jpg$"),
    "compound": re.compile(r"^(train|test)_\d{4}\.jpg$"),
}


def image_path(subset: str, name: str) -> str:
    return f"{subset}/Image/aligned/{Path(name).stem}_aligned.jpg"


def load(
    root: str | Path, *, subset: str = "compound", strict: bool = True, check_images: bool = True
) -> pd.DataFrame:
    """Read one RAF-DB subset (``"compound"``, the paper's, or ``"basic"``) into a face table."""
    if subset not in NAME:
        raise ValueError(f"RAF-DB subset must be 'compound' or 'basic', got {subset!r}")
    root = Path(root)
    path = require_file(root / subset / LABEL_FILE, f"RAF-DB {subset} label file")
    decode = (
        rafdb_compound_emotions if subset == "compound" else (lambda c: (rafdb_basic_emotion(c),))
    )
    problems = ProblemLog(strict)
    rows, seen = [], set()
    for number, line in enumerate(path.read_text(encoding=ENCODING).splitlines(), start=1):
        fields = line.split()
        if not fields:
            continue
        if len(fields) != 2:
            problems.report(
                path, number, "malformed-line", f"expected '<name> <code>', got {line!r}"
            )
            continue
        name, code = fields
        match = NAME[subset].match(name)
        if not match:
            problems.report(
                path, number, "bad-name", f"{name!r} is not a RAF-DB {subset} image name"
            )
            continue
        try:
            emotions = list(decode(code))
        except ValueError as err:
            problems.report(path, number, "bad-code", str(err))
            continue
        if name in seen:
            problems.report(path, number, "duplicate-row", f"{name} is listed twice")
            continue
        seen.add(name)
        relative = image_path(subset, name)
        if not image_exists(root, relative, problems, path, number, check_images):
            continue
        rows.append(
            {
                "image_path": relative,
                "split": name.split("_")[0],
                "emotions": emotions,
                "label_file": f"{subset}/{LABEL_FILE}",
                "label_line": number,
                "rafdb_subset": subset,
                "rafdb_code": int(code),
            }
        )
    df = face_table(rows)
    df["dataset"] = "rafdb"
    return problems.attach(df, f"RAF-DB {subset} {root}")


def write(root: str | Path, table: pd.DataFrame, *, subset: str = "compound") -> Path:
    """Write ``list_patition_label.txt`` from a face table with ``rafdb_code`` and image paths
    made by :func:`image_path`."""
    lines = [
        f"{Path(p).name.replace('_aligned', '')} {int(c)}"
        for p, c in zip(table["image_path"], table["rafdb_code"], strict=True)
    ]
    path = Path(root) / subset / LABEL_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path
