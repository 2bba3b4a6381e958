"""Every face of a batch of photos, described: box, caption, and the AUs and emotions the caption
names, as one table.

:func:`describe_photos` captions each face :func:`facecap_lib.inference.describe` finds and reads
the caption with the evaluation chapter's parser (:func:`~facecap_lib.evaluation.faithfulness.
parse_caption`), so the AUs and emotions in the table are exactly what the caption says, no more.
One row per face: an input without a face, or a file that cannot be read, gets one row with the
reason in ``error`` and empty AU and emotion cells; the batch goes on.

Columns (:data:`COLUMNS`): ``image``, ``face`` (0 the leftmost), ``detector``, ``score``, the box
``x``, ``y``, ``width``, ``height`` (pixels of the input), ``caption``, one column per AU in
:data:`~facecap_lib.lexicon.AU_COLUMNS` (1 named, 0 not), one per emotion in
:data:`~facecap_lib.lexicon.EMOTION_NAMES` (that order: AffectNet's codes 0-7), ``aus`` and
``emotions`` (what was named, in words), ``unsure`` (what the parser would not count) and
``error``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pandas as pd
from PIL import Image

from facecap_lib.evaluation.faithfulness import parse_caption
from facecap_lib.inference import Description, describe
from facecap_lib.lexicon import AU_BY_NUMBER, AU_COLUMNS, EMOTION_NAMES

PLACE = ("image", "face", "detector", "score", "x", "y", "width", "height")
COLUMNS = (*PLACE, "caption", *AU_COLUMNS, *EMOTION_NAMES, "aus", "emotions", "unsure", "error")


def au_words(numbers) -> str:
    """``"AU6 cheek raiser; AU12 lip corner puller"``."""
    return "; ".join(f"AU{n} {AU_BY_NUMBER[n].noun}" for n in sorted(numbers))


def row(d: Description) -> dict:
    """One face's row of the table."""
    x, y, w, h = d.face_box or (None,) * 4
    out = {
        "image": d.source, "face": d.face, "detector": d.detector, "score": d.score,
        "x": x, "y": y, "width": w, "height": h, "caption": d.caption,
    }  # fmt: skip
    if d.caption is None:
        return {
            **out,
            **dict.fromkeys(AU_COLUMNS),
            **dict.fromkeys(EMOTION_NAMES),
            "error": d.error,
        }
    parse = parse_caption(d.caption)
    numbers = {int(c[2:]) for c in AU_COLUMNS} & set(parse.aus)
    out |= {c: int(int(c[2:]) in numbers) for c in AU_COLUMNS}
    out |= {e: int(e in parse.emotions) for e in EMOTION_NAMES}
    named = [e for e in EMOTION_NAMES if e in parse.emotions]
    out |= {"aus": au_words(numbers), "emotions": "; ".join(named)}
    return {**out, "unsure": "; ".join(parse.unsure), "error": d.error}


def table(descriptions: Sequence[Description]) -> pd.DataFrame:
    """The table of :data:`COLUMNS` for descriptions (AU and emotion cells are nullable
    integers: empty where there is no caption)."""
    frame = pd.DataFrame([row(d) for d in descriptions], columns=list(COLUMNS))
    flags = [*AU_COLUMNS, *EMOTION_NAMES, "face", "x", "y", "width", "height"]
    return frame.astype({c: "Int64" for c in flags})


def describe_photos(
    photos: Sequence[str | Path | Image.Image], checkpoint: str | Path | None = None, **options
) -> pd.DataFrame:
    """Every face of ``photos`` captioned and parsed (see the module docstring), by a captioner
    ``checkpoint`` folder or the ``model`` and ``tokenizer`` in ``options``; the other
    ``options`` (``detector``, ``crop``, ``beams``, ``batch_size``, ``progress`` ...) are
    :func:`~facecap_lib.inference.describe`'s."""
    return table(describe(photos, checkpoint, **options))
