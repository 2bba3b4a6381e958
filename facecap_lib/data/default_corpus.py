"""The embedded default data: SynthFACS corpora in all eight formats, loaded and curated.

Chapter 2 builds this step by step; later chapters call :func:`curated_faces`, which returns the
curated face table from the work folder, building it (through the same calls) when it is missing.
The corpora and the table are cached under ``<work>/data/synthfacs-<key>/`` where the key hashes
the corpus settings, so different settings never mix; rendering resumes if interrupted. Real datasets can replace any SynthFACS corpus: pass
``real={"bp4d": "/data/BP4D", ...}``.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import pandas as pd

from facecap_lib.data import sources
from facecap_lib.data.curate import curate
from facecap_lib.data.synth.corpus import (
    FORMATS,
    TRUTH_VERSION,
    VIDEO_FORMATS,
    CorpusConfig,
    synthesize,
)
from facecap_lib.data.synth.render import RENDERER_VERSION
from facecap_lib.data.table import load_face_table, save_face_table
from facecap_lib.paths import cache_root, shown

log = logging.getLogger("facecap.data")


@dataclass(frozen=True)
class DefaultCorpus:
    """How big each SynthFACS corpus is. ``full()`` takes about a minute of rendering on 2 cores."""

    video: CorpusConfig = field(
        default_factory=lambda: CorpusConfig(subjects=6, sequences=2, frames=200)
    )
    stills: CorpusConfig = field(default_factory=lambda: CorpusConfig(images=900))
    occluder_rate: float = 0.05  # a few occluded faces for the failure analysis
    every: int = 10  # the paper's 1-in-10 frame sampling
    test_fraction: float = 0.2
    seed: int = 0
    renderer: int = RENDERER_VERSION  # which SynthFACS renderer draws the images

    @classmethod
    def full(cls) -> DefaultCorpus:
        return cls()

    @classmethod
    def smoke(cls) -> DefaultCorpus:
        return cls(video=replace(CorpusConfig.smoke(), subjects=3), stills=CorpusConfig.smoke())

    def config(self, like: str) -> CorpusConfig:
        base = self.video if like in VIDEO_FORMATS else self.stills
        occluders = 0.0 if like in VIDEO_FORMATS else self.occluder_rate
        sequences = base.sequences if like == "bp4d" else 1
        return replace(base, seed=self.seed, occluder_rate=occluders, sequences=sequences)

    def key(self) -> str:
        """12 hex digits of these settings and the renderer's version: new images, new folder."""
        settings = {**asdict(self), "truth": TRUTH_VERSION}  # the renderer among them
        text = json.dumps(settings, sort_keys=True, default=str)
        return hashlib.sha256(text.encode()).hexdigest()[:12]


def build_corpora(
    root: str | Path, spec: DefaultCorpus, *, progress: bool = True
) -> dict[str, Path]:
    """Write (or finish writing) the SynthFACS corpus of every format under ``root/<format>``."""
    return {
        like: synthesize(
            like, Path(root) / like, spec.config(like), progress=progress, renderer=spec.renderer
        )
        for like in FORMATS
    }


def load_all(roots: dict[str, str | Path | dict]) -> list[pd.DataFrame]:
    """Load each corpus with its dataset's loader. A value is a folder, or a dict with ``root`` and
    loader options (``{"root": "/data/AffectNet", "strict": False}``)."""
    tables = []
    for like, where in roots.items():
        options = dict(where) if isinstance(where, dict) else {"root": where}
        tables.append(sources.load(like, options.pop("root"), **options))
    return tables


def _real_roots(real: dict) -> dict[str, dict]:
    out = {}
    for like, where in (real or {}).items():
        options = dict(where) if isinstance(where, dict) else {"root": where}
        if "root" not in options:
            raise ValueError(f"real data for {like}: give a folder or a dict with 'root'")
        options["root"] = Path(options["root"]).resolve()
        out[like] = options
    return out


def curated_faces(
    spec: DefaultCorpus | None = None,
    *,
    work: str | Path | None = None,
    real: dict[str, str | Path] | None = None,
    progress: bool = True,
) -> pd.DataFrame:
    """The curated face table of the default corpus (cached in the work folder).

    Each row's image is ``data_root / image_path`` (see :func:`facecap_lib.data.table.image_files`).
    """
    spec = spec or DefaultCorpus.full()
    real = _real_roots(real)
    unknown = sorted(set(real) - set(FORMATS))
    if unknown:
        raise ValueError(f"real data for unknown datasets {unknown}; known: {list(FORMATS)}")
    base = data_dir(work, spec)
    cached = curated_path(work, spec, real)
    if cached.exists():
        return load_face_table(cached)
    log.info("building the SynthFACS default corpus in %s", shown(base))
    roots: dict = dict(build_corpora(base, spec, progress=progress))
    roots.update(real)
    folds = {"bp4d": (sources.bp4d.FOLDS, [3])}
    table = curate(
        load_all(roots),
        every=spec.every,
        test_fraction=spec.test_fraction,
        seed=spec.seed,
        folds=folds,
    )
    folders = {
        like: where["root"] if isinstance(where, dict) else where for like, where in roots.items()
    }
    table["data_root"] = [str(folders[d]) for d in table["dataset"]]
    return load_face_table(save_face_table(table, cached))  # the same table whether built or cached


def curated_path(
    work: str | Path | None, spec: DefaultCorpus, real: dict[str, Path] | None = None
) -> Path:
    """Where :func:`curated_faces` keeps its table (one file per corpus settings and real roots)."""
    name = "curated.parquet"
    if real:
        digest = hashlib.sha256(json.dumps({k: str(v) for k, v in sorted(real.items())}).encode())
        name = f"curated-real-{digest.hexdigest()[:10]}.parquet"
    return data_dir(work, spec) / name


def data_dir(work: str | Path | None, spec: DefaultCorpus) -> Path:
    """Where the default corpora of ``spec`` live: ``<work>/data/synthfacs-<key>``."""
    return cache_root(work) / "data" / f"synthfacs-{spec.key()}"
