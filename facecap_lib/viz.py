"""Plotting functions. Each returns a matplotlib ``Figure`` and never calls ``plt.show()``."""

from __future__ import annotations

import matplotlib.pyplot as plt
import pandas as pd
import seaborn as sns
from matplotlib.colors import ListedColormap
from matplotlib.figure import Figure
from matplotlib.patches import Patch

from facecap_lib.lexicon import AU_BY_NUMBER


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
    fig.tight_layout()
    return fig
