"""Plotting functions. Each returns a matplotlib ``Figure`` and never calls ``plt.show()``."""

from __future__ import annotations

import textwrap

import matplotlib.pyplot as plt
import pandas as pd
import seaborn as sns
from matplotlib.colors import ListedColormap
from matplotlib.figure import Figure
from matplotlib.patches import Patch

from facecap_lib.lexicon import AU_BY_NUMBER, AU_COLUMNS, EMOTION_NAMES


def prototype_heatmap(matrix: pd.DataFrame, title: str = "", drop_empty: bool = True) -> Figure:
    """Heat map of an AU × emotion prototype matrix (see ``lexicon.prototype_matrix``).

    Cells: 1 = prototypical AU, 0.5 = optional AU, 0 = not part of the prototype. Row labels carry
    the AU's FACS name. ``drop_empty`` hides AUs that no emotion uses.
    """
    data = matrix.loc[matrix.sum(axis=1) > 0] if drop_empty else matrix
    labels = [f"{code} {AU_BY_NUMBER[int(code[2:])].noun}" for code in data.index]
    fig, ax = plt.subplots(figsize=(1.0 + 0.45 * data.shape[1], 0.9 + 0.32 * data.shape[0]))
    cmap = ListedColormap(["#f4f4f4", "#9ecae1", "#08519c"])
    sns.heatmap(
        data,
        ax=ax,
        cmap=cmap,
        vmin=-0.25,
        vmax=1.25,
        cbar=False,
        linewidths=0.5,
        linecolor="white",
        yticklabels=labels,
        square=False,
    )
    ax.set_xlabel("")
    ax.set_ylabel("")
    ax.tick_params(axis="x", rotation=60)
    for tick in ax.get_xticklabels():
        tick.set_horizontalalignment("right")
    ax.legend(
        handles=[
            Patch(color="#08519c", label="prototypical"),
            Patch(color="#9ecae1", label="optional"),
        ],
        loc="upper left",
        bbox_to_anchor=(1.01, 1.0),
        frameon=False,
    )
    if title:
        ax.set_title(title)
    _tight(fig)
    return fig


def contact_sheet(
    images, captions=None, columns: int = 6, title: str = "", size: float = 1.9
) -> Figure:
    """A grid of images (``uint8 [H, W, 3]`` arrays or paths) with a caption under each."""
    import numpy as np
    from PIL import Image

    images = [
        np.asarray(Image.open(i).convert("RGB")) if not hasattr(i, "shape") else i for i in images
    ]
    captions = list(captions) if captions is not None else [""] * len(images)
    rows = max(1, -(-len(images) // columns))
    fig, axes = plt.subplots(
        rows, columns, figsize=(columns * size, rows * (size + 0.35)), squeeze=False
    )
    for ax in axes.flat:
        ax.axis("off")
    width = max(12, int(size * 13))
    for ax, image, caption in zip(axes.flat, images, captions, strict=False):
        ax.imshow(image)
        ax.set_title(textwrap.fill(caption, width), fontsize=7.5, y=-0.02, va="top")
    if title:
        fig.suptitle(title)
    _tight(fig)
    return fig


def au_timeline(video: pd.DataFrame, kept_frames=(), title: str = "") -> Figure:
    """Occurrence of each labelled AU over one video's frames (dark = present, grey = unknown),
    with the frames kept by the sampling rule marked below."""
    import numpy as np

    video = video.sort_values("frame")
    columns = [c for c in AU_COLUMNS if video[c].notna().any()]
    data = video[columns].to_numpy(dtype=float).T
    frames = video["frame"].to_numpy()
    fig, (ax, marks) = plt.subplots(
        2,
        1,
        figsize=(11, 0.28 * len(columns) + 1.4),
        sharex=True,
        gridspec_kw={"height_ratios": [len(columns), 1.2]},
    )
    shown = np.where(np.isnan(data), 0.35, data)
    ax.imshow(
        shown,
        aspect="auto",
        cmap="Greys",
        vmin=0,
        vmax=1,
        interpolation="nearest",
        extent=(frames[0] - 0.5, frames[-1] + 0.5, len(columns) - 0.5, -0.5),
    )
    ax.set_yticks(range(len(columns)), columns, fontsize=8)
    kept = np.isin(frames, list(kept_frames))
    marks.vlines(frames[kept], 0, 1, color="#bc4c00", linewidth=0.8)
    marks.set_yticks([])
    marks.set_ylabel("kept", rotation=0, ha="right", va="center", fontsize=8)
    marks.set_xlabel("frame")
    if title:
        ax.set_title(title)
    _tight(fig)
    return fig


def _timeline_rows(part: pd.DataFrame):
    import numpy as np

    names = [
        c for c in (*AU_COLUMNS, *EMOTION_NAMES) if c in part and (part[c].fillna(0) > 0).any()
    ]
    values = np.array([part[c].astype("float64").clip(upper=1).to_numpy() for c in names]).reshape(
        len(names), len(part)
    )
    return names, values


def face_timeline(table: pd.DataFrame, *, by: str = "track", title: str | None = None, axes=None):
    """Which AUs and emotions each face shows over time: one panel per ``by`` (a described
    clip's track, or a SynthFACS clip's person), a row per AU and emotion ever on (intensity 1 and
    up counts as on), dark where on, blank where the face is not seen. ``table``: rows with
    ``time`` and AU / emotion columns (:func:`facecap_lib.describing.describe_video`'s table, or
    :func:`facecap_lib.data.synth.clips.expression_clip`'s truth with a ``time``)."""
    import numpy as np

    groups = [(k, g.sort_values("time")) for k, g in table.dropna(subset=[by]).groupby(by)]
    if not groups:
        raise ValueError(f"no {by} to draw: the table holds no face")
    heights = [max(1, len(_timeline_rows(g)[0])) for _, g in groups]
    if axes is None:
        fig, axes = plt.subplots(
            len(groups), 1, figsize=(9, 0.9 + 0.24 * sum(heights)), squeeze=False,
            gridspec_kw={"height_ratios": heights},
        )  # fmt: skip
        axes = axes[:, 0]
    fig = axes[0].figure
    cmap = ListedColormap(["#f3f3f3", "#2b6cb0"]).with_extremes(bad="#ffffff")
    for ax, (key, part) in zip(axes, groups, strict=True):
        names, values = _timeline_rows(part)
        if not names:  # nothing named all along: one empty row says so
            names, values = (
                ["nothing named"],
                np.where(part["caption"].notna(), 0.0, np.nan)[None]
                if "caption" in part
                else np.zeros((1, len(part))),
            )
        times = part["time"].to_numpy(dtype=float)
        step = np.median(np.diff(times)) if len(times) > 1 else 1.0
        extent = (times[0] - step / 2, times[-1] + step / 2, len(names) - 0.5, -0.5)
        ax.imshow(
            np.ma.masked_invalid(values),
            aspect="auto", cmap=cmap, vmin=0, vmax=1, interpolation="nearest", extent=extent,
        )  # fmt: skip
        ax.set_yticks(range(len(names)), names, fontsize=8)
        ax.set_ylabel(f"{by} {int(key)}", fontsize=9)
        ax.tick_params(axis="x", labelsize=8)
    axes[-1].set_xlabel("time (s)")
    if title:
        axes[0].set_title(title, fontsize=10)
    _tight(fig)
    return fig


def au_frequency(table: pd.DataFrame) -> Figure:
    """Share of images with each AU present, per dataset (heat map; blank = AU not labelled)."""

    columns = [c for c in AU_COLUMNS if table[c].notna().any()]
    rates = table.groupby("dataset", sort=False)[columns].mean()
    fig, ax = plt.subplots(figsize=(0.42 * len(columns) + 2, 0.45 * len(rates) + 1.4))
    sns.heatmap(
        rates,
        ax=ax,
        cmap="rocket_r",
        vmin=0,
        vmax=max(0.5, float(rates.max().max())),
        annot=True,
        fmt=".2f",
        annot_kws={"fontsize": 6},
        cbar_kws={"label": "share present"},
    )
    ax.set_xlabel("")
    ax.set_ylabel("")
    _tight(fig)
    return fig


def au_cooccurrence(table: pd.DataFrame, title: str = "") -> Figure:
    """P(column AU present | row AU present) over images where both are labelled."""
    import numpy as np

    columns = [c for c in AU_COLUMNS if table[c].notna().any()]
    values = table[columns].to_numpy(dtype=float)
    present = np.nan_to_num(values) == 1
    known = ~np.isnan(values)
    both = present.T.astype(float) @ present.astype(float)
    row_present = present.T.astype(float) @ known.astype(float)
    conditional = np.divide(
        both, row_present, out=np.full_like(both, np.nan), where=row_present > 0
    )
    fig, ax = plt.subplots(figsize=(0.4 * len(columns) + 2, 0.4 * len(columns) + 1))
    sns.heatmap(
        pd.DataFrame(conditional, index=columns, columns=columns),
        ax=ax,
        cmap="mako_r",
        vmin=0,
        vmax=1,
        square=True,
        cbar_kws={"label": "P(column | row)"},
    )
    ax.set_title(title)
    _tight(fig)
    return fig


def caption_lengths(table: pd.DataFrame, by: str = "kind", bins=range(0, 80, 2)) -> Figure:
    """Histogram of caption lengths in words, one colour per value of ``by``."""
    import re

    fig, ax = plt.subplots(figsize=(8, 3.2))
    for key, part in table.groupby(by):
        ax.hist(
            [len(re.findall(r"[a-z']+", c.lower())) for c in part["caption"]],
            bins=bins,
            alpha=0.55,
            label=key,
        )
    ax.set_xlabel("words per caption")
    ax.set_ylabel("captions")
    ax.legend()
    _tight(fig)
    return fig


def loss_curves(histories: dict[str, list[dict]], keys=("loss",), smooth: int = 10) -> Figure:
    """Training losses against steps, one line per run (and per key), smoothed by a running mean
    of ``smooth`` steps; raw values faint behind."""
    import numpy as np

    fig, ax = plt.subplots(figsize=(7, 3.6))
    for name, history in histories.items():
        for key in keys:
            points = [(h["step"], h[key]) for h in history if key in h]
            if not points:
                continue
            steps, values = map(np.asarray, zip(*points, strict=True))
            label = name if len(keys) == 1 else f"{name} {key}"
            (line,) = ax.plot(steps, values, alpha=0.2, linewidth=0.8)
            window = max(1, min(smooth, len(values)))
            running = np.convolve(values, np.ones(window) / window, mode="valid")
            ax.plot(steps[window - 1 :], running, color=line.get_color(), label=label)
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("loss")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    _tight(fig)
    return fig


def f1_bars(scores: dict[str, pd.DataFrame], title: str = "") -> Figure:
    """Per-AU F1 bars, one colour per model (frames from
    :func:`facecap_lib.evaluation.faithfulness.au_scores`), AUs in lexicon order."""
    import numpy as np

    aus = list(dict.fromkeys(au for s in scores.values() for au in s["au"]))
    fig, ax = plt.subplots(figsize=(max(6, 0.45 * len(aus) * len(scores)), 3.4))
    width = 0.8 / max(1, len(scores))
    for k, (name, table) in enumerate(scores.items()):
        f1 = table.set_index("au")["f1"].reindex(aus)
        ax.bar(np.arange(len(aus)) + k * width, f1.to_numpy(), width, label=name)
    ax.set_xticks(np.arange(len(aus)) + width * (len(scores) - 1) / 2, aus, rotation=90)
    ax.set_ylabel("F1")
    ax.set_ylim(0, 1)
    ax.legend(fontsize=8)
    if title:
        ax.set_title(title)
    _tight(fig)
    return fig


def table_heatmap(
    table: pd.DataFrame, title: str = "", fmt: str = ".2f", cmap: str = "viridis", center=None
) -> Figure:
    """Any numeric table as an annotated heat map (confusions, occluder x AU drops)."""
    fig, ax = plt.subplots(figsize=(1.2 + 0.62 * table.shape[1], 1.0 + 0.4 * table.shape[0]))
    sns.heatmap(
        table, annot=True, fmt=fmt, cmap=cmap, center=center, ax=ax, cbar=False, linewidths=0.5
    )
    ax.tick_params(axis="x", rotation=60)
    for tick in ax.get_xticklabels():
        tick.set_horizontalalignment("right")
    if title:
        ax.set_title(title)
    _tight(fig)
    return fig


def occlusion_maps(image, maps: dict, caption: str = "", size: float = 1.9) -> Figure:
    """The face, then one panel per AU: cells where hiding the region removes the AU's mention
    (blue, -1) or adds it (red, +1), over the face (from ``failures.occlusion_map``)."""
    import numpy as np
    from PIL import Image

    picture = np.asarray(
        image.convert("RGB") if isinstance(image, Image.Image) else Image.open(image).convert("RGB")
    )
    panels = len(maps) + 1
    fig, axes = plt.subplots(1, panels, figsize=(panels * size, size + 0.6), squeeze=False)
    axes = axes[0]
    axes[0].imshow(picture)
    axes[0].set_title(textwrap.fill(caption, 28), fontsize=7, y=-0.02, va="top")
    height, width = picture.shape[:2]
    for ax, (au, grid) in zip(axes[1:], sorted(maps.items()), strict=True):
        ax.imshow(picture, alpha=0.55)
        ax.imshow(grid, cmap="coolwarm", vmin=-1, vmax=1, alpha=0.6, extent=(0, width, height, 0))
        ax.set_title(f"AU{au} {AU_BY_NUMBER[au].noun}", fontsize=7.5)
    for ax in axes:
        ax.axis("off")
    _tight(fig)
    return fig


def _tight(fig: Figure) -> None:
    """``fig.tight_layout()``, quietly where a small figure leaves it no room: the figure is
    then drawn as laid out, and no warning (which names this file) reaches a chapter's output."""
    import warnings

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Tight layout not applied", category=UserWarning)
        fig.tight_layout()
