"""Describing a user's photos: every face found, captioned, its AUs and emotions read from the
caption, written as text, JSON lines or CSV."""

from facecap_lib.describing.outputs import FORMATS, records, text_lines, write
from facecap_lib.describing.photos import COLUMNS, describe_photos, table

__all__ = ["COLUMNS", "FORMATS", "describe_photos", "records", "table", "text_lines", "write"]
