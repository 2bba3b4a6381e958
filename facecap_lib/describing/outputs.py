"""A described table written for people and programs: text, JSON lines or CSV.

- ``text``: one line per face, ``image [face 1/3, blazeface 0.93, box x,y,w,h]: caption``, then
  the AUs and emotions the caption names; an input without a face says why.
- ``json``: one object per face and line: its place, ``box`` ``[x, y, w, h]``, ``caption``,
  ``aus`` as ``{"au": 6, "name": "cheek raiser"}``, ``emotions`` (in
  :data:`~facecap_lib.lexicon.EMOTION_NAMES` order), ``unsure`` and ``error``.
- ``csv``: the table's columns (:data:`.photos.COLUMNS`): one named column per AU and per emotion.
"""

from __future__ import annotations

import json
from typing import TextIO

import pandas as pd

from facecap_lib.describing.photos import PLACE
from facecap_lib.lexicon import AU_BY_NUMBER, AU_COLUMNS, EMOTION_NAMES

FORMATS = ("text", "json", "csv")


def _value(v):
    return None if v is None or v is pd.NA or (isinstance(v, float) and v != v) else v


def records(frame: pd.DataFrame) -> list[dict]:
    """The table as JSON-ready objects, one per face."""
    out = []
    for r in frame.to_dict("records"):
        r = {k: _value(v) for k, v in r.items()}
        box = [r[k] for k in ("x", "y", "width", "height")]
        aus = [
            {"au": int(c[2:]), "name": AU_BY_NUMBER[int(c[2:])].noun} for c in AU_COLUMNS if r[c]
        ]
        out.append(
            {
                **{k: r[k] for k in PLACE if k not in ("x", "y", "width", "height")},
                "box": box if box[0] is not None else None,
                "caption": r["caption"],
                "aus": aus if r["caption"] is not None else None,
                "emotions": [e for e in EMOTION_NAMES if r[e]]
                if r["caption"] is not None
                else None,
                "unsure": r["unsure"].split("; ") if r["unsure"] else [],
                "error": r["error"],
            }
        )
    return out


def text_lines(frame: pd.DataFrame) -> list[str]:
    """The table for a reader, two lines per face (one for an input without a face)."""
    # the rows of one input are consecutive, its faces numbered from 0: count them per run of
    # rows, not per name (two in-memory images are both "<image>", a path may be given twice)
    starts = frame["face"].isna() | frame["face"].eq(0) | frame["image"].ne(frame["image"].shift())
    run = starts.astype(int).cumsum()
    counts = frame.groupby(run)["face"].transform("count").tolist()
    lines = []
    for r, count in zip(records(frame), counts, strict=True):
        if r["error"]:
            lines.append(f"{r['image']}: {r['error']}")
            continue
        where = ""
        if r["face"] is not None:
            x, y, w, h = r["box"]
            where = (
                f" [face {r['face'] + 1}/{count}, {r['detector']} {r['score']:.2f}, "
                f"box {x},{y},{w},{h}]"
            )
        lines.append(f"{r['image']}{where}: {r['caption']}")
        aus = ", ".join(f"AU{a['au']} {a['name']}" for a in r["aus"]) or "none"
        lines.append(f"    AUs: {aus}; emotions: {', '.join(r['emotions']) or 'none'}")
    return lines


def write(frame: pd.DataFrame, fmt: str, stream: TextIO) -> None:
    """Write the described table to ``stream`` as ``fmt`` (:data:`FORMATS`)."""
    if fmt not in FORMATS:
        raise ValueError(f"format must be one of {FORMATS}, got {fmt!r}")
    if fmt == "csv":
        frame.to_csv(stream, index=False)
    elif fmt == "json":
        for r in records(frame):
            stream.write(json.dumps(r) + "\n")
    else:
        stream.write("".join(line + "\n" for line in text_lines(frame)))
