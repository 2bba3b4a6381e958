"""The report of a project's evaluation (``report/<run>/``): every table of
:func:`facecap_lib.evaluation.protocol.tables` as Markdown and CSV, charts as PNG, and the notes
that say what was measured and on which faces. ``facecap run``'s evaluate stage writes it; chapter
5 writes the book's the same way.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import pandas as pd

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


def plots(tables: Mapping[str, pd.DataFrame]) -> dict[str, str | tuple]:
    """The chart of each table that has one (:func:`write_report`'s ``plots``): METEOR and the
    mean per-AU F1 by dataset and captioner, and every representation table's F1 (or accuracy)
    by feature source and strategy; the probes stay a table (by dataset and protocol)."""
    out: dict[str, str | tuple] = {"captions": "METEOR", "faithfulness": "mean per-AU F1"}
    for name in tables:
        if name == "representations-emotion":
            out[name] = ("accuracy", "features", ["dataset", "strategy"])
        elif name.startswith("representations-"):
            out[name] = ("avg F1", "features", "strategy")
    return out


def notes(
    project: str, preset_name: str, faces: pd.DataFrame, spec, tables: Mapping[str, pd.DataFrame],
    provenance: Mapping | None = None,
) -> list[str]:  # fmt: skip
    """The report's notes: the setting and the faces, how the probes and the representation
    tables are trained, what the caption metrics compare with, which baselines were scored and
    where the spread over seeds comes from (``provenance``: :func:`~facecap_lib.evaluation.measured.measured_spread`'s)."""
    matched = tables["captions"]["paper METEOR"].notna().any()
    general = "general" in set(tables["captions"]["captioner"])
    fine_tuned = (
        f", and fine-tuned end to end for {spec.fine_tune_epochs:g} epochs "
        f"({spec.plain_fine_tune_epochs:g} for ViT)."
        if spec.fine_tune_epochs > 0
        else " only (fine_tune_epochs is 0)."
    )
    return [
        f"Project {project}: preset {preset_name}, datasets "
        f"{', '.join(sorted(faces['dataset'].unique()))}; up to {spec.faces} test faces per "
        f"dataset (new subjects), beam {spec.beams}.",
        "Probes: a linear layer on frozen features, or the encoder (with the Q-Former) and the "
        "layer fine-tuned end to end, trained on each dataset's training faces (up to "
        f"{spec.probe_train_faces}) and tested on its test faces, BP4D and DISFA also over their "
        "three subject-independent folds; 'untrained' is the plain encoder every captioner "
        "starts from (paper Table 3, whose numbers are linear probes).",
        "Representations (supplementary Tables 2-8): one classifier per row trained on the AU "
        f"training faces of every dataset together (up to {spec.probe_train_faces}), tested on "
        "each dataset's AUs (the paper's where it names them); 'ViT' is the plain encoder, "
        "ViT(X) and QFormer(X) X-BLIP's encoder and Q-Former; linear probe" + fine_tuned,
        "Caption metrics: the mean over test faces of the maximum over the corpus's captions of "
        "the face (paper Table 2)."
        + (
            " The paper's numbers stand beside the rows of its setting."
            if matched
            else " The paper reports no row of this setting (it used ViT-g/14 with OPT-6.7B on "
            "its licensed data): no published number is comparable."
        ),
        "Baselines: 'untrained' is every captioner's start (stage 1, no captioning step)"
        + (
            "; 'general' has AU-BLIP's training on captions of the person, pose, light and "
            "occluder, never the expression (the paper's off-the-shelf BLIP-2)."
            if general
            else "; no general captioner (its captions need what SynthFACS rendered; the "
            "paper's is an off-the-shelf BLIP-2)."
        ),
        "Findings: a claim is reproduced only where every difference exceeds the spread over "
        + (
            f"seeds measured by `{provenance['command']}` at {provenance['commit']}."
            if provenance
            else "seeds; none was measured for this setting, so one run says only whether the "
            "direction agrees."
        ),
    ]
