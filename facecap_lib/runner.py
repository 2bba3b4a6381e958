"""``facecap run PROJECT.yaml``: one project (:mod:`facecap_lib.project`) from its dataset folders
to its trained captioners, stage by stage.

Stages, in order (:data:`STAGES`): ``curate`` (load every dataset with its loader, keep the labels
the project trains on, split and sample as the paper does), ``captions`` (the caption corpus of
chapter 3, with the project's describer), ``qformer`` (BLIP-2 stage 1), ``au`` and ``emot``
(AU-BLIP and Emot-BLIP), ``pseudo`` (their pseudo-captions, and the fusion into Mix / Cat / Exp),
``mix``, ``cat`` and ``exp``, then ``evaluate`` (the paper's evaluation per dataset and a report,
:mod:`facecap_lib.evaluation.protocol`). The training stages are
:class:`facecap_lib.training.stages.Recipe`'s; the chapters and ``facecap train`` run the book's
project (:func:`facecap_lib.chapters.book_project`) through this same class.

Every stage is keyed on the content of its inputs, so that running a project again skips what is
done and a killed run resumes, and a change anywhere upstream never reuses a stale result:

- the face table on the datasets' settings, the splits and a fingerprint of every label file
  (name, size, modification time; images are checked by the loaders);
- the caption corpus on the face table's labels and splits and the describer
  (:func:`facecap_lib.captions.corpus.corpus_dir`);
- the models on the training settings, the preset's shapes, the foundations, the caption
  corpus, the SynthFACS corpus's key where the project draws its faces (the captions follow
  the labels alone, the same whichever renderer drew the images) and :data:`RECIPE_VERSION`, a
  number raised whenever the code would train other models from the same inputs.

Output folder::

    project.json              the project as run (no secrets: the API key stays in its variable)
    data/faces-<key>.parquet  the curated face table
    captions/<key>/           the caption corpus (Parquet, LAVIS JSON)
    llm/answers.sqlite        every LLM answer, paid once
    runs/<preset>-<key>/      the models (see training.stages)
    report/<run>-<key>/       report.md, a CSV per table, PNG charts

Under torchrun every stage runs on every rank (training is data-parallel) and one rank writes
each artifact while the others wait (:func:`facecap_lib.training.distributed.main_first`).
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from facecap_lib.captions import fusion
from facecap_lib.captions.corpus import caption_corpus, corpus_dir
from facecap_lib.captions.fusion import fusion_lines
from facecap_lib.captions.llm import EndpointConfig, LLMClient, env_prices
from facecap_lib.captions.synthesize import (
    LLMDescriber,
    OfflineDescriber,
    au_items,
    au_requests,
    default_describer,
)
from facecap_lib.data import default_corpus, sources
from facecap_lib.data.curate import curate, statistics
from facecap_lib.data.problems import DataFormatError
from facecap_lib.data.table import load_face_table, save_face_table
from facecap_lib.evaluation import captions as caption_metrics
from facecap_lib.evaluation import protocol, report, representations
from facecap_lib.evaluation.faces import probe_sets
from facecap_lib.evaluation.measured import measured_spread
from facecap_lib.evaluation.samples import sample_evaluator
from facecap_lib.lexicon import AU_COLUMNS
from facecap_lib.models import lavis
from facecap_lib.models.presets import blip2_config, preset
from facecap_lib.project import Project, ProjectError, recipe_config, to_dict
from facecap_lib.training import distributed
from facecap_lib.training.stages import Recipe, finished_stages

RECIPE_VERSION = 1  # raise when the same inputs would train different models
STAGES = (
    "curate", "captions", "qformer", "au", "emot", "pseudo", "mix", "cat", "exp", "evaluate",
)  # fmt: skip
TRAINING_STAGES = ("qformer", "au", "emot", "mix", "cat", "exp")
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp"}


def stages_between(stage: str | None = None, until: str | None = None) -> list[str]:
    """The stages to run: one ``stage``, every stage up to ``until`` (included), or all."""
    for name in (stage, until):
        if name is not None and name not in STAGES:
            raise ValueError(f"unknown stage {name!r}; stages: {', '.join(STAGES)}")
    if stage is not None and until is not None:
        raise ValueError("give --stage or --until, not both")
    if stage is not None:
        return [stage]
    return list(STAGES[: STAGES.index(until) + 1]) if until else list(STAGES)


def label_files_fingerprint(folder: str | Path) -> str:
    """12 hex digits of every file under ``folder`` that is not an image: path, size and
    modification time. A changed label file changes it; images do not (there may be a million)."""
    digest = hashlib.sha256()
    root = Path(folder)
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for name in sorted(filenames):
            if Path(name).suffix.lower() in IMAGE_SUFFIXES:
                continue
            path = Path(dirpath) / name
            stat = path.stat()
            digest.update(
                f"{path.relative_to(root)}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode()
            )
    return digest.hexdigest()[:12]


def keep_labels(table: pd.DataFrame, labels: tuple[str, ...]) -> pd.DataFrame:
    """A loaded dataset with only the labels a project trains on: AU columns unknown (NaN)
    without ``"aus"``, no emotions without ``"emotions"``."""

    out = table.copy()
    if "aus" not in labels:
        out[list(AU_COLUMNS)] = float("nan")
    if "emotions" not in labels:
        out["emotions"] = [() for _ in range(len(out))]
    return out


@dataclass(frozen=True)
class Plan:
    """What a run would do (``facecap run --dry-run``)."""

    faces: pd.DataFrame  # images and subjects per dataset and split (curate.statistics)
    captions: list[str]  # one line per kind of caption request
    training: pd.DataFrame  # steps and batch per training stage, and whether it is done
    done: list[str]  # stages already finished
    evaluation: list[str] = field(default_factory=list)  # the evaluation's own training

    def text(self) -> str:
        lines = ["faces per dataset and split:", self.faces.to_string(), "", "captions:"]
        lines += [f"  {line}" for line in self.captions]
        lines += ["", "training:", self.training.to_string(index=False)]
        lines += ["", "evaluation:", *[f"  {line}" for line in self.evaluation]]
        lines += ["", f"done: {', '.join(self.done) or 'nothing yet'}"]
        return "\n".join(lines)


class ProjectRun:
    """One project's stages (see the module docstring); each method returns its stage's result
    and, called again, loads it."""

    def __init__(
        self,
        project: Project,
        *,
        device: str = "auto",
        log: Callable[[str], None] | None = print,
        progress: bool = True,
        config=None,
        run_dir: str | Path | None = None,
    ):
        """``config`` (a RecipeConfig) replaces the one the project's training section makes,
        for callers that hold one already (the chapters, ``facecap train``); ``run_dir``
        replaces the content-keyed run folder."""

        self.project, self.device, self.progress = project, device, progress
        self.log = log if distributed.is_main() else None  # one rank speaks
        self.output = Path(project.output)
        self.config, self._run_dir = config, Path(run_dir) if run_dir else None
        self._faces: pd.DataFrame | None = None
        self._describer = None
        self._recipe = None

    # -- curate
    def faces_key(self) -> str:
        """The face table's key: datasets, label files, splits (see the module docstring)."""

        settings = to_dict(self.project)
        inputs = {
            "datasets": settings["datasets"],
            "synthfacs": settings["synthfacs"],
            "splits": settings["splits"],
            "label_files": [label_files_fingerprint(d.folder) for d in self.project.datasets],
        }
        text = json.dumps(inputs, sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:12]

    def faces(self) -> pd.DataFrame:
        """The curated face table (``data/faces-<key>.parquet``)."""

        if self._faces is not None:
            return self._faces

        if self.project.synthfacs is not None:  # rendered and cached by the main process
            self._faces = distributed.main_then_others(self._synthfacs_faces)
            return self._faces
        path = self.output / "data" / f"faces-{self.faces_key()}.parquet"
        distributed.write_once(path, lambda: save_face_table(self._curate(), path))
        self._faces = load_face_table(path)
        return self._faces

    def _synthfacs_faces(self) -> pd.DataFrame:
        spec = self.project.synthfacs.corpus(self.project.splits)
        return default_corpus.curated_faces(spec, work=self.output, progress=self.progress)

    def _curate(self) -> pd.DataFrame:
        tables = []
        for dataset in self.project.datasets:
            if self.log:
                self.log(f"loading {dataset.name} from {dataset.folder}")
            table = sources.load(
                dataset.name,
                dataset.folder,
                strict=dataset.strict,
                check_images=dataset.check_images,
            )
            tables.append(keep_labels(table, dataset.labels))
        splits = self.project.splits
        folds = (
            {"bp4d": (sources.bp4d.FOLDS, list(splits.bp4d_test_folds))}
            if splits.bp4d_test_folds
            else None
        )
        table = curate(
            tables, every=splits.every, test_fraction=splits.test_fraction, seed=splits.seed,
            folds=folds,
        )  # fmt: skip
        folders = {d.name: d.folder for d in self.project.datasets}
        table["data_root"] = [folders[d] for d in table["dataset"]]
        return table

    # -- captions
    def describer(self):
        """The project's describer; an LLM's key is read from its environment variable."""
        if self._describer is None:
            spec = self.project.describer
            if spec.kind == "environment":
                cache = self.output / "llm" / "answers.sqlite"
                self._describer = default_describer(cache, progress=False)
            elif spec.kind == "offline":
                self._describer = OfflineDescriber()
            else:
                prices = env_prices(spec.model)  # FACECAP_LLM_PRICE, as for the chapters
                config = EndpointConfig(
                    model=spec.model, base_url=spec.base_url,
                    api_key=os.environ.get(spec.api_key_env), max_cost=spec.max_cost,
                    max_calls=spec.max_calls, **({"prices": prices} if prices else {}),
                )  # fmt: skip
                client = LLMClient(config, self.output / "llm" / "answers.sqlite")
                self._describer = LLMDescriber(client, progress=self.progress)
        return self._describer

    def captions(self) -> dict[str, pd.DataFrame]:
        """The caption corpus: written by the main process (the only one that calls an LLM);
        the others load it."""

        def make():
            return caption_corpus(self.faces(), self.describer(), work=self.output)

        return distributed.main_then_others(make)

    def captions_dir(self) -> Path:
        return corpus_dir(self.faces(), self.describer(), work=self.output)

    # -- training
    def recipe_config(self):
        return self.config or recipe_config(self.project)

    def run_dir(self) -> Path:
        if self._run_dir is not None:
            return self._run_dir
        config = self.recipe_config()
        data = f"{self.captions_dir().name}/recipe-v{RECIPE_VERSION}"
        if self.project.synthfacs is not None:  # the images: the corpus's renderer, sizes, seed
            data += f"/{self.project.synthfacs.corpus(self.project.splits).key()}"
        digest = hashlib.sha256(f"{config.fingerprint()}/{data}".encode()).hexdigest()[:12]
        return self.output / "runs" / f"{config.preset}-{digest}"

    def recipe(self) -> Recipe:
        """The training recipe of this project, its captioners evaluated on a few held-out
        faces as they train (:func:`~facecap_lib.evaluation.samples.sample_evaluator`)."""
        if self._recipe is None:
            self._recipe = Recipe(
                self.faces(), self.captions(), self.run_dir(), self.describer(),
                self.recipe_config(), work=self.output, device=self.device, log=self.log,
                progress=self.progress, evaluator=sample_evaluator,
            )  # fmt: skip
        return self._recipe

    # -- checks that need the data or the weights
    def check(self) -> None:
        """Before any training: every dataset loads with its loader (a folder in another
        dataset's format fails here, naming the file), and a LAVIS checkpoint fits the preset."""

        try:
            self.faces()
        except (DataFormatError, FileNotFoundError) as error:
            raise ProjectError(f"{self.project.source}: datasets: {error}") from None
        if self.project.model.lavis_checkpoint:
            self._check_lavis()

    def _check_lavis(self) -> None:
        """The checkpoint's tensors against the captioner's shapes, built on the meta device (no
        memory, no weights): another preset's checkpoint fails before anything trains."""
        import torch
        from transformers import Blip2Config, Blip2ForConditionalGeneration

        model = self.project.model
        if model.init:
            config = Blip2Config.from_pretrained(model.init)
        else:
            ids = dict(image_token_id=0, pad_token_id=1, bos_token_id=2, eos_token_id=2)
            config = blip2_config(preset(model.preset), vocab_size=64, **ids)
        with torch.device("meta"):
            target = Blip2ForConditionalGeneration(config).state_dict()
        state = lavis.read_lavis_checkpoint(model.lavis_checkpoint)
        try:
            converted, _ = lavis.convert_lavis_state_dict(state, target, model.lavis_ignore)
        except ValueError as error:
            raise ProjectError(f"{self.project.source}: model.lavis_checkpoint: {error}") from None
        # the language model is the foundations' or init's, checked on loading
        skip = None if model.init else "language_model."
        if mismatch := lavis.shape_mismatch(converted, target, skip):
            name, got, expected = mismatch
            raise ProjectError(
                f"{self.project.source}: model.lavis_checkpoint: {model.lavis_checkpoint} holds "
                f"{name} of shape {got}, preset {model.preset} has {expected}: a checkpoint of "
                "another shape"
            )

    # -- the whole
    def run(self, stage: str | None = None, until: str | None = None) -> list[str]:
        """Run the chosen stages (:func:`stages_between`) in order; returns their names."""
        chosen = stages_between(stage, until)
        self.check()
        self._write_project()
        for name in chosen:
            if self.log:
                self.log(f"stage {name}")
            if name == "curate":
                self.faces()
            elif name == "captions":
                self.captions()
            elif name == "evaluate":
                self.evaluate()
            else:
                self.recipe().run(name)
        return chosen

    def report_dir(self) -> Path:
        """``report/<run folder>-<evaluation settings>``: new models or settings, new report."""

        settings = json.dumps(to_dict(self.project)["evaluation"], sort_keys=True)
        digest = hashlib.sha256(settings.encode()).hexdigest()[:6]
        return self.output / "report" / f"{self.run_dir().name}-{digest}"

    def evaluate(self) -> Path:
        """The paper's evaluation per dataset (:func:`facecap_lib.evaluation.protocol.tables`) of
        the five captioners and the baselines, written as a report (Markdown, CSV, PNG) by the
        main process."""
        if distributed.main_sees((self.report_dir() / "report.md").exists()):
            return self.report_dir() / "report.md"
        recipe, spec = self.recipe(), self.project.evaluation
        models = protocol.models(recipe)
        protocol.train_fine_tunes(recipe, models, spec)  # on every rank; the report loads them

        def write() -> Path:
            tables = self.evaluation_tables(models)
            notes = report.notes(
                self.project.name, self.recipe_config().preset, recipe.faces, spec, tables,
                self.spread()[1],
            )  # fmt: skip
            return report.write_report(
                self.report_dir(), tables, title=f"{self.project.name}: evaluation", notes=notes,
                plots=report.plots(tables),
            )  # fmt: skip

        distributed.main_first(write)
        return self.report_dir() / "report.md"

    def evaluation_tables(self, models=None) -> dict[str, pd.DataFrame]:
        """The report's tables (:func:`facecap_lib.evaluation.protocol.tables`) with this
        project's evaluation settings, caption embedding and spread over seeds."""
        recipe = self.recipe()
        return protocol.tables(
            recipe, models or protocol.models(recipe), self.project.evaluation,
            preset_name=self.recipe_config().preset, embedders=self.embedders(),
            spread=self.spread()[0],
        )  # fmt: skip

    def spread(self) -> tuple[dict[str, float] | None, dict | None]:
        """The seed-to-seed spread the findings are judged against, and where it was measured:
        ``book/measured/seeds-<preset>.json`` for a SynthFACS project (the book's setting, where
        ``benchmarks/chapter4_seeds.py --chapter5`` measured it), none for a project on other
        data (one run there says only whether the direction agrees)."""
        if self.project.synthfacs is None:
            return None, None
        return measured_spread(self.recipe_config().preset)

    def embedders(self) -> dict:
        """The caption embedding of the evaluation (``evaluation.embedding``), by column name."""

        kind = self.project.evaluation.embedding
        if kind == "minilm":
            return {"MiniLM-sim": caption_metrics.minilm_embedder()}
        if kind == "ada":
            describer = self.project.describer
            return {
                "Ada-sim": caption_metrics.openai_embedder(
                    base_url=describer.base_url, api_key=os.environ.get(describer.api_key_env)
                )
            }
        return {}

    def _write_project(self) -> None:
        def write() -> None:
            self.output.mkdir(parents=True, exist_ok=True)
            text = json.dumps(to_dict(self.project), indent=1)
            (self.output / "project.json").write_text(text)

        distributed.main_first(write)

    def done(self) -> list[str]:
        """The stages whose results exist (curate and captions only once they can be keyed)."""
        out = []
        if (
            self.project.synthfacs is not None
            or (self.output / "data" / f"faces-{self.faces_key()}.parquet").exists()
        ):
            out.append("curate")
        else:
            return out
        if (self.captions_dir() / "exp.parquet").exists():
            out.append("captions")
        else:
            return out

        out += [s for s in finished_stages(self.run_dir()) if s in STAGES]
        if (self.report_dir() / "report.md").exists():
            out.append("evaluate")
        return out

    def plan(self) -> Plan:
        """The dry run: loads and curates the data (no training, no paid call)."""

        faces = self.faces()
        describer = self.describer()
        done = self.done()
        lines = []
        if isinstance(describer, LLMDescriber):
            requests = au_requests(au_items(faces))
            estimate = describer.client.estimate(requests)
            unique = len({r.messages for r in requests})
            lines.append(f"AU captions: {estimate} ({unique} distinct prompts)")
            # the corpus's own caption table once it is saved, else the cache's answers
            saved = self.captions()["captions"] if "captions" in done else None
            lines += fusion_lines(faces, describer, estimate.calls == 0, saved)
            lines.append(self._pseudo_fusion_line(describer, faces, done))
        else:
            lines.append(f"{type(describer).__name__} ({describer.source}): no calls, no cost")
        config = self.recipe_config()
        rows = []
        for name in TRAINING_STAGES:
            part = config.qformer if name == "qformer" else config.captioner
            rows.append(
                {
                    "stage": name,
                    "steps": part.fit.max_steps,
                    "batch": part.fit.batch_size,
                    "images seen": part.fit.max_steps * part.fit.batch_size,
                    "done": name in done,
                }
            )
        return Plan(
            statistics(faces), lines, pd.DataFrame(rows), done, self._evaluation_plan(faces)
        )

    def _pseudo_fusion_line(self, describer, faces: pd.DataFrame, done: list[str]) -> str:
        """Stage pseudo's fusion: the faces labelled with one aspect get the other from AU-BLIP or
        Emot-BLIP, so their requests are known (and priced exactly) once those have written
        their pseudo-captions; nothing is trained or captioned here."""

        if not {"captions", "au", "emot"} <= set(done):
            return "fusion with AU-BLIP's and Emot-BLIP's pseudo-captions: priced once they exist"
        recipe = self.recipe()
        pseudo = recipe.pseudo_captioner(saved_only=True)
        try:
            estimate = fusion.estimate(describer, faces, recipe.tables["captions"], pseudo)
        except LookupError as missing:
            return (
                f"fusion with AU-BLIP's and Emot-BLIP's pseudo-captions: not priced yet ({missing})"
            )
        return f"fusion with AU-BLIP's and Emot-BLIP's pseudo-captions: {estimate}"

    def _evaluation_plan(self, faces: pd.DataFrame) -> list[str]:
        """What the evaluate stage trains: the fine-tunes of Table 3's probes per dataset and of
        the supplementary's representation tables."""

        spec = self.project.evaluation
        data = representations.Faces.of(faces, spec)
        sets = probe_sets(faces, spec.probe_train_faces, spec.faces)
        au = (
            f"AU classifiers on {len(data.train)} training faces of every AU dataset together, "
            f"tested on {', '.join(data.tests)}"
            if data.has_au()
            else "no AU classifiers (no AU-labelled test faces)"
        )
        emotion = f"emotion classifiers on {', '.join(data.emotions) or 'no dataset'}"
        lines = [
            f"probes per dataset: {len(sets)} train / test pairs ("
            + ", ".join(sorted({f"{s.dataset} {s.protocol}" for s in sets}))
            + ")",
            f"representations: {au}; {emotion}",
        ]
        if spec.fine_tune_epochs <= 0:
            return [*lines, "fine-tunes: none (fine_tune_epochs is 0)"]
        probed = ["untrained", *protocol.PROBED]
        jobs = representations.fine_tunes(
            faces, probed, ["untrained", *representations.MODELS], spec
        )
        steps = sum(
            representations.fine_tune_steps(job.feature, len(job.train), spec) for job in jobs
        )
        return [*lines, f"fine-tunes: {len(jobs)}, {steps} steps of 32 in all"]
