"""The SynthFACS pre-training corpus: many faces of new people, for the foundations of a
from-scratch preset (:mod:`facecap_lib.training.foundations`).

The paper's encoders come pre-trained on far more faces than its captioners see (MAE on
AffectNet's ~300k images, EVA-CLIP on billions of image-text pairs). Here the same role goes to
a corpus rendered for the purpose:

- **new people**: identity seeds from :data:`IDENTITY_BASE` (2**32) on. Every other SynthFACS face
  draws its identity from a CRC-32 (below 2**32: the default corpus, :func:`~.corpus.synthesize`)
  or from 5,000,000 on (:func:`~.corpus.unseen_faces`), so no person of the default corpus, of
  chapter 4's held-out faces or of chapter 6's twins is ever in it;
- **SynthFACS's full variety**: random pose, framing, light, noise, gaze, background and, at
  ``occluder_rate``, a hand, a mask or sunglasses;
- **sessions**: each person is seen ``faces_per_person`` times in one setting (the same light,
  background and occluder; the head moves a few degrees), with a new expression each time, as
  the frames of one video are. Contrastive pre-training uses that structure
  (:mod:`facecap_lib.training.contrastive`); it tells nothing of what the expressions are;
- **expressions**: half the faces pose an emotion (a basic one, contempt, a compound, or none),
  drawn from the lexicon's prototypes with natural variation (:func:`~.sampling.emotion_aus`);
  half move AUs independently at spontaneous rates (:func:`~.sampling.spontaneous_aus`).

:func:`build_pretraining_corpus` renders the images (JPEG, in folders of 1,000) and writes
``faces.parquet``: per image its path, person, identity, the emotion it poses, every rendered AU
intensity (``I<n>``), the one-sided AUs and the scene (pose, light, occluder). Self-supervised
pre-training reads only the pixels; the table is there for the label-supervised alternative, the
general captioner of chapter 5 (pose, light, occluder) and for checking. Everything is
deterministic given the settings (each face has its own seed, so a larger corpus starts with
the faces of a smaller one), and an interrupted build resumes: rendered images are kept.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd

from facecap_lib.data.synth.actions import RENDERED_AUS
from facecap_lib.data.synth.batch import FaceSpec, render_to_files
from facecap_lib.data.synth.render import RENDERER_VERSION, RENDERERS, Scene
from facecap_lib.data.synth.sampling import emotion_aus, spontaneous_aus
from facecap_lib.lexicon import BASIC_EMOTIONS, COMPOUND_BY_NAME
from facecap_lib.paths import cache_root

IDENTITY_BASE = 2**32  # above every CRC-32 identity of the other SynthFACS corpora
TABLE_FILE = "faces.parquet"
# what a posed face expresses: the basic emotions, contempt, the compounds and no emotion
POSED = (*BASIC_EMOTIONS, "contempt", *COMPOUND_BY_NAME, "neutral")


@dataclass(frozen=True)
class PretrainingCorpus:
    """Size and look of the pre-training corpus. The default (100,000 faces of 25,000 people,
    renderer 2) rendered in 12 minutes on two cores for the shipped foundations (their manifest's
    ``wall_time_by_step_s``) and takes about 500 MB; ``renderer=3`` draws the same faces, labels
    and scenes with renderer 3 (its own folder), about three times slower."""

    faces: int = 100_000  # for pre-training
    probe_faces: int = 2_000  # more, of more new people, to check what pre-training learned
    faces_per_person: int = 4  # one session per person: one setting, a new expression each time
    size: int = 128  # pixels, as the default corpus (presets resize to their own size)
    posed_rate: float = 0.5  # faces posing an emotion; the others move AUs independently
    occluder_rate: float = 0.05  # hands, masks, sunglasses
    seed: int = 0
    renderer: int = RENDERER_VERSION  # what draws the faces (render.RENDERERS)

    def __post_init__(self):
        if self.faces < 1 or self.faces_per_person < 1 or self.probe_faces < 0:
            raise ValueError(
                "faces and faces_per_person must be positive, probe_faces not negative"
            )
        if self.faces % self.faces_per_person:
            raise ValueError(
                f"faces ({self.faces}) must be a multiple of faces_per_person ({self.faces_per_person})"
            )
        for name in ("posed_rate", "occluder_rate"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must lie in [0, 1], got {getattr(self, name)}")
        if self.renderer not in RENDERERS:
            raise ValueError(f"renderer must be one of {RENDERERS}, got {self.renderer!r}")

    @classmethod
    def smoke(cls) -> PretrainingCorpus:
        return cls(faces=64, probe_faces=32, faces_per_person=2, size=64)

    def key(self) -> str:
        """12 hex digits of these settings, the renderer among them: new images, new folder
        (renderer 2's keys are those of the settings before they named the renderer, whose
        version the key always held)."""
        text = json.dumps(asdict(self), sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:12]


def image_path(index: int) -> str:
    return f"images/{index // 1000:04d}/{index:08d}.jpg"


def plan(corpus: PretrainingCorpus) -> tuple[pd.DataFrame, list[FaceSpec]]:
    """The faces of ``corpus``: their table and what to render. Face ``i`` depends only on the
    seed and ``i``; the first ``faces`` are the ``pretrain`` split, the next ``probe_faces`` the
    ``probe`` split (people of their own)."""
    rows, specs = [], []
    for i in range(corpus.faces + corpus.probe_faces):
        person = i // corpus.faces_per_person
        identity = IDENTITY_BASE + corpus.seed * 10_000_000 + person
        setting = Scene.sample(
            np.random.default_rng([corpus.seed, person, 0x5E]), occluder_rate=corpus.occluder_rate
        )
        rng = np.random.default_rng([corpus.seed, i, 0x5F])
        emotion = None
        if rng.uniform() < corpus.posed_rate:
            emotion = str(rng.choice(POSED))
            action = emotion_aus(emotion, rng)
        else:
            action = spontaneous_aus(rng, prototype_rate=0.0)
        scene = replace(
            setting,
            yaw=setting.yaw + rng.normal(0, 3),
            pitch=setting.pitch + rng.normal(0, 2),
            roll=setting.roll + rng.normal(0, 2),
            gaze=(rng.uniform(-0.3, 0.3), rng.uniform(-0.2, 0.2)),
        )
        path = image_path(i)
        specs.append(FaceSpec(action.intensities, identity, scene, action.sides, path=path))
        rows.append(
            {
                "image_path": path,
                "split": "pretrain" if i < corpus.faces else "probe",
                "person": person,  # also the session
                "identity": identity,
                "emotion": emotion,
                **{f"I{au}": int(action.intensities.get(au, 0)) for au in RENDERED_AUS},
                "sides": json.dumps({str(k): v for k, v in action.sides.items()}),
                "yaw": scene.yaw,
                "pitch": scene.pitch,
                "roll": scene.roll,
                "light_x": scene.light[0],
                "light_y": scene.light[1],
                "ambient": scene.ambient,
                "noise": scene.noise,
                "occluder": scene.occluder,
            }
        )
    return pd.DataFrame(rows), specs


def corpus_dir(corpus: PretrainingCorpus, work: str | Path | None = None) -> Path:
    """``<work>/pretraining/synthfacs-<key>``."""
    return cache_root(work) / "pretraining" / f"synthfacs-{corpus.key()}"


def build_pretraining_corpus(
    corpus: PretrainingCorpus | None = None,
    out: str | Path | None = None,
    *,
    work: str | Path | None = None,
    workers: int | None = None,
    progress: bool = True,
) -> pd.DataFrame:
    """Render (or finish rendering) the corpus into ``out`` (default :func:`corpus_dir`) and
    return its table, with ``data_root`` set to ``out`` (see
    :func:`facecap_lib.data.table.image_files`). The table is written last, so its presence
    means every image is there."""
    corpus = corpus or PretrainingCorpus()
    out = Path(out) if out is not None else corpus_dir(corpus, work)
    table_file = out / TABLE_FILE
    if table_file.exists():
        table = pd.read_parquet(table_file)
    else:
        table, specs = plan(corpus)
        render_to_files(
            specs, out, size=corpus.size, workers=workers, progress=progress,
            renderer=corpus.renderer,
        )  # fmt: skip
        (out / "corpus.json").write_text(json.dumps({**asdict(corpus), "key": corpus.key()}))
        tmp = table_file.with_suffix(".tmp")
        table.to_parquet(tmp, index=False)
        tmp.replace(table_file)
    table["data_root"] = str(out.resolve())
    return table
