"""The paper's three stages on a face table and its caption corpus, one resumable call per stage.

1. Captions: chapter 3's caption corpus (:func:`facecap_lib.captions.corpus.caption_corpus`).
2. Two single-aspect captioners: **AU-BLIP** on the AU captions and **Emot-BLIP** on the emotion
   captions. Each is BLIP-2: the Q-Former is first pre-trained (BLIP-2 stage 1: ITC, ITM, ITG) on
   every training caption, then each captioner is fine-tuned (stage 2) from it.
3. **Pseudo-captions** for the missing aspect (AU-BLIP describes the emotion-labelled images,
   Emot-BLIP the AU-labelled ones), **fusion** into Mix / Cat / Exp training sets, and the
   captioners trained on them: **Mix-BLIP**, **Cat-BLIP**, **Exp-BLIP**.

:class:`Recipe` holds the inputs and a run folder; every method returns what its stage made and,
called again, loads it instead of redoing it. Interrupted training resumes from its last
checkpoint; pseudo-captions are saved in chunks. ``facecap train STAGE`` calls the same methods.

Run folder::

    tokenizer/  language_model/  qformer/  au-blip/  emot-blip/  pseudo/  mix-blip/  cat-blip/
    exp-blip/   (each trained model: checkpoint-*/ while training, final/ when done)

Every training stage is a task of the one loop, :func:`facecap_lib.training.fit.fit`.

From-scratch presets (``tiny``, ``small``) also pre-train their language model first, on the whole
caption language, and freeze it (see :func:`lm_texts` for why it reads each caption after a
short statement of its content).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from transformers import OPTForCausalLM

from facecap_lib.captions import corpus as caption_corpus_module
from facecap_lib.captions.mentions import mentioned_aus
from facecap_lib.captions.validate import named_emotions
from facecap_lib.data.table import image_files, image_ids
from facecap_lib.lexicon import AU_COLUMNS, EMOTIONS
from facecap_lib.models.presets import preset
from facecap_lib.models.tokenizer import load_tokenizer, train_tokenizer
from facecap_lib.progress import progress_bar
from facecap_lib.training import CAPTIONERS, STAGES, TITLES, distributed
from facecap_lib.training import foundations as foundations_module
from facecap_lib.training.captioner import CaptionerConfig, train_captioner
from facecap_lib.training.config import RUNTIME_ONLY, FitConfig
from facecap_lib.training.data import Pair
from facecap_lib.training.fit import FitResult
from facecap_lib.training.pretrain import LanguageModelConfig, pretrain_language_model
from facecap_lib.training.stage1 import QFormerConfig, install_qformer, train_qformer

SETTINGS_FILE = "recipe.json"
TRAINING_DATA_FILE = "training_data.json"  # in each captioner's final folder (facecap describe)


def finished_stages(run_dir: str | Path) -> list[str]:
    """The stages of :data:`~facecap_lib.training.STAGES` that a run folder holds finished (a
    trained model's ``final/``; saved pseudo-captions), in order."""
    run_dir = Path(run_dir)
    folders = {"language-model": "language_model", "qformer": "qformer"}
    folders |= {name: f"{name}-blip" for name in CAPTIONERS}
    out = []
    for stage in STAGES:
        if stage == "pseudo":
            pseudo = run_dir / "pseudo"
            if pseudo.is_dir() and any(pseudo.iterdir()):
                out.append(stage)
        elif (run_dir / folders[stage] / "final").exists():
            out.append(stage)
    return out


def training_data(faces: pd.DataFrame, images: Sequence[str]) -> dict:
    """What a captioner was trained on: per dataset, its training images and whether its folder
    is a SynthFACS copy (it holds the renderer's truth file), so that a checkpoint knows it."""
    from facecap_lib.data.synth.corpus import TRUTH_FILE

    chosen = faces.assign(file=list(image_files(faces)))
    chosen = chosen[chosen["file"].isin(set(images))]
    out = {}
    for dataset, part in chosen.groupby("dataset", sort=True):
        roots = set(part["data_root"]) if "data_root" in part else set()
        synthetic = bool(roots) and all((Path(r) / TRUTH_FILE).exists() for r in roots)
        out[str(dataset)] = {"images": int(part["file"].nunique()), "synthfacs": synthetic}
    return {
        "datasets": out,
        "synthfacs_only": bool(out) and all(d["synthfacs"] for d in out.values()),
    }


def _changed(a, b, prefix: str = "") -> list[str]:
    """Dotted keys where two nested settings dicts differ."""
    if isinstance(a, dict) and isinstance(b, dict):
        out = []
        for key in sorted(set(a) | set(b)):
            out += _changed(a.get(key), b.get(key), f"{prefix}{key}.")
        return out
    return [] if a == b else [prefix.rstrip(".")]


@dataclass(frozen=True)
class RecipeConfig:
    """Settings of every stage. Defaults: the ``tiny`` preset on two CPU cores (minutes per
    captioner); :meth:`smoke` for tests; :meth:`small_gpu` for one GPU. ``captioner.init`` (a
    pre-trained captioner) replaces the language model's pre-training and stage 1."""

    preset: str = "tiny"  # the shape of every from-scratch model: the one place it is set
    # what a from-scratch preset starts from (training.foundations): "shipped" (the package's
    # pre-trained encoder and language model, where it ships them for the preset), a folder of
    # `facecap pretrain`, or None: random weights, the language model pre-trained here
    foundations: str | None = "shipped"
    language_model: LanguageModelConfig = LanguageModelConfig(
        fit=replace(LanguageModelConfig().fit, max_steps=1000, lr=2e-3, save_every=500)
    )
    qformer: QFormerConfig = QFormerConfig(
        fit=replace(
            QFormerConfig().fit, max_steps=400, batch_size=32, lr=5e-4, warmup_steps=50,
            save_every=200, log_every=50,
        )
    )  # fmt: skip
    captioner: CaptionerConfig = CaptionerConfig(
        fit=FitConfig(
            max_steps=750, batch_size=32, lr=1e-3, warmup_steps=50, save_every=250,
            eval_every=250, log_every=50,
        ),
        layer_decay=0.95,
    )  # fmt: skip
    pseudo_beams: int = 5  # the paper's beam size
    pseudo_chunk: int = 256  # images per saved chunk of pseudo-captions
    samples: int = 16  # held-out faces captioned and scored at every evaluation

    def settings(self) -> dict:
        """Everything that shapes the trained models: these settings (less the ``RUNTIME_ONLY``
        fit settings) and the preset's shapes."""
        recipe = asdict(self)
        folder = foundations_module.resolve(self.foundations, self.preset)
        recipe["foundations"] = foundations_module.manifest_digest(folder) if folder else None
        if folder:  # the language model comes pre-trained: its settings shape nothing
            del recipe["language_model"]
        for stage in ("language_model", "qformer", "captioner"):
            if stage not in recipe:
                continue
            fit = recipe[stage]["fit"]
            recipe[stage]["fit"] = {k: v for k, v in fit.items() if k not in RUNTIME_ONLY}
        return json.loads(
            json.dumps({"recipe": recipe, "preset": asdict(preset(self.preset))}, default=str)
        )

    def fingerprint(self) -> str:
        """12 hex digits of :meth:`settings`: a run folder name that changes when they do."""
        text = json.dumps(self.settings(), sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:12]

    def fits(self) -> dict[str, FitConfig]:
        """The fit settings of each trained stage, by the name of its field."""
        return {k: getattr(self, k).fit for k in ("language_model", "qformer", "captioner")}

    def with_fits(self, **changes) -> RecipeConfig:
        """These settings with ``changes`` (e.g. ``parallel="fsdp"``) in every stage's fit."""
        stages = {
            name: replace(getattr(self, name), fit=replace(fit, **changes))
            for name, fit in self.fits().items()
        }
        return replace(self, **stages)

    @classmethod
    def smoke(cls) -> RecipeConfig:
        return cls(
            language_model=LanguageModelConfig(
                fit=replace(LanguageModelConfig().fit, max_steps=20)
            ),
            qformer=QFormerConfig.smoke(),
            captioner=CaptionerConfig.smoke(),
            pseudo_beams=1,
            pseudo_chunk=8,
            samples=2,
        )

    @classmethod
    def small_gpu(cls) -> RecipeConfig:
        """The ``small`` preset on one GPU in minutes, on 224-pixel faces and a 12-layer encoder
        and language model: each captioner sees 400 steps of 64 (25,600 examples, against 32,000
        in the ``tiny`` CPU run), sized so that the whole chapter fits one 10-minute GPU job."""
        base = cls()
        return cls(
            preset="small",
            language_model=LanguageModelConfig(
                fit=replace(base.language_model.fit, max_steps=1000, lr=5e-4)
            ),
            qformer=QFormerConfig(
                fit=replace(
                    base.qformer.fit, max_steps=300, batch_size=64, lr=5e-4, warmup_steps=30,
                    save_every=150,
                )
            ),
            captioner=CaptionerConfig(
                fit=replace(
                    base.captioner.fit, max_steps=400, batch_size=64, lr=5e-4, warmup_steps=40,
                    save_every=200, eval_every=200,
                )
            ),
        )  # fmt: skip


# ---------------------------------------------------------------- text for the language model


def content_statement(caption: str) -> str:
    """A short statement of what a caption says, from the caption itself (the mentions parser):
    ``"Action units 6 12. Emotion happiness."``."""
    aus = sorted(mentioned_aus(caption))
    named = named_emotions(caption)
    emotions = [e.name for e in EMOTIONS if e.name in named]  # lexicon order: deterministic
    parts = [f"Action units {' '.join(map(str, aus))}." if aus else "No action units."]
    if emotions:
        parts.append(f"Emotion {' and '.join(emotions)}.")
    return " ".join(parts)


def lm_texts(captions: Sequence[str], *, unique: bool = True) -> list[str]:
    """The pre-training text of a from-scratch language model: every caption, and every caption
    after a statement of its content; each distinct caption once (``unique``), or as often as
    the captions hold it, so that the model learns how likely each one is (the foundations:
    a caption that many faces share, such as the fixed no-AU text, must come easily to it).

    BLIP-2 relies on a frozen LLM that already conditions what it writes on what precedes it; the
    Q-Former learns to write that preceding context (the soft prompt). A small model trained on
    captions alone learns to write captions but never to read a context, so no soft prompt can
    steer it: its captions stay the same whatever the image. The statements teach it to read
    one. They are derived from the captions (no labels, no test images), and the Q-Former still
    has to find the content in the pixels.
    """
    texts = sorted(set(captions)) if unique else list(captions)
    return texts + [f"{content_statement(c)} {c}" for c in texts]


# ---------------------------------------------------------------- pseudo-captions from models


PSEUDO = {"au": "au", "emotion": "emot"}  # fusion's aspect -> the captioner that writes it


class ModelPseudoCaptioner:
    """AU-BLIP and Emot-BLIP as the pseudo-captioners of fusion (a
    :data:`facecap_lib.captions.fusion.PseudoCaptioner`): ``aspect="au"`` asks AU-BLIP,
    ``"emotion"`` Emot-BLIP. Captions are saved per chunk in ``folder`` and reused."""

    def __init__(
        self,
        checkpoints: dict[str, Path],
        folder: Path,
        files: Callable[[pd.DataFrame], list[str]],
        *,
        beams: int = 5,
        chunk: int = 256,
        batch_size: int = 64,
        device: str = "auto",
        progress: bool = True,
        saved_only: bool = False,
    ):
        self.checkpoints, self.batch_size = checkpoints, batch_size
        # True: never caption (a dry run); a face without a saved caption is a LookupError
        self.saved_only = saved_only
        self.folder = Path(folder)
        self.files = files
        self.beams, self.chunk, self.device, self.progress = beams, chunk, device, progress
        from facecap_lib.inference import checkpoint_digest

        digest = hashlib.sha256()
        for aspect in sorted(checkpoints):
            digest.update(f"{aspect}={checkpoint_digest(checkpoints[aspect])};".encode())
        self.name = f"model-{digest.hexdigest()[:10]}"  # changes when a captioner is retrained

    def __call__(self, faces: pd.DataFrame, aspect: str) -> list[str]:
        from facecap_lib.inference import describe, load_captioner

        if aspect not in self.checkpoints:
            raise ValueError(f"aspect must be one of {sorted(self.checkpoints)}, got {aspect!r}")
        ids = list(image_ids(faces))
        store = self.folder / f"{self.name}-{aspect}.parquet"
        done = pd.read_parquet(store) if store.exists() else pd.DataFrame(columns=["id", "text"])
        known = dict(zip(done["id"], done["text"], strict=True))
        todo = [i for i, image in enumerate(ids) if image not in known]
        if todo and self.saved_only:
            raise LookupError(f"{len(todo)} of {len(ids)} {aspect} pseudo-captions are not saved")
        if todo:
            model, tokenizer = load_captioner(self.checkpoints[aspect], self.device)
            paths = self.files(faces)
            chunks = range(0, len(todo), self.chunk)
            if self.progress:
                chunks = progress_bar(chunks, desc=f"pseudo-captions ({aspect})", unit="chunk")
            for start in chunks:
                part = todo[start : start + self.chunk]
                out = describe(
                    [paths[i] for i in part],
                    model=model,
                    tokenizer=tokenizer,
                    crop="none",
                    beams=self.beams,
                    batch_size=self.batch_size,
                    device=self.device,
                )
                failed = [d for d in out if d.caption is None]
                if failed:
                    raise RuntimeError(
                        f"pseudo-captioning failed: {failed[0].source}: {failed[0].error}"
                    )
                for i, d in zip(part, out, strict=True):
                    known[ids[i]] = d.caption
                self.folder.mkdir(parents=True, exist_ok=True)
                tmp = store.with_suffix(".tmp")
                pd.DataFrame({"id": list(known), "text": list(known.values())}).to_parquet(tmp)
                tmp.replace(store)
        return [known[i] for i in ids]


# ---------------------------------------------------------------- the recipe


SAMPLE_METRICS = ("sample_au_f1", "sample_emotion_hit")


def sample_evaluator(faces: pd.DataFrame, count: int, device: str = "auto"):
    """Periodic evaluation for :func:`~facecap_lib.training.captioner.train_captioner`: greedy
    captions of the first ``count`` of ``faces`` (held out, with their labels), each scored on
    the aspect it is labelled with, by chapter 5's parser: ``sample_au_f1``, the F1 of the AUs
    the captions mention over every labelled AU of the AU-labelled faces (pooled: a handful of
    faces gives too few positives per AU), and ``sample_emotion_hit``, the share of the
    emotion-labelled faces whose captions name all their emotions. A metric whose faces are
    missing from the sample is left out."""
    from facecap_lib.evaluation.faithfulness import emotion_named, parse_caption
    from facecap_lib.inference import describe

    chosen = faces.iloc[:count]
    files = image_files(chosen)
    labels = chosen[list(AU_COLUMNS)].to_numpy(float)
    numbers = np.array([int(c[2:]) for c in AU_COLUMNS])

    def evaluate(model, tokenizer, step: int) -> dict:
        out = describe(files, model=model, tokenizer=tokenizer, crop="none", beams=1, device=device)
        captions = [d.caption or "" for d in out]
        result = {"samples": captions}
        said = np.array([np.isin(numbers, list(parse_caption(c).aus)) for c in captions])
        known = ~np.isnan(labels)
        if known.any():
            truth = labels == 1
            tp = int((said & truth & known).sum())
            fp, fn = int((said & ~truth & known).sum()), int((~said & truth & known).sum())
            result["sample_au_f1"] = 2 * tp / (2 * tp + fp + fn) if tp else 0.0
        named = emotion_named(captions, chosen)
        if len(named):
            result["sample_emotion_hit"] = float(named["hit"].mean())
        return result

    return evaluate


class Recipe:
    """The three stages for one face table, one caption corpus and one run folder.

    Args:
        faces: the curated face table (with ``data_root``), e.g. chapter 2's.
        tables: chapter 3's caption corpus (``captions``, ``mix``, ``cat``, ``exp``), made with a
            stand-in pseudo-captioner; stage 3 rebuilds Mix / Cat / Exp with AU-BLIP and Emot-BLIP.
        run_dir: where every stage writes.
        describer: the describer that fuses captions in stage 3 (chapter 3's).
    """

    def __init__(
        self,
        faces: pd.DataFrame,
        tables: dict[str, pd.DataFrame],
        run_dir: str | Path,
        describer,
        config: RecipeConfig | None = None,
        *,
        work: str | Path | None = None,
        device: str = "auto",
        log: Callable[[str], None] | None = print,
        progress: bool = True,
    ):
        self.faces, self.tables, self.describer = faces, tables, describer
        self.run_dir = Path(run_dir)
        self.config = config or RecipeConfig()
        self.work, self.device, self.log, self.progress = work, device, log, progress
        self._claim_run_dir()
        self._file = dict(zip(image_ids(faces), image_files(faces), strict=True))
        self._fused: dict[str, pd.DataFrame] | None = None
        self._foundations = None
        if self.config.captioner.init and log:
            log(
                f"captioner.init={self.config.captioner.init}: its language model and Q-Former "
                "are used; the language_model, qformer and foundations settings are not"
            )
        elif self.foundations() is not None and log:
            log(
                f"foundations {self.foundations().manifest['preset']}/{self.foundations().digest}: "
                "the image encoder and the language model start pre-trained; the "
                "language_model settings are not used"
            )

    def _claim_run_dir(self) -> None:
        """Write the settings into the run folder, or refuse a folder made with other settings:
        finished stages are reused, so a folder must never mix models of two recipes. Under
        torchrun the main process writes it; the others read it after a barrier."""
        path = self.run_dir / SETTINGS_FILE
        settings = self.config.settings()

        def claim() -> None:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            if not path.exists():
                path.write_text(json.dumps(settings, indent=1, sort_keys=True))

        distributed.main_first(claim)
        before = json.loads(path.read_text())
        if before != settings:
            changed = sorted(_changed(before, settings))
            raise ValueError(
                f"{self.run_dir} holds runs made with other settings (changed: "
                f"{', '.join(changed[:6])}); use another run folder or delete this one"
            )

    # -- pairs
    def pairs(self, table: pd.DataFrame, split: str = "train") -> list[Pair]:
        rows = table[table["split"] == split]
        missing = sorted(set(rows["image_id"]) - set(self._file))
        if missing:
            raise ValueError(f"captions of images not in the face table, e.g. {missing[0]}")
        return [
            Pair(self._file[i], c) for i, c in zip(rows["image_id"], rows["caption"], strict=True)
        ]

    def captions_for(self, name: str) -> pd.DataFrame:
        """The caption table a captioner trains on."""
        captions = self.tables["captions"]
        if name == "au":
            return captions[captions["kind"] == "au"]
        if name == "emot":
            return captions[captions["kind"] == "emotion"]
        return self.fused_tables()[name]

    def test_faces(self, name: str) -> pd.DataFrame:
        """Held-out faces for a captioner's periodic evaluation, in a seeded order: AU-labelled
        ones for AU-BLIP, emotion-labelled ones for Emot-BLIP, the two alternating for the
        captioners that describe both."""
        test = self.faces[self.faces["split"] == "test"]
        au = test[test[list(AU_COLUMNS)].notna().any(axis=1)].sample(frac=1.0, random_state=0)
        emotion = test[test["emotions"].map(len) > 0].sample(frac=1.0, random_state=0)
        if name == "au":
            return au
        if name == "emot":
            return emotion
        n = min(len(au), len(emotion))
        both = [df.iloc[i : i + 1] for i in range(n) for df in (au, emotion)]
        return pd.concat(both) if both else pd.concat([au, emotion])

    # -- stages
    def _lm_needed(self) -> bool:
        return self.config.captioner.init is None

    def foundations(self) -> foundations_module.Foundations | None:
        """The pre-trained encoder and language model the from-scratch models start from
        (``config.foundations``), or None (random weights; or a pre-trained captioner)."""
        if self._foundations is None and self._lm_needed():
            folder = foundations_module.resolve(self.config.foundations, self.config.preset)
            if folder is not None:
                self._foundations = foundations_module.load_foundations(folder)
        return self._foundations

    def tokenizer(self):
        """The captioners' tokenizer, saved in the run folder (by the main process)."""
        folder = self.run_dir / "tokenizer"
        distributed.write_once(folder / "tokenizer.json", lambda: self._make_tokenizer(folder))
        return load_tokenizer(folder)

    def _make_tokenizer(self, folder: Path) -> None:
        if not self._lm_needed():
            from facecap_lib.models.pretrained import load_pretrained

            tokenizer = load_pretrained(self.config.captioner.init)[1]
        elif self.foundations() is not None:
            tokenizer = self.foundations().tokenizer
        else:
            tokenizer = train_tokenizer(lm_texts(self._all_captions()))
        tokenizer.save_pretrained(folder)

    def _all_captions(self) -> list[str]:
        texts = []
        for name in ("captions", "mix", "cat", "exp"):
            table = self.tables[name]
            texts += list(table.loc[table["split"] == "train", "caption"])
        return texts

    def language_model(self) -> OPTForCausalLM | None:
        """The frozen language model of a from-scratch preset: the foundations', or pre-trained
        here (or loaded when it was)."""
        if not self._lm_needed():
            return None
        if self.foundations() is not None:
            return self.foundations().language_model()
        return pretrain_language_model(
            preset(self.config.preset), self.tokenizer(), lm_texts(self._all_captions()),
            self.run_dir / "language_model", self.config.language_model,
            device=self.device, log=self.log, progress=self.progress,
        )  # fmt: skip

    def qformer(self) -> FitResult | None:
        """BLIP-2 stage 1 on every training caption of the images' own aspects."""
        if not self._lm_needed():
            return None  # a pre-trained captioner brings its trained Q-Former
        captions = self.tables["captions"]
        own = captions[captions["kind"].isin(["au", "emotion"])]
        start = self.foundations()
        return train_qformer(
            self.pairs(own), self.run_dir / "qformer", self.config.qformer,
            spec=self.config.preset, device=self.device, tokenizer=self.tokenizer(),
            image_encoder=start.install_vision if start else None,
            log=self.log, progress=self.progress,
        )  # fmt: skip

    def captioner(self, name: str) -> FitResult:
        """Train (or load) one captioner: ``au``, ``emot``, ``mix``, ``cat`` or ``exp``."""
        if name not in CAPTIONERS:
            raise ValueError(f"unknown captioner {name!r}; known: {list(CAPTIONERS)}")
        pairs = self.pairs(self.captions_for(name))
        if self.log and not (self.run_dir / f"{name}-blip" / "final").exists():
            self.log(f"{CAPTIONERS[name]}: {len(pairs)} training pairs")
        evaluate = sample_evaluator(self.test_faces(name), self.config.samples, self.device)
        return self._stage2(name, pairs, evaluate=evaluate, log=self.log)

    def general(self) -> FitResult:
        """The general captioner: AU-BLIP's training (the same start, settings, steps and
        images: every training image of the AU and emotion captions) on captions of the person,
        the pose, the light and the occluder, never of the expression
        (:mod:`facecap_lib.captions.general`). The paper's first finding compares the
        task-specific captioners with such a captioner."""
        from facecap_lib.captions.general import general_captions

        captions = self.tables["captions"]
        ids = sorted(set(captions.loc[captions["split"] == "train", "image_id"]))
        faces = self.faces.assign(image_id=list(image_ids(self.faces))).set_index("image_id")
        faces = faces.loc[ids].reset_index()
        texts = general_captions(faces, ids)
        pairs = [Pair(self._file[i], t) for i, t in zip(ids, texts, strict=True)]
        return self._stage2("general", pairs, log=self.log)

    def untrained(self) -> FitResult:
        """The baseline every captioner starts from, saved as a captioner: the frozen language
        model and the stage-1 Q-Former, no stage-2 step (a projection the language model has
        never read). Its encoder is the plain encoder of the probes."""
        pairs = self.pairs(self.captions_for("au"))
        return self._stage2("untrained", pairs, untrained=True, log=None)

    def _stage2(self, name, pairs, *, untrained=False, evaluate=None, log=None) -> FitResult:
        """Stage 2 in ``run_dir/<name>-blip`` from the stage-1 Q-Former and the frozen language
        model (or load it when finished)."""
        folder = self.run_dir / f"{name}-blip"
        config = self.config.captioner
        if untrained:
            config = replace(config, fit=replace(config.fit, max_steps=0))
        if untrained or evaluate is None:
            config = replace(config, fit=replace(config.fit, eval_every=None))
        common = dict(
            spec=self.config.preset, device=self.device, log=log, progress=self.progress,
            name=TITLES[name],
        )  # fmt: skip
        if (folder / "final").exists():
            result = train_captioner(pairs, folder, config, evaluate=evaluate, **common)
        else:
            stage1 = self.qformer()
            result = train_captioner(
                pairs, folder, config,
                tokenizer=self.tokenizer(),
                language_model=self.language_model(),
                initialize=(lambda m: install_qformer(m, stage1.model)) if stage1 else None,
                evaluate=evaluate,
                **common,
            )  # fmt: skip
        record = Path(result.final) / TRAINING_DATA_FILE

        def write() -> None:
            data = training_data(self.faces, [p.image for p in pairs])
            record.write_text(json.dumps(data, indent=1))

        distributed.write_once(record, write)
        return result

    def checkpoints(self, names: Sequence[str] = tuple(TITLES)) -> dict[str, Path]:
        """Title -> final checkpoint folder of each captioner (the baselines ``untrained`` and
        ``general`` and those of :data:`~facecap_lib.training.CAPTIONERS`), trained first where
        the run lacks one."""
        out = {}
        for name in names:
            special = {"untrained": self.untrained, "general": self.general}
            result = special[name]() if name in special else self.run(name)
            out[TITLES[name]] = Path(result.final)
        return out

    def pseudo_captioner(self, saved_only: bool = False) -> ModelPseudoCaptioner:
        """AU-BLIP and Emot-BLIP (trained first if needed) as fusion's pseudo-captioners; with
        ``saved_only`` their finished folders as they are, and their saved captions only (a
        dry run: nothing trains or captions)."""
        if saved_only:
            checkpoints = {a: self.run_dir / f"{n}-blip" / "final" for a, n in PSEUDO.items()}
        else:
            checkpoints = {a: self.captioner(n).final for a, n in PSEUDO.items()}
        return ModelPseudoCaptioner(
            checkpoints, self.run_dir / "pseudo", image_files,
            beams=self.config.pseudo_beams, chunk=self.config.pseudo_chunk,
            device=self.device, progress=self.progress, saved_only=saved_only,
        )  # fmt: skip

    def fused_tables(self) -> dict[str, pd.DataFrame]:
        """Mix / Cat / Exp training sets with the models' pseudo-captions (cached). Under
        torchrun the main process captions and fuses; the others load what it saved."""
        if self._fused is None:
            pseudo = self.pseudo_captioner()

            def fuse():
                return caption_corpus_module.caption_corpus(
                    self.faces, self.describer, pseudo, work=self.work
                )

            self._fused = distributed.main_then_others(fuse)
        return self._fused

    def run(self, stage: str):
        """Run one stage by name (see :data:`facecap_lib.training.STAGES`)."""
        if stage not in STAGES:
            raise ValueError(f"unknown stage {stage!r}; stages: {list(STAGES)}")
        if stage == "language-model":
            return self.language_model()
        if stage == "qformer":
            return self.qformer()
        if stage == "pseudo":
            return self.fused_tables()
        return self.captioner(stage)

    def summary(self) -> pd.DataFrame:
        """One row per finished captioner: steps, final loss, and the last periodic evaluation's
        sample metrics (:func:`sample_evaluator`; empty where its faces had no such label)."""
        rows = []
        for name, title in CAPTIONERS.items():
            history_file = self.run_dir / f"{name}-blip" / "final" / "history.json"
            if history_file.exists():
                history = json.loads(history_file.read_text())
                evaluated = [h for h in history if "samples" in h]
                last = evaluated[-1] if evaluated else {}
                rows.append(
                    {
                        "captioner": title,
                        "steps": history[-1]["step"],
                        "final loss": history[-1]["loss"],
                        **{k.replace("_", " "): last.get(k) for k in SAMPLE_METRICS},
                    }
                )
        return pd.DataFrame(rows)


def default_device_config() -> RecipeConfig:
    """``small`` on a GPU, ``tiny`` on a CPU."""
    return RecipeConfig.small_gpu() if torch.cuda.is_available() else RecipeConfig()


def recipe_config(smoke: bool = False, preset_name: str = "auto") -> RecipeConfig:
    """The settings chapters and ``facecap train`` use: smoke, ``auto`` (``small`` on a GPU,
    ``tiny`` on a CPU), ``small`` (its one-GPU settings) or any preset with the defaults."""
    if smoke:
        return RecipeConfig.smoke()
    if preset_name == "auto":
        return default_device_config()
    if preset_name == "small":
        return RecipeConfig.small_gpu()
    preset(preset_name)  # unknown names fail here, naming the known ones
    return RecipeConfig(preset=preset_name)


def chapter_recipe(
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
    corpus=None,
    progress: bool = False,
) -> Recipe:
    """The recipe of chapters 4-6 on the embedded default data: the same faces, captions,
    settings and run folder in every chapter, so chapters 5 and 6 read chapter 4's models (and
    train them first when run on their own). ``facecap train`` runs it too, where ``init`` (a
    pre-trained captioner), ``parallel`` (every stage's ``FitConfig.parallel``), ``run_dir``,
    ``device`` and ``seed`` (every stage's, for the spread over seeds) can change, as can the
    settings themselves (``config``, default :func:`recipe_config` of ``smoke`` and
    ``preset_name``) and the size of the default corpus (``corpus``, a
    :class:`~facecap_lib.data.default_corpus.DefaultCorpus`); ``progress`` shows progress bars
    (curation and training). It is the book's project (:func:`book_project`) run by
    :class:`~facecap_lib.runner.ProjectRun`, the machinery of ``facecap run``: the same keyed
    faces, captions and run folder."""
    from facecap_lib.data import default_corpus
    from facecap_lib.runner import ProjectRun

    spec = corpus or (
        default_corpus.DefaultCorpus.smoke() if smoke else default_corpus.DefaultCorpus.full()
    )
    config = config or recipe_config(smoke, preset_name)
    if init:
        config = replace(config, captioner=replace(config.captioner, init=init))
    if parallel:
        config = config.with_fits(parallel=parallel)
    if seed is not None:
        config = config.with_fits(seed=seed)
    run = ProjectRun(
        book_project(spec, config.preset), device=device, log=log, progress=progress,
        config=config, run_dir=run_dir,
    )  # fmt: skip
    return run.recipe()


def book_project(corpus=None, preset_name: str = "tiny"):
    """The book's project (``projects/synthfacs-book.yaml``, in the work folder): the SynthFACS
    default corpus ``corpus`` (default: the full one), the describer the environment names, the
    shipped foundations."""
    from facecap_lib.data.default_corpus import DefaultCorpus
    from facecap_lib.paths import cache_root
    from facecap_lib.project import Describer, Model, Project, Splits, SynthFACS

    corpus = corpus or DefaultCorpus.full()
    splits = Splits(test_fraction=corpus.test_fraction, seed=corpus.seed, every=corpus.every)
    return Project(
        name="synthfacs-book",
        output=str(cache_root()),
        synthfacs=SynthFACS.of(corpus),
        splits=splits,
        describer=Describer(kind="environment"),
        model=Model(preset=preset_name),
    )
