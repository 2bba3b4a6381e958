"""SynthFACS corpora written in the real datasets' formats.

:func:`synthesize` plans a corpus "like" one of the eight datasets (who appears, what each face
does, which frames a video has), renders the images into that dataset's folder layout and writes
its label files with the dataset module's own writer, so the corpus loads through exactly the
loader a user with the real data calls. Everything is deterministic given ``seed``.

Each corpus also gets ``synthfacs_truth.parquet``: for every image, all AU intensities the renderer
drew (including the AUs the format cannot label, e.g. the AUs behind an AffectNet emotion), the
emotion it portrays, the identity, the occluder, the head pose and the light. Loaders ignore it; evaluation uses it.
Rendering resumes: images already on disk are kept.
"""

from __future__ import annotations

import json
import zlib
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd

from facecap_lib.data.sources import affectnet, bp4d, disfa, emotionet, faceme, gft, rafau, rafdb
from facecap_lib.data.sources.common import intensity_column
from facecap_lib.data.synth.actions import RENDERED_AUS
from facecap_lib.data.synth.batch import FaceSpec, render_to_files
from facecap_lib.data.synth.identity import Identity
from facecap_lib.data.synth.render import RENDERER_VERSION, RENDERERS, Renderer, Scene
from facecap_lib.data.synth.sampling import au_trajectory, emotion_aus, spontaneous_aus
from facecap_lib.data.table import face_table
from facecap_lib.lexicon import (
    AFFECTNET_CODES,
    AU_NUMBERS,
    BASIC_EMOTIONS,
    RAFDB_COMPOUND_CODES,
)

TRUTH_FILE = "synthfacs_truth.parquet"
STAMP_FILE = "synthfacs.json"  # which renderer drew a corpus folder, at what size
# what a truth file holds; changes when its columns do (2: the pose and the light)
TRUTH_VERSION = 2
VIDEO_FORMATS = ("bp4d", "disfa", "gft")
STILL_FORMATS = ("rafau", "emotionet", "affectnet", "rafdb", "faceme")
FORMATS = VIDEO_FORMATS + STILL_FORMATS


@dataclass(frozen=True)
class CorpusConfig:
    """Size and look of a SynthFACS corpus. Defaults make a small corpus in seconds."""

    subjects: int = 3  # people in a video corpus
    sequences: int = 2  # videos per person (BP4D tasks; DISFA and GFT have one)
    frames: int = 120  # frames per video
    images: int = 120  # images of a still corpus
    size: int = 128  # pixels
    seed: int = 0
    jitter: float = 1.0  # pose/framing/noise variation (0 = frontal, centred, clean)
    occluder_rate: float = 0.0  # share of faces with a hand, mask or sunglasses
    test_fraction: float = 0.2  # for formats with an official split (AffectNet, RAF-DB)

    @classmethod
    def smoke(cls) -> CorpusConfig:
        return cls(subjects=2, sequences=1, frames=30, images=24, size=64)


def _seed(*parts) -> int:
    return zlib.crc32("/".join(str(p) for p in parts).encode())


def _truth_row(
    path: str,
    action_levels: dict[int, int],
    sides: dict[int, str],
    identity: int,
    scene: Scene,
    emotion: str | None = None,
) -> dict:
    row = {
        "image_path": path,
        "identity": identity,
        "occluder": scene.occluder,
        "emotion": emotion,
        "sides": dict(sides),
        "yaw": scene.yaw,
        "pitch": scene.pitch,
        "roll": scene.roll,
        "light_x": scene.light[0],
        "light_y": scene.light[1],
    }
    row.update({f"I{au}": int(action_levels.get(au, 0)) for au in RENDERED_AUS})
    return row


def _video_scenes(rng: np.random.Generator, n: int, cfg: CorpusConfig) -> list[Scene]:
    """A scene that drifts smoothly over a video (head moves, light and background stay)."""
    base = Scene.sample(rng, jitter=cfg.jitter, occluder_rate=0.0)
    walk = np.cumsum(rng.normal(0, 0.6, (n, 3)), axis=0)
    walk -= walk.mean(axis=0)
    walk = np.clip(walk, -8, 8) * cfg.jitter
    return [
        replace(
            base,
            yaw=base.yaw * 0.5 + w[0],
            pitch=base.pitch * 0.5 + w[1],
            roll=base.roll * 0.5 + w[2],
        )
        for w in walk
    ]


def _video_subjects(like: str, cfg: CorpusConfig) -> list[str]:
    if like == "bp4d":  # round robin over the three folds, so fold splits have people
        pool = [s for trio in zip(*bp4d.FOLDS.values(), strict=False) for s in trio]
    elif like == "disfa":
        pool = [s for trio in zip(*disfa.FOLDS.values(), strict=True) for s in trio]
    else:
        pool = [f"{g:03d}{p}" for g in range(1, 33) for p in "ABC"]
    if cfg.subjects > len(pool):
        raise ValueError(f"{like}: at most {len(pool)} subjects, asked for {cfg.subjects}")
    return pool[: cfg.subjects]


def _plan_video(like: str, cfg: CorpusConfig):
    rows, specs, truth = [], [], []
    levels_aus = {au: i for i, au in enumerate(RENDERED_AUS)}
    sequences = [f"T{i}" for i in range(1, cfg.sequences + 1)] if like == "bp4d" else [None]
    for subject in _video_subjects(like, cfg):
        identity = _seed(cfg.seed, like, subject)
        for sequence in sequences:
            rng = np.random.default_rng(_seed(cfg.seed, like, subject, sequence))
            levels = au_trajectory(rng, cfg.frames)
            scenes = _video_scenes(rng, cfg.frames, cfg)
            start = int(rng.integers(1, 2000)) if like == "bp4d" else 1
            for t in range(cfg.frames):
                frame = start + t
                action = {
                    au: int(levels[t, levels_aus[au]])
                    for au in RENDERED_AUS
                    if levels[t, levels_aus[au]]
                }
                if like == "bp4d":
                    path = bp4d.image_path(subject, sequence, frame)
                elif like == "disfa":
                    path = disfa.image_path(subject, frame)
                else:
                    path = gft.image_path(subject, frame)
                row = {
                    "image_path": path,
                    "subject": subject,
                    "sequence": sequence or subject,
                    "frame": frame,
                }
                for au in AU_NUMBERS:
                    row[f"AU{au}"] = float(action.get(au, 0) >= 1)
                    row[intensity_column(au)] = float(action.get(au, 0))
                rows.append(row)
                specs.append(FaceSpec(action, identity, scenes[t], path=path))
                truth.append(_truth_row(path, action, {}, identity, scenes[t]))
    table = face_table(rows)
    if like == "bp4d":  # coders mark what they cannot see as unknown (9): a short stretch per video
        rng = np.random.default_rng(_seed(cfg.seed, like, "unknown"))
        for _, group in table.groupby(["subject", "sequence"]):
            start = int(rng.integers(0, max(1, len(group) - 3)))
            table.loc[group.index[start : start + 3], ["AU1", "AU2"]] = np.nan
    return table, specs, truth


def _still_scene(rng: np.random.Generator, cfg: CorpusConfig) -> Scene:
    return Scene.sample(rng, jitter=cfg.jitter, occluder_rate=cfg.occluder_rate)


def _plan_stills(like: str, cfg: CorpusConfig, version: int = RENDERER_VERSION):
    rng = np.random.default_rng(_seed(cfg.seed, like))
    rows, specs, truth, votes = [], [], [], []
    renderer = Renderer(cfg.size, 1, version) if like == "affectnet" else None
    n_test = int(round(cfg.images * cfg.test_fraction))
    for i in range(cfg.images):
        identity = _seed(cfg.seed, like, "person", i)
        scene = _still_scene(rng, cfg)
        row: dict = {}
        emotion = None
        if like in ("rafau", "emotionet"):
            action = spontaneous_aus(rng)
            if like == "rafau":
                image_id = f"{i * 3 // 2 + 1:04d}"  # ids with gaps, as in the real list
                path = rafau.image_path(image_id)
                row.update({f"AU{au}": float(au in action.present) for au in AU_NUMBERS})
                row["sides"] = dict(action.sides)
            else:
                path = f"images/N_{i // 50 + 1:010d}_{i % 50 + 1:05d}.jpg"
                row.update({f"AU{au}": float(au in action.present) for au in emotionet.AUS})
        elif like == "affectnet":
            code = _affectnet_code(i, rng)
            emotion = AFFECTNET_CODES[code]
            action = emotion_aus(emotion, rng) if emotion else spontaneous_aus(rng, 0.0)
            split = "test" if i < n_test else "train"
            path = f"{affectnet.IMAGE_DIR}/{i % 97 + 1}/{_seed(cfg.seed, 'hash', i):08x}{i:06x}.jpg"
            marks = renderer.landmarks(
                action.intensities, Identity.from_seed(identity), scene, action.sides
            )
            x0, y0 = marks.min(axis=0)
            x1, y1 = marks.max(axis=0)
            valence, arousal = _valence_arousal(emotion, rng)
            row.update(
                {
                    "split": split,
                    "affectnet_code": code,
                    "emotions": [emotion] if emotion else [],
                    "face_box": [float(x0), float(y0), float(x1 - x0), float(y1 - y0)],
                    "landmarks": marks,
                    "valence": valence,
                    "arousal": arousal,
                }
            )
        elif like == "rafdb":
            code = i % len(RAFDB_COMPOUND_CODES) + 1
            compound = RAFDB_COMPOUND_CODES[code]
            emotion = compound.name
            action = emotion_aus(compound.name, rng)
            split = "test" if i < n_test else "train"
            number = (i + 1) if split == "test" else (i - n_test + 1)
            path = rafdb.image_path("compound", f"{split}_{number:04d}.jpg")
            row.update({"split": split, "rafdb_code": code, "emotions": list(compound.components)})
        else:  # faceme
            names = [str(rng.choice(BASIC_EMOTIONS))]
            if rng.uniform() < 0.3:
                names.append(str(rng.choice([e for e in BASIC_EMOTIONS if e != names[0]])))
            emotion = "+".join(names)
            action = emotion_aus(names[0], rng)
            if len(names) == 2:
                second = emotion_aus(names[1], rng)
                action = type(action)({**second.intensities, **action.intensities}, action.sides)
            image_id = f"{i + 1:05d}"
            path = faceme.image_path(image_id)
            for annotator in ("a1", "a2", "a3"):
                for name in names:
                    if rng.uniform() < 0.9:
                        votes.append(
                            {"image": f"{image_id}.jpg", "annotator": annotator, "label": name}
                        )
                if rng.uniform() < 0.1:
                    votes.append(
                        {"image": f"{image_id}.jpg", "annotator": annotator, "label": "thinking"}
                    )
        row["image_path"] = path
        rows.append(row)
        specs.append(FaceSpec(action.intensities, identity, scene, action.sides, path=path))
        truth.append(_truth_row(path, action.intensities, action.sides, identity, scene, emotion))
    return face_table(rows), specs, truth, pd.DataFrame(votes, columns=faceme.HEADER)


def _affectnet_code(i: int, rng: np.random.Generator) -> int:
    """Mostly the eight emotions in turn; about one image in twelve is 8-10 (none/uncertain/no-face)."""
    if rng.uniform() < 0.08:
        return int(rng.integers(8, 11))
    return i % 8


_VA = {
    "neutral": (0.0, 0.0),
    "happiness": (0.7, 0.4),
    "sadness": (-0.6, -0.3),
    "surprise": (0.2, 0.7),
    "fear": (-0.6, 0.7),
    "disgust": (-0.6, 0.3),
    "anger": (-0.6, 0.6),
    "contempt": (-0.4, 0.2),
}


def _valence_arousal(emotion: str | None, rng: np.random.Generator) -> tuple[float, float]:
    if emotion is None:
        return -2.0, -2.0  # AffectNet's "not available"
    v, a = _VA[emotion]
    return float(np.clip(v + rng.normal(0, 0.15), -1, 1)), float(
        np.clip(a + rng.normal(0, 0.15), -1, 1)
    )


def synthesize(
    like: str,
    out: str | Path,
    config: CorpusConfig | None = None,
    *,
    workers: int | None = None,
    progress: bool = True,
    renderer: int = RENDERER_VERSION,
) -> Path:
    """Write a SynthFACS corpus in the format of ``like`` (one of :data:`FORMATS`) under ``out``,
    drawn by renderer version ``renderer`` (:data:`~.render.RENDERERS`; the faces, labels and
    scenes are the same for every renderer, only the images differ).

    Returns ``out``, ready for ``facecap_lib.data.sources.<like>.load(out)``. A folder keeps
    what it was drawn with in :data:`STAMP_FILE`: finishing it with another renderer or size is
    a ``ValueError`` naming the folder, never a corpus of mixed images.
    """
    cfg = config or CorpusConfig()
    if like not in FORMATS:
        raise ValueError(f"unknown format {like!r}; expected one of {FORMATS}")
    if renderer not in RENDERERS:
        raise ValueError(f"unknown renderer {renderer!r}; expected one of {RENDERERS}")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    _stamp(out, {"renderer": renderer, "size": cfg.size})
    votes = None
    if like in VIDEO_FORMATS:
        table, specs, truth = _plan_video(like, cfg)
    else:
        table, specs, truth, votes = _plan_stills(like, cfg, renderer)
    render_to_files(
        specs, out, size=cfg.size, workers=workers, progress=progress, renderer=renderer
    )
    if like == "bp4d":
        bp4d.write(out, table)
    elif like == "disfa":
        disfa.write(out, table)
    elif like == "gft":
        gft.write(out, table)
    elif like == "rafau":
        rafau.write(out, table, seed=cfg.seed)
    elif like == "emotionet":
        emotionet.write(out, table)
    elif like == "affectnet":
        affectnet.write(out, table)
    elif like == "rafdb":
        rafdb.write(out, table, subset="compound")
    else:
        faceme.write(out, votes)
    truth_table = pd.DataFrame(truth)
    truth_table["sides"] = [
        json.dumps({str(k): v for k, v in s.items()}) for s in truth_table["sides"]
    ]
    truth_table.to_parquet(out / TRUTH_FILE, index=False)
    return out


def _stamp(out: Path, drawn: dict) -> None:
    """Write ``drawn`` to ``out``'s stamp, or check it against the stamp already there. A folder
    with images but no stamp was drawn before stamps, by renderer 2 (the only one then)."""
    path = out / STAMP_FILE
    if path.exists():
        before = json.loads(path.read_text())
    elif any(p.suffix.lower() in (".jpg", ".jpeg", ".png") for p in out.rglob("*")):
        before = {"renderer": 2, "size": drawn["size"]}
    else:
        before = drawn
    if before != drawn:
        raise ValueError(
            f"{out}: its images were drawn with {before}, not {drawn}; give another folder"
        )
    path.write_text(json.dumps(drawn) + "\n")


def unseen_faces(n: int, seed: int = 0) -> list[FaceSpec]:
    """``n`` faces (``FaceSpec``) of people no corpus here has seen (identities from 5,000,000
    on), with spontaneous AU sets and random scenes without occluders: the twins
    :func:`facecap_lib.evaluation.failures.occluder_recall` occludes."""
    rng = np.random.default_rng(seed)
    specs = []
    for i in range(n):
        action = spontaneous_aus(rng)
        scene = Scene.sample(rng, occluder_rate=0.0)
        specs.append(FaceSpec(action.intensities, 5_000_000 + i, scene, action.sides))
    return specs


def rendered_truth(faces: pd.DataFrame) -> pd.DataFrame:
    """What the renderer drew for each face of a table of SynthFACS corpora (rows in the order of
    ``faces``): every rendered AU's intensity ``I<n>``, the emotion portrayed, identity and
    occluder, read from each corpus's :data:`TRUTH_FILE` (by ``data_root`` and
    ``image_path``). A face whose corpus has no truth file (a real dataset) is a ``ValueError``
    naming the folder."""
    parts = []
    for root, rows in faces.groupby("data_root", sort=False):
        path = Path(root) / TRUTH_FILE
        if not path.exists():
            raise ValueError(f"{root}: no {TRUTH_FILE}; only SynthFACS corpora know what they show")
        truth = pd.read_parquet(path).set_index("image_path")
        missing = sorted(set(rows["image_path"]) - set(truth.index))
        if missing:
            raise ValueError(f"{path}: no truth for {missing[0]}")
        parts.append(truth.loc[rows["image_path"]].set_axis(rows.index))
    return pd.concat(parts).loc[faces.index].reset_index(drop=True)
