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
caption language, and freeze it (see :func:`facecap_lib.training.language_text.lm_texts` for why it reads each caption after a
short statement of its content).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path

import pandas as pd
from transformers import OPTForCausalLM

from facecap_lib.captions import corpus as caption_corpus_module
from facecap_lib.captions.general import general_captions
from facecap_lib.data.synth.corpus import TRUTH_FILE
from facecap_lib.data.table import image_files, image_ids
from facecap_lib.inference import TRAINING_DATA_FILE
from facecap_lib.lexicon import AU_COLUMNS
from facecap_lib.models.presets import preset
from facecap_lib.models.pretrained import load_pretrained
from facecap_lib.models.tokenizer import load_tokenizer, train_tokenizer
from facecap_lib.training import CAPTIONERS, STAGES, TITLES, distributed
from facecap_lib.training import foundations as foundations_module
from facecap_lib.training.captioner import train_captioner
from facecap_lib.training.data import Pair
from facecap_lib.training.fit import FitResult
from facecap_lib.training.language_text import lm_texts
from facecap_lib.training.pretrain import pretrain_language_model
from facecap_lib.training.pseudo import PSEUDO, ModelPseudoCaptioner
from facecap_lib.training.recipe_config import RecipeConfig, recipe_config  # noqa: F401 (re-exported)
from facecap_lib.training.stage1 import install_qformer, train_qformer

SETTINGS_FILE = "recipe.json"


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


class Recipe:
    """The three stages for one face table, one caption corpus and one run folder.

    Args:
        faces: the curated face table (with ``data_root``), e.g. chapter 2's.
        tables: chapter 3's caption corpus (``captions``, ``mix``, ``cat``, ``exp``), made with a
            stand-in pseudo-captioner; stage 3 rebuilds Mix / Cat / Exp with AU-BLIP and Emot-BLIP.
        run_dir: where every stage writes.
        describer: the describer that fuses captions in stage 3 (chapter 3's).
        evaluator: the captioners' periodic evaluation while they train, a function of
            ``(held-out faces, count, device)`` that returns
            :func:`~facecap_lib.training.captioner.train_captioner`'s ``evaluate`` (the project
            runner passes :func:`facecap_lib.evaluation.samples.sample_evaluator`); ``None``: none.
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
        evaluator: Callable | None = None,
    ):
        self.faces, self.tables, self.describer = faces, tables, describer
        self.evaluator = evaluator
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
        evaluate = None
        if self.evaluator is not None:
            evaluate = self.evaluator(self.test_faces(name), self.config.samples, self.device)
        return self._stage2(name, pairs, evaluate=evaluate, log=self.log)

    def general(self, steps: int | None = None) -> FitResult:
        """The general captioner: AU-BLIP's training (the same start, settings, steps and
        images: every training image of the AU and emotion captions; no image mirrored, since
        its captions name sides) on captions of the person,
        the pose, the light and the occluder, never of the expression
        (:mod:`facecap_lib.captions.general`). The paper's first finding compares the
        task-specific captioners with such a captioner. ``steps`` trains it for other than
        AU-BLIP's number of steps, in a folder of its own (``general-blip-<steps>steps``): the
        paper's general BLIP-2 was trained on far more than its captioners, and a longer-trained
        baseline shows what the same steps cost it."""
        captions = self.tables["captions"]
        ids = sorted(set(captions.loc[captions["split"] == "train", "image_id"]))
        faces = self.faces.assign(image_id=list(image_ids(self.faces))).set_index("image_id")
        faces = faces.loc[ids].reset_index()
        texts = general_captions(faces, ids)
        pairs = [Pair(self._file[i], t) for i, t in zip(ids, texts, strict=True)]
        return self._stage2("general", pairs, log=self.log, steps=steps)

    def untrained(self) -> FitResult:
        """The baseline every captioner starts from, saved as a captioner: the frozen language
        model and the stage-1 Q-Former, no stage-2 step (a projection the language model has
        never read). Its encoder is the plain encoder of the probes."""
        pairs = self.pairs(self.captions_for("au"))
        return self._stage2("untrained", pairs, untrained=True, log=None)

    def _stage2(
        self, name, pairs, *, untrained=False, evaluate=None, log=None, steps=None
    ) -> FitResult:
        """Stage 2 in ``run_dir/<name>-blip`` from the stage-1 Q-Former and the frozen language
        model (or load it when finished). The general captioner's images are never mirrored:
        its captions name the side the head turns to and the light comes from."""
        folder = self.run_dir / (f"{name}-blip" if steps is None else f"{name}-blip-{steps}steps")
        config = self.config.captioner
        if steps is not None:
            config = replace(config, fit=replace(config.fit, max_steps=steps))
        if name == "general":
            config = replace(config, flip=False)
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

    def synthfacs_only(self) -> bool:
        """Whether every face is a SynthFACS render (its folder holds the renderer's truth file):
        only then can the general captioner be trained (:meth:`general`)."""
        return training_data(self.faces, list(self._file.values()))["synthfacs_only"]

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
        sample metrics (the recipe's ``evaluator``: each ``sample_*`` figure it returned; empty
        where its faces had no such label)."""
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
                        **{
                            k.replace("_", " "): v
                            for k, v in last.items()
                            if k.startswith("sample_")
                        },
                    }
                )
        return pd.DataFrame(rows)
