"""The inference-scaling frontier figure: score against inference cost across models, each
sweep a curve, with the compute-optimal frontier (after Wu et al. 2024, Figure 1).

It shares the cost axis and the notes of the Pareto figure (:mod:`thinkcost.figures.cost`) but
draws otherwise: colour is the model, marker the strategy, and the frontier is the running best.
"""

from __future__ import annotations

from dataclasses import dataclass

import matplotlib
import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from thinkcost.analysis.frontier import pareto_frontier
from thinkcost.figures.common import finite
from thinkcost.figures.cost import (
    SECONDS_COLUMN,
    cost_axis_label,
    cost_column,
    not_shown_note,
    note_pairs_within_one_stderr,
    point_names,
    say_when_nothing_drawn,
    stderr_values,
)

# Strategies (unswept optimizations, then swept ones) take these markers in turn, and the swept
# ones these line styles.
STRATEGY_MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*", "<", ">", "h", "p")
SWEEP_LINESTYLES = ("-", "--", ":", "-.")
# At most this many frontier points are listed in the frontier figure's legend (all are ringed).
FRONTIER_LEGEND_POINTS = 16


def plot_frontier(scores: pd.DataFrame, task: str = "average", cost_unit: str = "flops") -> Figure:
    """Score against inference FLOPs (or seconds) per question, with the compute-optimal
    frontier.

    In the style of Wu et al. (2024), *Inference Scaling Laws*, Figure 1. Every point carries
    its standard error as a vertical error bar. A swept optimization (rows ``<name>@<k>`` with
    ``sweep_of`` = name and ``k``; see :func:`thinkcost.aggregate.sweep_rows`) is one curve per
    model joining its points in order of k, each point labelled "k=…"; an unswept optimization
    is a single point per model. Colour is the model (in order of ``params``), marker and line
    style the strategy (the optimization, or the swept optimization's name).

    The frontier is the upper envelope over all models: at each cost, the best score reachable
    at no more cost (the running maximum of the scores in order of cost), drawn as a step line.
    The points that make it (:func:`thinkcost.analysis.frontier.pareto_frontier`) are ringed and
    listed in the legend, cheapest first; points on or near it within one standard error of each
    other are named in a note under the axes (see :func:`thinkcost.figures.cost.within_one_stderr`).

    The cost is :func:`thinkcost.figures.cost.pareto_cost_column`'s for ``cost_unit``: in
    ``"seconds"``, the measured seconds per question, so a runtime optimization that only makes
    the model faster moves left. Rows of `task` are drawn; when there are none, the task with
    the most rows (the title says so). Rows without a finite score or a positive cost (none on
    a log axis) are left out, and the title counts them; in seconds, the rows with ``"no seconds
    measured"`` (imported cells, and a sweep's k rows, whose seconds were measured for all K
    samples together) are counted on their own.
    """
    shown_task, notes = _shown_task(scores, task)
    x_col = cost_column(scores, shown_task, cost_unit)
    all_points = _frontier_points(scores[scores["task"] == shown_task], x_col)
    drawable = np.isfinite(all_points["x"]) & np.isfinite(all_points["y"]) & (all_points["x"] > 0)
    not_shown = not_shown_note(all_points["x"], all_points["y"], x_col)
    if not_shown:
        notes.append(not_shown)
    points = all_points[drawable]

    fig = Figure(figsize=(9.0, 5.6), layout="constrained")
    ax = fig.add_subplot()
    ax.set_xscale("log")
    say_when_nothing_drawn(ax, all_points["x"], all_points["y"], x_col)
    styles = _Styles.of(points)
    _draw_strategies(ax, points, styles)
    if not points.empty:
        on_frontier = _draw_frontier(ax, points)
        handles = _legend_handles(points, styles, on_frontier)
        fig.legend(handles=handles, loc="outside right upper", fontsize="small")

    ax.set_xlabel(cost_axis_label(scores, x_col))
    what = "benchmark average" if shown_task == "average" else shown_task
    ax.set_ylabel(f"score ({what})")
    if x_col == SECONDS_COLUMN:
        title = "inference scaling: score against inference time"
    else:
        title = "inference scaling: score against inference compute"
    if notes:
        title += "\n(" + "; ".join(notes) + ")"
    ax.set_title(title, fontsize="medium")
    return fig


def _shown_task(scores: pd.DataFrame, task: str) -> tuple[str, list[str]]:
    """`task`, or the task with the most rows when it has none, with a note saying so."""
    if (scores["task"] == task).any() or not len(scores):
        return task, []
    counts = scores["task"].value_counts()
    shown = min(counts.index, key=lambda name: (-counts[name], str(name)))
    return shown, [f"no {task} rows: {shown} shown"]


def _frontier_points(rows: pd.DataFrame, x_col: str) -> pd.DataFrame:
    """One row per point of `rows`: model, optimization, strategy, swept, k, vote, params, x, y,
    stderr. A row is swept when it names the optimization it sweeps (``sweep_of``) and has a k."""

    def column(name: str) -> pd.Series:
        return rows[name] if name in rows else pd.Series(np.nan, index=rows.index)

    sweep_of = column("sweep_of")
    swept = sweep_of.notna() & (sweep_of.astype(str) != "")
    k = pd.to_numeric(column("k"), errors="coerce")
    # A k lost on the way (a hand-made table): the number after the last "@" of the name.
    from_name = pd.to_numeric(
        rows["optimization"].astype(str).str.extract(r"@(\d+)$", expand=False), errors="coerce"
    )
    k = k.where(k.notna(), from_name)
    swept &= k.notna()
    return pd.DataFrame(
        {
            "model": rows["model"].astype(str),
            "optimization": rows["optimization"].astype(str),
            # A swept strategy is named "<name>@k", apart from any unswept one called <name>.
            "strategy": np.where(
                swept, sweep_of.astype(str) + "@k", rows["optimization"].astype(str)
            ),
            "swept": swept.to_numpy(dtype=bool),
            "k": k.where(swept),
            "vote": column("vote").where(swept),
            "params": pd.to_numeric(column("params"), errors="coerce"),
            "x": pd.to_numeric(column(x_col), errors="coerce"),
            "y": pd.to_numeric(rows["score"], errors="coerce"),
            "stderr": stderr_values(rows),
        },
        index=rows.index,
    )


@dataclass
class _Styles:
    """How the frontier figure tells points apart: a colour per model (in order of size), a
    marker per strategy, and a line style per swept strategy."""

    models: list[str]
    strategies: list[str]
    colors: dict[str, object]
    markers: dict[str, str]
    linestyles: dict[str, str]

    @classmethod
    def of(cls, points: pd.DataFrame) -> _Styles:
        models = (
            points.groupby("model")["params"]
            .first()
            .reset_index()
            .sort_values(["params", "model"], na_position="last")["model"]
            .tolist()
        )
        shades = np.linspace(0.0, 0.85, len(models)) if len(models) > 1 else [0.0]
        colormap = matplotlib.colormaps["viridis"]
        unswept = sorted(set(points.loc[~points["swept"], "strategy"]))
        swept = sorted(set(points.loc[points["swept"], "strategy"]))
        return cls(
            models=models,
            strategies=unswept + swept,
            colors={model: colormap(shade) for model, shade in zip(models, shades, strict=False)},
            markers={
                name: STRATEGY_MARKERS[index % len(STRATEGY_MARKERS)]
                for index, name in enumerate(unswept + swept)
            },
            linestyles={
                name: SWEEP_LINESTYLES[index % len(SWEEP_LINESTYLES)]
                for index, name in enumerate(swept)
            },
        )


def _draw_strategies(ax, points: pd.DataFrame, styles: _Styles) -> None:
    """Each model's points of each strategy, with error bars: a curve in order of k labelled
    "k=…" for a swept strategy, unjoined points otherwise."""
    for model in styles.models:
        for strategy in styles.strategies:
            group = points[(points["model"] == model) & (points["strategy"] == strategy)]
            if group.empty:
                continue
            is_swept = strategy in styles.linestyles
            group = group.sort_values(["k", "x"] if is_swept else ["x"])
            container = ax.errorbar(
                group["x"],
                group["y"],
                yerr=group["stderr"],
                color=styles.colors[model],
                marker=styles.markers[strategy],
                markersize=5,
                linestyle=styles.linestyles[strategy] if is_swept else "none",
                linewidth=1.2,
                elinewidth=0.8,
                capsize=2,
                zorder=2,
            )
            kind = "sweep" if is_swept else "point"
            container.lines[0].set_gid(f"{kind}:{model}:{strategy}")
            container.lines[2][0].set_gid(f"stderr:{model}:{strategy}")
            if is_swept:
                _label_k(ax, group, model, strategy, styles.colors[model])


def _label_k(ax, group: pd.DataFrame, model: str, strategy: str, color: object) -> None:
    for _, row in group.iterrows():
        ax.annotate(
            f"k={int(row['k'])}",
            (row["x"], row["y"]),
            textcoords="offset points",
            xytext=(3, -9),
            fontsize="xx-small",
            color=color,
            gid=f"k:{model}:{strategy}:{int(row['k'])}",
        )


def _draw_frontier(ax, points: pd.DataFrame) -> list[str]:
    """The running best score as a step line, its points ringed, and the note on the points
    within one standard error. Returns the ringed points' names, cheapest first."""
    ordered = points.sort_values(["x", "y"], ascending=[True, False])
    ax.plot(
        ordered["x"],
        np.maximum.accumulate(ordered["y"].to_numpy(dtype=float)),
        drawstyle="steps-post",
        color="black",
        alpha=0.35,
        linewidth=2.5,
        zorder=1,
        gid="frontier",
    )
    marked = pareto_frontier(points, x_col="x", y_col="y")
    on_frontier = marked[marked["on_pareto_frontier"]].sort_values(["x", "y"])
    ax.scatter(
        on_frontier["x"],
        on_frontier["y"],
        s=120,
        facecolors="none",
        edgecolors="black",
        linewidths=1,
        zorder=3,
        gid="frontier_points",
    )
    note_pairs_within_one_stderr(ax, marked, "x", "y")
    return list(point_names(on_frontier).values())


def _legend_handles(points: pd.DataFrame, styles: _Styles, on_frontier: list[str]) -> list:
    """The legend: the models, the strategies (a swept one with its vote rule), the frontier."""

    def header(text: str) -> Line2D:
        return Line2D([], [], linestyle="none", marker="none", label=text)

    handles = [header("model")]
    handles += [
        Line2D([], [], color=styles.colors[model], linewidth=2, label=_model_label(points, model))
        for model in styles.models
    ]
    handles.append(header("strategy"))
    for strategy in styles.strategies:
        label, linestyle = strategy, "none"
        if strategy in styles.linestyles:
            votes = points.loc[points["strategy"] == strategy, "vote"].dropna().unique()
            label += f" ({', '.join(map(str, votes))})" if len(votes) else ""
            linestyle = styles.linestyles[strategy]
        marker = styles.markers[strategy]
        handles.append(Line2D([], [], color="0.3", marker=marker, linestyle=linestyle, label=label))
    handles.append(header("compute-optimal frontier"))
    handles.append(
        Line2D([], [], color="black", alpha=0.35, linewidth=2.5, label="best score at no more cost")
    )
    handles.append(
        Line2D(
            [],
            [],
            marker="o",
            markersize=9,
            markerfacecolor="none",
            markeredgecolor="black",
            linestyle="none",
            label=_frontier_listing(on_frontier),
        )
    )
    return handles


def _frontier_listing(names: list[str]) -> str:
    lines = names[:FRONTIER_LEGEND_POINTS]
    if len(names) > FRONTIER_LEGEND_POINTS:
        lines.append(f"… and {len(names) - FRONTIER_LEGEND_POINTS} more (ringed)")
    return "on it, cheapest first:\n" + "\n".join(lines)


def _format_params(params: object) -> str:
    if not finite(params):
        return ""
    value = float(params)
    for divisor, suffix in ((1e12, "T"), (1e9, "B"), (1e6, "M"), (1e3, "k")):
        if value >= divisor:
            return f"{value / divisor:.3g}{suffix}"
    return f"{value:.3g}"


def _model_label(points: pd.DataFrame, model: str) -> str:
    size = _format_params(points.loc[points["model"] == model, "params"].iloc[0])
    return f"{model} ({size})" if size else model
