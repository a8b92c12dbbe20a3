"""Observational scaling: the paper's PCA reproduced on its own data, the family fit and the
f-equivalent compute on synthetic data with a known answer, and the degenerate cases."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from thinkcost.analysis.pca import (
    capability_components,
    equivalent_compute,
    family_fit,
    gain_fit,
    gain_fits,
    observational_scaling,
    optimization_gains,
)
from thinkcost.tables import STATUS_CONSTANT_COMPUTE, STATUS_OK, STATUS_TOO_FEW

PAPER = Path(__file__).resolve().parents[1] / "data" / "paper"
BENCHMARKS = [
    "ARC Challenge",
    "GSM8K",
    "HellaSwag",
    "MMLU",
    "Winogrande",
    "XWinograd",
    "TruthfulQA",
]


def assert_loadings_match(components, reference: pd.DataFrame) -> None:
    """Every loading within 1e-9 of the paper's, up to each component's sign."""
    for column in reference.columns:
        ours = components.loadings[column].to_numpy()
        theirs = reference[column].to_numpy()
        sign = 1.0 if np.dot(ours, theirs) >= 0 else -1.0
        assert np.max(np.abs(sign * ours - theirs)) < 1e-9, column


def test_ruan_et_als_models_reproduce_their_loadings():
    models = pd.read_csv(PAPER / "obsscaling_models.csv").set_index("Model")
    columns = {
        "ARC-C": "ARC Challenge",
        "GSM8K": "GSM8K",
        "HellaSwag": "HellaSwag",
        "MMLU": "MMLU",
        "Winograd": "Winogrande",  # the file's `Winograd` is WinoGrande
        "XWinograd": "XWinograd",
        "TruthfulQA": "TruthfulQA",
    }
    matrix = models[list(columns)].rename(columns=columns)[BENCHMARKS]
    components = capability_components(matrix)
    assert len(components.scores) == 129
    assert len(components.dropped) == len(models) - 129 > 0
    reference = pd.read_csv(PAPER / "obsscaling_pca_loadings.csv", index_col=0).loc[BENCHMARKS]
    assert_loadings_match(components, reference)
    ratio = components.explained_variance_ratio
    assert ratio.is_monotonic_decreasing and 0 < ratio.sum() <= 1


def test_the_papers_26_models_reproduce_its_loadings():
    scores = pd.read_csv(PAPER / "experiment_1_direct_scores.csv")
    scores.index = scores["model"] + "@" + scores["checkpoint"].astype(str)
    columns = {
        "arc_challenge_acc_none": "ARC Challenge",
        "gsm8k_exact_match_flexible-extract": "GSM8K",
        "hellaswag_acc_none": "HellaSwag",
        "mmlu_acc_none": "MMLU",
        "winogrande_acc_none": "Winogrande",
        "xwinograd_acc_none": "XWinograd",
        "truthfulqa_mc1_acc_none": "TruthfulQA",
    }
    matrix = scores[list(columns)].rename(columns=columns)[BENCHMARKS]
    components = capability_components(matrix)
    assert len(components.scores) == 26 and components.dropped == []
    reference = pd.read_csv(PAPER / "experiment_1_pca_loadings.csv", index_col=0).loc[BENCHMARKS]
    assert_loadings_match(components, reference)
    # A more capable model has the higher PC1: every loading of PC1 is positive here.
    assert (components.loadings["pc_1"] > 0).all()


def test_a_matrix_with_too_few_complete_rows_is_refused_by_name():
    matrix = pd.DataFrame({"a": [0.1, np.nan], "b": [0.2, 0.3]}, index=["m1", "m2"])
    with pytest.raises(ValueError, match="at least two models with every score; 1 of 2"):
        capability_components(matrix)


def test_family_fit_and_equivalent_compute_recover_a_known_line():
    # PC1 = 0.5·log10 C − 11 exactly, and with noise of known size.
    log10_c = pd.Series([21.0, 22.0, 23.0, 24.0])
    exact = family_fit(0.5 * log10_c - 11.0, log10_c)
    assert exact["status"] == STATUS_OK
    assert exact["slope"] == pytest.approx(0.5) and exact["intercept"] == pytest.approx(-11.0)
    assert exact["slope_stderr"] == pytest.approx(0.0, abs=1e-9)
    # A model of another family with PC1 = 0.25 matches C = 10^22.5 of this one.
    equivalent = equivalent_compute(0.25, exact)
    assert equivalent["log10_compute"] == pytest.approx(22.5)

    noisy = family_fit(0.5 * log10_c - 11.0 + np.array([0.02, -0.02, -0.02, 0.02]), log10_c)
    # OLS by hand: the noise is orthogonal to x − x̄ (= −1.5, −0.5, 0.5, 1.5) and sums to 0.
    assert noisy["slope"] == pytest.approx(0.5) and noisy["intercept"] == pytest.approx(-11.0)
    # Residual variance 4·0.02²/2 = 8e-4; Var(w) = σ²/Σ(x − x̄)² = 8e-4/5.
    assert noisy["slope_stderr"] == pytest.approx(math.sqrt(8e-4 / 5))
    bounds = equivalent_compute(0.25, noisy, confidence=0.95)
    assert bounds["low"] < 22.5 < bounds["high"]


@pytest.mark.parametrize(
    ("pc1", "log10_c", "status"),
    [
        ([0.3], [22.0], STATUS_TOO_FEW),
        ([0.3, 0.5, 0.4], [22.0, 22.0, 22.0], STATUS_CONSTANT_COMPUTE),
    ],
)
def test_degenerate_families_give_nan_with_a_status(pc1, log10_c, status):
    fit = family_fit(pd.Series(pc1), pd.Series(log10_c))
    assert fit["status"] == status and math.isnan(fit["slope"])
    equivalent = equivalent_compute(0.4, fit)
    assert math.isnan(equivalent["log10_compute"]) and equivalent["status"] == status


def test_a_gain_regressed_on_pc1_says_where_it_starts_to_pay():
    pc1 = pd.Series([-0.2, -0.1, 0.0, 0.1, 0.2, 0.3])
    gain = 0.1 * pc1 - 0.005  # pays from PC1 = 0.05
    fit = gain_fit(gain + np.array([0.001, -0.001, 0.0, 0.0, -0.001, 0.001]), pc1)
    assert fit["status"] == STATUS_OK
    assert fit["pays_from_pc1"] == pytest.approx(0.05, abs=0.01)
    band = fit["band"]([0.0, 0.3])
    assert (band["low"] < band["gain"]).all() and (band["gain"] < band["high"]).all()
    assert gain_fit(gain[:2], pc1[:2])["status"] == STATUS_TOO_FEW


# --------------------------------------------------------------------------- the workflow stage


def synthetic_scores() -> pd.DataFrame:
    """A scores table of two families whose capability is a known line in log10 C: every
    task's score is 0.1·(log10 C − 20) plus a task offset, so PC1 is exactly proportional to
    log10 C; family "b" is 1.5 decades less efficient than "a". One model lacks a task, one
    family has a single model. `cot` gains 0.02·PC1-ish: 0.05·(log10 C − 21)."""
    rows = []
    models = {
        "a1": ("a", 20.0, 0.0),
        "a2": ("a", 21.0, 0.0),
        "a3": ("a", 22.0, 0.0),
        "b1": ("b", 21.5, 1.5),
        "b2": ("b", 23.0, 1.5),
        "lone": ("c", 22.5, 0.5),
        "partial": ("a", 21.5, 0.0),
    }
    tasks = {"t1": 0.2, "t2": 0.3, "t3": 0.1}
    for model, (family, log10_c, lag) in models.items():
        capability = 0.1 * (log10_c - lag - 20.0)
        for task, offset in tasks.items():
            if model == "partial" and task == "t3":
                continue
            for optimization, extra in (("standard", 0.0), ("cot", 0.05 * (log10_c - 21.0))):
                rows.append(
                    {
                        "model": model,
                        "family": family,
                        "train_flops": 10.0**log10_c,
                        "task": task,
                        "optimization": optimization,
                        "score": offset + capability * (1 + 0.5 * (task == "t2")) + extra,
                        "stderr": 0.01,
                    }
                )
    scores = pd.DataFrame(rows)
    full = scores[scores["model"] != "partial"]
    averages = (
        full.groupby(["model", "family", "train_flops", "optimization"], as_index=False)
        .agg(score=("score", "mean"))
        .assign(task="average", stderr=0.01 * math.sqrt(3) / 3)
    )
    return pd.concat([scores, averages], ignore_index=True)


def test_the_stage_fits_families_and_reads_f_equivalent_compute_off_the_reference():
    tables = observational_scaling(synthetic_scores(), "standard", ["t1", "t2", "t3"])
    components = tables["components"].set_index("model")
    assert list(tables["dropped"]["model"]) == ["partial"]
    assert tables["dropped"]["missing_tasks"].item() == "t3"
    assert "partial" not in components.index
    # One underlying dimension: PC1 explains everything.
    assert tables["explained_variance"]["explained_variance_ratio"].iloc[0] == pytest.approx(1.0)
    fits = tables["family_fits"].set_index("family")
    # a has three models and b two: a is the default reference.
    assert fits["reference"].to_dict() == {"a": True, "b": False, "c": False}
    assert fits.loc["c", "status"] == STATUS_TOO_FEW
    assert fits.loc["a", "slope"] == pytest.approx(fits.loc["b", "slope"])
    # Family b needs 1.5 decades more compute for a's capability: its f-equivalent compute in
    # family a is 1.5 decades below its own.
    for model in ("b1", "b2", "lone"):
        lag = {"b1": 1.5, "b2": 1.5, "lone": 0.5}[model]
        row = components.loc[model]
        assert row["equivalent_log10_flops"] == pytest.approx(row["log10_train_flops"] - lag)
        assert row["equivalent_status"] == STATUS_OK
    # An exact line: no residual spread, so the bounds close on the estimate.
    row = components.loc["b2"]
    assert row["equivalent_log10_flops_low"] == pytest.approx(row["equivalent_log10_flops"])


def test_a_named_reference_family_without_a_fit_gives_a_status_per_model():
    tables = observational_scaling(
        synthetic_scores(), "standard", ["t1", "t2", "t3"], reference_family="c"
    )
    components = tables["components"]
    assert components["equivalent_log10_flops"].isna().all()
    assert (components["equivalent_status"] == f"reference family c: {STATUS_TOO_FEW}").all()


def test_gains_are_the_average_differences_regressed_on_pc1():
    scores = synthetic_scores()
    tables = observational_scaling(scores, "standard", ["t1", "t2", "t3"])
    gains = optimization_gains(scores, "standard", tables["components"])
    assert set(gains["optimization"]) == {"cot"}
    gain = gains.set_index("model")["gain"]
    # cot adds 0.05·(log10 C − 21) to every task, so to the average.
    assert gain["a3"] == pytest.approx(0.05)
    assert gain["b2"] == pytest.approx(0.10)
    assert gains["gain_stderr"].iloc[0] == pytest.approx(math.hypot(0.01, 0.01) / math.sqrt(3))
    fit = gain_fits(gains).set_index("optimization").loc["cot"]
    assert fit["n_models"] == 6
    assert fit["slope"] > 0 and fit["status"] == STATUS_OK


def test_the_gain_figure_draws_the_fit_its_band_and_where_it_pays():
    from thinkcost.figures.pca import plot_pca_gain

    scores = synthetic_scores()
    gains = optimization_gains(
        scores,
        "standard",
        observational_scaling(scores, "standard", ["t1", "t2", "t3"])["components"],
    )
    few = gains.assign(optimization="few").head(2)
    figure = plot_pca_gain(pd.concat([gains, few]), baseline="standard")
    fitted, unfitted = figure.axes
    gids = {artist.get_gid() for artist in [*fitted.lines, *fitted.collections]}
    assert {"fit", "band", "pays_from", "zero"} <= gids
    pays_from = next(line for line in fitted.lines if line.get_gid() == "pays_from")
    fit = gain_fits(gains).set_index("optimization").loc["cot"]
    assert pays_from.get_xdata()[0] == pytest.approx(fit["pays_from_pc1"])
    assert "no fit: fewer than two models" in " ".join(t.get_text() for t in unfitted.texts)
