"""Score against inference cost: the cost axis (FLOPs under a convention, or measured seconds),
the notes the cost figures share, and the Pareto figure.

The frontier figure (:mod:`thinkcost.figures.frontier`) is another figure on the same axes: it
takes its cost column, axis label and notes from here.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from thinkcost.analysis.frontier import pareto_frontier
from thinkcost.figures.common import add_note
from thinkcost.tables import STATUS_NO_SECONDS

# How the cost figures name the inference-FLOP columns on their axes.
COST_CONVENTIONS = {
    "inference_flops_per_request": "configured convention",
    "inference_flops_per_request_full": "full convention",
    "inference_flops_per_request_paper": "paper convention",
}
# The measured seconds per question: the cost column of the figures in device-seconds.
SECONDS_COLUMN = "seconds_per_request"
# At most this many pairs are named in a figure's "within one standard error" note.
STDERR_NOTE_PAIRS = 6


def pareto_cost_column(
    scores: pd.DataFrame, task: str = "average", cost_unit: str = "flops"
) -> str:
    """The cost column the Pareto and frontier figures put on their log axis.

    In seconds (``cost_unit="seconds"``), the measured ``seconds_per_request``. In FLOPs:

    The full convention where every row of `task` has it: under the paper's, direct scoring
    costs 0 FLOPs and has no place on a log axis. Imported cells have only the paper's
    convention (no model shape), so a table with any of them is drawn in the paper's, rather
    than dropping those rows or mixing the two on one axis (direct cells, at 0 FLOPs there,
    then fall off the axis).
    """
    if cost_unit == "seconds":
        return SECONDS_COLUMN
    if cost_unit != "flops":
        raise ValueError(f"cost_unit must be 'flops' or 'seconds', got {cost_unit!r}")
    full, paper = "inference_flops_per_request_full", "inference_flops_per_request_paper"
    rows = scores[scores["task"] == task]
    if full in rows and len(rows) and np.isfinite(pd.to_numeric(rows[full], errors="coerce")).all():
        return full
    return paper


def cost_column(scores: pd.DataFrame, task: str, cost_unit: str) -> str:
    """:func:`pareto_cost_column`'s choice, or the configured convention's column for a table
    written before the conventions had their own."""
    column = pareto_cost_column(scores, task, cost_unit)
    if column not in scores and column != SECONDS_COLUMN:
        return "inference_flops_per_request"
    return column


def cost_axis_label(scores: pd.DataFrame, x_col: str) -> str:
    """The cost axis's label: inference FLOPs per question under a named convention, or the
    measured seconds per question with the device they were measured on (when the cells name
    one device; seconds from different devices do not compare)."""
    if x_col != SECONDS_COLUMN:
        return f"inference FLOPs per question ({COST_CONVENTIONS.get(x_col, x_col)})"
    devices = []
    if "device" in scores and "task" in scores:
        cells = scores[(scores["task"] != "average") & scores[SECONDS_COLUMN].notna()]
        devices = sorted(cells["device"].dropna().astype(str).unique())
    if len(devices) == 1:
        where = f"measured on {devices[0]}"
    elif devices:
        where = f"measured on {len(devices)} devices: compare with care"
    else:
        where = "measured"
    return f"seconds per question ({where})"


def stderr_values(rows: pd.DataFrame) -> np.ndarray:
    """The standard errors of `rows` as floats (NaN where unknown or the column is absent)."""
    if "stderr" not in rows:
        return np.full(len(rows), np.nan)
    return pd.to_numeric(rows["stderr"], errors="coerce").to_numpy(dtype=float)


def within_one_stderr(marked: pd.DataFrame, x_col: str, y_col: str) -> list[tuple[object, object]]:
    """Pairs of points on or near the frontier whose scores are within one standard error.

    `marked` has finite x and y and an ``on_pareto_frontier`` column. Two kinds of pair, each
    as (index, index) of `marked`, the cheaper point first:

    * consecutive frontier points (by cost) whose gain is no more than one standard error of
      the difference, √(s.e.₁² + s.e.₂²) (the two scores taken as independent): the dearer
      point is not resolved as better;
    * a point off the frontier and the frontier point that beats it at no more cost, when it
      falls short of that point by no more than that: it is on the frontier within the noise.

    A pair whose standard errors are not both known is never listed.
    """
    stderr = pd.Series(stderr_values(marked), index=marked.index)
    x = pd.to_numeric(marked[x_col], errors="coerce")
    y = pd.to_numeric(marked[y_col], errors="coerce")

    def close(a: object, b: object) -> bool:
        tolerance = math.hypot(stderr[a], stderr[b])
        return math.isfinite(tolerance) and abs(y[b] - y[a]) <= tolerance

    frontier = sorted(marked.index[marked["on_pareto_frontier"]], key=lambda i: (x[i], y[i]))
    pairs = [(a, b) for a, b in itertools.pairwise(frontier) if close(a, b)]
    for other in marked.index[~marked["on_pareto_frontier"]]:
        # The running best at its cost: the best frontier point at no more cost.
        cheaper = [i for i in frontier if x[i] <= x[other]]
        if cheaper:
            best = max(cheaper, key=lambda i: (y[i], -x[i]))
            if close(best, other):
                pairs.append((best, other))
    return pairs


def point_names(rows: pd.DataFrame) -> dict[object, str]:
    """Each row's "model / optimization", by index: how the cost figures name a point."""
    return {i: f"{rows.at[i, 'model']} / {rows.at[i, 'optimization']}" for i in rows.index}


def note_pairs_within_one_stderr(ax, marked: pd.DataFrame, x_col: str, y_col: str) -> None:
    """Name, under the axes, the drawn points of `marked` (:func:`pareto_frontier`'s table)
    that are within one standard error of each other (:func:`within_one_stderr`), if any."""
    finite = np.isfinite(pd.to_numeric(marked[x_col], errors="coerce")) & np.isfinite(
        pd.to_numeric(marked[y_col], errors="coerce")
    )
    drawn = marked[finite.to_numpy(dtype=bool)]
    name = point_names(drawn)
    pairs = [(name[a], name[b]) for a, b in within_one_stderr(drawn, x_col, y_col)]
    if not pairs:
        return
    lines = [f"{a} ≈ {b}" for a, b in pairs[:STDERR_NOTE_PAIRS]]
    if len(pairs) > STDERR_NOTE_PAIRS:
        lines.append(f"… and {len(pairs) - STDERR_NOTE_PAIRS} more pair(s)")
    note = "within 1 s.e. of each other (on or near the frontier):\n" + "\n".join(lines)
    add_note(ax, note, "stderr_note")


def say_when_nothing_drawn(ax, x: pd.Series, y: pd.Series, x_col: str) -> None:
    """An empty cost figure says why in the middle of its axes (in seconds: none measured)."""
    x = pd.to_numeric(x, errors="coerce")
    y = pd.to_numeric(y, errors="coerce")
    if len(x) and not (np.isfinite(x) & np.isfinite(y) & (x > 0)).any():
        reason = STATUS_NO_SECONDS if x_col == SECONDS_COLUMN else "no positive cost"
        ax.text(
            0.5,
            0.5,
            f"nothing to draw: {reason}",
            ha="center",
            va="center",
            transform=ax.transAxes,
            gid="nothing_drawn",
        )


def not_shown_note(x: pd.Series, y: pd.Series, x_col: str) -> str | None:
    """Why rows are missing from a cost figure's log axis, or None when none are."""
    x = pd.to_numeric(x, errors="coerce")
    y = pd.to_numeric(y, errors="coerce")
    if x_col == SECONDS_COLUMN:
        no_seconds = int((np.isfinite(y) & ~np.isfinite(x)).sum())
        other = int((~np.isfinite(y) | (np.isfinite(x) & ~(x > 0))).sum())
        notes = []
        if no_seconds:
            notes.append(f"{no_seconds} row(s) with {STATUS_NO_SECONDS} not shown")
        if other:
            notes.append(f"{other} row(s) without a score or a positive cost not shown")
        return "; ".join(notes) or None
    left_out = int((~(np.isfinite(x) & np.isfinite(y) & (x > 0))).sum())
    return f"{left_out} row(s) without a score or a positive cost not shown" if left_out else None


def plot_pareto(scores: pd.DataFrame, task: str = "average", cost_unit: str = "flops") -> Figure:
    """Score against inference cost per request for every model and optimization.

    One scatter series per optimization, each point with its standard error as a vertical error
    bar; the Pareto frontier (:func:`thinkcost.analysis.frontier.pareto_frontier`: no other cell
    is both cheaper and better) is drawn as a step line through its points, which are labelled
    with model and optimization. When points on or near the frontier are within one standard
    error of each other (see :func:`within_one_stderr`), a note under the axes names them: the
    order of those points is not resolved by the data.

    The cost is :func:`pareto_cost_column`'s for ``cost_unit``: inference FLOPs under a
    convention every row has, or the measured ``seconds_per_request``; the axis label names it.
    Rows without a finite score or a positive cost (none on a log axis; in seconds, the imported
    cells and a sweep's k rows) are not drawn and the title counts them, with ``"no seconds
    measured"`` where that is why.
    """
    x_col = cost_column(scores, task, cost_unit)
    task_rows = scores[scores["task"] == task]
    if x_col not in task_rows:  # a table without measured seconds: nothing to draw, and said so
        task_rows = task_rows.assign(**{x_col: np.nan})
    marked = pareto_frontier(task_rows, x_col=x_col, y_col="score")
    fig = Figure(figsize=(6.4, 4.8), layout="constrained")
    ax = fig.add_subplot()
    ax.set_xscale("log")
    _draw_optimizations(ax, marked, x_col)
    _draw_pareto_frontier(ax, marked, x_col)
    note_pairs_within_one_stderr(ax, marked, x_col, "score")
    if x_col == SECONDS_COLUMN:
        ax.set_xlabel(cost_axis_label(scores, x_col))
        title = "quality against inference time"
    else:
        ax.set_xlabel(f"inference FLOPs per request ({COST_CONVENTIONS.get(x_col, x_col)})")
        title = "quality against inference cost"
    not_shown = not_shown_note(task_rows[x_col], task_rows["score"], x_col)
    if not_shown:
        title += f"\n({not_shown})"
    say_when_nothing_drawn(ax, task_rows[x_col], task_rows["score"], x_col)
    ax.set_ylabel(f"score ({task})")
    ax.set_title(title, fontsize="medium")
    if not marked.empty:
        ax.legend(fontsize="small")
    return fig


def _draw_optimizations(ax, marked: pd.DataFrame, x_col: str) -> None:
    """One scatter series per optimization, each point with its standard error."""
    for index, (optimization, rows) in enumerate(marked.groupby("optimization", sort=True)):
        color = f"C{index % 10}"
        x = pd.to_numeric(rows[x_col], errors="coerce").to_numpy(dtype=float)
        y = pd.to_numeric(rows["score"], errors="coerce").to_numpy(dtype=float)
        ax.scatter(x, y, color=color, label=str(optimization), gid=str(optimization))
        bars = ax.errorbar(
            x,
            y,
            yerr=stderr_values(rows),
            fmt="none",
            ecolor=color,
            elinewidth=1,
            capsize=2,
        )
        bars.lines[2][0].set_gid(f"stderr:{optimization}")


def _draw_pareto_frontier(ax, marked: pd.DataFrame, x_col: str) -> None:
    """The Pareto frontier as a step line through its points, each named."""
    frontier = marked[marked["on_pareto_frontier"]].sort_values([x_col, "score"])
    if frontier.empty:
        return
    ax.plot(
        frontier[x_col],
        frontier["score"],
        color="black",
        drawstyle="steps-post",
        marker="x",
        label="Pareto frontier",
        gid="pareto_frontier",
    )
    for index, name in point_names(frontier).items():
        ax.annotate(
            name,
            (frontier.at[index, x_col], frontier.at[index, "score"]),
            textcoords="offset points",
            xytext=(4, 4),
            fontsize="x-small",
        )
