"""Tests for thinkcost.plots: each figure draws what the tables say."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from matplotlib.figure import Figure

from thinkcost import fits, plots


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
    train_equivalent = fits.train_equivalent_flops(scores, fits.fit_family_scaling(scores))
    return fits.crossover_requests(train_equivalent, scores)


# --- plot_regime -----------------------------------------------------------------------------


def test_regime_marks_crossover_where_lines_meet(crossover):
    row = crossover[crossover["crossover_status"] == fits.STATUS_OK].iloc[0]
    fig = plots.plot_regime(row)
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
    row["crossover_status"] = fits.STATUS_ALWAYS_CHEAPER
    ax = plots.plot_regime(row).axes[0]
    assert by_gid(ax, "crossover") is None
    assert fits.STATUS_ALWAYS_CHEAPER in ax.get_title()
    assert by_gid(ax, "baseline_wins") is None  # training wins nowhere: nothing shaded for it
    assert len(by_gid(ax, "optimization_wins").get_paths()) > 0


def test_regime_without_train_equivalent_draws_only_the_optimization(crossover):
    row = crossover.iloc[0].copy()
    row["train_equivalent_flops"] = np.nan
    row["crossover_requests"] = np.nan
    row["status"] = row["crossover_status"] = fits.STATUS_SINGLE_MODEL_FAMILY
    ax = plots.plot_regime(row).axes[0]
    assert gids(ax) == ["optimization"]
    assert fits.STATUS_SINGLE_MODEL_FAMILY in ax.get_title()


# --- plot_improvement_vs_train_flops ---------------------------------------------------------


def test_improvement_one_panel_per_optimization_one_line_per_family(scores):
    fig = plots.plot_improvement_vs_train_flops(scores, baseline="standard")
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
    isoflop_fits = fits.fit_isoflop(scores)
    fig = plots.plot_isoflop(scores, isoflop_fits)
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
    fig = plots.plot_train_equivalent_ratio(crossover, scores)
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
    ax = plots.plot_train_equivalent_ratio(crossover, scores).axes[0]
    assert "1 row(s)" in ax.get_title()


# --- plot_pareto --------------------------------------------------------------------------------


def test_pareto_line_goes_through_frontier_points(scores):
    fig = plots.plot_pareto(scores)
    ax = fig.axes[0]
    frontier_line = by_gid(ax, "pareto_frontier")
    marked = fits.pareto_frontier(scores)
    frontier = marked[marked["on_pareto_frontier"]].sort_values("inference_flops_per_request")
    assert 0 < len(frontier) < len(scores)
    assert np.allclose(frontier_line.get_xdata(), frontier["inference_flops_per_request"])
    assert np.allclose(frontier_line.get_ydata(), frontier["score"])
    assert sorted(collection.get_gid() for collection in ax.collections) == [
        "cot",
        "sc",
        "standard",
    ]
    # y never falls along the frontier: cheaper points are worse.
    assert np.all(np.diff(frontier_line.get_ydata()) > 0)


# --- save_figure --------------------------------------------------------------------------------


def test_save_figure_writes_png_and_pdf(tmp_path, crossover):
    fig = plots.plot_regime(crossover.iloc[0])
    written = plots.save_figure(fig, [tmp_path / "a" / "regime.png", tmp_path / "a" / "regime.pdf"])
    assert [path.name for path in written] == ["regime.png", "regime.pdf"]
    assert written[0].read_bytes().startswith(b"\x89PNG")
    assert written[1].read_bytes().startswith(b"%PDF")

    # A dot in a model name is not a format: both files are written after it.
    written = plots.save_figure(fig, tmp_path / "pythia-1.4b.cot")
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
    row["crossover_status"] = fits.STATUS_CHEAPER_ABOVE_CROSSOVER
    ax = plots.plot_regime(row).axes[0]
    (marker_x,), _ = by_gid(ax, "crossover").get_data()
    assert marker_x == pytest.approx(2e8)
    assert by_gid(ax, "baseline_wins").get_paths()[0].vertices[:, 0].max() == pytest.approx(2e8)
    assert by_gid(ax, "optimization_wins").get_paths()[0].vertices[:, 0].min() == pytest.approx(2e8)
    assert fits.STATUS_CHEAPER_ABOVE_CROSSOVER in ax.get_title()


def test_plots_accept_empty_tables(scores):
    empty = scores.iloc[:0]
    train_equivalent = fits.train_equivalent_flops(empty, fits.fit_family_scaling(empty))
    crossover = fits.crossover_requests(train_equivalent, empty)
    for fig in (
        plots.plot_improvement_vs_train_flops(empty),
        plots.plot_isoflop(empty, fits.fit_isoflop(empty)),
        plots.plot_train_equivalent_ratio(crossover, empty),
        plots.plot_pareto(empty),
    ):
        assert isinstance(fig, Figure)
