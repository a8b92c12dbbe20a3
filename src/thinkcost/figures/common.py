"""What every figure module shares: saving a figure, picking a table's row, notes under the axes.

The figures are built with ``matplotlib.figure.Figure`` directly rather than through pyplot, so
nothing here touches pyplot's global state or needs a display: saving renders with the Agg
backend (PNG) or the PDF backend. Only :func:`save_figure` writes files.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from os import PathLike
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure


def finite(value: object) -> bool:
    """Whether `value` is a finite number (NaN, None and text are not)."""
    try:
        return math.isfinite(float(value))
    except (TypeError, ValueError):
        return False


def add_note(ax, text: str, gid: str) -> None:
    """Write `text` under the x label, where constrained layout makes room for it."""
    ax.annotate(
        text,
        xy=(0.0, 0.0),
        xycoords=("axes fraction", ax.xaxis.label),
        xytext=(0, -4),
        textcoords="offset points",
        fontsize="x-small",
        va="top",
        ha="left",
        gid=gid,
    )


def save_figure(fig: Figure, paths: str | PathLike | Iterable[str | PathLike]) -> list[Path]:
    """Write ``fig`` to each path, in the format its suffix names (``.png``, ``.pdf``, …).

    A single path whose suffix is not an image format matplotlib knows (none, or a dot inside a
    model name such as ``pythia-1.4b``) is written twice, as ``<path>.png`` and ``<path>.pdf``.
    Parent directories are created. Returns the paths written.
    """
    supported = fig.canvas.get_supported_filetypes()
    if isinstance(paths, (str, PathLike)):
        single = Path(paths)
        if single.suffix.lstrip(".").lower() in supported:
            targets = [single]
        else:
            targets = [Path(f"{single}.png"), Path(f"{single}.pdf")]
    else:
        targets = [Path(path) for path in paths]
    for target in targets:
        target.parent.mkdir(parents=True, exist_ok=True)
        # PNG at 200 dpi is sharp in the Snakemake report; the PDF is vector for the paper.
        fig.savefig(target, dpi=200)
    return targets


def select_row(table: pd.DataFrame, **keys: str) -> pd.Series:
    """The one row of `table` whose columns equal `keys`, or an error that names them."""
    mask = np.ones(len(table), dtype=bool)
    for column, value in keys.items():
        mask &= (table[column] == value).to_numpy()
    matches = table[mask]
    if len(matches) != 1:
        wanted = ", ".join(f"{k}={v!r}" for k, v in keys.items())
        raise ValueError(f"expected one row with {wanted}, found {len(matches)}")
    return matches.iloc[0]
