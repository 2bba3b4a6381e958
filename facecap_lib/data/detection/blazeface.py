"""BlazeFace (MediaPipe's face detector) run from its tflite file, without MediaPipe.

The two models ship in ``assets/`` (copied from the ``mediapipe`` 0.10.21 wheel, see
``assets/manifest.json``) and run through ``ai-edge-litert``, which asks for none of MediaPipe's
pins on numpy and protobuf. This module reproduces what MediaPipe's ``face_detection`` graph does
around the network, with its options:

- the image is letterboxed (aspect ratio kept, zero border) to the model's square input and
  scaled to [-1, 1] (``ImageToTensorCalculator``);
- the SSD anchors are those of ``SsdAnchorsCalculator`` (fixed anchor size, so only centres);
- each of the 16 numbers per anchor is a box (centre x, centre y, width, height) and six
  keypoints, in input pixels relative to the anchor; scores are sigmoids of clipped logits
  (``TensorsToDetectionsCalculator``);
- overlapping boxes are merged by weighted non-maximum suppression, IoU 0.3
  (``NonMaxSuppressionCalculator``, ``WEIGHTED``).

Keypoints, in MediaPipe's order: the subject's right eye, left eye, nose tip, mouth centre, right
ear tragion, left ear tragion (the right eye is on the image's left in an unmirrored photo).
"""

from __future__ import annotations

import json
import os
import sys
from contextlib import contextmanager
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
from PIL import Image

ASSETS = Path(__file__).with_name("assets")
KEYPOINTS = ("right_eye", "left_eye", "nose_tip", "mouth", "right_ear", "left_ear")


@dataclass(frozen=True)
class Model:
    """One BlazeFace network and the options MediaPipe runs it with (the score threshold aside,
    for the short-range model)."""

    file: str
    size: int  # square input, pixels
    strides: tuple[int, ...]  # one per SSD layer
    interpolated: bool  # a second anchor per cell (interpolated_scale_aspect_ratio 1.0)
    min_score: float


MODELS = {
    # faces up to about 5 m from the camera: small faces of a photo
    "full": Model("blazeface_full_range_sparse.tflite", 192, (4,), False, 0.6),
    # faces within about 2 m: selfies. MediaPipe's threshold is 0.5; run on every photo beside the
    # full-range model, at 0.5 it found faces in plain backgrounds (tests/test_detection.py)
    "short": Model("blazeface_short_range.tflite", 128, (8, 16, 16, 16), True, 0.75),
}


@dataclass(frozen=True)
class Detection:
    """One face: box ``(x, y, w, h)`` and keypoints ``[6, 2]`` in the image's pixels."""

    box: tuple[float, float, float, float]
    keypoints: np.ndarray
    score: float


def anchors(model: Model) -> np.ndarray:
    """Anchor centres ``[N, 2]`` (x, y in 0-1), in the order of the network's outputs."""
    out = []
    layer = 0
    while layer < len(model.strides):
        stride = model.strides[layer]
        per_cell = 0
        while layer < len(model.strides) and model.strides[layer] == stride:
            per_cell += 1 + int(model.interpolated)  # aspect ratio 1.0, and the interpolated one
            layer += 1
        grid = int(np.ceil(model.size / stride))
        centres = (np.arange(grid) + 0.5) / grid
        ys, xs = np.meshgrid(centres, centres, indexing="ij")
        cells = np.stack([xs.ravel(), ys.ravel()], axis=1)
        out.append(np.repeat(cells, per_cell, axis=0))
    return np.concatenate(out)


@lru_cache(maxsize=2)
def _interpreter(name: str):
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError as error:  # pragma: no cover - a dependency of the package
        raise RuntimeError("BlazeFace needs ai-edge-litert (pip install ai-edge-litert)") from error
    path = ASSETS / MODELS[name].file
    if not path.exists():
        raise FileNotFoundError(f"BlazeFace model missing: {path} (see {ASSETS / 'manifest.json'})")
    interpreter = Interpreter(model_path=str(path), num_threads=1)
    with _quiet_stderr():  # TFLite announces its XNNPACK delegate on the C-level stderr
        interpreter.allocate_tensors()
    return interpreter


@contextmanager
def _quiet_stderr():
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), 2)
            yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def manifest() -> dict:
    """The shipped models' provenance (``assets/manifest.json``)."""
    return json.loads((ASSETS / "manifest.json").read_text())


def _letterbox(image: Image.Image, size: int) -> tuple[np.ndarray, float, float, float]:
    """The model's input ``[1, size, size, 3]`` in [-1, 1], its scale and the padding (x, y)."""
    if min(image.size) < 1:
        raise ValueError(f"an image of {image.width} x {image.height} pixels holds no face")
    scale = size / max(image.width, image.height)
    w, h = max(1, round(image.width * scale)), max(1, round(image.height * scale))
    pad_x, pad_y = (size - w) / 2, (size - h) / 2
    canvas = np.full((size, size, 3), -1.0, np.float32)  # a black border, as MediaPipe pads
    # antialiased, unlike MediaPipe's warpAffine: a photo many times the input's size would alias
    resized = np.asarray(image.convert("RGB").resize((w, h), Image.Resampling.BILINEAR))
    top, left = int(pad_y), int(pad_x)
    canvas[top : top + h, left : left + w] = resized.astype(np.float32) / 127.5 - 1.0
    return canvas[None], scale, left, top


def iou(box: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """IoU of one ``(x0, y0, x1, y1)`` box against many."""
    x0 = np.maximum(box[0], boxes[:, 0])
    y0 = np.maximum(box[1], boxes[:, 1])
    x1 = np.minimum(box[2], boxes[:, 2])
    y1 = np.minimum(box[3], boxes[:, 3])
    inter = np.clip(x1 - x0, 0, None) * np.clip(y1 - y0, 0, None)
    area = (box[2] - box[0]) * (box[3] - box[1])
    areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    return inter / np.maximum(area + areas - inter, 1e-12)


def weighted_nms(
    corners: np.ndarray, keypoints: np.ndarray, scores: np.ndarray, threshold: float = 0.3
) -> list[tuple[np.ndarray, np.ndarray, float]]:
    """MediaPipe's weighted non-maximum suppression: the best remaining box takes every box that
    overlaps it by IoU > ``threshold``; their corners and keypoints are averaged, weighted by
    score, under the best one's score. ``corners`` ``[N, 4]`` (x0, y0, x1, y1)."""
    order = np.argsort(-scores, kind="stable")
    remaining = order
    out = []
    while len(remaining):
        best = remaining[0]
        overlap = iou(corners[best], corners[remaining]) > threshold
        group = remaining[overlap]
        weights = scores[group][:, None]
        box = (corners[group] * weights).sum(0) / weights.sum()
        points = (keypoints[group] * weights[:, :, None]).sum(0) / weights.sum()
        out.append((box, points, float(scores[best])))
        remaining = remaining[~overlap]
    return out


def detect(image: Image.Image, model: str = "full", min_score: float | None = None):
    """Faces BlazeFace finds in ``image`` (before non-maximum suppression): corners ``[N, 4]``,
    keypoints ``[N, 6, 2]`` and scores ``[N]``, in the image's pixels."""
    if model not in MODELS:
        raise ValueError(f"BlazeFace model must be one of {sorted(MODELS)}, got {model!r}")
    spec = MODELS[model]
    interpreter = _interpreter(model)
    tensor, scale, left, top = _letterbox(image, spec.size)
    inputs = interpreter.get_input_details()[0]
    interpreter.set_tensor(inputs["index"], tensor)
    interpreter.invoke()
    outputs = {
        o["shape"][-1]: interpreter.get_tensor(o["index"])[0]
        for o in interpreter.get_output_details()
    }
    raw, logits = outputs[16], outputs[1][:, 0]
    scores = 1.0 / (1.0 + np.exp(-np.clip(logits.astype(np.float64), -100.0, 100.0)))
    keep = scores >= (spec.min_score if min_score is None else min_score)
    raw, scores, centres = raw[keep], scores[keep], anchors(spec)[keep]
    size = float(spec.size)
    cx = raw[:, 0] + centres[:, 0] * size
    cy = raw[:, 1] + centres[:, 1] * size
    w, h = raw[:, 2], raw[:, 3]
    corners = np.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], axis=1)
    points = raw[:, 4:16].reshape(-1, 6, 2) + centres[:, None, :] * size
    offset = np.array([left, top], np.float32)
    corners = (corners - np.tile(offset, 2)) / scale
    points = (points - offset) / scale
    return corners.astype(np.float64), points.astype(np.float64), scores.astype(np.float64)


def find(
    image: Image.Image, model: str = "full", min_score: float | None = None
) -> list[Detection]:
    """Faces in ``image`` after weighted non-maximum suppression, best first."""
    corners, points, scores = detect(image, model, min_score)
    return [
        Detection((b[0], b[1], b[2] - b[0], b[3] - b[1]), p, s)
        for b, p, s in weighted_nms(corners, points, scores)
    ]
