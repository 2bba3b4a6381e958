"""Video files, read and written with PyAV (FFmpeg's libraries in a PyPI wheel).

- :func:`sample_frames` decodes a clip and keeps one frame per ``1 / fps`` seconds of its
  presentation time (the first frame at or after each sampling instant), as PIL images with
  their time.
- :func:`write_video` encodes frames as H.264 (MP4) or any codec PyAV has.
- :func:`is_video` tells a video path from a photo path by its suffix.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np
from PIL import Image

VIDEO_SUFFIXES = (".mp4", ".m4v", ".mov", ".avi", ".mkv", ".webm", ".mpg", ".mpeg", ".wmv")


@dataclass(frozen=True)
class Clip:
    """What a clip holds: duration (seconds), its frame rate and frame size."""

    duration: float
    fps: float
    width: int
    height: int


def is_video(path: str | Path) -> bool:
    return Path(path).suffix.lower() in VIDEO_SUFFIXES


def _open(path: str | Path):
    import av

    try:
        return av.open(str(path))
    except (av.error.FFmpegError, OSError) as error:
        raise ValueError(f"cannot read video {path}: {error}") from None


def probe(path: str | Path) -> Clip:
    """Duration, frame rate and size of the first video stream of ``path``."""
    with _open(path) as container:
        if not container.streams.video:
            raise ValueError(f"{path} has no video stream")
        stream = container.streams.video[0]
        rate = float(stream.average_rate or stream.guessed_rate or 0) or 25.0
        if stream.duration is not None and stream.time_base is not None:
            duration = float(stream.duration * stream.time_base)
        elif container.duration is not None:
            duration = container.duration / 1_000_000
        else:
            duration = float(stream.frames or 0) / rate
        return Clip(duration, rate, stream.codec_context.width, stream.codec_context.height)


def sample_frames(path: str | Path, fps: float) -> Iterator[tuple[int, float, Image.Image]]:
    """``(index, time, frame)``: for each instant ``0, 1/fps, 2/fps ...`` seconds from the clip's
    first frame, the first frame shown at or after it, ``time`` being that frame's own; a clip
    with fewer frames per second than ``fps`` repeats none: each decoded frame is kept at most
    once."""
    if fps <= 0:
        raise ValueError(f"fps must be positive, got {fps}")
    with _open(path) as container:
        if not container.streams.video:
            raise ValueError(f"{path} has no video stream")
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        start, index, due = None, 0, 0.0
        try:
            for frame in container.decode(stream):
                if frame.time is None:
                    continue
                start = frame.time if start is None else start
                t = frame.time - start
                if t + 1e-6 >= due:
                    yield index, round(t, 6), frame.to_image().convert("RGB")
                    index += 1
                    due = (np.floor(t * fps + 1e-6) + 1) / fps
        except Exception as error:  # a truncated or corrupt stream: say where it stopped
            import av

            if isinstance(error, av.error.FFmpegError):
                raise ValueError(
                    f"{path}: decoding stopped after {index} frames: {error}"
                ) from None
            raise


def write_video(
    frames: Sequence[Image.Image | np.ndarray], path: str | Path, fps: float = 25.0,
    codec: str = "libx264",
) -> Path:  # fmt: skip
    """Encode ``frames`` (all of one size, even width and height for H.264) to ``path``."""
    import av

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    arrays = [np.asarray(f.convert("RGB") if isinstance(f, Image.Image) else f) for f in frames]
    if not arrays:
        raise ValueError("no frames to write")
    height, width = arrays[0].shape[:2]
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=Fraction(fps).limit_denominator(1001))
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        if codec == "libx264":
            stream.options = {"crf": "18", "preset": "fast"}
        for array in arrays:
            if array.shape[:2] != (height, width):
                raise ValueError(
                    f"frame of {array.shape[1]}x{array.shape[0]} in a {width}x{height} video"
                )
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(array[..., :3]), format="rgb24")
            container.mux(stream.encode(frame))
        container.mux(stream.encode())
    return path
