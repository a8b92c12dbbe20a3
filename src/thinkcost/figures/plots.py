"""Figures for thinkcost: each function takes tidy DataFrames and returns a matplotlib Figure.

The figures are built with ``matplotlib.figure.Figure`` directly rather than through pyplot, so
nothing here touches pyplot's global state or needs a display: saving renders with the Agg
backend (PNG) or the PDF backend. Only :func:`save_figure` writes files. The numbers come from
:mod:`thinkcost.analysis.fits`; these functions only draw them, apart from the lines of the regime plot,
which are the lifetime-cost formulas written out.
"""

from __future__ import annotations

import itertools
import math
import textwrap
from collections.abc import Iterable
from os import PathLike
from pathlib import Path

import matplotlib
import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from thinkcost.analysis.frontier import pareto_frontier
from thinkcost.tables import (
    POOLED_OPTIMIZATION,
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
# How the cost figures name the inference-FLOP columns on their axes.
COST_CONVENTIONS = {
    "inference_flops_per_request": "configured convention",
    "inference_flops_per_request_full": "full convention",
    "inference_flops_per_request_paper": "paper convention",
}
# How the figures name each cost unit (analysis.cost_unit).
COST_UNIT_NAMES = {"flops": "FLOPs", "seconds": "device-seconds"}
# The measured seconds per question: the cost column of the figures in device-seconds.
SECONDS_COLUMN = "seconds_per_request"
# At most this many rows without a cost are named under the regime overview.
REGIME_OVERVIEW_LISTED = 8


def _finite(value: object) -> bool:
    try:
        return math.isfinite(float(value))
    except (TypeError, ValueError):
        return False


def lifetime_flops(
    train_flops: float, flops_per_request: float, requests: np.ndarray
) -> np.ndarray:
    """Training FLOPs plus ``requests`` times the inference FLOPs per request (or the same in
    device-seconds: the formula is the unit's)."""
    return train_flops + np.asarray(requests, dtype=float) * flops_per_request


def _regime_requests(row: pd.Series, columns: dict[str, str]) -> np.ndarray:
    crossover = row.get(columns["crossover"])
    if _finite(crossover) and float(crossover) > 0:
        centre = math.log10(float(crossover))
    else:
        training = [
            float(row[col])
            for col in (columns["train"], columns["equivalent"])
            if _finite(row.get(col)) and float(row[col]) > 0
        ]
        per_request = [
            float(row[col])
            for col in (columns["per_request"], columns["baseline_per_request"])
            if _finite(row.get(col)) and float(row[col]) > 0
        ]
        # Without a crossover, centre on the request count at which inference has cost as much
        # as training: that is where the picture changes shape.
        centre = math.log10(max(training) / max(per_request)) if training and per_request else 6.0
    return np.logspace(
        centre - REGIME_DECADES_EACH_SIDE, centre + REGIME_DECADES_EACH_SIDE, num=400
    )


def throughput_note(training_throughput: object) -> str:
    """The assumption that puts training in device-seconds, as the figures print it."""
    value = (
        f"{float(training_throughput):.3g} FLOP/s" if _finite(training_throughput) else "unknown"
    )
    return (
        f"training at {value} (analysis.training_throughput); "
        "inference at its measured seconds per question"
    )


def _wrap_lines(text: str, width: int) -> str:
    return "\n".join(textwrap.fill(line, width) for line in text.split("\n"))


def _missing_cost_status(cost_unit: str) -> str:
    return STATUS_NO_SECONDS if cost_unit == "seconds" else STATUS_NO_INFERENCE_FLOPS


def plot_regime(
    crossover_row: pd.Series,
    model_col: str = "model",
    optimization_col: str = "optimization",
    cost_unit: str = "flops",
) -> Figure:
    """Lifetime cost against requests served, for one (model, optimization) row.

    ``crossover_row`` is one row of :func:`thinkcost.fits.crossover_requests`. Two lines on
    log-log axes: the model with the optimization (``train_flops + R * flops_per_request``)
    and a baseline model trained with the train-equivalent FLOPs
    (``train_equivalent_flops + R * baseline_flops_per_request``). The gap between them is
    shaded in the colour of the cheaper choice. The crossover is marked (with its confidence
    interval as a horizontal bar) only when ``crossover_requests`` is a number; otherwise the
    title carries ``crossover_status`` so the figure never implies a crossover that was not
    computed.

    ``cost_unit="seconds"`` draws the same in device-seconds, from the row's columns of that
    unit (:func:`thinkcost.fits.cost_columns`: ``train_seconds``, ``seconds_per_request``,
    ``crossover_requests_seconds``, …), and prints the ``training_throughput`` assumption under
    the axes. A row whose seconds were not measured draws no line and says so.
    """
    fig = Figure(figsize=(6.4, 4.8), layout="constrained")
    ax = fig.add_subplot()
    _draw_regime(ax, crossover_row, cost_unit, model_col, optimization_col)
    if cost_unit == "seconds":
        _add_note(ax, throughput_note(crossover_row.get("training_throughput")), "throughput_note")
    return fig


def _draw_regime(
    ax,
    row: pd.Series,
    cost_unit: str,
    model_col: str,
    optimization_col: str,
    compact: bool = False,
) -> None:
    columns = cost_columns(cost_unit)
    unit_name = COST_UNIT_NAMES[cost_unit]
    model = row.get(model_col, "model")
    optimization = row.get(optimization_col, "optimization")
    baseline = row.get("baseline", "baseline")
    requests = _regime_requests(row, columns)
    train, per_request = row.get(columns["train"]), row.get(columns["per_request"])
    equivalent = row.get(columns["equivalent"])
    baseline_per_request = row.get(columns["baseline_per_request"])

    ax.set_xscale("log")
    ax.set_yscale("log")

    optimization_cost = None
    if _finite(train) and _finite(per_request):
        optimization_cost = lifetime_flops(float(train), float(per_request), requests)
        ax.plot(
            requests,
            optimization_cost,
            color=OPTIMIZATION_COLOR,
            label=f"{model} with {optimization}",
            gid="optimization",
        )

    baseline_cost = None
    if _finite(equivalent) and _finite(baseline_per_request):
        baseline_cost = lifetime_flops(float(equivalent), float(baseline_per_request), requests)
        trained_with = f"{float(equivalent):.2e} {unit_name}"
        if cost_unit != "flops" and _finite(row.get("train_equivalent_flops")):
            trained_with += f" ({float(row['train_equivalent_flops']):.2e} FLOPs)"
        ax.plot(
            requests,
            baseline_cost,
            color=BASELINE_COLOR,
            label=f"{baseline} model trained with {trained_with}",
            gid="baseline",
        )

    if optimization_cost is not None and baseline_cost is not None:
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

    crossover = row.get(columns["crossover"])
    if _finite(crossover) and float(crossover) > 0 and optimization_cost is not None:
        crossover = float(crossover)
        crossover_cost = float(lifetime_flops(float(train), float(per_request), crossover))
        low, high = row.get(columns["crossover_low"]), row.get(columns["crossover_high"])
        if _finite(low) and _finite(high):
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

    # Neutral wording: in the "cheaper above crossover" case the baseline model is the smaller.
    if compact:
        title = f"{model} / {optimization}"
    else:
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
    ax.set_ylabel(f"lifetime {unit_name} (training + inference)")
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize="xx-small" if compact else "small", loc="upper left")


def plot_regime_overview(
    table: pd.DataFrame,
    cost_unit: str = "seconds",
    models: Iterable[str] | None = None,
    model_col: str = "model",
    optimization_col: str = "optimization",
    panels_per_row: int = 3,
) -> Figure:
    """Every row's regime plot (:func:`plot_regime`) as one panel of one figure, in `cost_unit`.

    ``table`` is :func:`thinkcost.fits.crossover_requests`'s (results/tables/train_equivalent.csv),
    restricted to ``models`` when given. A row whose optimization has no cost per request in
    this unit (in seconds: an imported cell, or one k of a swept optimization) gets no panel;
    the figure names it under the panels, with its status (``"no seconds measured"``). In
    seconds the title states the ``training_throughput`` assumption. Each panel's axes carry the
    gid ``regime:<model>:<optimization>``.
    """
    columns = cost_columns(cost_unit)
    rows = table if models is None else table[table[model_col].isin(list(models))]
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
        _draw_regime(ax, row, cost_unit, model_col, optimization_col, compact=True)
        ax.set_gid(f"regime:{row[model_col]}:{row[optimization_col]}")
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
        names = [f"{r[model_col]} / {r[optimization_col]}" for _, r in skipped.iterrows()]
        listed = ", ".join(names[:REGIME_OVERVIEW_LISTED])
        if len(names) > REGIME_OVERVIEW_LISTED:
            listed += f", … and {len(names) - REGIME_OVERVIEW_LISTED} more"
        not_drawn = f"not drawn ({_missing_cost_status(cost_unit)}): {listed}"
        fig.supxlabel(_wrap_lines(not_drawn, int(width * 13)), fontsize="small")
    return fig


def _improvements(
    scores: pd.DataFrame,
    baseline: str,
    task: str,
    score_col: str,
    flops_col: str,
    family_col: str,
    model_col: str,
    optimization_col: str,
    task_col: str,
) -> pd.DataFrame:
    task_rows = scores[scores[task_col] == task]
    baseline_scores = (
        task_rows[task_rows[optimization_col] == baseline]
        .set_index(model_col)[score_col]
        .rename("baseline_score")
    )
    optimized = task_rows[task_rows[optimization_col] != baseline].join(
        baseline_scores, on=model_col
    )
    optimized = optimized.assign(improvement=optimized[score_col] - optimized["baseline_score"])
    keep = np.isfinite(optimized["improvement"]) & np.isfinite(optimized[flops_col])
    return optimized[keep].sort_values([optimization_col, family_col, flops_col])


def plot_improvement_vs_train_flops(
    scores: pd.DataFrame,
    baseline: str = "standard",
    task: str = "average",
    score_col: str = "score",
    flops_col: str = "train_flops",
    family_col: str = "family",
    model_col: str = "model",
    optimization_col: str = "optimization",
    task_col: str = "task",
) -> Figure:
    """Score gain of each optimization over the baseline, against training FLOPs.

    One panel per optimization, one line per family (models in order of training FLOPs), and a
    dashed line at zero gain. Models without a baseline score are left out.
    """
    improvements = _improvements(
        scores,
        baseline,
        task,
        score_col,
        flops_col,
        family_col,
        model_col,
        optimization_col,
        task_col,
    )
    optimizations = list(dict.fromkeys(improvements[optimization_col]))
    n_panels = max(len(optimizations), 1)
    fig = Figure(figsize=(4.0 * n_panels, 3.6), layout="constrained")
    axes = fig.subplots(1, n_panels, sharey=True, squeeze=False)[0]
    families = sorted(improvements[family_col].dropna().unique(), key=str)
    colors = {family: f"C{index % 10}" for index, family in enumerate(families)}
    for ax, optimization in zip(axes, optimizations, strict=False):
        panel = improvements[improvements[optimization_col] == optimization]
        for family, rows in panel.groupby(family_col, sort=True):
            ax.plot(
                rows[flops_col],
                rows["improvement"],
                marker="o",
                color=colors[family],
                label=str(family),
                gid=f"family:{family}",
            )
        ax.axhline(0.0, color="grey", linestyle="--", linewidth=1, gid="zero")
        ax.set_xscale("log")
        ax.set_title(f"{optimization} − {baseline}", fontsize="medium")
        ax.set_xlabel("training FLOPs (6·N·D)")
    axes[0].set_ylabel(f"{score_col} gain over {baseline} ({task})")
    if not optimizations:
        axes[0].set_title("no optimized scores with a baseline to compare", fontsize="medium")
    if families:
        axes[-1].legend(title="family", fontsize="small")
    return fig


def plot_isoflop(
    scores: pd.DataFrame,
    isoflop_fits: pd.DataFrame,
    task: str = "average",
    score_col: str = "score",
    flops_col: str = "train_flops",
    generated_tokens_col: str = "generated_tokens_mean",
    optimization_col: str = "optimization",
    task_col: str = "task",
    pooled_label: str = POOLED_OPTIMIZATION,
    show_pooled: bool = True,
) -> Figure:
    """Scores against training FLOPs with the isoFLOP fits drawn through them.

    For each optimization: its points, and its own fit ``alpha * log10 C + beta * t + delta``
    evaluated at the optimization's mean generated tokens ``t`` (solid, ``beta`` taken as 0 when
    it is NaN because the tokens did not vary). With ``show_pooled``, the pooled fit's prediction
    at the same ``t`` is drawn dashed, when the pooled fit has a finite ``beta``. Lines span the
    fitted range of training FLOPs only.
    """
    task_rows = scores[scores[task_col] == task]
    fits_by_optimization = {row[optimization_col]: row for _, row in isoflop_fits.iterrows()}
    pooled = fits_by_optimization.get(pooled_label)
    fig = Figure(figsize=(6.4, 4.8), layout="constrained")
    ax = fig.add_subplot()
    ax.set_xscale("log")
    optimizations = [name for name in fits_by_optimization if name != pooled_label]
    for index, optimization in enumerate(optimizations):
        color = f"C{index % 10}"
        points = task_rows[task_rows[optimization_col] == optimization]
        ax.scatter(
            points[flops_col],
            points[score_col],
            color=color,
            label=str(optimization),
            gid=str(optimization),
        )
        fit = fits_by_optimization[optimization]
        if not (_finite(fit["alpha"]) and _finite(fit["delta"])) or points.empty:
            continue
        mean_tokens = float(points[generated_tokens_col].mean())
        log10_flops = np.linspace(float(fit["log10_flops_min"]), float(fit["log10_flops_max"]), 50)
        beta = float(fit["beta"]) if _finite(fit["beta"]) else 0.0
        ax.plot(
            10**log10_flops,
            float(fit["alpha"]) * log10_flops + beta * mean_tokens + float(fit["delta"]),
            color=color,
            gid=f"fit:{optimization}",
        )
        if show_pooled and pooled is not None and _finite(pooled["beta"]):
            ax.plot(
                10**log10_flops,
                float(pooled["alpha"]) * log10_flops
                + float(pooled["beta"]) * mean_tokens
                + float(pooled["delta"]),
                color=color,
                linestyle="--",
                gid=f"pooled:{optimization}",
            )
    ax.set_xlabel("training FLOPs (6·N·D)")
    ax.set_ylabel(f"{score_col} ({task})")
    title = "score = α·log10 C + β·generated tokens + δ"
    if show_pooled and pooled is not None and _finite(pooled["beta"]):
        title += "\nsolid: per optimization; dashed: pooled fit"
    ax.set_title(title, fontsize="medium")
    if optimizations:
        ax.legend(fontsize="small")
    return fig


def plot_train_equivalent_ratio(
    train_equivalent: pd.DataFrame,
    scores: pd.DataFrame,
    baseline: str = "standard",
    task: str = "average",
    generated_tokens_col: str = "generated_tokens_mean",
    model_col: str = "model",
    optimization_col: str = "optimization",
    task_col: str = "task",
) -> Figure:
    """Train-equivalent ratio against the generated-token ratio (optimization ÷ baseline).

    One marker series per optimization, with the confidence interval of the ratio as vertical
    error bars where both bounds exist, and a dashed line at ratio 1 (no gain). Rows without a
    finite ratio are not drawn; the title says how many were left out.
    """
    task_rows = scores[scores[task_col] == task]
    tokens = task_rows.set_index([model_col, optimization_col])[generated_tokens_col]
    baseline_tokens = (
        task_rows[task_rows[optimization_col] == baseline]
        .set_index(model_col)[generated_tokens_col]
        .rename("baseline_tokens")
    )
    table = train_equivalent.join(tokens.rename("tokens"), on=[model_col, optimization_col]).join(
        baseline_tokens, on=model_col
    )
    table = table.assign(token_ratio=table["tokens"] / table["baseline_tokens"])
    drawable = (
        np.isfinite(table["train_equivalent_ratio"])
        & np.isfinite(table["token_ratio"])
        & (table["train_equivalent_ratio"] > 0)
        & (table["token_ratio"] > 0)
    )
    shown = table[drawable]

    fig = Figure(figsize=(6.4, 4.8), layout="constrained")
    ax = fig.add_subplot()
    ax.set_xscale("log")
    ax.set_yscale("log")
    for index, (optimization, rows) in enumerate(shown.groupby(optimization_col, sort=True)):
        ratio = rows["train_equivalent_ratio"].to_numpy(dtype=float)
        low = (rows["train_equivalent_flops_low"] / rows["train_flops"]).to_numpy(dtype=float)
        high = (rows["train_equivalent_flops_high"] / rows["train_flops"]).to_numpy(dtype=float)
        # Missing bounds draw as zero-length bars rather than dropping the point.
        lower_error = np.where(np.isfinite(low), ratio - low, 0.0)
        upper_error = np.where(np.isfinite(high), high - ratio, 0.0)
        container = ax.errorbar(
            rows["token_ratio"],
            ratio,
            yerr=[lower_error, upper_error],
            fmt="o",
            color=f"C{index % 10}",
            label=str(optimization),
            capsize=2,
        )
        container.lines[0].set_gid(f"optimization:{optimization}")
    ax.axhline(1.0, color="grey", linestyle="--", linewidth=1, gid="no_gain")
    ax.set_xlabel(f"generated tokens per request, optimization ÷ {baseline}")
    ax.set_ylabel("train-equivalent FLOPs ÷ training FLOPs")
    title = "training compute an optimization is worth"
    left_out = int((~drawable).sum())
    if left_out:
        title += f"\n({left_out} row(s) without a train-equivalent ratio not shown)"
    ax.set_title(title, fontsize="medium")
    if not shown.empty:
        ax.legend(fontsize="small")
    return fig


def pareto_cost_column(
    scores: pd.DataFrame, task: str = "average", task_col: str = "task", cost_unit: str = "flops"
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
    rows = scores[scores[task_col] == task]
    if full in rows and len(rows) and np.isfinite(pd.to_numeric(rows[full], errors="coerce")).all():
        return full
    return paper


def _stderr_values(rows: pd.DataFrame, stderr_col: str) -> np.ndarray:
    """The standard errors of `rows` as floats (NaN where unknown or the column is absent)."""
    if stderr_col not in rows:
        return np.full(len(rows), np.nan)
    return pd.to_numeric(rows[stderr_col], errors="coerce").to_numpy(dtype=float)


def _within_one_stderr(
    marked: pd.DataFrame, x_col: str, y_col: str, stderr_col: str
) -> list[tuple[object, object]]:
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
    stderr = pd.Series(_stderr_values(marked, stderr_col), index=marked.index)
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


# At most this many pairs are named in a figure's "within one standard error" note.
STDERR_NOTE_PAIRS = 6


def _stderr_note(pairs: list[tuple[str, str]]) -> str:
    lines = [f"{a} ≈ {b}" for a, b in pairs[:STDERR_NOTE_PAIRS]]
    if len(pairs) > STDERR_NOTE_PAIRS:
        lines.append(f"… and {len(pairs) - STDERR_NOTE_PAIRS} more pair(s)")
    return "within 1 s.e. of each other (on or near the frontier):\n" + "\n".join(lines)


def _add_stderr_note(ax, pairs: list[tuple[str, str]]) -> None:
    if pairs:
        _add_note(ax, _stderr_note(pairs), "stderr_note")


def _add_note(ax, text: str, gid: str) -> None:
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


def cost_axis_label(scores: pd.DataFrame, x_col: str, task_col: str = "task") -> str:
    """The cost axis's label: inference FLOPs per question under a named convention, or the
    measured seconds per question with the device they were measured on (when the cells name
    one device; seconds from different devices do not compare)."""
    if x_col != SECONDS_COLUMN:
        return f"inference FLOPs per question ({COST_CONVENTIONS.get(x_col, x_col)})"
    devices = []
    if "device" in scores and task_col in scores:
        cells = scores[(scores[task_col] != "average") & scores[SECONDS_COLUMN].notna()]
        devices = sorted(cells["device"].dropna().astype(str).unique())
    if len(devices) == 1:
        where = f"measured on {devices[0]}"
    elif devices:
        where = f"measured on {len(devices)} devices: compare with care"
    else:
        where = "measured"
    return f"seconds per question ({where})"


def _say_when_nothing_drawn(ax, x: pd.Series, y: pd.Series, x_col: str) -> None:
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


def _not_shown_note(x: pd.Series, y: pd.Series, x_col: str) -> str | None:
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


def plot_pareto(
    scores: pd.DataFrame,
    task: str = "average",
    x_col: str = "inference_flops_per_request",
    y_col: str = "score",
    stderr_col: str = "stderr",
    model_col: str = "model",
    optimization_col: str = "optimization",
    task_col: str = "task",
) -> Figure:
    """Score against inference cost per request for every model and optimization.

    One scatter series per optimization, each point with its standard error as a vertical error
    bar; the Pareto frontier (:func:`thinkcost.analysis.frontier.pareto_frontier`: no other cell is both
    cheaper and better) is drawn as a step line through its points, which are labelled with
    model and optimization. When points on or near the frontier are within one standard error
    of each other (see :func:`_within_one_stderr`), a note under the axes names them: the
    order of those points is not resolved by the data.

    ``x_col`` is an inference-FLOP column or the measured ``seconds_per_request``; the axis label
    names it (:func:`cost_axis_label`). Rows without a finite score or a positive cost (none on
    a log axis; in seconds, the imported cells and a sweep's k rows) are not drawn and the title
    counts them, with ``"no seconds measured"`` where that is why.
    """
    task_rows = scores[scores[task_col] == task]
    if x_col not in task_rows:  # a table without measured seconds: nothing to draw, and said so
        task_rows = task_rows.assign(**{x_col: np.nan})
    marked = pareto_frontier(task_rows, x_col=x_col, y_col=y_col)
    fig = Figure(figsize=(6.4, 4.8), layout="constrained")
    ax = fig.add_subplot()
    ax.set_xscale("log")
    for index, (optimization, rows) in enumerate(marked.groupby(optimization_col, sort=True)):
        color = f"C{index % 10}"
        x = pd.to_numeric(rows[x_col], errors="coerce").to_numpy(dtype=float)
        y = pd.to_numeric(rows[y_col], errors="coerce").to_numpy(dtype=float)
        ax.scatter(x, y, color=color, label=str(optimization), gid=str(optimization))
        bars = ax.errorbar(
            x,
            y,
            yerr=_stderr_values(rows, stderr_col),
            fmt="none",
            ecolor=color,
            elinewidth=1,
            capsize=2,
        )
        bars.lines[2][0].set_gid(f"stderr:{optimization}")
    frontier = marked[marked["on_pareto_frontier"]].sort_values([x_col, y_col])
    if not frontier.empty:
        ax.plot(
            frontier[x_col],
            frontier[y_col],
            color="black",
            drawstyle="steps-post",
            marker="x",
            label="Pareto frontier",
            gid="pareto_frontier",
        )
        for _, row in frontier.iterrows():
            ax.annotate(
                f"{row[model_col]} / {row[optimization_col]}",
                (row[x_col], row[y_col]),
                textcoords="offset points",
                xytext=(4, 4),
                fontsize="x-small",
            )
    finite = np.isfinite(pd.to_numeric(marked[x_col], errors="coerce")) & np.isfinite(
        pd.to_numeric(marked[y_col], errors="coerce")
    )
    drawn = marked[finite.to_numpy(dtype=bool)]
    label = {i: f"{drawn.at[i, model_col]} / {drawn.at[i, optimization_col]}" for i in drawn.index}
    pairs = _within_one_stderr(drawn, x_col, y_col, stderr_col)
    _add_stderr_note(ax, [(label[a], label[b]) for a, b in pairs])
    if x_col == SECONDS_COLUMN:
        ax.set_xlabel(cost_axis_label(scores, x_col, task_col))
        title = "quality against inference time"
    else:
        ax.set_xlabel(f"inference FLOPs per request ({COST_CONVENTIONS.get(x_col, x_col)})")
        title = "quality against inference cost"
    not_shown = _not_shown_note(task_rows[x_col], task_rows[y_col], x_col)
    if not_shown:
        title += f"\n({not_shown})"
    _say_when_nothing_drawn(ax, task_rows[x_col], task_rows[y_col], x_col)
    ax.set_ylabel(f"{y_col} ({task})")
    ax.set_title(title, fontsize="medium")
    if not marked.empty:
        ax.legend(fontsize="small")
    return fig


# Strategies (unswept optimizations, then swept ones) take these markers in turn, and the swept
# ones these line styles.
STRATEGY_MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*", "<", ">", "h", "p")
SWEEP_LINESTYLES = ("-", "--", ":", "-.")
# At most this many frontier points are listed in the frontier figure's legend (all are ringed).
FRONTIER_LEGEND_POINTS = 16


def _format_params(params: object) -> str:
    if not _finite(params):
        return ""
    value = float(params)
    for divisor, suffix in ((1e12, "T"), (1e9, "B"), (1e6, "M"), (1e3, "k")):
        if value >= divisor:
            return f"{value / divisor:.3g}{suffix}"
    return f"{value:.3g}"


def _frontier_points(
    rows: pd.DataFrame,
    x_col: str,
    y_col: str,
    stderr_col: str,
    model_col: str,
    optimization_col: str,
    params_col: str,
    sweep_col: str,
    k_col: str,
    vote_col: str,
) -> pd.DataFrame:
    """One row per point of `rows`: model, optimization, strategy, swept, k, vote, params, x, y,
    stderr. A row is swept when it names the optimization it sweeps (`sweep_col`) and has a k."""

    def column(name: str) -> pd.Series:
        return rows[name] if name in rows else pd.Series(np.nan, index=rows.index)

    sweep_of = column(sweep_col)
    swept = sweep_of.notna() & (sweep_of.astype(str) != "")
    k = pd.to_numeric(column(k_col), errors="coerce")
    # A k lost on the way (a hand-made table): the number after the last "@" of the name.
    from_name = pd.to_numeric(
        rows[optimization_col].astype(str).str.extract(r"@(\d+)$", expand=False), errors="coerce"
    )
    k = k.where(k.notna(), from_name)
    swept &= k.notna()
    return pd.DataFrame(
        {
            "model": rows[model_col].astype(str),
            "optimization": rows[optimization_col].astype(str),
            # A swept strategy is named "<name>@k", apart from any unswept one called <name>.
            "strategy": np.where(
                swept, sweep_of.astype(str) + "@k", rows[optimization_col].astype(str)
            ),
            "swept": swept.to_numpy(dtype=bool),
            "k": k.where(swept),
            "vote": column(vote_col).where(swept),
            "params": pd.to_numeric(column(params_col), errors="coerce"),
            "x": pd.to_numeric(column(x_col), errors="coerce"),
            "y": pd.to_numeric(rows[y_col], errors="coerce"),
            "stderr": _stderr_values(rows, stderr_col),
        },
        index=rows.index,
    )


def plot_frontier(
    scores: pd.DataFrame,
    task: str = "average",
    x_col: str | None = None,
    y_col: str = "score",
    stderr_col: str = "stderr",
    model_col: str = "model",
    optimization_col: str = "optimization",
    task_col: str = "task",
    params_col: str = "params",
    sweep_col: str = "sweep_of",
    k_col: str = "k",
    vote_col: str = "vote",
    cost_unit: str = "flops",
) -> Figure:
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
    The points that make it (:func:`thinkcost.analysis.frontier.pareto_frontier`) are ringed and listed in
    the legend, cheapest first; points on or near it within one standard error of each other
    are named in a note under the axes (see :func:`_within_one_stderr`).

    ``x_col`` defaults to :func:`pareto_cost_column`'s choice for ``cost_unit``: in
    ``"seconds"``, the measured seconds per question, so a runtime optimization that only makes
    the model faster moves left. Rows of `task` are drawn; when there are none, the task with
    the most rows (the title says so). Rows without a finite score or a positive cost (none on
    a log axis) are left out, and the title counts them; in seconds, the rows with ``"no seconds
    measured"`` (imported cells, and a sweep's k rows, whose seconds were measured for all K
    samples together) are counted on their own.
    """
    shown_task = task
    notes = []
    if not (scores[task_col] == task).any() and len(scores):
        counts = scores[task_col].value_counts()
        shown_task = min(counts.index, key=lambda name: (-counts[name], str(name)))
        notes.append(f"no {task} rows: {shown_task} shown")
    if x_col is None:
        x_col = pareto_cost_column(scores, shown_task, task_col, cost_unit)
        # A table written before the conventions had their columns.
        if x_col not in scores and x_col != SECONDS_COLUMN:
            x_col = "inference_flops_per_request"
    points = _frontier_points(
        scores[scores[task_col] == shown_task],
        x_col,
        y_col,
        stderr_col,
        model_col,
        optimization_col,
        params_col,
        sweep_col,
        k_col,
        vote_col,
    )
    drawable = np.isfinite(points["x"]) & np.isfinite(points["y"]) & (points["x"] > 0)
    not_shown = _not_shown_note(points["x"], points["y"], x_col)
    if not_shown:
        notes.append(not_shown)
    all_points = points
    points = points[drawable]

    fig = Figure(figsize=(9.0, 5.6), layout="constrained")
    ax = fig.add_subplot()
    ax.set_xscale("log")
    _say_when_nothing_drawn(ax, all_points["x"], all_points["y"], x_col)

    models = (
        points.groupby("model")["params"]
        .first()
        .reset_index()
        .sort_values(["params", "model"], na_position="last")["model"]
        .tolist()
    )
    shades = np.linspace(0.0, 0.85, len(models)) if len(models) > 1 else [0.0]
    colormap = matplotlib.colormaps["viridis"]
    colors = {model: colormap(shade) for model, shade in zip(models, shades, strict=False)}
    unswept = sorted(set(points.loc[~points["swept"], "strategy"]))
    swept = sorted(set(points.loc[points["swept"], "strategy"]))
    markers = {
        name: STRATEGY_MARKERS[index % len(STRATEGY_MARKERS)]
        for index, name in enumerate(unswept + swept)
    }
    linestyles = {
        name: SWEEP_LINESTYLES[index % len(SWEEP_LINESTYLES)] for index, name in enumerate(swept)
    }

    for model in models:
        for strategy in unswept + swept:
            group = points[(points["model"] == model) & (points["strategy"] == strategy)]
            if group.empty:
                continue
            is_swept = strategy in linestyles
            group = group.sort_values(["k", "x"] if is_swept else ["x"])
            container = ax.errorbar(
                group["x"],
                group["y"],
                yerr=group["stderr"],
                color=colors[model],
                marker=markers[strategy],
                markersize=5,
                linestyle=linestyles[strategy] if is_swept else "none",
                linewidth=1.2,
                elinewidth=0.8,
                capsize=2,
                zorder=2,
            )
            kind = "sweep" if is_swept else "point"
            container.lines[0].set_gid(f"{kind}:{model}:{strategy}")
            container.lines[2][0].set_gid(f"stderr:{model}:{strategy}")
            if is_swept:
                for _, row in group.iterrows():
                    ax.annotate(
                        f"k={int(row['k'])}",
                        (row["x"], row["y"]),
                        textcoords="offset points",
                        xytext=(3, -9),
                        fontsize="xx-small",
                        color=colors[model],
                        gid=f"k:{model}:{strategy}:{int(row['k'])}",
                    )

    handles = []
    if not points.empty:
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
        label = {
            i: f"{marked.at[i, 'model']} / {marked.at[i, 'optimization']}" for i in marked.index
        }
        pairs = _within_one_stderr(marked, "x", "y", "stderr")
        _add_stderr_note(ax, [(label[a], label[b]) for a, b in pairs])

        def header(text: str) -> Line2D:
            return Line2D([], [], linestyle="none", marker="none", label=text)

        handles.append(header("model"))
        handles += [
            Line2D([], [], color=colors[model], linewidth=2, label=_model_label(points, model))
            for model in models
        ]
        handles.append(header("strategy"))
        for strategy in unswept + swept:
            if strategy in linestyles:
                votes = points.loc[points["strategy"] == strategy, "vote"].dropna().unique()
                rule = f" ({', '.join(map(str, votes))})" if len(votes) else ""
                handles.append(
                    Line2D(
                        [],
                        [],
                        color="0.3",
                        marker=markers[strategy],
                        linestyle=linestyles[strategy],
                        label=f"{strategy}{rule}",
                    )
                )
            else:
                handles.append(
                    Line2D(
                        [],
                        [],
                        color="0.3",
                        marker=markers[strategy],
                        linestyle="none",
                        label=strategy,
                    )
                )
        handles.append(header("compute-optimal frontier"))
        handles.append(
            Line2D(
                [], [], color="black", alpha=0.35, linewidth=2.5, label="best score at no more cost"
            )
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
                label=_frontier_listing([label[i] for i in on_frontier.index]),
            )
        )
        fig.legend(handles=handles, loc="outside right upper", fontsize="small")

    ax.set_xlabel(cost_axis_label(scores, x_col, task_col))
    what = "benchmark average" if shown_task == "average" else shown_task
    ax.set_ylabel(f"{y_col} ({what})")
    if x_col == SECONDS_COLUMN:
        title = "inference scaling: score against inference time"
    else:
        title = "inference scaling: score against inference compute"
    if notes:
        title += "\n(" + "; ".join(notes) + ")"
    ax.set_title(title, fontsize="medium")
    return fig


def _frontier_listing(names: list[str]) -> str:
    lines = names[:FRONTIER_LEGEND_POINTS]
    if len(names) > FRONTIER_LEGEND_POINTS:
        lines.append(f"… and {len(names) - FRONTIER_LEGEND_POINTS} more (ringed)")
    return "on it, cheapest first:\n" + "\n".join(lines)


def _model_label(points: pd.DataFrame, model: str) -> str:
    size = _format_params(points.loc[points["model"] == model, "params"].iloc[0])
    return f"{model} ({size})" if size else model


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
