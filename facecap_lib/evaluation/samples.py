"""The periodic evaluation of a captioner while it trains: a few held-out faces captioned and
scored by the faithfulness parser. The recipe is given it (``Recipe(evaluator=...)``, which the
project runner passes): training itself knows nothing of the evaluation."""

from __future__ import annotations

import numpy as np
import pandas as pd

from facecap_lib.data.table import image_files
from facecap_lib.evaluation.faithfulness import emotion_named, parse_caption
from facecap_lib.inference import describe
from facecap_lib.lexicon import AU_COLUMNS

SAMPLE_METRICS = ("sample_au_f1", "sample_emotion_hit")


def sample_evaluator(faces: pd.DataFrame, count: int, device: str = "auto"):
    """Periodic evaluation for :func:`~facecap_lib.training.captioner.train_captioner`: greedy
    captions of the first ``count`` of ``faces`` (held out, with their labels), each scored on
    the aspect it is labelled with, by chapter 5's parser: ``sample_au_f1``, the F1 of the AUs
    the captions mention over every labelled AU of the AU-labelled faces (pooled: a handful of
    faces gives too few positives per AU), and ``sample_emotion_hit``, the share of the
    emotion-labelled faces whose captions name all their emotions. A metric whose faces are
    missing from the sample is left out."""
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
