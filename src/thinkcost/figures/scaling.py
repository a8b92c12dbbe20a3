"""The training-scaling figures: each optimization's gain against training FLOPs, the isoFLOP
fits through the scores, and the train-equivalent ratio against the generated-token ratio."""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from thinkcost.figures.common import finite
from thinkcost.tables import POOLED_OPTIMIZATION


def _improvements(scores: pd.DataFrame, baseline: str, task: str) -> pd.DataFrame:
    task_rows = scores[scores["task"] == task]
    baseline_scores = (
        task_rows[task_rows["optimization"] == baseline]
        .set_index("model")["score"]
        .rename("baseline_score")
    )
    optimized = task_rows[task_rows["optimization"] != baseline].join(baseline_scores, on="model")
    optimized = optimized.assign(improvement=optimized["score"] - optimized["baseline_score"])
    keep = np.isfinite(optimized["improvement"]) & np.isfinite(optimized["train_flops"])
    return optimized[keep].sort_values(["optimization", "family", "train_flops"])


def plot_improvement_vs_train_flops(
    scores: pd.DataFrame, baseline: str = "standard", task: str = "average"
) -> Figure:
    """Score gain of each optimization over the baseline, against training FLOPs.

    One panel per optimization, one line per family (models in order of training FLOPs), and a
    dashed line at zero gain. Models without a baseline score are left out.
    """
    improvements = _improvements(scores, baseline, task)
    optimizations = list(dict.fromkeys(improvements["optimization"]))
    n_panels = max(len(optimizations), 1)
    fig = Figure(figsize=(4.0 * n_panels, 3.6), layout="constrained")
    axes = fig.subplots(1, n_panels, sharey=True, squeeze=False)[0]
    families = sorted(improvements["family"].dropna().unique(), key=str)
    colors = {family: f"C{index % 10}" for index, family in enumerate(families)}
    for ax, optimization in zip(axes, optimizations, strict=False):
        panel = improvements[improvements["optimization"] == optimization]
        for family, rows in panel.groupby("family", sort=True):
            ax.plot(
                rows["train_flops"],
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
    axes[0].set_ylabel(f"score gain over {baseline} ({task})")
    if not optimizations:
        axes[0].set_title("no optimized scores with a baseline to compare", fontsize="medium")
    if families:
        axes[-1].legend(title="family", fontsize="small")
    return fig


def plot_isoflop(
    scores: pd.DataFrame,
    isoflop_fits: pd.DataFrame,
    task: str = "average",
    show_pooled: bool = True,
) -> Figure:
    """Scores against training FLOPs with the isoFLOP fits drawn through them.

    For each optimization: its points, and its own fit ``alpha * log10 C + beta * t + delta``
    evaluated at the optimization's mean generated tokens ``t`` (solid, ``beta`` taken as 0 when
    it is NaN because the tokens did not vary). With ``show_pooled``, the pooled fit's prediction
    at the same ``t`` is drawn dashed, when the pooled fit has a finite ``beta``. Lines span the
    fitted range of training FLOPs only.
    """
    task_rows = scores[scores["task"] == task]
    fits_by_optimization = {row["optimization"]: row for _, row in isoflop_fits.iterrows()}
    pooled = fits_by_optimization.get(POOLED_OPTIMIZATION)
    fig = Figure(figsize=(6.4, 4.8), layout="constrained")
    ax = fig.add_subplot()
    ax.set_xscale("log")
    optimizations = [name for name in fits_by_optimization if name != POOLED_OPTIMIZATION]
    for index, optimization in enumerate(optimizations):
        color = f"C{index % 10}"
        points = task_rows[task_rows["optimization"] == optimization]
        ax.scatter(
            points["train_flops"],
            points["score"],
            color=color,
            label=str(optimization),
            gid=str(optimization),
        )
        fit = fits_by_optimization[optimization]
        if not (finite(fit["alpha"]) and finite(fit["delta"])) or points.empty:
            continue
        mean_tokens = float(points["generated_tokens_mean"].mean())
        log10_flops = np.linspace(float(fit["log10_flops_min"]), float(fit["log10_flops_max"]), 50)
        beta = float(fit["beta"]) if finite(fit["beta"]) else 0.0
        ax.plot(
            10**log10_flops,
            float(fit["alpha"]) * log10_flops + beta * mean_tokens + float(fit["delta"]),
            color=color,
            gid=f"fit:{optimization}",
        )
        if show_pooled and pooled is not None and finite(pooled["beta"]):
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
    ax.set_ylabel(f"score ({task})")
    title = "score = α·log10 C + β·generated tokens + δ"
    if show_pooled and pooled is not None and finite(pooled["beta"]):
        title += "\nsolid: per optimization; dashed: pooled fit"
    ax.set_title(title, fontsize="medium")
    if optimizations:
        ax.legend(fontsize="small")
    return fig


def _with_token_ratio(
    train_equivalent: pd.DataFrame, scores: pd.DataFrame, baseline: str, task: str
) -> pd.DataFrame:
    """`train_equivalent` with each row's generated tokens divided by its baseline's."""
    task_rows = scores[scores["task"] == task]
    tokens = task_rows.set_index(["model", "optimization"])["generated_tokens_mean"]
    baseline_tokens = (
        task_rows[task_rows["optimization"] == baseline]
        .set_index("model")["generated_tokens_mean"]
        .rename("baseline_tokens")
    )
    table = train_equivalent.join(tokens.rename("tokens"), on=["model", "optimization"]).join(
        baseline_tokens, on="model"
    )
    return table.assign(token_ratio=table["tokens"] / table["baseline_tokens"])


def plot_train_equivalent_ratio(
    train_equivalent: pd.DataFrame,
    scores: pd.DataFrame,
    baseline: str = "standard",
    task: str = "average",
) -> Figure:
    """Train-equivalent ratio against the generated-token ratio (optimization ÷ baseline).

    One marker series per optimization, with the confidence interval of the ratio as vertical
    error bars where both bounds exist, and a dashed line at ratio 1 (no gain). Rows without a
    finite ratio are not drawn; the title says how many were left out.
    """
    table = _with_token_ratio(train_equivalent, scores, baseline, task)
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
    for index, (optimization, rows) in enumerate(shown.groupby("optimization", sort=True)):
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
