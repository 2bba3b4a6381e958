"""OpenCV's bundled frontal Haar cascade: the fallback face detector (no landmarks)."""

from __future__ import annotations

from functools import lru_cache

import numpy as np
from PIL import Image, ImageOps


@lru_cache(maxsize=1)
def _cascade():
    import cv2

    if not hasattr(cv2, "CascadeClassifier"):
        raise RuntimeError(
            "this OpenCV has no Haar cascades (OpenCV 5 dropped them): install opencv-python-headless<5"
        )
    return cv2.CascadeClassifier(cv2.data.haarcascades + "haarcascade_frontalface_default.xml")


def find(image: Image.Image, min_fraction: float = 0.1) -> list[tuple[int, int, int, int]]:
    """Frontal faces ``(x, y, w, h)``, largest first, none smaller than ``min_fraction`` of the
    image's shorter side (24 px at least)."""
    gray = np.asarray(ImageOps.grayscale(image))
    side = max(24, int(min(gray.shape) * min_fraction))
    faces = _cascade().detectMultiScale(gray, scaleFactor=1.1, minNeighbors=4, minSize=(side, side))
    boxes = [tuple(int(v) for v in f) for f in faces]
    return sorted(boxes, key=lambda b: -b[2] * b[3])
