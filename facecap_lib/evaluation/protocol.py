"""The paper's evaluation, dataset by dataset, and the report a project run writes.

- **Caption metrics** (paper Table 2): on the test sets of the AU datasets the paper names (GFT
  in the lab, RAF-AU in the wild, :data:`CAPTION_SETS`), each captioner's captions against every
  corpus caption of the face (rule-based and LLM-written), METEOR, ROUGE-L, BLEU-4 and CIDEr as
  the mean over images of the maximum over references (:mod:`facecap_lib.evaluation.captions`).
  A project without those datasets is scored on the test set of every AU-labelled dataset it has.
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
from facecap_lib.evaluation import faithfulness

CAPTION_SETS = (
    "gft",
    "rafau",
)  # paper Table 2: GFT's test set (in the lab), RAF-AU's (in the wild)
# Paper Table 2 (ViT-g/14, OPT-6.7B): METEOR, ROUGE, Ada-sim (x100) on each test set.
PAPER_TABLE2 = {
    ("vitg-opt6.7b", "AU-BLIP", "rafau"): {"METEOR": 0.263, "ROUGE-L": 0.505, "Ada-sim": 90.55},
    ("vitg-opt6.7b", "AU-BLIP", "gft"): {"METEOR": 0.295, "ROUGE-L": 0.538, "Ada-sim": 93.97},
    ("vitg-opt6.7b", "Exp-BLIP", "rafau"): {"METEOR": 0.184, "ROUGE-L": 0.229, "Ada-sim": 84.65},
    ("vitg-opt6.7b", "Exp-BLIP", "gft"): {"METEOR": 0.217, "ROUGE-L": 0.318, "Ada-sim": 90.75},
}


def test_faces(faces: pd.DataFrame, dataset: str, kind: str, n: int, seed: int = 1) -> pd.DataFrame:
    """Up to ``n`` test-split faces of ``dataset`` labelled with ``kind`` (``au``: any AU;
    ``emotion``), sampled with ``seed``."""
    from facecap_lib.lexicon import AU_COLUMNS

    part = faces[(faces["dataset"] == dataset) & (faces["split"] == "test")]
    if kind == "au":
        part = part[part[list(AU_COLUMNS)].notna().any(axis=1)]
    elif kind == "emotion":
        part = part[part["emotions"].map(len) > 0]
    else:
        raise ValueError(f"kind must be 'au' or 'emotion', got {kind!r}")
    return part.sample(min(n, len(part)), random_state=seed)


def caption_sets(faces: pd.DataFrame) -> list[str]:
    """The datasets Table 2 is measured on: the paper's where the project has their AU-labelled
    test faces, else every dataset with some."""
    has = [d for d in sorted(faces["dataset"].unique()) if len(test_faces(faces, d, "au", 1))]
    paper = [d for d in CAPTION_SETS if d in has]
    return paper or has


def caption_table(
    recipe, models: Mapping[str, Path], n: int, *, beams: int = 5, embedders=None
) -> pd.DataFrame:
    """Paper Table 2 per dataset: one row per (dataset, captioner)."""
    from facecap_lib.evaluation.report import captions, references

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
    from facecap_lib.evaluation.report import captions

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


def with_paper(table: pd.DataFrame, preset_name: str) -> pd.DataFrame:
    """``table`` (:func:`caption_table`) with the paper's METEOR and ROUGE-L beside each row whose
    preset, captioner and dataset the paper reports; empty where it does not."""
    out = table.copy()
    for metric in ("METEOR", "ROUGE-L"):
        out[f"paper {metric}"] = [
            PAPER_TABLE2.get((preset_name, c, d), {}).get(metric)
            for c, d in zip(out["captioner"], out["dataset"], strict=True)
        ]
    return out


COUNTS = ("images", "faces", "AUs scored")  # columns of counts: whole numbers in the report


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
    plots: Mapping[str, str] | None = None,
) -> Path:
    """``folder/report.md`` with every table (and ``<name>.csv`` beside it), and for each table
    named in ``plots`` a bar chart (``<name>.png``) of that column by dataset and captioner."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    lines = [f"# {title}", "", *notes, ""]
    for name, table in tables.items():
        table.to_csv(folder / f"{name}.csv", index=False)
        lines += [f"## {name}", "", markdown(table), ""]
        column = (plots or {}).get(name)
        if column in table.columns and table[column].notna().any():
            wide = table.pivot_table(
                index="dataset", columns="captioner", values=column, sort=False
            )
            ax = wide.plot.bar(figsize=(7, 3.5), rot=0)
            ax.set_ylabel(column)
            ax.set_title(f"{name}: {column}")
            ax.figure.tight_layout()
            ax.figure.savefig(folder / f"{name}.png", dpi=120)
            plt.close(ax.figure)
            lines += [f"![{name}]({name}.png)", ""]
    report = folder / "report.md"
    report.write_text("\n".join(lines))
    return report
