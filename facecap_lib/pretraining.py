"""``facecap pretrain``: the foundations of a from-scratch preset, built, probed and exported with
their manifest (:mod:`facecap_lib.training.foundations` says what they are and loads them).

:func:`build_foundations` runs the three resumable pre-training steps of
:mod:`facecap_lib.training.foundations` (the corpus, the image encoder, the language model),
then a linear probe of the encoder on the corpus's ``probe`` faces (people pre-training never
saw, :func:`probe_encoder`), and writes the folder a recipe starts from, with a manifest
(:data:`~facecap_lib.training.foundations.MANIFEST`) that names every file's sha256 and tensor
shapes, the settings, the command, the corpus key, the commit, the device, the wall time, the
final losses and the probe: rebuilding with the manifest's command is checked against that probe.
It sits above the evaluation (its probe is the evaluation's linear probe), so that the training
room needs nothing of the evaluation.
"""

from __future__ import annotations

import json
import time
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from transformers import OPTForCausalLM

from facecap_lib.data.synth.actions import RENDERED_AUS
from facecap_lib.data.synth.pretraining import build_pretraining_corpus, corpus_dir
from facecap_lib.data.table import image_files
from facecap_lib.evaluation.probes import au_detection, linear_probe
from facecap_lib.models.device import resolve_device
from facecap_lib.models.presets import build_vision_encoder, preset
from facecap_lib.models.tokenizer import load_tokenizer, train_tokenizer
from facecap_lib.training.checkpoints import finished, load_state
from facecap_lib.training.foundations import (
    FOUNDATIONS_VERSION,
    LM_DIR,
    MAE_FILE,
    MANIFEST,
    VISION_FILE,
    Foundations,
    FoundationsConfig,
    au_targets,
    caption_language,
    corpus_faces,
    language_text,
    load_foundations,
    pretrain_encoder,
    token_features,
    work_dir,
)
from facecap_lib.training.pretrain import pretrain_language_model
from facecap_lib.training.provenance import device_name, file_entry, git_commit


def probe_encoder(vision_state: dict, spec, corpus: pd.DataFrame) -> dict:
    """A linear probe of the encoder's pooled tokens on the corpus's ``probe`` faces (people
    never seen in pre-training): logistic regressions on the first half, per-AU F1 (x100, at
    0.5) and ROC-AUC on the second half, for AUs with at least 10 positives there."""

    probe = corpus[corpus["split"] == "probe"]
    if len(probe) < 4:
        raise ValueError(f"the corpus has {len(probe)} probe faces; the probe needs at least 4")
    vision = build_vision_encoder(spec)
    vision.load_state_dict(vision_state)
    x, y = token_features(vision, image_files(probe)), au_targets(probe)
    half = len(probe) // 2
    scores = linear_probe(x[:half], y[:half]).scores(x[half:])
    names = [f"AU{au}" for au in RENDERED_AUS]
    table = au_detection(y[half:], scores, names)
    table = table[(table["au"] != "mean") & (table["positives"] >= 10)]
    return {
        "features": "mean of the encoder's output tokens",
        "train_faces": half,
        "test_faces": len(probe) - half,
        "aus": len(table),
        "mean_f1": round(float(table["F1"].mean()), 2) if len(table) else None,
        "mean_auc": round(float(table["AUC"].mean()), 4) if len(table) else None,
    }


def build_foundations(
    config: FoundationsConfig | None = None,
    out: str | Path | None = None,
    *,
    work: str | Path | None = None,
    device: str = "auto",
    command: str = "",
    log=print,
    progress: bool = True,
) -> Foundations:
    """Build (or resume, or reload) the foundations of ``config`` and export them into ``out``
    (default: ``<work dir>/export``). ``command`` is recorded in the manifest as the way to
    rebuild them."""
    from safetensors.torch import save_file

    config = config or FoundationsConfig()
    runs = work_dir(config, work)
    encoder_dir = runs / f"encoder-{config.encoder}-{config.encoder_key()}"
    lm_dir = runs / f"language-model-{config.language_model_key()}"
    out = Path(out) if out is not None else runs / f"export-{config.key()}"
    commit = git_commit()  # the code that starts the build (files may change while it runs)
    spent: dict[str, float] = {}
    corpus_folder = corpus_dir(config.corpus, work)
    with _timed(corpus_folder / SECONDS_FILE, spent, "corpus"):
        corpus = build_pretraining_corpus(config.corpus, work=work, progress=progress)
    log and log(f"pre-training corpus: {len(corpus)} faces ({config.corpus.key()})")
    with _timed(encoder_dir / SECONDS_FILE, spent, "encoder"):
        vision_state, encoder_history, mae_state = pretrain_encoder(
            config, corpus, encoder_dir, device=device, log=log, progress=progress
        )
    lm_run = lm_dir / "run"
    with _timed(lm_dir / SECONDS_FILE, spent, "language model"):
        tokenizer, language_model = _language_model(
            config, corpus, lm_dir, work, device, log, progress
        )
    lm_history = load_state(lm_run / "final")["history"]
    began = time.perf_counter()
    probe = probe_encoder(vision_state, preset(config.preset), corpus)
    spent["probe"] = time.perf_counter() - began
    log and log(f"linear probe of the encoder on {probe['test_faces']} new faces: {probe}")

    out.mkdir(parents=True, exist_ok=True)
    save_file(vision_state, out / VISION_FILE, metadata={"preset": config.preset})
    if mae_state is not None:
        save_file(mae_state, out / MAE_FILE, metadata={"preset": config.preset})
    language_model.save_pretrained(out / LM_DIR)
    tokenizer.save_pretrained(out / LM_DIR)
    files = sorted(p for p in out.rglob("*") if p.is_file() and p.name != MANIFEST)
    manifest = {
        "preset": config.preset,
        "version": FOUNDATIONS_VERSION,
        "encoder_objective": config.encoder,
        "labels_used": config.encoder == "supervised",
        "command": command or "facecap_lib.pretraining.build_foundations()",
        "corpus_key": config.corpus.key(),
        "corpus_faces": int((corpus["split"] == "pretrain").sum()),
        "settings_key": config.key(),
        "commit": commit,
        "device": device_name(resolve_device(device)),
        "torch": torch.__version__,
        "created": time.strftime("%Y-%m-%d"),
        # what making each part took (over every attempt: a crash and its resume both count),
        # whether made in this call or by an earlier one that this call reused
        "wall_time_s": round(sum(spent.values()), 1),
        "wall_time_by_step_s": {k: round(v, 1) for k, v in spent.items()},
        "final_losses": {
            "encoder": _last_losses(encoder_history),
            "language_model": _last_losses(lm_history),
        },
        "probe": probe,
        "files": {str(p.relative_to(out)): file_entry(p) for p in files},
        "settings": config.settings(),
    }
    (out / MANIFEST).write_text(json.dumps(manifest, indent=1) + "\n")
    return load_foundations(out)


SECONDS_FILE = "build_seconds.txt"


@contextmanager
def _timed(path: Path, spent: dict[str, float], name: str):
    """The time an artifact took to make, kept beside it in ``path`` and put in
    ``spent[name]``: the seconds spent inside are added to it (over every attempt, so a crash
    and its resume both count) until the artifact is finished; once it is (a ``.done`` file
    beside ``path``), loading it again adds nothing."""
    complete = path.with_suffix(".done")
    finished_before = complete.exists()
    began = time.perf_counter()
    try:
        yield
    finally:  # a failed attempt's time counts too
        if not finished_before:
            before = float(path.read_text()) if path.exists() else 0.0
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(f"{before + time.perf_counter() - began:.3f}")
    complete.touch()
    spent[name] = float(path.read_text())


def _language_model(config, corpus, lm_dir: Path, work, device, log, progress):
    """The tokenizer and the language model of a build: trained on the caption language of the
    corpus's first ``lm_faces`` faces (``language="captions"``), or on that, their general
    captions and ``english_passages`` passages of English (``"general"``:
    :func:`~facecap_lib.training.foundations.language_text`); resumable in ``lm_dir``, or loaded
    once finished without making that text again."""

    tokenizer_dir, lm_run = lm_dir / "tokenizer", lm_dir / "run"
    done = finished(lm_run)
    if done is not None:
        return load_tokenizer(tokenizer_dir), OPTForCausalLM.from_pretrained(done).eval()
    lm_corpus = corpus[corpus["split"] == "pretrain"].iloc[: config.lm_faces]
    if config.language == "general":
        texts = language_text(lm_corpus, config.english_passages, work=work)
    else:
        texts = caption_language(corpus_faces(lm_corpus), work=work)
    if not (tokenizer_dir / "tokenizer.json").exists():
        train_tokenizer(texts).save_pretrained(tokenizer_dir)
    tokenizer = load_tokenizer(tokenizer_dir)  # as a resumed build has it: the same files
    language_model = pretrain_language_model(
        preset(config.preset), tokenizer, texts, lm_run, config.language_model,
        device=device, log=log, progress=progress,
    )  # fmt: skip
    return tokenizer, language_model


def _last_losses(history: list[dict], last: int = 50) -> dict:
    """The mean of each loss over the last ``last`` logged steps (one step is noisy)."""
    if not history:
        return {}
    tail = history[-last:]
    names = [k for k in tail[-1] if k not in ("step", "lr") and isinstance(tail[-1][k], float)]
    return {
        "step": tail[-1]["step"],
        **{k: round(float(np.mean([h[k] for h in tail])), 4) for k in names},
    }
