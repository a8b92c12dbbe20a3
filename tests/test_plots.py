"""Tests for thinkcost.figures: each figure draws what the tables say."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import matplotlib
import numpy as np
import pandas as pd
import pytest
from matplotlib.figure import Figure

from thinkcost import tables
from thinkcost.analysis.crossover import crossover_requests
from thinkcost.analysis.family import fit_family_scaling
from thinkcost.analysis.frontier import pareto_frontier
from thinkcost.analysis.isoflop import fit_isoflop
from thinkcost.analysis.train_equivalent import train_equivalent_flops, train_equivalent_table
from thinkcost.figures.common import save_figure
from thinkcost.figures.cost import pareto_cost_column, plot_pareto
from thinkcost.figures.frontier import plot_frontier
from thinkcost.figures.regime import REGIME_OVERVIEW_LISTED, plot_regime, plot_regime_overview
from thinkcost.figures.scaling import (
    plot_improvement_vs_train_flops,
    plot_isoflop,
    plot_train_equivalent_ratio,
)


def by_gid(ax, gid: str):
    artists = [artist for artist in (*ax.lines, *ax.collections) if artist.get_gid() == gid]
    assert len(artists) <= 1, gid
    return artists[0] if artists else None


def gids(ax) -> list[str]:
    return [artist.get_gid() for artist in (*ax.lines, *ax.collections) if artist.get_gid()]


@pytest.fixture
def scores() -> pd.DataFrame:
    """Two families; CoT adds 0.05, self-consistency 0.03, to every model's score."""
    rows = []
    models = {
        "F": [("f0", 1e8, 2e10), ("f1", 4e8, 4e10), ("f2", 1e9, 1e11), ("f3", 3e9, 3e11)],
        "G": [("g0", 2e8, 1e11), ("g1", 1e9, 2e11), ("g2", 5e9, 5e11)],
    }
    optimizations = {"standard": (0.0, 20.0), "cot": (0.05, 200.0), "sc": (0.03, 100.0)}
    for family, members in models.items():
        for index, (model, params, tokens) in enumerate(members):
            train_flops = 6 * params * tokens
            for optimization, (gain, generated) in optimizations.items():
                generated_tokens = generated + 5 * index
                rows.append(
                    {
                        "model": model,
                        "family": family,
                        "params": params,
                        "train_flops": train_flops,
                        "task": "average",
                        "optimization": optimization,
                        "score": 0.05 * np.log10(train_flops) - 0.6 + gain + 0.002 * index,
                        "stderr": 0.01,
                        "generated_tokens_mean": generated_tokens,
                        "inference_flops_per_request": 2 * params * generated_tokens,
                    }
                )
    return pd.DataFrame(rows)


@pytest.fixture
def crossover(scores) -> pd.DataFrame:
    train_equivalent = train_equivalent_flops(scores, fit_family_scaling(scores))
    return crossover_requests(train_equivalent, scores)


# --- plot_regime -----------------------------------------------------------------------------


def test_regime_marks_crossover_where_lines_meet(crossover):
    row = crossover[crossover["crossover_status"] == tables.STATUS_OK].iloc[0]
    fig = plot_regime(row)
    assert isinstance(fig, Figure)
    ax = fig.axes[0]
    assert ax.get_xscale() == "log" and ax.get_yscale() == "log"
    assert len([line for line in ax.lines if line.get_gid() in ("optimization", "baseline")]) == 2

    marker = by_gid(ax, "crossover")
    assert marker is not None
    (marker_x,), (marker_y,) = marker.get_data()
    assert marker_x == pytest.approx(row["crossover_requests"])
    # Both lifetime costs are equal at the crossover.
    assert marker_y == pytest.approx(row["train_flops"] + marker_x * row["flops_per_request"])
    assert marker_y == pytest.approx(
        row["train_equivalent_flops"] + marker_x * row["baseline_flops_per_request"]
    )

    interval_x = by_gid(ax, "crossover_interval").get_xdata()
    assert interval_x[0] <= marker_x <= interval_x[1]

    # The optimization wins below the crossover, training above it.
    optimization_wins = by_gid(ax, "optimization_wins").get_paths()[0].vertices[:, 0]
    baseline_wins = by_gid(ax, "baseline_wins").get_paths()[0].vertices[:, 0]
    assert optimization_wins.max() == pytest.approx(marker_x, rel=1e-6)
    assert baseline_wins.min() == pytest.approx(marker_x, rel=1e-6)


def test_regime_without_crossover_has_no_marker_and_says_why(crossover):
    row = crossover.iloc[0].copy()
    row["flops_per_request"] = row["baseline_flops_per_request"]  # optimization now free
    row["crossover_requests"] = np.nan
    row["crossover_status"] = tables.STATUS_ALWAYS_CHEAPER
    ax = plot_regime(row).axes[0]
    assert by_gid(ax, "crossover") is None
    assert tables.STATUS_ALWAYS_CHEAPER in ax.get_title()
    assert by_gid(ax, "baseline_wins") is None  # training wins nowhere: nothing shaded for it
    assert len(by_gid(ax, "optimization_wins").get_paths()) > 0


def test_regime_without_train_equivalent_draws_only_the_optimization(crossover):
    row = crossover.iloc[0].copy()
    row["train_equivalent_flops"] = np.nan
    row["crossover_requests"] = np.nan
    row["status"] = row["crossover_status"] = tables.STATUS_SINGLE_MODEL_FAMILY
    ax = plot_regime(row).axes[0]
    assert gids(ax) == ["optimization"]
    assert tables.STATUS_SINGLE_MODEL_FAMILY in ax.get_title()


# --- plot_improvement_vs_train_flops ---------------------------------------------------------


def test_improvement_one_panel_per_optimization_one_line_per_family(scores):
    fig = plot_improvement_vs_train_flops(scores, baseline="standard")
    assert len(fig.axes) == 2
    for ax in fig.axes:
        assert sorted(gid for gid in gids(ax) if gid.startswith("family:")) == [
            "family:F",
            "family:G",
        ]
        assert by_gid(ax, "zero") is not None
    cot_axes = next(ax for ax in fig.axes if ax.get_title().startswith("cot"))
    family_f = by_gid(cot_axes, "family:F")
    assert np.allclose(family_f.get_ydata(), 0.05)
    assert np.all(np.diff(family_f.get_xdata()) > 0)  # ordered by training FLOPs


# --- plot_isoflop -----------------------------------------------------------------------------


def test_isoflop_draws_points_and_fitted_lines(scores):
    isoflop_fits = fit_isoflop(scores)
    fig = plot_isoflop(scores, isoflop_fits)
    ax = fig.axes[0]
    optimizations = ["cot", "sc", "standard"]
    assert sorted(gid for gid in gids(ax) if gid.startswith("fit:")) == [
        f"fit:{name}" for name in optimizations
    ]
    assert sorted(collection.get_gid() for collection in ax.collections) == optimizations
    cot_fit = isoflop_fits.set_index("optimization").loc["cot"]
    line = by_gid(ax, "fit:cot")
    mean_tokens = scores.loc[scores["optimization"] == "cot", "generated_tokens_mean"].mean()
    x_start = line.get_xdata()[0]
    expected = (
        cot_fit["alpha"] * np.log10(x_start)
        + (cot_fit["beta"] if np.isfinite(cot_fit["beta"]) else 0.0) * mean_tokens
        + cot_fit["delta"]
    )
    assert line.get_ydata()[0] == pytest.approx(expected)
    assert np.log10(x_start) == pytest.approx(cot_fit["log10_flops_min"])


# --- plot_train_equivalent_ratio ----------------------------------------------------------------


def test_train_equivalent_ratio_plots_token_ratio_against_ratio(scores, crossover):
    fig = plot_train_equivalent_ratio(crossover, scores)
    ax = fig.axes[0]
    cot = by_gid(ax, "optimization:cot")
    sc = by_gid(ax, "optimization:sc")
    assert cot is not None and sc is not None
    cot_rows = crossover[crossover["optimization"] == "cot"].sort_values("model")
    assert len(cot.get_xdata()) == len(cot_rows)
    tokens = scores.set_index(["model", "optimization"])["generated_tokens_mean"]
    expected = sorted(
        (tokens[(model, "cot")] / tokens[(model, "standard")], ratio)
        for model, ratio in zip(cot_rows["model"], cot_rows["train_equivalent_ratio"], strict=True)
    )
    drawn = sorted(zip(cot.get_xdata(), cot.get_ydata(), strict=True))
    assert np.allclose(drawn, expected)
    assert by_gid(ax, "no_gain") is not None


def test_train_equivalent_ratio_reports_rows_left_out(scores, crossover):
    crossover = crossover.copy()
    crossover.loc[crossover.index[0], "train_equivalent_ratio"] = np.nan
    ax = plot_train_equivalent_ratio(crossover, scores).axes[0]
    assert "1 row(s)" in ax.get_title()


# --- plot_pareto --------------------------------------------------------------------------------


def test_pareto_line_goes_through_frontier_points(scores):
    fig = plot_pareto(scores)
    ax = fig.axes[0]
    frontier_line = by_gid(ax, "pareto_frontier")
    marked = pareto_frontier(scores)
    frontier = marked[marked["on_pareto_frontier"]].sort_values("inference_flops_per_request")
    assert 0 < len(frontier) < len(scores)
    assert np.allclose(frontier_line.get_xdata(), frontier["inference_flops_per_request"])
    assert np.allclose(frontier_line.get_ydata(), frontier["score"])
    points = [gid for gid in gids(ax) if gid in ("cot", "sc", "standard")]
    assert sorted(points) == ["cot", "sc", "standard"]
    # y never falls along the frontier: cheaper points are worse.
    assert np.all(np.diff(frontier_line.get_ydata()) > 0)


def test_pareto_draws_each_points_stderr(scores):
    ax = plot_pareto(scores).axes[0]
    for optimization, rows in scores.groupby("optimization"):
        bars = by_gid(ax, f"stderr:{optimization}")
        assert bars is not None, optimization
        segments = bars.get_segments()
        assert len(segments) == len(rows)
        drawn = sorted(
            (segment[0, 0], segment[:, 1].mean(), np.ptp(segment[:, 1]) / 2) for segment in segments
        )
        expected = sorted(
            zip(rows["inference_flops_per_request"], rows["score"], rows["stderr"], strict=True)
        )
        assert np.allclose(drawn, expected)


def pareto_table(**scores: float) -> pd.DataFrame:
    """One model, four optimizations: a, b, c on the frontier, d below it; s.e. 0.01 each."""
    cost = {"a": 1e9, "b": 2e9, "c": 3e9, "d": 2.5e9}
    score = {"a": 0.30, "b": 0.40, "c": 0.50, "d": 0.20, **scores}
    return pd.DataFrame(
        {
            "model": "m",
            "task": "average",
            "optimization": list(cost),
            "inference_flops_per_request": list(cost.values()),
            "score": [score[name] for name in cost],
            "stderr": 0.01,
        }
    )


def stderr_note(ax) -> str | None:
    notes = [text.get_text() for text in ax.texts if text.get_gid() == "stderr_note"]
    assert len(notes) <= 1
    return notes[0] if notes else None


def note_pairs(note: str) -> list[str]:
    return [line for line in note.splitlines() if "≈" in line]


def test_pareto_notes_points_within_one_stderr_only_when_there_are_some():
    # Frontier steps of 0.10 and d 0.20 below b: every gap is far beyond one s.e. (0.014).
    assert stderr_note(plot_pareto(pareto_table()).axes[0]) is None

    # b only 0.01 above a: the step a → b is not resolved.
    note = stderr_note(plot_pareto(pareto_table(b=0.31)).axes[0])
    assert note is not None and note_pairs(note) == ["m / a ≈ m / b"]

    # d off the frontier, 0.005 below b, which beats it at no more cost.
    note = stderr_note(plot_pareto(pareto_table(d=0.395)).axes[0])
    assert note is not None and note_pairs(note) == ["m / b ≈ m / d"]

    # Without standard errors nothing can be said.
    unknown = pareto_table(b=0.31).assign(stderr=np.nan)
    assert stderr_note(plot_pareto(unknown).axes[0]) is None


# --- plot_frontier ------------------------------------------------------------------------------


@pytest.fixture
def sweep_scores() -> pd.DataFrame:
    """Two models (the smaller named last), a direct and a cot point each and a swept vote.

    b-small's vote rows are out of k order; a-large's cot has no score; a per-task row that
    would top the frontier must not be drawn. By cost, the scores are
    0.30 0.33 0.31 0.37 0.36 0.42 0.40 0.46 0.50 (a-large/cot left out).
    """
    rows = [
        # model, params, optimization, cost, score, stderr, k
        ("b-small", 1e8, "direct", 1e10, 0.30, 0.010, None),
        ("b-small", 1e8, "cot", 4e10, 0.31, 0.010, None),
        ("b-small", 1e8, "vote@4", 1.2e11, 0.42, 0.012, 4),
        ("b-small", 1e8, "vote@1", 3e10, 0.33, 0.010, 1),
        ("b-small", 1e8, "vote@2", 6e10, 0.37, 0.011, 2),
        ("a-large", 1e9, "direct", 1e11, 0.36, 0.020, None),
        ("a-large", 1e9, "cot", 4e11, np.nan, np.nan, None),
        ("a-large", 1e9, "vote@2", 6e11, 0.46, 0.020, 2),
        ("a-large", 1e9, "vote@1", 3e11, 0.40, 0.020, 1),
        ("a-large", 1e9, "vote@4", 1.2e12, 0.50, 0.020, 4),
    ]
    table = pd.DataFrame(
        [
            {
                "model": model,
                "family": "F",
                "params": params,
                "task": "average",
                "optimization": optimization,
                "score": score,
                "stderr": stderr,
                "inference_flops_per_request": cost / 2,
                "inference_flops_per_request_paper": cost / 2,
                "inference_flops_per_request_full": cost,
                "sweep_of": "vote" if k else np.nan,
                "k": k if k else np.nan,
                "vote": "majority" if k else np.nan,
            }
            for model, params, optimization, cost, score, stderr, k in rows
        ]
    )
    per_task = table.iloc[[0]].assign(task="t1", score=0.9, inference_flops_per_request_full=1e9)
    return pd.concat([table, per_task], ignore_index=True)


def drawn_points(sweep_scores: pd.DataFrame) -> pd.DataFrame:
    rows = sweep_scores[(sweep_scores["task"] == "average") & sweep_scores["score"].notna()]
    return rows.sort_values("inference_flops_per_request_full")


def test_frontier_step_line_is_the_running_maximum(sweep_scores):
    fig = plot_frontier(sweep_scores)
    ax = fig.axes[0]
    assert ax.get_xscale() == "log"
    assert ax.get_xlabel() == "inference FLOPs per question (full convention)"
    line = by_gid(ax, "frontier")
    assert line.get_drawstyle() == "steps-post"
    points = drawn_points(sweep_scores)
    assert np.allclose(line.get_xdata(), points["inference_flops_per_request_full"])
    expected = [0.30, 0.33, 0.33, 0.37, 0.37, 0.42, 0.42, 0.46, 0.50]
    assert np.allclose(line.get_ydata(), expected)
    assert np.allclose(line.get_ydata(), np.maximum.accumulate(points["score"]))

    # The ringed points are the Pareto frontier's, and the legend lists them cheapest first.
    on_frontier = [
        "b-small / direct",
        "b-small / vote@1",
        "b-small / vote@2",
        "b-small / vote@4",
        "a-large / vote@2",
        "a-large / vote@4",
    ]
    rings = by_gid(ax, "frontier_points").get_offsets()
    by_name = points.set_index(points["model"] + " / " + points["optimization"])
    assert np.allclose(
        rings,
        by_name.loc[on_frontier, ["inference_flops_per_request_full", "score"]].to_numpy(),
    )
    legend = [text.get_text() for text in fig.legends[0].get_texts()]
    listing = next(text for text in legend if text.startswith("on it, cheapest first:"))
    assert listing.splitlines()[1:] == on_frontier


def test_frontier_sweeps_are_curves_in_order_of_k_with_k_labels(sweep_scores):
    ax = plot_frontier(sweep_scores).axes[0]
    for model in ("b-small", "a-large"):
        curve = by_gid(ax, f"sweep:{model}:vote@k")
        assert curve is not None and curve.get_linestyle() != "None"
        rows = sweep_scores[(sweep_scores["model"] == model) & (sweep_scores["k"].notna())]
        rows = rows.sort_values("k")
        assert np.allclose(curve.get_xdata(), rows["inference_flops_per_request_full"])
        assert np.allclose(curve.get_ydata(), rows["score"])
        for _, row in rows.iterrows():
            (label,) = [
                text for text in ax.texts if text.get_gid() == f"k:{model}:vote@k:{row.k:.0f}"
            ]
            assert label.get_text() == f"k={row.k:.0f}"
            assert np.allclose(label.xy, (row["inference_flops_per_request_full"], row["score"]))
        # Unswept optimizations are single points, not joined.
        direct = by_gid(ax, f"point:{model}:direct")
        assert len(direct.get_xdata()) == 1 and direct.get_linestyle() == "None"
        assert direct.get_marker() != curve.get_marker()


def test_frontier_error_bars_carry_each_points_stderr(sweep_scores):
    ax = plot_frontier(sweep_scores).axes[0]
    points = drawn_points(sweep_scores)
    drawn = []
    for (model, strategy), rows in points.groupby(
        [points["model"], np.where(points["k"].notna(), "vote@k", points["optimization"])]
    ):
        segments = by_gid(ax, f"stderr:{model}:{strategy}").get_segments()
        assert len(segments) == len(rows)
        drawn += [(s[0, 0], s[:, 1].mean(), np.ptp(s[:, 1]) / 2) for s in segments]
    expected = zip(
        points["inference_flops_per_request_full"], points["score"], points["stderr"], strict=True
    )
    assert np.allclose(sorted(drawn), sorted(expected))


def test_frontier_colours_models_by_size_and_skips_rows_without_a_score(sweep_scores):
    fig = plot_frontier(sweep_scores)
    ax = fig.axes[0]
    viridis = matplotlib.colormaps["viridis"]
    # b-small comes first though its name sorts last: the darkest colour is the smallest model.
    assert by_gid(ax, "point:b-small:direct").get_color() == viridis(0.0)
    assert by_gid(ax, "point:a-large:direct").get_color() == viridis(0.85)
    # a-large's cot has no score: no artist, and the title counts it.
    assert by_gid(ax, "point:a-large:cot") is None
    assert by_gid(ax, "stderr:a-large:cot") is None
    assert "1 row(s) without a score" in ax.get_title()
    # The per-task row (score 0.9) is not drawn: nothing above 0.5.
    drawn = [line.get_ydata() for line in ax.lines if line.get_gid()]
    assert max(np.max(y) for y in drawn) == pytest.approx(0.50)


def test_frontier_notes_points_within_one_stderr(sweep_scores):
    note = stderr_note(plot_frontier(sweep_scores).axes[0])
    # a-large/direct is 0.01 below b-small/vote@2 (s.e. of the difference 0.023), a-large/vote@1
    # 0.02 below b-small/vote@4 (0.023); every frontier step is more than one s.e.
    assert note is not None
    assert sorted(note_pairs(note)) == [
        "b-small / vote@2 ≈ a-large / direct",
        "b-small / vote@4 ≈ a-large / vote@1",
    ]
    separated = sweep_scores.copy()
    separated.loc[
        separated["optimization"].isin(["direct", "vote@1"]) & (separated["model"] == "a-large"),
        "score",
    ] -= 0.1
    assert stderr_note(plot_frontier(separated).axes[0]) is None


def test_frontier_without_sweeps_draws_points_and_the_frontier(sweep_scores):
    unswept = sweep_scores[sweep_scores["k"].isna()].drop(columns=["sweep_of", "k", "vote"])
    ax = plot_frontier(unswept).axes[0]
    assert not [gid for gid in gids(ax) if gid.startswith("sweep:")]
    assert not [text for text in ax.texts if (text.get_gid() or "").startswith("k:")]
    assert sorted(gid for gid in gids(ax) if gid.startswith("point:")) == [
        "point:a-large:direct",
        "point:b-small:cot",
        "point:b-small:direct",
    ]
    assert np.allclose(by_gid(ax, "frontier").get_ydata(), [0.30, 0.31, 0.36])


def test_frontier_cost_axis_and_task_fallbacks(sweep_scores):
    # A row without the full convention (an imported cell): the paper's, as for Pareto.
    imported = sweep_scores.copy()
    imported.loc[0, "inference_flops_per_request_full"] = np.nan
    ax = plot_frontier(imported).axes[0]
    assert ax.get_xlabel() == "inference FLOPs per question (paper convention)"
    points = drawn_points(sweep_scores)
    assert np.allclose(
        sorted(by_gid(ax, "frontier").get_xdata()), sorted(points["inference_flops_per_request"])
    )

    # No benchmark-average rows: the task with the most rows, and the title says so.
    per_task = sweep_scores[sweep_scores["task"] == "average"].assign(task="t2")
    table = pd.concat([per_task, sweep_scores[sweep_scores["task"] == "t1"]])
    ax = plot_frontier(table).axes[0]
    assert "no average rows: t2 shown" in ax.get_title()
    assert ax.get_ylabel() == "score (t2)"
    assert len(by_gid(ax, "frontier").get_xdata()) == len(points)


# --- the same figures in device-seconds -----------------------------------------------------------


@pytest.fixture
def seconds_scores(scores) -> pd.DataFrame:
    """`scores` with measured seconds: standard 0.5 s, cot 4 s per question on every model,
    and sc without (as a sweep's k row, or an imported cell)."""
    seconds = scores["optimization"].map({"standard": 0.5, "cot": 4.0, "sc": np.nan})
    return scores.assign(seconds_per_request=seconds)


@pytest.fixture
def seconds_crossover(seconds_scores) -> pd.DataFrame:
    family_fits = fit_family_scaling(seconds_scores)
    return train_equivalent_table(seconds_scores, family_fits, training_throughput=1e14)


def test_regime_in_seconds_meets_at_the_seconds_crossover_and_states_the_throughput(
    seconds_crossover,
):
    ok = seconds_crossover[seconds_crossover["crossover_status_seconds"] == tables.STATUS_OK]
    row = ok.iloc[0]
    ax = plot_regime(row, cost_unit="seconds").axes[0]
    assert ax.get_ylabel() == "lifetime device-seconds (training + inference)"
    (marker_x,), (marker_y,) = by_gid(ax, "crossover").get_data()
    assert marker_x == pytest.approx(row["crossover_requests_seconds"])
    # Both lifetimes in seconds are equal there, and the FLOP crossover is somewhere else.
    assert marker_y == pytest.approx(row["train_seconds"] + marker_x * 4.0)
    assert marker_y == pytest.approx(row["train_equivalent_seconds"] + marker_x * 0.5)
    assert row["train_seconds"] == pytest.approx(row["train_flops"] / 1e14)
    assert marker_x != pytest.approx(row["crossover_requests"])
    optimization = by_gid(ax, "optimization")
    assert optimization.get_ydata()[0] == pytest.approx(
        row["train_seconds"] + optimization.get_xdata()[0] * 4.0
    )
    note = next(text for text in ax.texts if text.get_gid() == "throughput_note")
    assert "training at 1e+14 FLOP/s (analysis.training_throughput)" in note.get_text()
    assert "device-seconds" in by_gid(ax, "baseline").get_label()

    # The FLOP regime of the same row: FLOPs on the axis, no throughput anywhere.
    ax = plot_regime(row).axes[0]
    assert ax.get_ylabel() == "lifetime FLOPs (training + inference)"
    assert not [text for text in ax.texts if text.get_gid() == "throughput_note"]
    assert by_gid(ax, "crossover").get_data()[0][0] == pytest.approx(row["crossover_requests"])


def test_regime_in_seconds_without_seconds_draws_nothing_and_says_so(seconds_crossover):
    row = seconds_crossover.set_index("optimization").loc["sc"].iloc[0]
    row["optimization"] = "sc"
    ax = plot_regime(row, cost_unit="seconds").axes[0]
    # The baseline model's line has its seconds; the optimization's cannot be drawn.
    assert gids(ax) == ["baseline"]
    assert tables.STATUS_NO_SECONDS in ax.get_title()
    # A table written before it had seconds columns: the same, not a KeyError.
    old = row.drop([col for col in row.index if "seconds" in col])
    assert tables.STATUS_NO_SECONDS in plot_regime(old, cost_unit="seconds").axes[0].get_title()


def test_regime_overview_draws_the_rows_with_seconds_and_names_the_rest(seconds_crossover):
    fig = plot_regime_overview(seconds_crossover, cost_unit="seconds")
    panels = sorted(ax.get_gid() for ax in fig.axes if ax.get_gid())
    models = sorted(seconds_crossover["model"].unique())
    assert panels == sorted(f"regime:{model}:cot" for model in models)
    assert "training at 1e+14 FLOP/s" in fig.get_suptitle()
    skipped = fig._supxlabel.get_text()
    assert skipped.startswith(f"not drawn ({tables.STATUS_NO_SECONDS}):")
    assert len(models) == 7 <= REGIME_OVERVIEW_LISTED
    assert all(f"{model} / sc" in skipped for model in models)
    assert "/ cot" not in skipped
    # Restricted to some models (analysis.regime_models), and in FLOPs every row has a panel.
    fig = plot_regime_overview(seconds_crossover, cost_unit="flops", models=["f0", "g1"])
    panels = sorted(ax.get_gid() for ax in fig.axes if ax.get_gid())
    assert panels == ["regime:f0:cot", "regime:f0:sc", "regime:g1:cot", "regime:g1:sc"]
    assert "FLOP/s" not in fig.get_suptitle() and fig._supxlabel is None


def test_pareto_and_frontier_in_seconds(seconds_scores):
    assert pareto_cost_column(seconds_scores, cost_unit="seconds") == "seconds_per_request"
    assert pareto_cost_column(seconds_scores) == "inference_flops_per_request_paper"
    ax = plot_pareto(seconds_scores, cost_unit="seconds").axes[0]
    assert ax.get_xlabel() == "seconds per question (measured)"
    drawn = {gid: by_gid(ax, gid).get_offsets()[:, 0] for gid in ("cot", "standard")}
    assert np.allclose(drawn["cot"], 4.0) and np.allclose(drawn["standard"], 0.5)
    assert not np.isfinite(by_gid(ax, "sc").get_offsets()[:, 0]).any()
    assert "7 row(s) with no seconds measured not shown" in ax.get_title()
    assert not [text for text in ax.texts if text.get_gid() == "nothing_drawn"]
    # Only imported cells (the paper's published results): an empty figure that says why.
    imported = seconds_scores.assign(seconds_per_request=np.nan)
    for fig in (
        plot_pareto(imported, cost_unit="seconds"),
        plot_frontier(imported, cost_unit="seconds"),
    ):
        (text,) = [text for text in fig.axes[0].texts if text.get_gid() == "nothing_drawn"]
        assert text.get_text() == f"nothing to draw: {tables.STATUS_NO_SECONDS}"

    fig = plot_frontier(seconds_scores, cost_unit="seconds")
    ax = fig.axes[0]
    assert ax.get_xlabel() == "seconds per question (measured)"
    assert "score against inference time" in ax.get_title()
    assert "7 row(s) with no seconds measured not shown" in ax.get_title()
    assert set(by_gid(ax, "frontier").get_xdata()) == {0.5, 4.0}
    # The FLOP frontier of the same table keeps every row, on the FLOP axis.
    ax = plot_frontier(seconds_scores).axes[0]
    assert ax.get_xlabel() == "inference FLOPs per question (configured convention)"
    assert len(by_gid(ax, "frontier").get_xdata()) == len(seconds_scores)


def test_seconds_axis_names_the_device_and_warns_when_there_are_several(seconds_scores):
    cells = seconds_scores.assign(task="t1", device="NVIDIA H100 80GB HBM3")
    table = pd.concat([seconds_scores, cells], ignore_index=True)
    label = plot_pareto(table, cost_unit="seconds").axes[0].get_xlabel()
    assert label == "seconds per question (measured on NVIDIA H100 80GB HBM3)"
    cells.loc[cells.index[:3], "device"] = "x86_64 CPU (2 cores)"
    table = pd.concat([seconds_scores, cells], ignore_index=True)
    label = plot_frontier(table, cost_unit="seconds").axes[0].get_xlabel()
    assert label == "seconds per question (measured on 2 devices: compare with care)"


@pytest.mark.parametrize(("cost_unit", "other"), [("flops", "seconds"), ("seconds", "flops")])
def test_the_workflow_plans_the_seconds_figures(tmp_path, cost_unit, other):
    repo = Path(__file__).resolve().parents[1]
    config = (repo / "config" / "config.yaml").read_text()
    config = config.replace("\nanalysis:\n", f"\nanalysis:\n  cost_unit: {cost_unit}\n", 1)
    assert f"cost_unit: {cost_unit}" in config
    path = tmp_path / "config.yaml"
    path.write_text(config)
    result = subprocess.run(
        [sys.executable, "-m", "snakemake", "-n", "--forceall", "--configfile", str(path)],
        cwd=repo,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    for figure in (
        "pareto_seconds",
        "frontier_seconds",
        f"regime_{other}",
        "pareto_flops",
        "frontier_flops",
    ):
        assert f"figures/{figure}.png" in result.stdout, figure
    assert f"figures/regime_{cost_unit}.png" not in result.stdout


# --- save_figure --------------------------------------------------------------------------------


def test_save_figure_writes_png_and_pdf(tmp_path, crossover):
    fig = plot_regime(crossover.iloc[0])
    written = save_figure(fig, [tmp_path / "a" / "regime.png", tmp_path / "a" / "regime.pdf"])
    assert [path.name for path in written] == ["regime.png", "regime.pdf"]
    assert written[0].read_bytes().startswith(b"\x89PNG")
    assert written[1].read_bytes().startswith(b"%PDF")

    # A dot in a model name is not a format: both files are written after it.
    written = save_figure(fig, tmp_path / "pythia-1.4b.cot")
    assert [path.name for path in written] == ["pythia-1.4b.cot.png", "pythia-1.4b.cot.pdf"]
    assert all(path.stat().st_size > 0 for path in written)


def test_regime_cheaper_above_crossover_shades_the_other_way(crossover):
    # Cheaper per request, dearer to train: L_o = 1e21 + 1e12 R, L_b = 0.6e21 + 3e12 R, R* = 2e8.
    row = crossover.iloc[0].copy()
    row[["train_flops", "train_equivalent_flops"]] = [1e21, 0.6e21]
    row[["flops_per_request", "baseline_flops_per_request"]] = [1e12, 3e12]
    row[["crossover_requests", "crossover_requests_low", "crossover_requests_high"]] = [
        2e8,
        1e8,
        3e8,
    ]
    row["crossover_status"] = tables.STATUS_CHEAPER_ABOVE_CROSSOVER
    ax = plot_regime(row).axes[0]
    (marker_x,), _ = by_gid(ax, "crossover").get_data()
    assert marker_x == pytest.approx(2e8)
    assert by_gid(ax, "baseline_wins").get_paths()[0].vertices[:, 0].max() == pytest.approx(2e8)
    assert by_gid(ax, "optimization_wins").get_paths()[0].vertices[:, 0].min() == pytest.approx(2e8)
    assert tables.STATUS_CHEAPER_ABOVE_CROSSOVER in ax.get_title()


def test_plots_accept_empty_tables(scores):
    empty = scores.iloc[:0]
    train_equivalent = train_equivalent_flops(empty, fit_family_scaling(empty))
    crossover = crossover_requests(train_equivalent, empty)
    for fig in (
        plot_improvement_vs_train_flops(empty),
        plot_isoflop(empty, fit_isoflop(empty)),
        plot_train_equivalent_ratio(crossover, empty),
        plot_pareto(empty),
        plot_frontier(empty),
    ):
        assert isinstance(fig, Figure)
