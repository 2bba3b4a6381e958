"""The book's project: what chapters 4-6 train and evaluate, and what ``facecap train`` runs.

Chapters 4 to 6 run one project, :func:`book_project` (the shipped
``projects/synthfacs-book.yaml``, with the work folder as its output), through the machinery of
``facecap run`` (:class:`~facecap_lib.runner.ProjectRun`): the same keyed faces, captions, run
folder and evaluation as a researcher's own project. :func:`chapter_run` is that run, with the
chapters' settings (smoke or full, a preset, a seed); :func:`chapter_recipe` its training recipe.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from facecap_lib.data.default_corpus import DefaultCorpus
from facecap_lib.paths import cache_root
from facecap_lib.project import Describer, Evaluation, Model, Project, Splits, SynthFACS
from facecap_lib.runner import ProjectRun
from facecap_lib.training.recipe_config import RecipeConfig, recipe_config
from facecap_lib.training.stages import Recipe

# The book's evaluation (chapters 5 and 6, and the report of projects/synthfacs-book.yaml): up to
# 100 test faces per dataset (eight datasets: about 800 faces captioned by each of seven models,
# minutes on two CPU cores) and linear probes only: the end-to-end fine-tunes of Table 3 and of the
# supplementary (over a hundred trainings at eight datasets) belong on a GPU, where a project sets
# fine_tune_epochs.
BOOK_EVALUATION = Evaluation(faces=100, probe_train_faces=1200, fine_tune_epochs=0.0)
SMOKE_EVALUATION = Evaluation(faces=12, probe_train_faces=48, fine_tune_epochs=0.0)


def chapter_run(
    smoke: bool = False,
    preset_name: str = "auto",
    *,
    log=print,
    init: str | None = None,
    parallel: str | None = None,
    run_dir: str | Path | None = None,
    device: str = "auto",
    seed: int | None = None,
    config: RecipeConfig | None = None,
    corpus: DefaultCorpus | None = None,
    progress: bool = False,
) -> ProjectRun:
    """The run of chapters 4-6 on the embedded default data: the same faces, captions, settings,
    run folder and evaluation in every chapter, so chapters 5 and 6 read chapter 4's models (and
    train them first when run on their own). ``facecap train`` runs it too, where ``init`` (a
    pre-trained captioner), ``parallel`` (every stage's ``FitConfig.parallel``), ``run_dir``,
    ``device`` and ``seed`` (every stage's, for the spread over seeds) can change, as can the
    settings themselves (``config``, default :func:`~facecap_lib.training.stages.recipe_config`
    of ``smoke`` and ``preset_name``) and the size of the default corpus (``corpus``);
    ``progress`` shows progress bars (curation and training)."""
    spec = corpus or (DefaultCorpus.smoke() if smoke else DefaultCorpus.full())
    config = config or recipe_config(smoke, preset_name)
    if init:
        config = replace(config, captioner=replace(config.captioner, init=init))
    if parallel:
        config = config.with_fits(parallel=parallel)
    if seed is not None:
        config = config.with_fits(seed=seed)
    return ProjectRun(
        book_project(spec, config.preset, SMOKE_EVALUATION if smoke else BOOK_EVALUATION), device=device, log=log,
        progress=progress, config=config, run_dir=run_dir,
    )  # fmt: skip


def chapter_recipe(smoke: bool = False, preset_name: str = "auto", **options) -> Recipe:
    """The training recipe of :func:`chapter_run` (the same arguments)."""
    return chapter_run(smoke, preset_name, **options).recipe()


def book_project(
    corpus: DefaultCorpus | None = None,
    preset_name: str = "tiny",
    evaluation: Evaluation = BOOK_EVALUATION,
) -> Project:
    """The book's project (``projects/synthfacs-book.yaml``, in the work folder): the SynthFACS
    default corpus ``corpus`` (default: the full one), the describer the environment names, the
    shipped foundations and the book's ``evaluation`` (:data:`BOOK_EVALUATION`)."""
    corpus = corpus or DefaultCorpus.full()
    splits = Splits(test_fraction=corpus.test_fraction, seed=corpus.seed, every=corpus.every)
    return Project(
        name="synthfacs-book",
        output=str(cache_root()),
        synthfacs=SynthFACS.of(corpus),
        splits=splits,
        describer=Describer(kind="environment"),
        model=Model(preset=preset_name),
        evaluation=evaluation,
    )


def tables_dir(run: ProjectRun, chapter: int) -> Path:
    """Where a chapter writes the tables it showed, as a report (``<work>/chapters/05/``), so that
    they can be set beside the project report's (tests/test_notebooks.py does, table by table)."""
    return Path(run.output) / "chapters" / f"{chapter:02d}"
