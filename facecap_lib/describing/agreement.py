"""How well a described clip follows the truth of a SynthFACS clip: frame-level AU F1."""

from __future__ import annotations

import pandas as pd

from facecap_lib.evaluation.faithfulness import f1_score
from facecap_lib.lexicon import AU_COLUMNS


def frame_au_f1(described: pd.DataFrame, truth: pd.DataFrame, clip_fps: float) -> dict:
    """Frame-level AU agreement of one track of a described clip (``described``, a
    :func:`~.video.describe_video` table) with one person's truth (``frame`` and ``AU<n>``
    intensity columns, :func:`facecap_lib.data.synth.clips.expression_clip`), an AU counting as
    on from intensity 1 (A). Over the sampled frames where the face was described: per-AU F1 of
    the AUs the truth shows (their mean is ``mean_f1``), and the micro F1 over every AU of the
    lexicon, so that AUs named but never shown count against it."""
    seen = described.dropna(subset=["caption"]).copy()
    seen["frame"] = (seen["time"].astype(float) * clip_fps).round().astype(int)
    truth = truth.rename(columns={c: f"{c}_truth" for c in truth.columns if c != "frame"})
    joined = seen.merge(truth, on="frame")
    if joined.empty:
        raise ValueError("no described frame matches a frame of the truth")
    shown = [c for c in AU_COLUMNS if f"{c}_truth" in joined and (joined[f"{c}_truth"] >= 1).any()]
    per_au, tp_all, fp_all, fn_all = {}, 0, 0, 0
    for column in AU_COLUMNS:
        none = pd.Series(False, index=joined.index)
        said = joined[column].fillna(0).astype(bool) if column in joined else none
        true = joined[f"{column}_truth"] >= 1 if f"{column}_truth" in joined else none
        tp, fp, fn = int((said & true).sum()), int((said & ~true).sum()), int((~said & true).sum())
        tp_all, fp_all, fn_all = tp_all + tp, fp_all + fp, fn_all + fn
        if column in shown:
            per_au[column] = f1_score(tp, fp, fn)
    micro = f1_score(tp_all, fp_all, fn_all)
    mean = sum(per_au.values()) / len(per_au) if per_au else float("nan")
    return {"frames": len(joined), "per_au": per_au, "mean_f1": mean, "micro_f1": micro}


def person_scores(described, truth: pd.DataFrame, clip_fps: float) -> pd.DataFrame:
    """:func:`frame_au_f1` of each person of a SynthFACS clip's ``truth`` against the track of a
    :class:`~.video.VideoDescription` that follows them: the track whose first described box
    matches the person's first box (:func:`facecap_lib.data.detection.recall.match`). One row
    per person with a track (index ``person``), with its ``track``."""
    from facecap_lib.data.detection.recall import match

    place = ["x", "y", "width", "height"]
    first = described.table.dropna(subset=["caption"]).groupby("track").first()
    start = truth[truth["frame"] == truth["frame"].min()].sort_values("person")
    found = [tuple(r) for r in first[place].itertuples(index=False)]
    drawn = [tuple(r) for r in start[place].itertuples(index=False)]
    rows = {}
    for person, index in zip(start["person"], match(found, drawn), strict=True):
        if index is not None:
            track = int(first.index[index])
            score = frame_au_f1(described.track(track), truth[truth["person"] == person], clip_fps)
            rows[int(person)] = {"track": track, **score}
    return pd.DataFrame.from_dict(rows, orient="index").rename_axis("person")
