"""What the captioners' image features know: linear probes and fine-tuning (paper Sec. 4.3,
Table 3; supplementary Tables 2-8).

Features come from two places of any checkpoint (:func:`extract`):

- ``encoder``: the image encoder's output, the post-norm CLS token (``pooler_output``);
- ``qformer``: the Q-Former's query outputs, averaged over the queries (what the language model
  reads, before the projection).

They are cached on disk (:class:`FeatureCache`) under a key of the checkpoint's weights file and
the images, so chapters and reruns extract them once. A :func:`linear_probe` is one fully connected
layer on frozen, standardised features (a logistic regression per AU, a multinomial one for
emotions), fitted with L-BFGS: deterministic and free of learning-rate tuning.
:func:`fine_tune` trains the encoder and the layer end to end. Scores:

- AU detection (:func:`au_detection`): F1 x100 per AU and their mean, ROC-AUC and accuracy. F1
  follows the usual convention: an AU with no positives and no predictions in the test set
  scores 0 (scikit-learn's ``zero_division=0``); ROC-AUC is undefined (NaN) for an AU with a
  single class, and is left out of the mean. The supplementary warns that accuracy flatters a
  detector of a rare AU (predicting "absent" everywhere scores high), which is why it is
  reported next to F1 and not instead of it.
- Emotion (:func:`emotion_scores`): accuracy and macro F1 over the classes present.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from sklearn.metrics import f1_score, roc_auc_score

from facecap_lib.data.images import load_rgb, to_tensor
from facecap_lib.inference import checkpoint_digest, load_captioner
from facecap_lib.training.finetune import (
    FineTuneConfig,
    FineTuneTask,
    QFormerFineTuneTask,
    mean_query_output,
)
from facecap_lib.training.fit import fit

SOURCES = ("encoder", "qformer")


# ------------------------------------------------------------------ features


@torch.no_grad()
def extract(model, images: Sequence, source: str, *, batch_size: int = 64) -> np.ndarray:
    """(n, d) features of ``images`` (paths or PIL images) from a loaded BLIP-2 model."""
    if source not in SOURCES:
        raise ValueError(f"feature source must be one of {SOURCES}, got {source!r}")
    model.eval()
    device = next(model.parameters()).device
    size = model.config.vision_config.image_size
    out = []
    for start in range(0, len(images), batch_size):
        chunk = [
            load_rgb(i) if isinstance(i, str | Path) else i
            for i in images[start : start + batch_size]
        ]
        pixels = to_tensor(chunk, size).to(device, next(model.vision_model.parameters()).dtype)
        if source == "encoder":
            out.append(model.vision_model(pixel_values=pixels).pooler_output.float().cpu())
            continue
        features = mean_query_output(model.vision_model, model.qformer, model.query_tokens, pixels)
        out.append(features.float().cpu())
    return torch.cat(out).numpy()


class FeatureCache:
    """Features on disk, one ``.npy`` per (checkpoint, source, image list)."""

    def __init__(self, root: str | Path, device: str = "cpu"):
        self.root = Path(root)
        self.device = device
        self._loaded: tuple[Path, object] | None = (
            None  # the last checkpoint, kept for its next source
        )

    @staticmethod
    def key(checkpoint: str | Path, source: str, images: Sequence[str]) -> str:
        text = checkpoint_digest(checkpoint) + json.dumps([source, [str(i) for i in images]])
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def features(self, checkpoint: str | Path, images: Sequence[str], source: str) -> np.ndarray:
        """Cached features of ``images`` (file paths) from the checkpoint folder."""
        folder = Path(checkpoint)
        key = self.key(checkpoint, source, images)
        path = self.root / f"{folder.parent.name}-{folder.name}-{source}-{key}.npy"
        if path.exists():
            return np.load(path)
        if self._loaded is None or self._loaded[0] != folder:
            self._loaded = (folder, load_captioner(folder, self.device, torch.float32)[0])
        values = extract(self._loaded[1], list(images), source)
        self.root.mkdir(parents=True, exist_ok=True)
        partial = path.with_suffix(".tmp.npy")
        np.save(partial, values)
        partial.replace(path)  # a crash never leaves a truncated cache file
        return values


# ------------------------------------------------------------------ probes


@dataclass
class Probe:
    """A fitted linear layer (one logistic regression per AU, or one multinomial regression)
    with the feature standardisation it was trained with."""

    mean: np.ndarray
    std: np.ndarray
    heads: (
        list  # multilabel: a fitted model or a constant probability per AU; multiclass: one model
    )
    task: str

    def scores(self, x: np.ndarray) -> np.ndarray:
        """Probabilities: per AU (multi-label) or per class (multi-class)."""
        z = (np.asarray(x, dtype=float) - self.mean) / self.std
        if self.task == "multiclass":  # a column per class index, 0 for classes never seen
            model = self.heads[0]
            classes = model.classes_.astype(int)
            out = np.zeros((len(z), classes.max() + 1))
            out[:, classes] = model.predict_proba(z)
            return out
        return np.stack(
            [
                h.predict_proba(z)[:, 1] if hasattr(h, "predict_proba") else np.full(len(z), h)
                for h in self.heads
            ],
            axis=1,
        )


def linear_probe(
    x: np.ndarray, y: np.ndarray, *, task: str = "multilabel", C: float = 1.0
) -> Probe:
    """One linear layer on frozen, standardised features, fitted by L-BFGS (scikit-learn's
    logistic regression, L2 strength ``1/C``). ``task="multilabel"``: ``y`` is (n, k) of 0/1, NaN
    = not labelled (left out of that AU's fit), an AU with one class seen predicts its training
    rate; ``"multiclass"``: ``y`` is (n,) of class indices."""
    from sklearn.linear_model import LogisticRegression

    if task not in ("multilabel", "multiclass"):
        raise ValueError(f"task must be 'multilabel' or 'multiclass', got {task!r}")
    x = np.asarray(x, dtype=float)
    if x.ndim != 2 or len(x) != len(y):
        raise ValueError(f"features {x.shape} do not match {len(y)} labels")
    mean, std = x.mean(0), np.maximum(x.std(0), 1e-6)
    z = (x - mean) / std
    if task == "multiclass":
        model = LogisticRegression(C=C, max_iter=1000).fit(z, np.asarray(y))
        return Probe(mean, std, [model], task)
    y = np.asarray(y, dtype=float)
    heads = []
    for k in range(y.shape[1]):
        known = ~np.isnan(y[:, k])
        labels = y[known, k]
        if len(np.unique(labels)) < 2:
            heads.append(float(labels.mean()) if len(labels) else 0.0)
            continue
        heads.append(LogisticRegression(C=C, max_iter=1000).fit(z[known], labels))
    return Probe(mean, std, heads, task)


def fine_tune(
    model,
    images: Sequence,
    y: np.ndarray,
    *,
    task: str = "multilabel",
    source: str = "encoder",
    steps: int = 300,
    batch_size: int = 32,
    lr: float = 5e-4,
    seed: int = 0,
    progress: bool = True,
    out_dir: str | Path | None = None,
):
    """Train a BLIP-2 model's image encoder (or ``model`` itself, a ``Blip2VisionModel``) and a
    linear layer on its CLS output end to end (the paper's fine-tuning strategy:
    :class:`~facecap_lib.training.finetune.FineTuneTask`, AdamW, cosine schedule); with
    ``source="qformer"`` the encoder, the Q-Former and its queries and a linear layer on the mean
    query output (:class:`~facecap_lib.training.finetune.QFormerFineTuneTask`). Returns a function
    that scores new images like :meth:`Probe.scores`. ``model`` is changed in place. With
    ``out_dir`` the run is checkpointed there, resumed, and loaded instead of redone once
    finished; without, it trains in a temporary folder."""
    import tempfile
    from contextlib import nullcontext
    from dataclasses import replace

    if source not in SOURCES:
        raise ValueError(f"feature source must be one of {SOURCES}, got {source!r}")
    defaults = FineTuneConfig()
    config = FineTuneConfig(
        fit=replace(defaults.fit, max_steps=steps, batch_size=batch_size, lr=lr, seed=seed),
        objective=task,
    )
    if source == "qformer":
        tuner = QFormerFineTuneTask(model, images, y, config)
    else:
        tuner = FineTuneTask(getattr(model, "vision_model", model), images, y, config)
    vision = tuner.vision
    device = next(model.parameters()).device
    with tempfile.TemporaryDirectory() if out_dir is None else nullcontext(out_dir) as folder:
        trained = fit(tuner, folder, config.fit, device=device, log=None, progress=progress).model
    trained.eval()
    size = vision.config.image_size

    @torch.no_grad()
    def scores(new_images: Sequence) -> np.ndarray:
        batch = to_tensor(
            [load_rgb(i) if isinstance(i, str | Path) else i for i in new_images], size
        ).to(device)
        logits = torch.cat([trained(batch[i : i + 64]) for i in range(0, len(batch), 64)])
        probabilities = torch.sigmoid(logits) if task == "multilabel" else logits.softmax(-1)
        return probabilities.float().cpu().numpy()

    return scores


def fine_tuned(
    root: str | Path,
    checkpoint: str | Path,
    images: Sequence[str],
    y: np.ndarray,
    names: Sequence[str],
    steps: int,
    *,
    task: str = "multilabel",
    source: str = "encoder",
    device: str = "cpu",
):
    """:func:`fine_tune` of the captioner in ``checkpoint`` (loaded afresh: it trains) in a folder
    of ``root`` keyed on the checkpoint, the images, their labels ``y`` and label ``names`` (AUs
    or emotions), the steps, the source and the task: interrupted, it resumes; finished, it is
    loaded, not redone. Returns the scoring function."""
    import hashlib
    import json

    labels = hashlib.sha256(np.ascontiguousarray(y, dtype=np.float64).tobytes()).hexdigest()
    key = [checkpoint_digest(checkpoint), [str(i) for i in images], labels, list(names), steps]
    key += [source, task]
    digest = hashlib.sha256(json.dumps(key).encode()).hexdigest()[:12]
    model, _ = load_captioner(checkpoint, device, torch.float32)
    return fine_tune(
        model, images, y, task=task, source=source, steps=steps, progress=False,
        out_dir=Path(root) / f"{Path(checkpoint).parent.name}-{digest}",
    )  # fmt: skip


# ------------------------------------------------------------------ scores


def au_detection(
    y: np.ndarray, scores: np.ndarray, names: Sequence[str], threshold: float = 0.5
) -> pd.DataFrame:
    """Per AU: positives, F1 x100, ROC-AUC and accuracy x100 at ``threshold``, over the labelled
    rows (NaN labels skipped); the last row, ``mean``, averages each column (AUC over defined values)."""
    y, scores = np.asarray(y, dtype=float), np.asarray(scores, dtype=float)
    if y.shape != scores.shape or y.shape[1] != len(names):
        raise ValueError(
            f"labels {y.shape}, scores {scores.shape} and {len(names)} AU names disagree"
        )
    rows = []
    for k, name in enumerate(names):
        known = ~np.isnan(y[:, k])
        truth, said = y[known, k] == 1, scores[known, k] >= threshold
        single_class = truth.all() or not truth.any()
        rows.append(
            {
                "au": name,
                "positives": int(truth.sum()),
                "F1": 100 * f1_score(truth, said, zero_division=0),
                "AUC": np.nan if single_class else roc_auc_score(truth, scores[known, k]),
                "accuracy": 100 * float((truth == said).mean()) if known.any() else np.nan,
            }
        )
    table = pd.DataFrame(rows)
    mean = {"au": "mean", "positives": int(table["positives"].sum())}
    mean.update({c: table[c].mean() for c in ("F1", "AUC", "accuracy")})
    return pd.concat([table, pd.DataFrame([mean])], ignore_index=True)


def emotion_scores(y: np.ndarray, probabilities: np.ndarray) -> dict[str, float]:
    """Accuracy x100 and macro F1 x100 (over the classes in ``y``) of the arg-max class."""
    y = np.asarray(y)
    predicted = np.asarray(probabilities).argmax(1)
    return {
        "accuracy": 100 * float((predicted == y).mean()),
        "macro F1": 100
        * f1_score(y, predicted, labels=np.unique(y), average="macro", zero_division=0),
    }


def probe_table(
    results: dict[str, pd.DataFrame], emotions: dict[str, dict] | None = None
) -> pd.DataFrame:
    """Paper Table 3's shape: one row per feature source (e.g. ``"AU-BLIP Q-Former"``), one column
    per AU (F1 x100), their mean, mean ROC-AUC, and emotion accuracy when given."""
    rows = {}
    for name, table in results.items():
        per_au = table[table["au"] != "mean"].set_index("au")["F1"]
        mean = table[table["au"] == "mean"].iloc[0]
        row = {**per_au.to_dict(), "avg F1": mean["F1"], "avg AUC": mean["AUC"]}
        if emotions and name in emotions:
            row["emotion acc"] = emotions[name]["accuracy"]
        rows[name] = row
    return pd.DataFrame.from_dict(rows, orient="index")
