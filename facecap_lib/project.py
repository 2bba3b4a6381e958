"""A project file: everything one reproduction of Exp-BLIP needs, in YAML over frozen dataclasses.

A project names its datasets (each a folder in its original layout, read by its loader in
:mod:`facecap_lib.data.sources`), which labels of each it trains on, the splits, the describer
that writes the captions (offline, or an LLM endpoint), the model (a preset and what it starts
from), the training settings, the evaluation and the output folder. ``facecap run PROJECT.yaml``
reads one (:func:`load_project`) and runs it (:mod:`facecap_lib.runner`).

The YAML only serializes :class:`Project`: every default is written once, below, next to its
reason. Relative folders are relative to the project file. A bad project file fails here, before
any work starts, with one error naming the file and the field: an unknown key, an unknown dataset
or preset, a missing folder, a value of the wrong type (:class:`ProjectError`). Checks that need
the data or the weights (a folder in another dataset's format, a LAVIS checkpoint of another
shape) run in :func:`check_project`, still before any training.

Example (``projects/`` ships the paper's settings and the book's)::

    name: my-exp-blip
    output: runs/my-exp-blip
    datasets:
      - {name: bp4d, folder: /data/BP4D, labels: [aus]}
      - {name: affectnet, folder: /data/AffectNet, labels: [emotions]}
    describer: {kind: llm, model: gpt-4o-mini, max_cost: 20}
    model: {preset: vitg-opt2.7b, init: Salesforce/blip2-opt-2.7b}
"""

from __future__ import annotations

import dataclasses
import json
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from facecap_lib.data import sources
from facecap_lib.data.default_corpus import DefaultCorpus
from facecap_lib.data.synth.render import RENDERER_VERSION, RENDERERS
from facecap_lib.models.presets import PRESETS
from facecap_lib.training.config import settings_from_dict
from facecap_lib.training.recipe_config import RecipeConfig

LABELS = ("aus", "emotions")
DESCRIBERS = ("offline", "llm", "environment")
TRAINING_SETTINGS = ("default", "smoke", "small-gpu")  # RecipeConfig's constructors
SYNTHFACS_SIZES = ("full", "smoke")
EMBEDDINGS = ("minilm", "ada", "none")  # data.default_corpus.DefaultCorpus's constructors


class ProjectError(ValueError):
    """A project file that cannot be run, with the file and the field it is about."""


@dataclass(frozen=True)
class Dataset:
    """One dataset folder, in the layout its publisher ships."""

    name: str  # a loader of data.sources.MODULES: bp4d, disfa, gft, rafau, emotionet, affectnet, rafdb, faceme
    folder: str  # relative to the project file
    labels: tuple[str, ...] = LABELS  # which of its labels to train on: "aus", "emotions" or both
    strict: bool = True  # stop at the first malformed label line (False: skip it and count it)
    check_images: bool = True  # every labelled image must exist


@dataclass(frozen=True)
class SynthFACS:
    """The embedded default corpus: every SynthFACS copy rendered into the work folder and read
    by the same loaders as real folders (chapter 2, :mod:`facecap_lib.data.default_corpus`)."""

    size: str = "full"  # "full" (the book's) or "smoke" (tests)
    subjects: int | None = None  # people in each video corpus; None: the size's
    images: int | None = None  # images of each still corpus; None: the size's
    renderer: int = RENDERER_VERSION  # 2 (the book's) or 3 (shaded per pixel, FACS-sized AUs)

    def corpus(self, splits: Splits | None = None):
        """The :class:`~facecap_lib.data.default_corpus.DefaultCorpus` it names."""

        spec = DefaultCorpus.smoke() if self.size == "smoke" else DefaultCorpus.full()
        if self.subjects is not None:
            spec = dataclasses.replace(
                spec, video=dataclasses.replace(spec.video, subjects=self.subjects)
            )
        if self.images is not None:
            spec = dataclasses.replace(
                spec, stills=dataclasses.replace(spec.stills, images=self.images)
            )
        if splits is not None:
            spec = dataclasses.replace(
                spec, every=splits.every, test_fraction=splits.test_fraction, seed=splits.seed
            )
        return dataclasses.replace(spec, renderer=self.renderer)

    @classmethod
    def of(cls, corpus) -> SynthFACS:
        """The SynthFACS section that names ``corpus`` (a DefaultCorpus), or a ``ValueError``
        when it differs from the sizes in more than its subjects and images."""
        splits = Splits(seed=corpus.seed, every=corpus.every, test_fraction=corpus.test_fraction)
        for size in SYNTHFACS_SIZES:
            named = cls(size, corpus.video.subjects, corpus.stills.images, corpus.renderer)
            if named.corpus(splits) == corpus:
                return named
        raise ValueError(f"{corpus} is not a SynthFACS section (size, subjects, images, renderer)")


@dataclass(frozen=True)
class Splits:
    test_fraction: float = 0.2  # of the subjects of each dataset without an official split
    seed: int = 0
    every: int = 10  # the paper's 1-in-10 frame sampling of BP4D, DISFA and GFT (suppl. §2)
    bp4d_test_folds: tuple[int, ...] = (
        3,
    )  # of BP4D's 3-fold subject partition; () splits at random


@dataclass(frozen=True)
class Describer:
    """Who writes the captions. The API key is read from the environment variable named here and
    never stored."""

    kind: str = (
        "offline"  # "offline" (rules and templates) or "llm" (an OpenAI-compatible endpoint)
    )
    model: str | None = None  # the LLM, e.g. gpt-4o-mini (the paper used GPT-3.5)
    base_url: str | None = None  # any OpenAI-compatible server (vLLM, Ollama); None: OpenAI's
    api_key_env: str = "OPENAI_API_KEY"
    max_cost: float | None = None  # US dollars this project may spend; None: no limit
    max_calls: int | None = None


@dataclass(frozen=True)
class Model:
    preset: str = "tiny"  # models.presets.PRESETS: the shape of every model
    foundations: str | None = (
        "shipped"  # what a from-scratch preset starts from (RecipeConfig.foundations)
    )
    init: str | None = (
        None  # a pre-trained BLIP-2 (Hugging Face id or folder) instead of foundations
    )
    lavis_checkpoint: str | None = None  # the authors' LAVIS .pth, loaded over init
    lavis_ignore: tuple[str, ...] = ()  # its keys to leave out (models.lavis: unplaced keys fail)


@dataclass(frozen=True)
class Training:
    """The recipe's settings: one of its constructors, then any of its fields changed in
    ``recipe``, a nested mapping of :class:`facecap_lib.training.RecipeConfig` (for
    example ``{captioner: {fit: {lr: 1.0e-5, max_steps: 2000}, layer_decay: 0.95}}``). Those
    dataclasses hold every default, with its reason; a project names only what it changes."""

    settings: str = "default"  # "default" (the preset's), "smoke" or "small-gpu"
    recipe: dict = field(default_factory=dict)  # changes to RecipeConfig's fields, nested


@dataclass(frozen=True)
class Evaluation:
    faces: int = 400  # held-out faces per dataset and figure (chapter 4's count)
    beams: int = 5  # beam search when captioning test faces (the paper's)
    probe_train_faces: int = 1200  # training faces of each linear probe (chapter 5's count)
    # the supplementary's fine-tuning strategy (Tables 6-7): epochs over the training faces of
    # each captioner's encoder or Q-Former, and of the plain encoder (the paper: 20 and 50; at
    # least one step each); fine_tune_epochs 0 leaves every fine-tuned row out
    fine_tune_epochs: float = 20.0
    plain_fine_tune_epochs: float = 50.0
    # caption embedding similarity: "minilm" (all-MiniLM-L6-v2, shipped on PyPI, no key), "ada"
    # (the paper's text-embedding-ada-002 at the describer's endpoint, paid) or "none"
    embedding: str = "minilm"


@dataclass(frozen=True)
class Project:
    name: str
    output: str  # the run's folder (relative to the project file): faces, captions, models, report
    datasets: tuple[Dataset, ...] = ()
    synthfacs: SynthFACS | None = None  # the embedded default corpus, instead of datasets
    splits: Splits = field(default_factory=Splits)
    describer: Describer = field(default_factory=Describer)
    model: Model = field(default_factory=Model)
    training: Training = field(default_factory=Training)
    evaluation: Evaluation = field(default_factory=Evaluation)
    source: str | None = None  # the file it was read from (set by load_project)


# ---------------------------------------------------------------- YAML -> dataclasses


def _convert(hint, value, where: str):
    """``value`` (parsed YAML) as type ``hint``, or a :class:`ProjectError` naming ``where``."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        (inner,) = [a for a in args if a is not type(None)]
        return _convert(inner, value, where)
    if dataclasses.is_dataclass(hint):
        return _build(hint, value, where)
    if origin is tuple:
        if isinstance(value, str) or not isinstance(value, list | tuple):
            raise ProjectError(f"{where}: expected a list, got {value!r}")
        return tuple(_convert(args[0], v, f"{where}[{i}]") for i, v in enumerate(value))
    if hint is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if hint is dict:
        if not isinstance(value, Mapping):
            raise ProjectError(f"{where}: expected a mapping, got {value!r}")
        return json.loads(json.dumps(value))  # a plain copy
    if hint in (str, int, float, bool):
        if not isinstance(value, hint) or (hint is int and isinstance(value, bool)):
            raise ProjectError(f"{where}: expected {hint.__name__}, got {value!r}")
        return value
    raise TypeError(f"no YAML conversion for {hint!r} ({where})")


def _build(cls, data, where: str):
    if not isinstance(data, Mapping):
        raise ProjectError(f"{where}: expected a mapping of {cls.__name__}'s fields, got {data!r}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.name != "source"}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise ProjectError(f"{where}.{unknown[0]}: unknown key; known: {', '.join(fields)}")
    required = [
        n
        for n, f in fields.items()
        if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
    ]
    missing = [n for n in required if n not in data]
    if missing:
        raise ProjectError(f"{where}.{missing[0]}: required")
    return cls(**{k: _convert(hints[k], v, f"{where}.{k}") for k, v in data.items()})


def _check_choice(value, choices, where: str) -> None:
    if value not in choices:
        raise ProjectError(f"{where}: {value!r} is not one of {', '.join(map(str, choices))}")


def validate(project: Project, where: str = "project") -> Project:
    """The checks that need no data: names, choices, folders that exist, consistent sections."""

    if not project.datasets and project.synthfacs is None:
        raise ProjectError(f"{where}.datasets: name at least one dataset, or synthfacs")
    if project.datasets and project.synthfacs is not None:
        raise ProjectError(f"{where}.synthfacs: give datasets or synthfacs, not both")
    seen = set()
    for i, dataset in enumerate(project.datasets):
        at = f"{where}.datasets[{i}]"
        _check_choice(dataset.name, sorted(sources.MODULES), f"{at}.name")
        if dataset.name in seen:
            raise ProjectError(f"{at}.name: {dataset.name} is named twice")
        seen.add(dataset.name)
        if not dataset.labels:
            raise ProjectError(f"{at}.labels: name aus, emotions or both")
        for label in dataset.labels:
            _check_choice(label, LABELS, f"{at}.labels")
        if not Path(dataset.folder).is_dir():
            raise ProjectError(f"{at}.folder: {dataset.folder} is not a folder")
    if project.synthfacs is not None:
        _check_choice(project.synthfacs.size, SYNTHFACS_SIZES, f"{where}.synthfacs.size")
        _check_choice(project.synthfacs.renderer, RENDERERS, f"{where}.synthfacs.renderer")
        if tuple(project.splits.bp4d_test_folds) != (3,):
            raise ProjectError(
                f"{where}.splits.bp4d_test_folds: the SynthFACS default corpus tests on BP4D's "
                "fold 3 (the paper's single split)"
            )
    splits = project.splits
    if not 0 < splits.test_fraction < 1:
        raise ProjectError(f"{where}.splits.test_fraction: must be in (0, 1)")
    if splits.every < 1:
        raise ProjectError(f"{where}.splits.every: must be at least 1")
    for fold in splits.bp4d_test_folds:
        _check_choice(fold, sorted(sources.bp4d.FOLDS), f"{where}.splits.bp4d_test_folds")
    _check_choice(project.describer.kind, DESCRIBERS, f"{where}.describer.kind")
    if project.describer.kind == "llm" and not project.describer.model:
        raise ProjectError(f"{where}.describer.model: an llm describer needs a model")
    _check_choice(project.model.preset, list(PRESETS), f"{where}.model.preset")
    _check_choice(project.training.settings, TRAINING_SETTINGS, f"{where}.training.settings")
    try:
        recipe_config(project)
    except (TypeError, ValueError) as error:
        raise ProjectError(f"{where}.training.recipe.{error}") from None
    foundations = project.model.foundations
    if foundations not in (None, "shipped") and not Path(foundations).is_dir():
        raise ProjectError(
            f"{where}.model.foundations: {foundations} is not a folder (make one with "
            f"`facecap pretrain --preset {project.model.preset} --out FOLDER`)"
        )
    if project.model.lavis_checkpoint and not Path(project.model.lavis_checkpoint).is_file():
        raise ProjectError(
            f"{where}.model.lavis_checkpoint: {project.model.lavis_checkpoint} is not a file"
        )
    if project.evaluation.faces < 1:
        raise ProjectError(f"{where}.evaluation.faces: must be at least 1")
    _check_choice(project.evaluation.embedding, EMBEDDINGS, f"{where}.evaluation.embedding")
    if project.evaluation.beams < 1:
        raise ProjectError(f"{where}.evaluation.beams: must be at least 1")
    for name in ("fine_tune_epochs", "plain_fine_tune_epochs"):
        if getattr(project.evaluation, name) < 0:
            raise ProjectError(f"{where}.evaluation.{name}: must be at least 0")
    return project


def _merge(base: dict, changes: Mapping) -> dict:
    out = dict(base)
    for key, value in changes.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


def recipe_config(project: Project):
    """The :class:`~facecap_lib.training.RecipeConfig` a project trains with: its
    ``training.settings``, the model section (preset, foundations, starting weights), then its
    ``training.recipe`` changes. A key that is not a setting is a ``ValueError`` naming it."""

    constructors = {
        "default": RecipeConfig,
        "smoke": RecipeConfig.smoke,
        "small-gpu": RecipeConfig.small_gpu,
    }
    base = constructors[project.training.settings]()
    model = project.model
    captioner = dataclasses.replace(
        base.captioner,
        init=model.init,
        lavis_checkpoint=model.lavis_checkpoint,
        lavis_ignore=model.lavis_ignore,
    )
    base = dataclasses.replace(
        base, preset=model.preset, foundations=model.foundations, captioner=captioner
    )
    merged = _merge(json.loads(json.dumps(dataclasses.asdict(base))), project.training.recipe)
    config = settings_from_dict(RecipeConfig, merged)
    for name, fit in config.fits().items():  # FitConfig allows 0 steps (an untrained stage)
        if fit.max_steps < 1:
            raise ValueError(f"{name}.fit.max_steps: must be at least 1")
    return config


def _resolve(project: Project, base: Path) -> Project:
    """Folders relative to the project file made absolute (Hugging Face ids are left alone)."""

    def local(path: str | None) -> str | None:
        if path is None or Path(path).is_absolute():
            return path
        return str((base / path).resolve())

    def local_or_hub(path: str | None) -> str | None:
        if path is None:
            return path
        resolved = local(path)
        return resolved if Path(resolved).exists() else path  # else: a Hugging Face id

    datasets = tuple(dataclasses.replace(d, folder=local(d.folder)) for d in project.datasets)
    model = dataclasses.replace(
        project.model,
        foundations=project.model.foundations
        if project.model.foundations == "shipped"
        else local(project.model.foundations),
        init=local_or_hub(project.model.init),
        lavis_checkpoint=local(project.model.lavis_checkpoint),
    )
    return dataclasses.replace(
        project, datasets=datasets, model=model, output=local(project.output)
    )


def project_from_dict(data, source: str | Path = "project", base: str | Path = ".") -> Project:
    """A validated :class:`Project` from parsed YAML; errors name ``source`` and the field."""
    try:
        project = _build(Project, data, "project")
        return dataclasses.replace(validate(_resolve(project, Path(base))), source=str(source))
    except ProjectError as error:
        raise ProjectError(f"{source}: {error}") from None


def load_project(path: str | Path) -> Project:
    """Read and validate a project file (see the module docstring)."""
    import yaml

    path = Path(path)
    if not path.is_file():
        raise ProjectError(f"{path}: no such project file")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        line = f" line {mark.line + 1}" if mark else ""
        raise ProjectError(f"{path}:{line}: not valid YAML ({error})") from None
    return project_from_dict(data, path, path.resolve().parent)


def to_dict(project: Project) -> dict:
    """The project as plain data (what :func:`project_from_dict` reads back)."""
    import json

    data = dataclasses.asdict(project)
    data.pop("source")
    return json.loads(json.dumps(data))  # tuples as lists, as YAML writes them
