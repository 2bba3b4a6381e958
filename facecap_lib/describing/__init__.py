"""Describing a user's photos and videos: every face found, captioned, its AUs and emotions read
from the caption, written as text, JSON lines or CSV; a clip's faces tracked, smoothed over time
and drawn as a timeline."""

from facecap_lib.describing.outputs import FORMATS, records, text_lines, write
from facecap_lib.describing.photos import COLUMNS, describe_photos, table
from facecap_lib.describing.video import (
    VIDEO_COLUMNS,
    VideoDescription,
    describe_video,
    save,
    smooth_track,
)

__all__ = [
    "COLUMNS",
    "FORMATS",
    "VIDEO_COLUMNS",
    "VideoDescription",
    "describe_photos",
    "describe_video",
    "records",
    "save",
    "smooth_track",
    "table",
    "text_lines",
    "write",
]
