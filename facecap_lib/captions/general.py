"""Captions that describe a face without its expression: the training text of a *general*
captioner, the baseline of the paper's first finding.

The paper compares its task-specific captioners with an off-the-shelf BLIP-2, a captioner of the
same architecture that was trained to describe images in general, never facial actions. The
fair stand-in here is a BLIP-2 of the same shape, trained on the same images for as long, with
captions about everything SynthFACS knows of a picture *except* the expression: who is there
(hair, skin), how the head is turned, where the light comes from and what covers the face. It
sees the same faces and learns the same language machinery; only the content differs.

:func:`general_caption` writes one such caption from what the renderer drew
(:func:`facecap_lib.data.synth.corpus.rendered_truth`) and the person's identity; the wording
varies with a seed so that the captioner cannot learn one fixed sentence. Nothing here names an
AU or an emotion: the mentions parser finds none in any caption it writes (tested).
"""

from __future__ import annotations

import re
import zlib

import numpy as np
import pandas as pd

from facecap_lib.data.synth.corpus import rendered_truth
from facecap_lib.data.synth.identity import Identity

SIDE_DEGREES = 7.0  # a head turned less than this faces the camera
TILT_DEGREES = 5.0
LIGHT_SIDE = 0.3  # |x| of the light direction beyond which it comes from one side
OCCLUDED = {
    "sunglasses": "wearing sunglasses",
    "mask": "wearing a face mask",
    "hand": "with a hand in front of the face",
}


def _skin(identity: Identity) -> str:
    luminance = float(np.dot(identity.skin, (0.299, 0.587, 0.114)))
    return "light" if luminance > 0.7 else "medium" if luminance > 0.45 else "dark"


def _hair(identity: Identity) -> str:
    if identity.hair_style == "bald":
        return "no hair"
    style = {"bob": "bob-cut", "short": "short", "long": "long"}[identity.hair_style]
    return f"{style} {identity.hair_colour} hair"


def turn(yaw: float) -> str | None:
    """Which way a head with ``yaw`` is turned (``"left"``, ``"right"``) or ``None`` (facing the
    camera); positive yaw turns the face to the image's right."""
    return None if abs(yaw) < SIDE_DEGREES else "right" if yaw > 0 else "left"


def tilt(pitch: float) -> str | None:
    """``"up"``, ``"down"`` or ``None`` (level)."""
    return None if abs(pitch) < TILT_DEGREES else "up" if pitch > 0 else "down"


def light_side(x: float) -> str:
    """Where the light comes from: ``"front"``, ``"left"`` or ``"right"``."""
    return "front" if abs(x) < LIGHT_SIDE else "right" if x > 0 else "left"


def general_labels(truth: dict | pd.Series) -> dict[str, str | None]:
    """What a general caption of a render says, as labels: ``turn``, ``tilt``, ``light`` and
    ``occluder`` (``None`` where there is none), from a row of
    :func:`~facecap_lib.data.synth.corpus.rendered_truth`."""
    occluder = truth["occluder"] if isinstance(truth["occluder"], str) else None
    return {
        "turn": turn(float(truth["yaw"])),
        "tilt": tilt(float(truth["pitch"])),
        "light": light_side(float(truth["light_x"])),
        "occluder": occluder if occluder in OCCLUDED else None,
    }


def _pose(yaw: float, pitch: float) -> str:
    parts = []
    if turn(yaw):
        parts.append(f"turned to the {turn(yaw)}")
    if tilt(pitch):
        parts.append(f"tilted {tilt(pitch)}")
    return "the head " + " and ".join(parts) if parts else "facing the camera"


def _light(x: float) -> str:
    return f"lit from the {light_side(x)}"


def general_caption(truth: dict | pd.Series, key: str = "") -> str:
    """One caption of a rendered face's person, pose, light and occluder (``truth``: a row of
    :func:`~facecap_lib.data.synth.corpus.rendered_truth`); ``key`` (e.g. the image id) picks
    the wording."""
    identity = Identity.from_seed(int(truth["identity"]))
    person = f"a person with {_hair(identity)} and {_skin(identity)} skin"
    pose, light = _pose(float(truth["yaw"]), float(truth["pitch"])), _light(float(truth["light_x"]))
    occluder = OCCLUDED.get(truth["occluder"]) if isinstance(truth["occluder"], str) else None
    extra = f", {occluder}" if occluder else ""
    forms = (
        f"A photo of {person}, {pose}, {light}{extra}.",
        f"The picture shows {person}{extra}. The face is {light}, {pose}.",
        f"{person[0].upper()}{person[1:]}{extra}, {pose} and {light}.",
    )
    return forms[zlib.crc32(key.encode()) % len(forms)]


def general_captions(faces: pd.DataFrame, keys) -> list[str]:
    """:func:`general_caption` of every face of a SynthFACS face table (``keys``: one per row)."""

    truth = rendered_truth(faces)
    return [general_caption(row, key) for (_, row), key in zip(truth.iterrows(), keys, strict=True)]


# ---------------------------------------------------------------- reading one back

UNSAID = "unsaid"

_TURN = re.compile(r"\bturned (?:to the )?(left|right)\b")
_FACING = re.compile(r"\bfacing the camera\b")
_TILT = re.compile(r"\btilted (up|down)\b")
_LIGHT = re.compile(r"\blit from the (front|left|right)\b")
_OCCLUDER = {
    name: re.compile(r"\b" + re.escape(phrase) + r"\b") for name, phrase in OCCLUDED.items()
}


def read_general(text: str) -> dict[str, str | None]:
    """``turn``, ``tilt``, ``light`` and ``occluder`` as a caption states them: a label, ``None``
    where it says there is none (facing the camera: no turn and no tilt; no occluder phrase: no
    occluder), or :data:`UNSAID` where it says nothing of the head's pose or the light. Two
    contradicting statements (lit from the left and from the right) count as unsaid."""
    lowered = " ".join((text or "").lower().split())
    turns = set(_TURN.findall(lowered))
    tilts = set(_TILT.findall(lowered))
    lights = set(_LIGHT.findall(lowered))
    posed = bool(turns or tilts or _FACING.search(lowered))
    occluders = [name for name, pattern in _OCCLUDER.items() if pattern.search(lowered)]

    def one(found: set[str]) -> str | None:
        return UNSAID if len(found) > 1 else next(iter(found), None)

    return {
        "turn": one(turns) if posed else UNSAID,
        "tilt": one(tilts) if posed else UNSAID,
        "light": one(lights) if lights else UNSAID,
        "occluder": occluders[0] if len(occluders) == 1 else UNSAID if occluders else None,
    }


def general_statement(caption: str) -> str:
    """A short statement of what a general caption says, read from the caption itself
    (:func:`read_general`), as :func:`facecap_lib.training.language_text.content_statement` is for
    an expression caption: ``"Head turned left, tilted up. Light from the right. Sunglasses."``;
    what the caption leaves unsaid is left out."""
    said = read_general(caption)
    parts = []
    if said["turn"] != UNSAID:
        pose = [
            f"turned {said['turn']}" if said["turn"] else "",
            f"tilted {said['tilt']}" if said["tilt"] else "",
        ]
        pose = [p for p in pose if p]
        parts.append(f"Head {', '.join(pose)}." if pose else "Head to the camera.")
    if said["light"] != UNSAID:
        parts.append(f"Light from the {said['light']}.")
    if said["occluder"] not in (None, UNSAID):
        parts.append(f"{said['occluder'].capitalize()}.")
    return " ".join(parts) if parts else "Nothing said."
