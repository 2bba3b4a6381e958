"""A clip described face by face over time: ``describe_video(path, checkpoint)``.

The clip is sampled at ``fps`` frames per second (:func:`facecap_lib.data.video.sample_frames`);
every face of each sampled frame is found (:func:`~facecap_lib.data.detection.find_faces`),
followed from frame to frame (:class:`~facecap_lib.data.detection.Tracker`), cropped as the
training faces are and captioned in batches. Each caption is read by the parser, as for photos
(:mod:`.photos`), and each track's AUs and emotions are then smoothed over time: a centred
majority over ``smooth`` sampled frames, counting only frames where the face is seen, so that a
caption that misses an AU for one frame does not make it blink off.

The table has one row per track and sampled frame of the whole clip: where the track's face is
not seen the row is empty but for its time and the reason. Columns: ``track``, ``frame``,
``time`` (seconds), then :data:`.photos.COLUMNS` but ``image`` and ``face``: the AU and emotion
columns hold the smoothed values, ``aus`` and ``emotions`` name them, and ``caption_aus`` and
``caption_emotions`` say what that frame's own caption named.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from facecap_lib.data.detection import TILES, Tracker, face_crop, find_faces
from facecap_lib.data.video import probe, sample_frames
from facecap_lib.describing.photos import COLUMNS, au_words, row
from facecap_lib.inference import Description, describe, load_captioner
from facecap_lib.lexicon import AU_COLUMNS, EMOTION_NAMES
from facecap_lib.progress import progress_bar

FLAGS = (*AU_COLUMNS, *EMOTION_NAMES)
# The majority's window, in sampled frames (0.6 s at 5 frames/s): it removes a caption's one-frame
# slips. On SynthFACS clips, whose captions barely flicker, every window costs F1 by blurring
# onsets and offsets (benchmarks/describe_video.py, book/measured/describe-video.json: AU-BLIP
# 0.757 unsmoothed, 0.736 at 3, 0.693 at 5); 3 keeps the loss small.
SMOOTH = 3
VIDEO_COLUMNS = (
    "track", "frame", "time",
    *(c for c in COLUMNS if c not in ("image", "face")),
    "caption_aus", "caption_emotions",
)  # fmt: skip


@dataclass(frozen=True)
class VideoDescription:
    """A described clip: its table (see the module docstring), the clip's path, the sampling
    rate, how many frames were sampled and how long describing took."""

    source: str
    fps: float
    frames: int
    table: pd.DataFrame
    seconds: float

    @property
    def tracks(self) -> list[int]:
        return sorted(int(t) for t in self.table["track"].dropna().unique())

    def track(self, number: int) -> pd.DataFrame:
        return self.table[self.table["track"] == number].reset_index(drop=True)

    @property
    def frames_per_second(self) -> float:
        """Sampled frames described per second of wall time."""
        return self.frames / self.seconds if self.seconds else float("nan")


def smooth_track(frame: pd.DataFrame, window: int) -> pd.DataFrame:
    """``frame`` (one track, one row per sampled frame) with its AU and emotion columns replaced
    by a centred majority over ``window`` sampled frames where the face is seen (empty rows stay
    empty); a tie (at the track's ends, or beside unseen frames) keeps the frame's own value."""
    if window < 1:
        raise ValueError(f"the smoothing window must be at least 1 sampled frame, got {window}")
    out = frame.copy()
    seen = out["caption"].notna()
    for column in (c for c in FLAGS if c in out):
        values = out[column].astype("float64").where(seen)
        share = values.rolling(window, center=True, min_periods=1).mean()
        voted = share.gt(0.5).astype("float64").where(share.ne(0.5), values)  # a tie: as it was
        out[column] = voted.astype("Int64").where(seen, pd.NA)
    return out


def _batches(path, fps, detector, tiles, size, tracker, batch, progress) -> Iterator[list]:
    """Lists of ``(frame, time, track, face, crop)`` of about ``batch`` faces, and the sampled
    frames where no face was found as ``(frame, time, None, None, None)``."""
    clip = probe(path)
    total = int(np.floor(clip.duration * fps + 1e-6)) or None
    pending = []
    bar = progress_bar(total=total, desc="video frames", unit="frame", disable=not progress)
    for index, t, image in sample_frames(path, fps):
        faces = find_faces(image, detector, tiles=tiles)
        tracks = tracker.update([f.box for f in faces])
        if not faces:
            pending.append((index, t, None, None, None))
        for track, face in zip(tracks, faces, strict=True):
            pending.append((index, t, track, face, face_crop(image, face, size)))
        if sum(p[3] is not None for p in pending) >= batch:
            yield pending
            pending = []
        bar.update(1)
    bar.close()
    if pending:
        yield pending


def describe_video(
    path: str | Path,
    checkpoint: str | Path | None = None,
    *,
    model=None,
    tokenizer=None,
    fps: float = 5.0,
    detector: str = "auto",
    tiles: tuple[int, ...] = TILES,
    smooth: int = SMOOTH,
    patience: int = 10,
    beams: int = 5,
    max_new_tokens: int = 60,
    batch_size: int | None = None,
    device: str = "auto",
    progress: bool = False,
) -> VideoDescription:
    """Describe the clip at ``path`` (see the module docstring) with a captioner ``checkpoint``
    folder or ``model`` and ``tokenizer``. ``patience``: sampled frames a track may go unseen
    before it ends; ``smooth``: the majority's window in sampled frames (1: no smoothing)."""
    start = time.perf_counter()
    if smooth < 1:
        raise ValueError(f"smooth must be at least 1 sampled frame, got {smooth}")
    if model is None:
        model, tokenizer = load_captioner(checkpoint, device)
    size = model.config.vision_config.image_size
    cuda = next(model.parameters()).device.type == "cuda"
    batch = batch_size or (128 if cuda else 16)
    source, rows, sampled = str(path), [], set()
    tracker = Tracker(patience=patience)
    for part in _batches(path, fps, detector, tiles, size, tracker, batch, progress):
        faces = [p for p in part if p[3] is not None]
        captions = describe(
            [p[4] for p in faces], model=model, tokenizer=tokenizer, crop="none", beams=beams,
            max_new_tokens=max_new_tokens, batch_size=batch, device=device,
        ) if faces else []  # fmt: skip
        described = iter(captions)
        for index, t, track, face, _ in part:
            sampled.add((index, t))
            if face is None:
                continue
            d = next(described)
            d = Description(source, d.caption, d.error, face.box, None, face.detector, face.score)
            rows.append({"track": track, "frame": index, "time": t, **row(d)})
    table = _grid(pd.DataFrame(rows), sorted(sampled), smooth)
    return VideoDescription(source, fps, len(sampled), table, time.perf_counter() - start)


def _grid(raw: pd.DataFrame, sampled: list[tuple[int, float]], window: int) -> pd.DataFrame:
    """One row per track and sampled frame, smoothed; frames of a clip without faces get one
    row each with no track."""
    frames = pd.DataFrame(sampled, columns=["frame", "time"])
    if raw.empty:
        empty = frames.assign(track=pd.NA, error="no face found")
        return empty.reindex(columns=list(VIDEO_COLUMNS)).astype({"track": "Int64"})
    parts = []
    for track, part in raw.groupby("track", sort=True):
        full = frames.merge(part.drop(columns=["time"]), on="frame", how="left")
        full["track"] = track
        full["error"] = full["error"].where(full["caption"].notna() | full["error"].notna(),
                                            f"face {track} not seen")  # fmt: skip
        full["caption_aus"] = full["aus"]
        full["caption_emotions"] = full["emotions"]
        full = smooth_track(full, window)
        seen = full["caption"].notna()
        full["aus"] = [
            au_words({int(c[2:]) for c in AU_COLUMNS if r[c] == 1}) if s else None
            for r, s in zip(full.to_dict("records"), seen, strict=True)
        ]
        full["emotions"] = [
            "; ".join(e for e in EMOTION_NAMES if r[e] == 1) if s else None
            for r, s in zip(full.to_dict("records"), seen, strict=True)
        ]
        parts.append(full)
    table = pd.concat(parts, ignore_index=True).reindex(columns=list(VIDEO_COLUMNS))
    ints = ["track", "frame", "x", "y", "width", "height", *FLAGS]
    return table.astype({c: "Int64" for c in ints})


VIDEO_FORMATS = ("csv", "json")


def save(description: VideoDescription, folder: str | Path, fmt: str = "csv") -> list[Path]:
    """Write a described clip to ``folder``: ``track-<n>.csv`` (or ``.json``, JSON lines) per
    face track, every sampled frame a row; ``frames.csv`` instead when no face was found;
    ``timeline.png`` (:func:`facecap_lib.viz.face_timeline`) and ``summary.json`` (the clip, the
    sampling, the tracks and the speed). Returns the files written."""
    import json

    import matplotlib.pyplot as plt

    from facecap_lib.viz import face_timeline

    if fmt not in VIDEO_FORMATS:
        raise ValueError(f"a clip's format must be one of {VIDEO_FORMATS}, got {fmt!r}")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    parts = {f"track-{t}": description.track(t) for t in description.tracks}
    parts = parts or {"frames": description.table}
    written = []
    for name, part in parts.items():
        path = folder / f"{name}.{fmt}"
        if fmt == "csv":
            part.to_csv(path, index=False)
        else:
            part.to_json(path, orient="records", lines=True)
        written.append(path)
    if description.tracks:
        fig = face_timeline(description.table, title=Path(description.source).name)
        fig.savefig(folder / "timeline.png", dpi=120)
        plt.close(fig)
        written.append(folder / "timeline.png")
    summary = {
        "source": description.source, "fps": description.fps, "frames": description.frames,
        "tracks": description.tracks, "seconds": round(description.seconds, 3),
        "frames_per_second": round(description.frames_per_second, 3),
    }  # fmt: skip
    (folder / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    return [*written, folder / "summary.json"]
