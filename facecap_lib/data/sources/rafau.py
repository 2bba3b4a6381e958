"""RAF-AU: 4,601 in-the-wild faces with FACS AU strings.

Layout::

    RAFAU_label.txt              "<name>.jpg <AU string>" per line, no header, e.g. "0003.jpg L12+24"
    aligned/<id>_aligned.jpg

AU strings are read by :func:`facecap_lib.lexicon.parse_au_tokens`: region prefixes (``L``, ``R``,
``T``, ``B``), lower case, repeated AUs, ``AD19`` and ``L12L`` are understood; ``null`` means no AU.
As in the paper, presence in any region is presence, and AUs outside the 27-AU lexicon (RAF-AU
codes 32 of them) are dropped and counted in ``df.attrs["dropped_tokens"]``; a malformed token is a
problem (the row is skipped in lenient mode). Lines are split on runs of whitespace (the file has
trailing and double spaces). RAF-AU codes every AU it sees, so the lexicon AUs of :data:`AUS` not
listed are absent (0); AU8 and AU11, which RAF-AU never codes, stay NaN. The raw string is kept in ``raw_label``. There is no official split.
"""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd

from facecap_lib.data.problems import ProblemLog
from facecap_lib.data.sources.common import ENCODING, image_exists, require_file
from facecap_lib.data.table import face_table
from facecap_lib.lexicon import AU_NUMBERS, parse_au_tokens

LABEL_FILE = "RAFAU_label.txt"
AUS: tuple[int, ...] = tuple(n for n in AU_NUMBERS if n not in (8, 11))
"""Lexicon AUs RAF-AU codes (every one but AU8 and AU11, which never occur in its label file):
absent when not listed. AU8 and AU11 stay NaN (not coded)."""


def image_path(image_id: str) -> str:
    return f"aligned/{image_id}_aligned.jpg"


def load(root: str | Path, *, strict: bool = True, check_images: bool = True) -> pd.DataFrame:
    """Read a RAF-AU copy into a face table."""
    root = Path(root)
    path = require_file(root / LABEL_FILE, "RAF-AU label file")
    problems = ProblemLog(strict)
    dropped: Counter = Counter()
    rows, seen = [], set()
    for number, line in enumerate(path.read_text(encoding=ENCODING).splitlines(), start=1):
        fields = line.split()
        if not fields:
            continue
        name, label = fields[0], " ".join(fields[1:])
        if re.search(r"[^+\s]\s+[^+\s]", label):  # "1+2 4": two AU strings, not one
            problems.report(
                path, number, "malformed-line", f"{name}: more than one AU string in {line!r}"
            )
            continue
        label = label.replace(" ", "")
        if not name.lower().endswith(".jpg") or not Path(name).stem:
            problems.report(
                path, number, "malformed-line", f"expected '<name>.jpg <AU string>', got {line!r}"
            )
            continue
        if not label:
            problems.report(
                path, number, "malformed-line", f"{name} has no AU string (use 'null' for none)"
            )
            continue
        parsed = parse_au_tokens(label)
        malformed = [s.token for s in parsed.skipped if s.reason == "malformed"]
        if malformed:
            problems.report(
                path,
                number,
                "malformed-token",
                f"{name}: cannot read AU token {malformed[0]!r} in {label!r}",
            )
            continue
        dropped.update(s.token.upper().lstrip("LRTBUAD") for s in parsed.skipped)
        if name in seen:
            problems.report(path, number, "duplicate-row", f"{name} is listed twice")
            continue
        seen.add(name)
        relative = image_path(Path(name).stem)
        if not image_exists(root, relative, problems, path, number, check_images):
            continue
        row = {
            "image_path": relative,
            "label_file": LABEL_FILE,
            "label_line": number,
            "raw_label": label,
        }
        row.update({f"AU{au}": float(au in parsed.aus) for au in AUS})
        rows.append(row)
    df = face_table(rows)
    if "raw_label" not in df:
        df["raw_label"] = pd.Series(dtype=object)
    df["dataset"] = "rafau"
    df.attrs["dropped_tokens"] = dict(dropped)
    return problems.attach(df, f"RAF-AU {root}")


def write(root: str | Path, table: pd.DataFrame, *, seed: int = 0, quirks: bool = True) -> Path:
    """Write ``RAFAU_label.txt`` for a face table whose ``image_path`` follows :func:`image_path`.

    A ``sides`` column ({au: "L" | "R"}) writes one-sided AUs with their prefix. With ``quirks``
    the file has what the real one has: a trailing space after single-token labels, now and then a
    double space, lower-case or lip prefixes (``t23``, ``B24``), repeated AUs, ``L12L``, and tokens
    out of order, all meaning the same labels.
    """
    rng = np.random.default_rng(seed)
    lines = []
    for _, row in table.iterrows():
        name = Path(row["image_path"]).name.replace("_aligned", "")
        present = [au for au in AU_NUMBERS if row.get(f"AU{au}") == 1]
        sides = row.get("sides") if isinstance(row.get("sides"), dict) else {}
        tokens = [f"{sides[au]}{au}" if au in sides else str(au) for au in present]
        if quirks and tokens:
            tokens = [_quirk(t, rng) for t in tokens]
            if rng.uniform() < 0.05:
                tokens.append(tokens[-1])
            if rng.uniform() < 0.05 and len(tokens) > 1:
                tokens[0], tokens[1] = tokens[1], tokens[0]
        label = "+".join(tokens) if tokens else "null"
        gap = "  " if quirks and rng.uniform() < 0.03 else " "
        trail = " " if quirks and len(tokens) == 1 else ""
        lines.append(f"{name}{gap}{label}{trail}")
    path = Path(root) / LABEL_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def _quirk(token: str, rng: np.random.Generator) -> str:
    u = rng.uniform()
    if token in ("23", "24") and u < 0.1:
        return ("t" if u < 0.05 else "B") + token
    if token == "L12" and u < 0.3:
        return "L12L"
    return token
