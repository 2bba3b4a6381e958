"""Faces in photos: BlazeFace (from its tflite file) over the photo and its tiles, the Haar
cascade as a fallback, and crops aligned as the training faces are."""

from facecap_lib.data.detection.align import (
    Template,
    aligned_crop,
    box_crop,
    similarity,
    synthfacs_template,
)
from facecap_lib.data.detection.faces import DETECTORS, TILES, Face, face_crop, find_faces
from facecap_lib.data.detection.tracks import Tracker

__all__ = [
    "DETECTORS",
    "TILES",
    "Face",
    "Template",
    "Tracker",
    "aligned_crop",
    "box_crop",
    "face_crop",
    "find_faces",
    "similarity",
    "synthfacs_template",
]
