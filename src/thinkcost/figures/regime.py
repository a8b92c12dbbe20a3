"""The regime plots: lifetime cost (training + inference) against requests served, per row of
the train-equivalent table, alone (:func:`plot_regime`) or all in one figure
(:func:`plot_regime_overview`).

The numbers come from :mod:`thinkcost.analysis`; the lines are the lifetime-cost formulas
written out.
"""

from __future__ import annotations

import math
import textwrap
from collections.abc import Iterable

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from thinkcost.figures.common import add_note, finite
from thinkcost.tables import (
    STATUS_NO_INFERENCE_FLOPS,
    STATUS_NO_SECONDS,
    STATUS_OK,
    STATUS_SEPARATOR,
    cost_columns,
)

OPTIMIZATION_COLOR = "tab:orange"
BASELINE_COLOR = "tab:blue"
# Decades of requests shown on each side of the crossover (or of the request count at which
# inference spending equals training spending, when there is no crossover).
REGIME_DECADES_EACH_SIDE = 3
# How the figures name each cost unit (analysis.cost_unit).
COST_UNIT_NAMES = {"flops": "FLOPs", "seconds": "device-seconds"}
# At most this many rows without a cost are named under the regime overview.
REGIME_OVERVIEW_LISTED = 8


def lifetime_flops(
    train_flops: float, flops_per_request: float, requests: np.ndarray
) -> np.ndarray:
    """Training FLOPs plus ``requests`` times the inference FLOPs per request (or the same in
    device-seconds: the formula is the unit's)."""
    return train_flops + np.asarray(requests, dtype=float) * flops_per_request


def _regime_requests(row: pd.Series, columns: dict[str, str]) -> np.ndarray:
    crossover = row.get(columns["crossover"])
    if finite(crossover) and float(crossover) > 0:
        centre = math.log10(float(crossover))
    else:
        training = [
            float(row[col])
            for col in (columns["train"], columns["equivalent"])
            if finite(row.get(col)) and float(row[col]) > 0
        ]
        per_request = [
            float(row[col])
            for col in (columns["per_request"], columns["baseline_per_request"])
            if finite(row.get(col)) and float(row[col]) > 0
        ]
        # Without a crossover, centre on the request count at which inference has cost as much
        # as training: that is where the picture changes shape.
        centre = math.log10(max(training) / max(per_request)) if training and per_request else 6.0
    return np.logspace(
        centre - REGIME_DECADES_EACH_SIDE, centre + REGIME_DECADES_EACH_SIDE, num=400
    )


def throughput_note(training_throughput: object) -> str:
    """The assumption that puts training in device-seconds, as the figures print it."""
    value = f"{float(training_throughput):.3g} FLOP/s" if finite(training_throughput) else "unknown"
    return (
        f"training at {value} (analysis.training_throughput); "
        "inference at its measured seconds per question"
    )


def _wrap_lines(text: str, width: int) -> str:
    return "\n".join(textwrap.fill(line, width) for line in text.split("\n"))


def _missing_cost_status(cost_unit: str) -> str:
    return STATUS_NO_SECONDS if cost_unit == "seconds" else STATUS_NO_INFERENCE_FLOPS


def plot_regime(crossover_row: pd.Series, cost_unit: str = "flops") -> Figure:
    """Lifetime cost against requests served, for one (model, optimization) row.

    ``crossover_row`` is one row of the train-equivalent table
    (results/tables/train_equivalent.csv). Two lines on log-log axes: the model
    with the optimization (``train_flops + R * flops_per_request``) and a baseline model trained
    with the train-equivalent FLOPs (``train_equivalent_flops + R * baseline_flops_per_request``).
    The gap between them is shaded in the colour of the cheaper choice. The crossover is marked
    (with its confidence interval as a horizontal bar) only when ``crossover_requests`` is a
    number; otherwise the title carries ``crossover_status`` so the figure never implies a
    crossover that was not computed.

    ``cost_unit="seconds"`` draws the same in device-seconds, from the row's columns of that
    unit (:func:`thinkcost.tables.cost_columns`: ``train_seconds``, ``seconds_per_request``,
    ``crossover_requests_seconds``, …), and prints the ``training_throughput`` assumption under
    the axes. A row whose seconds were not measured draws no line and says so.
    """
    fig = Figure(figsize=(6.4, 4.8), layout="constrained")
    ax = fig.add_subplot()
    _draw_regime(ax, crossover_row, cost_unit)
    if cost_unit == "seconds":
        add_note(ax, throughput_note(crossover_row.get("training_throughput")), "throughput_note")
    return fig


def _draw_regime(ax, row: pd.Series, cost_unit: str, compact: bool = False) -> None:
    """One regime plot on `ax`; `compact` shortens the title for a panel of the overview."""
    columns = cost_columns(cost_unit)
    requests = _regime_requests(row, columns)
    ax.set_xscale("log")
    ax.set_yscale("log")
    optimization_cost = _draw_optimization_line(ax, row, columns, requests)
    baseline_cost = _draw_baseline_line(ax, row, cost_unit, requests)
    if optimization_cost is not None and baseline_cost is not None:
        _shade_cheaper_choice(ax, row, requests, optimization_cost, baseline_cost)
    if optimization_cost is not None:
        _mark_crossover(ax, row, columns, requests)
    _label_regime(ax, row, cost_unit, compact)


def _draw_optimization_line(
    ax, row: pd.Series, columns: dict[str, str], requests: np.ndarray
) -> np.ndarray | None:
    """The lifetime cost of using the optimization, or None when its costs are unknown."""
    train, per_request = row.get(columns["train"]), row.get(columns["per_request"])
    if not (finite(train) and finite(per_request)):
        return None
    cost = lifetime_flops(float(train), float(per_request), requests)
    model, optimization = row.get("model", "model"), row.get("optimization", "optimization")
    ax.plot(
        requests,
        cost,
        color=OPTIMIZATION_COLOR,
        label=f"{model} with {optimization}",
        gid="optimization",
    )
    return cost


def _draw_baseline_line(
    ax, row: pd.Series, cost_unit: str, requests: np.ndarray
) -> np.ndarray | None:
    """The lifetime cost of a baseline model trained with the train-equivalent FLOPs, or None
    when it is unknown."""
    columns = cost_columns(cost_unit)
    equivalent = row.get(columns["equivalent"])
    baseline_per_request = row.get(columns["baseline_per_request"])
    if not (finite(equivalent) and finite(baseline_per_request)):
        return None
    cost = lifetime_flops(float(equivalent), float(baseline_per_request), requests)
    trained_with = f"{float(equivalent):.2e} {COST_UNIT_NAMES[cost_unit]}"
    if cost_unit != "flops" and finite(row.get("train_equivalent_flops")):
        trained_with += f" ({float(row['train_equivalent_flops']):.2e} FLOPs)"
    ax.plot(
        requests,
        cost,
        color=BASELINE_COLOR,
        label=f"{row.get('baseline', 'baseline')} model trained with {trained_with}",
        gid="baseline",
    )
    return cost


def _shade_cheaper_choice(
    ax,
    row: pd.Series,
    requests: np.ndarray,
    optimization_cost: np.ndarray,
    baseline_cost: np.ndarray,
) -> None:
    """Shade the gap between the two lines in the colour of the cheaper choice."""
    optimization = row.get("optimization", "optimization")
    optimization_wins = optimization_cost < baseline_cost
    regions = [
        (optimization_wins, OPTIMIZATION_COLOR, f"{optimization} cheaper", "optimization_wins"),
        (~optimization_wins, BASELINE_COLOR, "training cheaper", "baseline_wins"),
    ]
    for where, color, label, gid in regions:
        # An empty region would still leave a legend entry claiming that choice wins somewhere.
        if where.any():
            ax.fill_between(
                requests,
                optimization_cost,
                baseline_cost,
                where=where,
                interpolate=True,
                color=color,
                alpha=0.2,
                label=label,
                gid=gid,
            )


def _mark_crossover(ax, row: pd.Series, columns: dict[str, str], requests: np.ndarray) -> None:
    """Mark the crossover on the optimization's line, with its interval, when there is one."""
    crossover = row.get(columns["crossover"])
    if not (finite(crossover) and float(crossover) > 0):
        return
    crossover = float(crossover)
    train, per_request = float(row[columns["train"]]), float(row[columns["per_request"]])
    crossover_cost = float(lifetime_flops(train, per_request, crossover))
    low, high = row.get(columns["crossover_low"]), row.get(columns["crossover_high"])
    if finite(low) and finite(high):
        # A low bound of 0 requests cannot be drawn on a log axis; start at the plot's edge.
        ax.plot(
            [max(float(low), requests[0]), float(high)],
            [crossover_cost, crossover_cost],
            color="black",
            linewidth=1,
            gid="crossover_interval",
        )
    ax.plot(
        [crossover],
        [crossover_cost],
        marker="o",
        color="black",
        linestyle="none",
        label=f"crossover: {crossover:.3g} requests",
        gid="crossover",
    )


def _label_regime(ax, row: pd.Series, cost_unit: str, compact: bool) -> None:
    """Title (with the crossover's status when it is not ok), axis labels and legend."""
    columns = cost_columns(cost_unit)
    model, optimization = row.get("model", "model"), row.get("optimization", "optimization")
    # Neutral wording: in the "cheaper above crossover" case the baseline model is the smaller.
    if compact:
        title = f"{model} / {optimization}"
    else:
        baseline = row.get("baseline", "baseline")
        title = f"{model} with {optimization} vs a {baseline} model trained to the same score"
    # A table without this unit's columns (written before it had them) has no costs in it.
    missing = STATUS_OK if cost_unit == "flops" else _missing_cost_status(cost_unit)
    crossover_status = row.get(columns["status"], missing)
    if crossover_status != STATUS_OK:
        title += f"\n({crossover_status})"
    ax.set_title(title, fontsize="small" if compact else "medium")
    train_equivalent_status = row.get("status", STATUS_OK)
    # Not repeated when the title says it already (in seconds, with "no seconds measured").
    if train_equivalent_status != STATUS_OK and not set(
        str(train_equivalent_status).split(STATUS_SEPARATOR)
    ) <= set(str(crossover_status).split(STATUS_SEPARATOR)):
        ax.text(
            0.01,
            0.01,
            f"train-equivalent FLOPs: {train_equivalent_status}",
            transform=ax.transAxes,
            fontsize="x-small" if compact else "small",
            va="bottom",
        )
    ax.set_xlabel("requests served")
    ax.set_ylabel(f"lifetime {COST_UNIT_NAMES[cost_unit]} (training + inference)")
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize="xx-small" if compact else "small", loc="upper left")


def plot_regime_overview(
    table: pd.DataFrame,
    cost_unit: str = "seconds",
    models: Iterable[str] | None = None,
    panels_per_row: int = 3,
) -> Figure:
    """Every row's regime plot (:func:`plot_regime`) as one panel of one figure, in `cost_unit`.

    ``table`` is the train-equivalent table (results/tables/train_equivalent.csv), restricted to
    ``models`` when given. A row whose optimization has no cost per request in this unit (in
    seconds: an imported cell, or one k of a swept optimization) gets no panel; the figure names
    it under the panels, with its status (``"no seconds measured"``). In seconds the title
    states the ``training_throughput`` assumption. Each panel's axes carry the gid
    ``regime:<model>:<optimization>``.
    """
    columns = cost_columns(cost_unit)
    rows = table if models is None else table[table["model"].isin(list(models))]
    if columns["per_request"] in rows:
        per_request = pd.to_numeric(rows[columns["per_request"]], errors="coerce")
    else:
        per_request = pd.Series(np.nan, index=rows.index)
    drawable = np.isfinite(per_request.to_numpy(dtype=float))
    drawn, skipped = rows[drawable], rows[~drawable]

    n_panels = max(len(drawn), 1)
    n_columns = min(panels_per_row, n_panels)
    n_rows = math.ceil(n_panels / n_columns)
    width = max(5.0 * n_columns, 10.0)  # room for the title and the list of rows not drawn
    fig = Figure(figsize=(width, 4.0 * n_rows + 0.8), layout="constrained")
    axes = fig.subplots(n_rows, n_columns, squeeze=False).ravel()
    for ax, (_, row) in zip(axes, drawn.iterrows(), strict=False):
        _draw_regime(ax, row, cost_unit, compact=True)
        ax.set_gid(f"regime:{row['model']}:{row['optimization']}")
    for ax in axes[len(drawn) :]:
        ax.set_axis_off()
    if drawn.empty:
        axes[0].text(
            0.5,
            0.5,
            f"no (model, optimization) with a cost per request in {COST_UNIT_NAMES[cost_unit]}",
            ha="center",
            va="center",
            transform=axes[0].transAxes,
        )

    title = f"Lifetime {COST_UNIT_NAMES[cost_unit]} against requests served"
    if cost_unit == "seconds":
        throughputs = pd.to_numeric(rows.get("training_throughput"), errors="coerce")
        throughput = throughputs.dropna().iloc[0] if throughputs.notna().any() else None
        title += "\n" + throughput_note(throughput)
    # About 11 characters an inch at this size, 13 at the smaller one below.
    fig.suptitle(_wrap_lines(title, int(width * 11)), fontsize="medium")
    if not skipped.empty:
        names = [f"{r['model']} / {r['optimization']}" for _, r in skipped.iterrows()]
        listed = ", ".join(names[:REGIME_OVERVIEW_LISTED])
        if len(names) > REGIME_OVERVIEW_LISTED:
            listed += f", … and {len(names) - REGIME_OVERVIEW_LISTED} more"
        not_drawn = f"not drawn ({_missing_cost_status(cost_unit)}): {listed}"
        fig.supxlabel(_wrap_lines(not_drawn, int(width * 13)), fontsize="small")
    return fig
