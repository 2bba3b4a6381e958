"""A clip's timeline: which AUs and emotions each face shows over time, as one picture.

:func:`plot_timeline` draws one panel per track (or per person of a clip's truth): a row per AU
and per emotion that is ever on, dark where it is on, pale where the face is not seen. The
same function draws a described clip's table (:mod:`.video`) and a SynthFACS clip's truth
(:func:`facecap_lib.data.synth.clips.expression_clip`, intensities 1 and up counted as on),
so the two can stand side by side.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from facecap_lib.lexicon import AU_COLUMNS, EMOTION_NAMES


def _rows(part: pd.DataFrame) -> tuple[list[str], np.ndarray]:
    names = [
        c for c in (*AU_COLUMNS, *EMOTION_NAMES) if c in part and (part[c].fillna(0) > 0).any()
    ]
    values = np.array([part[c].astype("float64").clip(upper=1).to_numpy() for c in names]).reshape(
        len(names), len(part)
    )
    return names, values


def plot_timeline(table: pd.DataFrame, *, by: str = "track", title: str | None = None, axes=None):
    """The timeline of ``table`` (rows with ``time`` and AU / emotion columns, grouped by
    ``by``); returns the figure."""
    import matplotlib.pyplot as plt
    from matplotlib.colors import ListedColormap

    groups = [(k, g.sort_values("time")) for k, g in table.dropna(subset=[by]).groupby(by)]
    if not groups:
        raise ValueError(f"no {by} to draw: the table holds no face")
    heights = [max(1, len(_rows(g)[0])) for _, g in groups]
    if axes is None:
        fig, axes = plt.subplots(
            len(groups), 1, figsize=(9, 0.9 + 0.24 * sum(heights)), squeeze=False,
            gridspec_kw={"height_ratios": heights},
        )  # fmt: skip
        axes = axes[:, 0]
    fig = axes[0].figure
    cmap = ListedColormap(["#f3f3f3", "#2b6cb0"]).with_extremes(bad="#ffffff")
    for ax, (key, part) in zip(axes, groups, strict=True):
        names, values = _rows(part)
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
    fig.tight_layout()
    return fig
