"""FaceME: ~10k web faces, multi-label (85 labels: emotions, actions, health, thoughts), 3 annotators.

No public release exists, so this project defines its layout::

    images/<id>.jpg
    labels.csv          long format, header "image,annotator,label": one row per annotator's label

A label is kept when at least ``min_votes`` (2, as in the paper) of the annotators gave it.
Kept labels that are emotions (``canonical_emotion`` knows them) go to ``emotions``; the others
(actions, health, thoughts) go to ``other_labels``. Every image trains (no test split).
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import pandas as pd

from facecap_lib.data.problems import ProblemLog
from facecap_lib.data.sources.common import image_exists, read_csv, require_file
from facecap_lib.data.table import face_table
from facecap_lib.lexicon import canonical_emotion

LABEL_FILE = "labels.csv"
HEADER = ["image", "annotator", "label"]


def image_path(image_id: str) -> str:
    return f"images/{image_id}.jpg"


def load(
    root: str | Path, *, min_votes: int = 2, strict: bool = True, check_images: bool = True
) -> pd.DataFrame:
    """Read the FaceME layout above into a face table (``split`` = train)."""
    root = Path(root)
    path = require_file(root / LABEL_FILE, "FaceME labels.csv")
    problems = ProblemLog(strict)
    raw, lines = read_csv(path, problems)
    if raw is None:
        return problems.attach(face_table([]).assign(dataset="faceme"), f"FaceME {root}")
    if [c.strip() for c in raw.columns] != HEADER:
        problems.report(
            path, 1, "bad-header", f"expected header {','.join(HEADER)}, got {list(raw.columns)}"
        )
        return problems.attach(face_table([]).assign(dataset="faceme"), f"FaceME {root}")
    votes: dict[str, dict[str, set[str]]] = defaultdict(lambda: defaultdict(set))
    first_line: dict[str, int] = {}
    seen = set()
    for line, (image, annotator, label) in zip(lines, raw.itertuples(index=False), strict=True):
        line = int(line)
        image, annotator, label = image.strip(), annotator.strip(), _normalise(label)
        if not image or not annotator or not label:
            problems.report(
                path, line, "malformed-line", "image, annotator and label must all be given"
            )
            continue
        if (image, annotator, label) in seen:
            problems.report(
                path, line, "duplicate-row", f"{annotator} gave {label!r} to {image} twice"
            )
            continue
        seen.add((image, annotator, label))
        votes[image][label].add(annotator)
        first_line.setdefault(image, line)
    rows = []
    for image, labels in votes.items():
        relative = f"images/{image}"
        if not image_exists(root, relative, problems, path, first_line[image], check_images):
            continue
        kept = sorted(label for label, who in labels.items() if len(who) >= min_votes)
        emotions, others = [], []
        for label in kept:
            try:
                emotions.append(canonical_emotion(label))
            except ValueError:
                others.append(label)
        rows.append(
            {
                "image_path": relative,
                "split": "train",
                "emotions": sorted(set(emotions)),
                "other_labels": others,
                "label_file": LABEL_FILE,
                "label_line": first_line[image],
            }
        )
    df = face_table(rows)
    df["dataset"] = "faceme"
    return problems.attach(df, f"FaceME {root}")


def _normalise(label: str) -> str:
    """Votes count per meaning: "Happy" and "happiness" are one label (the canonical emotion)."""
    text = " ".join(label.lower().split())
    try:
        return canonical_emotion(text)
    except ValueError:
        return text


def write(root: str | Path, votes: pd.DataFrame) -> Path:
    """Write ``labels.csv`` from a long table with columns image, annotator, label."""
    path = Path(root) / LABEL_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    votes[HEADER].to_csv(path, index=False)
    return path
