"""The paper's evaluation, dataset by dataset, and the report a project run writes.

- **Caption metrics** (paper Table 2): on the test sets of the AU datasets the paper names (GFT
  in the lab, RAF-AU in the wild, :data:`CAPTION_SETS`), each captioner's captions against every
  corpus caption of the face (rule-based and LLM-written), METEOR, ROUGE-L, BLEU-4 and CIDEr as
  the mean over images of the maximum over references (:mod:`facecap_lib.evaluation.captions`).
  A project without those datasets is scored on the test set of every AU-labelled dataset it has.
- **Probes per dataset** (paper Table 3): a linear layer on the frozen features of each
  model's encoder and Q-Former, and the same fine-tuned end to end with the encoder (and
  Q-Former), on each AU-labelled dataset's own AUs (mean F1 x100 and ROC-AUC
  over the AUs its test faces show), BP4D and DISFA also subject-independently over their three
  folds (trained on two, tested on the third, the mean of the three), and on each emotion-labelled
  dataset's one-emotion faces (accuracy x100; AffectNet's 8 classes in the paper).
- **Mix, Cat and Exp** (paper Table 5): automatic correctness and completeness of the three
  strategies' captions on each dataset's labelled test faces and on all of them together, and
  how often each is the most and the least complete (``faithfulness.strategy_scores``).
- **Faithfulness per dataset**: the mean per-AU F1 of the AUs the captions mention on each
  AU-labelled test set (AUs with at least ``min_positives`` positives), and the share of each
  emotion-labelled test set's faces whose every emotion the captions name.

:func:`write_report` writes the tables as Markdown and CSV and their figures as PNG, with the
paper's published numbers beside the rows whose setting matches (:data:`PAPER_TABLE2`: the
ViT-g / OPT-6.7B captioners), and says so where none does.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import pandas as pd

from facecap_lib.evaluation import captions as caption_metrics
from facecap_lib.evaluation import faithfulness, probes
from facecap_lib.evaluation.faces import caption_sets, probe_sets, test_faces
from facecap_lib.evaluation.report import captions, emotion_index, references
from facecap_lib.evaluation.representations import Feature, Scorer, targets

# Paper Table 2 (ViT-g/14, OPT-6.7B): METEOR, ROUGE, Ada-sim (x100) on each test set.
PAPER_TABLE2 = {
    ("vitg-opt6.7b", "AU-BLIP", "rafau"): {"METEOR": 0.263, "ROUGE-L": 0.505, "Ada-sim": 90.55},
    ("vitg-opt6.7b", "AU-BLIP", "gft"): {"METEOR": 0.295, "ROUGE-L": 0.538, "Ada-sim": 93.97},
    ("vitg-opt6.7b", "Exp-BLIP", "rafau"): {"METEOR": 0.184, "ROUGE-L": 0.229, "Ada-sim": 84.65},
    ("vitg-opt6.7b", "Exp-BLIP", "gft"): {"METEOR": 0.217, "ROUGE-L": 0.318, "Ada-sim": 90.75},
}


def caption_table(
    recipe, models: Mapping[str, Path], n: int, *, beams: int = 5, embedders=None
) -> pd.DataFrame:
    """Paper Table 2 per dataset: one row per (dataset, captioner)."""

    rows = []
    for dataset in caption_sets(recipe.faces):
        faces = test_faces(recipe.faces, dataset, "au", n)
        refs = references(recipe, faces, "au")
        for title, texts in captions(recipe, faces, models, beams=beams).items():
            scores = caption_metrics.caption_metrics(texts, refs, embedders=embedders)
            means = scores.mean()
            for name in embedders or {}:
                means[name] *= 100
            rows.append({"dataset": dataset, "captioner": title, **means, "images": len(faces)})
    return pd.DataFrame(rows)


def faithfulness_table(
    recipe, models: Mapping[str, Path], n: int, *, beams: int = 5, min_positives: int = 5
) -> pd.DataFrame:
    """Per dataset and captioner: mean per-AU F1 of the mentioned AUs on AU-labelled test faces,
    and the share of emotion-labelled test faces whose emotions are all named."""

    rows = []
    for dataset in sorted(recipe.faces["dataset"].unique()):
        for kind in ("au", "emotion"):
            faces = test_faces(recipe.faces, dataset, kind, n)
            if faces.empty:
                continue
            for title, texts in captions(recipe, faces, models, beams=beams).items():
                row = {"dataset": dataset, "captioner": title, "faces": len(faces)}
                if kind == "au":
                    scores = faithfulness.au_scores(texts, faces)
                    frequent = scores[scores["positives"] >= min_positives]
                    row["mean per-AU F1"] = frequent["f1"].mean() if len(frequent) else None
                    row["AUs scored"] = len(frequent)
                else:
                    named = faithfulness.emotion_named(texts, faces)
                    row["emotions named"] = named["hit"].mean()
                rows.append(row)
    table = pd.DataFrame(rows).groupby(["dataset", "captioner"], as_index=False, sort=False).first()
    order = ["dataset", "captioner", "faces", "mean per-AU F1", "AUs scored", "emotions named"]
    return table[[c for c in order if c in table.columns]]


def probe_table(recipe, models: Mapping[str, Path], spec) -> pd.DataFrame:
    """Paper Table 3 per dataset (see the module docstring): one row per dataset, protocol,
    feature source and strategy (linear probe; fine-tune unless ``spec.fine_tune_epochs`` is
    0), the 3-fold protocols averaged over their folds. ``spec``: the project's evaluation
    settings. The fine-tunes are trained here unless done before
    (:func:`~facecap_lib.evaluation.representations.fine_tune_all`)."""

    scorer = Scorer(recipe.run_dir, models, spec, recipe.device)
    rows = []
    for s in probe_sets(recipe.faces, spec.probe_train_faces, spec.faces):
        columns = list(s.columns)
        y, names = targets(s.train, columns)
        for title in models:
            for source in probes.SOURCES:
                feature = Feature(title, source)
                for strategy in scorer.strategies():
                    scores = scorer.scores(feature, strategy, s.train, y, names, {"t": s.test})
                    row = {
                        "dataset": s.dataset, "protocol": s.protocol, "features": feature.label,
                        "strategy": strategy, "train": len(s.train), "test": len(s.test),
                    }  # fmt: skip
                    if columns:
                        table = probes.au_detection(
                            s.test[columns].to_numpy(float), scores["t"], columns
                        )
                        mean = table[table["au"] == "mean"].iloc[0]
                        row |= {"avg F1": mean["F1"], "avg AUC": mean["AUC"]}
                    else:
                        truth = emotion_index(s.test)
                        row["accuracy"] = probes.emotion_scores(truth, scores["t"])["accuracy"]
                    rows.append(row)
    keys = ["dataset", "protocol", "features", "strategy"]
    order = [*keys, "train", "test", "avg F1", "avg AUC", "accuracy"]
    if not rows:  # no dataset with training and test faces
        return pd.DataFrame(columns=order)
    table = pd.DataFrame(rows).groupby(keys, as_index=False, sort=False).mean(numeric_only=True)
    return table[[c for c in order if c in table.columns]]


# Paper Table 3 (ViT-g/14 models): BP4D mean AU F1 x100 and AffectNet accuracy x100 of a linear
# layer on each model's features. The paper does not say whether BP4D's figure is the 3-fold or
# the single split: it stands beside both.
PAPER_TABLE3 = {
    "untrained encoder": {"bp4d": 59.5, "affectnet": 44.8},  # the plain ViT-g
    "AU-BLIP Q-Former": {"bp4d": 66.6, "affectnet": 52.2},
    "Emot-BLIP Q-Former": {"bp4d": 58.3, "affectnet": 52.7},
    "Exp-BLIP Q-Former": {"bp4d": 66.2, "affectnet": 51.6},
}


def probes_with_paper(table: pd.DataFrame, preset_name: str) -> pd.DataFrame:
    """``table`` (:func:`probe_table`) with the paper's figure beside the rows of its setting
    (a ViT-g preset, linear probes; BP4D's AU F1, AffectNet's accuracy)."""
    out = table.copy()
    matches = preset_name.startswith("vitg")
    linear = out["strategy"] == "linear probe" if "strategy" in out else [True] * len(out)
    out["paper"] = [
        PAPER_TABLE3.get(f, {}).get(d) if matches and is_linear else None
        for f, d, is_linear in zip(out["features"], out["dataset"], linear, strict=True)
    ]
    return out


STRATEGIES = ("Mix-BLIP", "Cat-BLIP", "Exp-BLIP")
# Paper Table 5 (ViT-B, OPT-2.7B; 505 faces, 9 raters): how often each was chosen most complete.
PAPER_TABLE5 = {"Mix-BLIP": 3.43, "Cat-BLIP": 28.85, "Exp-BLIP": 67.72}


def strategy_table(
    recipe, models: Mapping[str, Path], n: int, *, beams: int = 5, preset_name: str = ""
) -> pd.DataFrame:
    """Paper Table 5 per dataset and over all datasets: one row per (dataset, strategy), with
    the paper's "most complete" share beside the rows of its setting (ViT-B, OPT-2.7B)."""

    chosen = {title: models[title] for title in STRATEGIES}
    parts = []
    for dataset in sorted(recipe.faces["dataset"].unique()):
        faces = pd.concat(
            [test_faces(recipe.faces, dataset, kind, n) for kind in ("au", "emotion")]
        )
        faces = faces[~faces.index.duplicated()]
        if not faces.empty:
            parts.append(faces)
    rows = []
    for dataset, faces in [(p["dataset"].iloc[0], p) for p in parts] + [("all", pd.concat(parts))]:
        scores = faithfulness.strategy_scores(captions(recipe, faces, chosen, beams=beams), faces)
        for strategy, row in scores.iterrows():
            rows.append({"dataset": dataset, "strategy": strategy, "faces": len(faces), **row})
    table = pd.DataFrame(rows)
    paper = preset_name == "vitb-opt2.7b"
    table["paper most complete %"] = [
        PAPER_TABLE5.get(s) if paper and d == "all" else None
        for s, d in zip(table["strategy"], table["dataset"], strict=True)
    ]
    return table


def with_paper(table: pd.DataFrame, preset_name: str) -> pd.DataFrame:
    """``table`` (:func:`caption_table`) with the paper's METEOR and ROUGE-L (and Ada-sim, where
    the table has it) beside each row whose preset, captioner and dataset the paper reports;
    empty where it does not."""
    out = table.copy()
    metrics = ["METEOR", "ROUGE-L"] + (["Ada-sim"] if "Ada-sim" in out else [])
    for metric in metrics:
        out[f"paper {metric}"] = [
            PAPER_TABLE2.get((preset_name, c, d), {}).get(metric)
            for c, d in zip(out["captioner"], out["dataset"], strict=True)
        ]
    return out


COUNTS = (
    "images",
    "faces",
    "AUs scored",
    "train",
    "test",
)  # columns of counts: whole numbers in the report


def markdown(table: pd.DataFrame, digits: int = 3, counts: Sequence[str] = COUNTS) -> str:
    """A Markdown table: numbers to ``digits`` decimals (whole numbers in the ``counts``
    columns), empty cells for missing values."""

    def cell(column, value) -> str:
        if value is None or (isinstance(value, float) and pd.isna(value)):
            return ""
        if column in counts:
            return str(int(value))
        if isinstance(value, float):
            return f"{value:.{digits}f}"
        return str(value)

    header = "| " + " | ".join(map(str, table.columns)) + " |"
    rule = "|" + "---|" * len(table.columns)
    rows = [
        "| " + " | ".join(cell(c, v) for c, v in zip(table.columns, row, strict=True)) + " |"
        for row in table.itertuples(index=False)
    ]
    return "\n".join([header, rule, *rows])


def write_report(
    folder: str | Path,
    tables: Mapping[str, pd.DataFrame],
    *,
    title: str,
    notes: Sequence[str] = (),
    plots: Mapping[str, str | tuple] | None = None,
) -> Path:
    """``folder/report.md`` with every table (and ``<name>.csv`` beside it), and for each table
    named in ``plots`` a bar chart (``<name>.png``) of a column: ``column`` by dataset and
    captioner, or ``(column, groups, bars)``: groups and bars by the columns named (a name or a
    list of names)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    lines = [f"# {title}", "", *notes, ""]
    for name, table in tables.items():
        table.to_csv(folder / f"{name}.csv", index=False)
        lines += [f"## {name}", "", markdown(table), ""]
        plot = (plots or {}).get(name)
        column, index, columns = (plot, "dataset", "captioner") if isinstance(plot, str) else (
            plot or (None, None, None)
        )  # fmt: skip
        if column in table.columns and table[column].notna().any():
            wide = table.pivot_table(index=index, columns=columns, values=column, sort=False)
            ax = wide.plot.bar(figsize=(max(7, 0.6 * len(wide)), 3.5), rot=0)
            if len(wide) >= 8:  # long row names
                ax.set_xticklabels(ax.get_xticklabels(), rotation=40, ha="right")
            ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize="small")
            ax.set_ylabel(column)
            ax.set_title(f"{name}: {column}")
            ax.figure.tight_layout()
            ax.figure.savefig(folder / f"{name}.png", dpi=120)
            plt.close(ax.figure)
            lines += [f"![{name}]({name}.png)", ""]
    report = folder / "report.md"
    report.write_text("\n".join(lines))
    return report
