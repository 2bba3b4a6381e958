"""The human-evaluation kit of paper Table 5: rating sheets, reading them back, aggregation and
inter-rater agreement.

The paper's raters saw 505 random test images with the captions of the three strategies (Mix,
Cat, Exp), rated each caption's correctness from 1 to 10, and picked the most and the least
complete. :func:`make_sheet` draws the images (seeded) and shuffles the strategies behind the
letters A, B, C per image; :func:`write_kit` writes

- ``sheet.csv``: one row per image for raters who prefer a spreadsheet;
- ``form.html``: the same as a static page that works offline (images beside it, ratings kept in
  the browser and exported as a CSV with the sheet's columns);
- ``key.csv``: which strategy each letter is, for the organiser only.

:func:`read_ratings` reads completed sheets (one per rater) and checks every value, naming the
file, line and column of the first bad one; :func:`summary` gives mean correctness and the share
of "most" and "least complete" votes per strategy; :func:`krippendorff_alpha` measures agreement
(interval metric for the 1-10 scores, nominal for the choices), with missing ratings allowed.
"""

from __future__ import annotations

import csv
import html
import json
import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from facecap_lib.data.table import image_files, image_ids

LETTERS = ("A", "B", "C")
SCORE_RANGE = (1, 10)
RATING_COLUMNS = (*(f"correct_{x}" for x in LETTERS), "most_complete", "least_complete")


def make_sheet(
    faces: pd.DataFrame,
    captions: Mapping[str, Sequence[str]],
    *,
    n: int = 505,
    seed: int = 0,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The rating sheet and its key for ``n`` images drawn from ``faces`` (seeded).

    ``captions`` maps each strategy (e.g. ``"Mix"``, ``"Cat"``, ``"Exp"``) to one caption per row
    of ``faces``. Returns (sheet, key): the sheet has ``item``, ``image_id``, ``image``, the
    captions as ``caption_A..C`` and empty rating columns; the key maps (item, letter) to strategy."""
    strategies = list(captions)
    if len(strategies) != len(LETTERS):
        raise ValueError(f"the sheet compares {len(LETTERS)} strategies, got {strategies}")
    for name, texts in captions.items():
        if len(texts) != len(faces):
            raise ValueError(f"{name}: {len(texts)} captions for {len(faces)} faces")
    rng = np.random.default_rng(seed)
    chosen = np.sort(rng.choice(len(faces), size=min(n, len(faces)), replace=False))
    rows, key = [], []
    ids, files = list(image_ids(faces)), image_files(faces)
    for item, i in enumerate(chosen, start=1):
        order = rng.permutation(len(strategies))
        row = {"item": item, "image_id": ids[i], "image": files[i]}
        for letter, s in zip(LETTERS, order, strict=True):
            row[f"caption_{letter}"] = captions[strategies[s]][i]
            key.append({"item": item, "letter": letter, "strategy": strategies[s]})
        rows.append(row | dict.fromkeys(RATING_COLUMNS, ""))
    return pd.DataFrame(rows), pd.DataFrame(key)


def write_kit(sheet: pd.DataFrame, key: pd.DataFrame, folder: str | Path) -> Path:
    """``sheet.csv``, ``form.html`` with ``images/`` and ``key.csv`` in ``folder``."""
    folder = Path(folder)
    (folder / "images").mkdir(parents=True, exist_ok=True)
    public = sheet.copy()
    for row in public.itertuples():
        target = folder / "images" / f"{row.item:04d}{Path(row.image).suffix}"
        shutil.copyfile(row.image, target)
        public.loc[row.Index, "image"] = f"images/{target.name}"
    public.to_csv(folder / "sheet.csv", index=False)
    key.to_csv(folder / "key.csv", index=False)
    (folder / "form.html").write_text(_form(public), encoding="utf-8")
    return folder


def _form(sheet: pd.DataFrame) -> str:
    columns = list(sheet.columns)
    items = []
    for row in sheet.itertuples(index=False):
        r = row._asdict()
        captions = "".join(
            f'<tr><td class="letter">{x}</td><td>{html.escape(str(r["caption_" + x]))}</td>'
            f'<td><input type="number" min="{SCORE_RANGE[0]}" max="{SCORE_RANGE[1]}" '
            f'data-item="{r["item"]}" data-col="correct_{x}"></td></tr>'
            for x in LETTERS
        )
        choices = "".join(
            f'<label>{label}: <select data-item="{r["item"]}" data-col="{col}"><option></option>'
            + "".join(f"<option>{x}</option>" for x in LETTERS)
            + "</select></label> "
            for col, label in (
                ("most_complete", "most complete"),
                ("least_complete", "least complete"),
            )
        )
        items.append(
            f'<section><h3>Image {r["item"]}</h3><img src="{html.escape(r["image"])}" alt="face">'
            f"<table><tr><th></th><th>caption</th><th>correct (1-10)</th></tr>{captions}</table>"
            f"<p>{choices}</p></section>"
        )
    rows = sheet.astype(str).to_dict(orient="records")
    return FORM.replace("{{ITEMS}}", "\n".join(items)).replace(
        "{{DATA}}", json.dumps({"columns": columns, "rows": rows}).replace("</", "<\\/")
    )


FORM = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>facecap: rate the captions</title>
<style>
body { font-family: sans-serif; max-width: 52em; margin: auto; }
section { border-top: 1px solid #ccc; padding: 1em 0; }
img { width: 192px; image-rendering: pixelated; }
td.letter { font-weight: bold; padding-right: 1em; }
input[type=number] { width: 4em; }
</style></head><body>
<h1>Rate the captions</h1>
<p>For each face: rate how <b>correct</b> each caption is, from 1 (wrong) to 10 (entirely
right), and pick the <b>most</b> and the <b>least complete</b> caption. Your answers stay in this
browser; press <b>Export CSV</b> at the end and send the file.</p>
<p>Your name or initials: <input id="rater"></p>
{{ITEMS}}
<p><button id="export">Export CSV</button> <span id="status"></span></p>
<script id="data" type="application/json">{{DATA}}</script>
<script>
const data = JSON.parse(document.getElementById("data").textContent);
const saved = JSON.parse(localStorage.getItem("facecap-ratings") || "{}");
const fields = document.querySelectorAll("[data-item]");
fields.forEach(f => {
  const k = f.dataset.item + "/" + f.dataset.col;
  if (saved[k] !== undefined) f.value = saved[k];
  f.addEventListener("change", () => {
    saved[k] = f.value; localStorage.setItem("facecap-ratings", JSON.stringify(saved));
  });
});
const quote = v => /[",\\n]/.test(v) ? '"' + v.replace(/"/g, '""') + '"' : v;
document.getElementById("export").addEventListener("click", () => {
  const lines = [data.columns.map(quote).join(",")];
  for (const row of data.rows) {
    lines.push(data.columns.map(c => {
      const k = row.item + "/" + c;
      return quote(saved[k] !== undefined ? saved[k] : row[c]);
    }).join(","));
  }
  const rater = document.getElementById("rater").value.replace(/[^A-Za-z0-9_-]/g, "") || "rater";
  const link = document.createElement("a");
  link.href = URL.createObjectURL(new Blob([lines.join("\\n") + "\\n"], {type: "text/csv"}));
  link.download = "ratings-" + rater + ".csv";
  link.click();
  document.getElementById("status").textContent = "saved " + link.download;
});
</script></body></html>
"""


def read_ratings(paths: Sequence[str | Path], key: pd.DataFrame | str | Path) -> pd.DataFrame:
    """Completed sheets (one per rater, named by the file's stem) as a long table: ``rater``,
    ``item``, ``strategy``, ``correct`` (1-10 or NaN when left blank), ``most``, ``least`` (bools).
    A value out of range names the file, line and column."""
    key = pd.read_csv(key) if not isinstance(key, pd.DataFrame) else key
    strategy = {(int(r.item), r.letter): r.strategy for r in key.itertuples()}
    out = []
    for path in map(Path, paths):
        with open(path, newline="", encoding="utf-8") as handle:
            reader = csv.DictReader(handle)
            missing = [c for c in ("item", *RATING_COLUMNS) if c not in (reader.fieldnames or [])]
            if missing:
                raise ValueError(f"{path}: missing columns {missing}")
            for line, row in enumerate(reader, start=2):
                item = _int(row["item"], path, line, "item")
                if (item, "A") not in strategy:
                    raise ValueError(f"{path}, line {line}, item: {item} is not in the key")
                most = _choice(row["most_complete"], path, line, "most_complete")
                least = _choice(row["least_complete"], path, line, "least_complete")
                if most and most == least:
                    raise ValueError(
                        f"{path}, line {line}: {most} is both the most and the least complete"
                    )
                for letter in LETTERS:
                    column = f"correct_{letter}"
                    score = row[column].strip()
                    value = np.nan
                    if score:
                        value = _int(score, path, line, column)
                        if not SCORE_RANGE[0] <= value <= SCORE_RANGE[1]:
                            raise ValueError(
                                f"{path}, line {line}, {column}: {value} is outside {SCORE_RANGE}"
                            )
                    out.append(
                        {
                            "rater": path.stem,
                            "item": item,
                            "strategy": strategy[(item, letter)],
                            "correct": value,
                            "most": most == letter if most else np.nan,
                            "least": least == letter if least else np.nan,
                        }
                    )
    return pd.DataFrame(out)


def _int(text: str, path, line: int, column: str) -> int:
    try:
        return int(str(text).strip())
    except ValueError:
        raise ValueError(f"{path}, line {line}, {column}: {text!r} is not a whole number") from None


def _choice(text: str, path, line: int, column: str) -> str:
    value = str(text).strip().upper()
    if value and value not in LETTERS:
        raise ValueError(f"{path}, line {line}, {column}: {text!r} is not one of {LETTERS}")
    return value


def summary(ratings: pd.DataFrame) -> pd.DataFrame:
    """Paper Table 5's shape: per strategy, mean correctness and the percentage of answered
    items where raters chose it as most / least complete."""
    table = ratings.groupby("strategy").agg(
        correctness=("correct", "mean"),
        most_complete=("most", lambda s: 100 * s.dropna().astype(float).mean()),
        least_complete=("least", lambda s: 100 * s.dropna().astype(float).mean()),
    )
    return table.rename(
        columns={"most_complete": "most complete %", "least_complete": "least complete %"}
    )


def krippendorff_alpha(values: np.ndarray, metric: str = "interval") -> float:
    """Krippendorff's alpha for a (raters, units) array with NaN for missing ratings; ``metric``
    ``"interval"`` (squared differences) or ``"nominal"`` (match / no match). Units rated by
    fewer than two raters do not count. 1 is perfect agreement, 0 is chance."""
    if metric not in ("interval", "nominal"):
        raise ValueError(f"metric must be 'interval' or 'nominal', got {metric!r}")
    values = np.asarray(values, dtype=float)

    def delta(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        return (a - b) ** 2 if metric == "interval" else (a != b).astype(float)

    units = [col[~np.isnan(col)] for col in values.T]
    units = [u for u in units if len(u) >= 2]
    pooled = np.concatenate(units) if units else np.array([])
    n = len(pooled)
    if n < 2:
        return float("nan")
    observed = sum(delta(u[:, None], u[None, :]).sum() / (len(u) - 1) for u in units) / n
    expected = delta(pooled[:, None], pooled[None, :]).sum() / (n * (n - 1))
    return 1.0 if expected == 0 else float(1 - observed / expected)


def agreement(ratings: pd.DataFrame) -> dict[str, float]:
    """Krippendorff's alpha of the correctness scores (interval; every (item, strategy) a unit)
    and of the most / least complete choices (nominal; every item a unit, the chosen strategy
    its value)."""
    scores = ratings.pivot_table(index="rater", columns=["item", "strategy"], values="correct")
    out = {"correctness (interval)": krippendorff_alpha(scores.to_numpy())}
    codes = {s: k for k, s in enumerate(sorted(ratings["strategy"].unique()))}
    for column, label in (
        ("most", "most complete (nominal)"),
        ("least", "least complete (nominal)"),
    ):
        chosen = ratings[ratings[column] == True]  # noqa: E712 (NaN-safe)
        table = chosen.assign(code=chosen["strategy"].map(codes)).pivot_table(
            index="rater", columns="item", values="code"
        )
        out[label] = krippendorff_alpha(table.to_numpy(), "nominal")
    return out
