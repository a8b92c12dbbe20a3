"""Unit tests for the scaling fits of thinkcost.analysis on synthetic tables with known answers."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from thinkcost import tables
from thinkcost.analysis.crossover import DEFAULT_TRAINING_THROUGHPUT, crossover_requests
from thinkcost.analysis.family import fit_family_scaling
from thinkcost.analysis.frontier import pareto_frontier
from thinkcost.analysis.isoflop import fit_isoflop
from thinkcost.analysis.train_equivalent import train_equivalent_flops, train_equivalent_table

SLOPE = 0.06  # score points per decade of training FLOPs
INTERCEPT = -0.9


def line_score(log10_flops: float, slope: float = SLOPE, intercept: float = INTERCEPT) -> float:
    return slope * log10_flops + intercept


def score_row(
    model: str,
    family: str,
    log10_train_flops: float,
    optimization: str,
    score: float,
    stderr: float = 0.01,
    generated_tokens_mean: float = 20.0,
    inference_flops_per_request: float = 1e10,
    task: str = "average",
) -> dict:
    return {
        "model": model,
        "family": family,
        "train_flops": 10.0**log10_train_flops,
        "task": task,
        "optimization": optimization,
        "score": score,
        "stderr": stderr,
        "generated_tokens_mean": generated_tokens_mean,
        "inference_flops_per_request": inference_flops_per_request,
    }


def exact_family(
    log10_flops_values=(19.5, 20.0, 21.0, 22.0), family: str = "F", slope: float = SLOPE
) -> list[dict]:
    return [
        score_row(f"{family}{index}", family, x, "standard", line_score(x, slope=slope))
        for index, x in enumerate(log10_flops_values)
    ]


def statuses(value: str) -> list[str]:
    return value.split(tables.STATUS_SEPARATOR)


def no_infinities(frame: pd.DataFrame) -> bool:
    numeric = frame.select_dtypes(include="number").to_numpy(dtype=float)
    return not np.isinf(numeric).any()


# --- fit_family_scaling --------------------------------------------------------------------------


def test_exact_line_recovers_slope_and_intercept():
    scores = pd.DataFrame(exact_family())
    fit = fit_family_scaling(scores).set_index("family").loc["F"]
    assert fit["status"] == tables.STATUS_OK
    assert fit["slope"] == pytest.approx(SLOPE, abs=1e-12)
    assert fit["intercept"] == pytest.approx(INTERCEPT, abs=1e-10)
    assert fit["r_squared"] == pytest.approx(1.0)
    assert fit["n_models"] == 4 and fit["n_flop_values"] == 4 and fit["residual_dof"] == 2
    assert fit["log10_flops_min"] == pytest.approx(19.5)
    assert fit["log10_flops_max"] == pytest.approx(22.0)
    assert fit["slope_stderr"] == pytest.approx(0.0, abs=1e-10)


def test_noisy_fit_matches_textbook_ols():
    rng = np.random.default_rng(3)
    log10_flops = np.array([19.0, 19.7, 20.3, 21.1, 22.0])
    observed = line_score(log10_flops) + rng.normal(0, 0.02, size=5)
    scores = pd.DataFrame(
        [
            score_row(f"m{i}", "F", x, "standard", y)
            for i, (x, y) in enumerate(zip(log10_flops, observed, strict=True))
        ]
    )
    fit = fit_family_scaling(scores).iloc[0]
    # Closed-form OLS: slope = Sxy / Sxx, var(slope) = s^2 / Sxx, cov = -mean(x) s^2 / Sxx.
    x_centred = log10_flops - log10_flops.mean()
    sxx = np.sum(x_centred**2)
    slope = np.sum(x_centred * observed) / sxx
    intercept = observed.mean() - slope * log10_flops.mean()
    residual_variance = np.sum((observed - slope * log10_flops - intercept) ** 2) / 3
    assert fit["slope"] == pytest.approx(slope, rel=1e-10)
    assert fit["intercept"] == pytest.approx(intercept, rel=1e-10)
    assert fit["slope_stderr"] == pytest.approx(math.sqrt(residual_variance / sxx), rel=1e-8)
    assert fit["cov_slope_intercept"] == pytest.approx(
        -log10_flops.mean() * residual_variance / sxx, rel=1e-8
    )
    assert fit["residual_stderr"] == pytest.approx(math.sqrt(residual_variance), rel=1e-8)


def test_family_fit_statuses():
    rows = [
        # single-model family
        score_row("solo", "S", 20.0, "standard", 0.3),
        # two models, one train_flops value
        score_row("e0", "E", 20.0, "standard", 0.3),
        score_row("e1", "E", 20.0, "standard", 0.35),
        # score falls with compute
        score_row("n0", "N", 20.0, "standard", 0.5),
        score_row("n1", "N", 21.0, "standard", 0.4),
        score_row("n2", "N", 22.0, "standard", 0.3),
        # exactly two points
        score_row("t0", "T", 20.0, "standard", line_score(20.0)),
        score_row("t1", "T", 21.0, "standard", line_score(21.0)),
        # only optimized rows
        score_row("o0", "O", 20.0, "cot", 0.3),
    ]
    fit = fit_family_scaling(pd.DataFrame(rows)).set_index("family")
    assert fit.loc["S", "status"] == tables.STATUS_SINGLE_MODEL_FAMILY
    assert fit.loc["E", "status"] == tables.STATUS_FEW_DISTINCT_FLOPS
    assert fit.loc["N", "status"] == tables.STATUS_SLOPE_NOT_POSITIVE
    assert fit.loc["N", "slope"] == pytest.approx(-0.1)  # kept, so the reader sees why
    assert fit.loc["T", "status"] == tables.STATUS_TWO_POINTS
    assert fit.loc["T", "slope"] == pytest.approx(SLOPE)
    assert np.isnan(
        fit.loc["T", ["slope_stderr", "intercept_stderr", "cov_slope_intercept"]].astype(float)
    ).all()
    assert fit.loc["O", "status"] == tables.STATUS_NO_BASELINE_SCORES
    for family in "SEO":
        assert np.isnan(fit.loc[family, "slope"])
    assert no_infinities(fit)


# --- train_equivalent_flops ----------------------------------------------------------------------


def test_exact_train_equivalent_flops():
    log10_true_equivalent = 21.4
    rows = [
        *exact_family(),
        score_row("F1", "F", 20.0, "cot", line_score(log10_true_equivalent), stderr=0.01),
    ]
    scores = pd.DataFrame(rows)
    result = train_equivalent_flops(scores, fit_family_scaling(scores)).iloc[0]
    assert result["status"] == tables.STATUS_OK
    assert result["train_equivalent_flops"] == pytest.approx(10**log10_true_equivalent, rel=1e-9)
    assert result["train_equivalent_ratio"] == pytest.approx(10**1.4, rel=1e-9)
    assert result["baseline_score"] == pytest.approx(line_score(20.0))
    assert result["baseline_train_equivalent_flops"] == pytest.approx(1e20, rel=1e-9)
    # Perfect fit: only the score's stderr is left, so log10 stderr = 0.01 / slope.
    assert result["log10_train_equivalent_flops_stderr"] == pytest.approx(0.01 / SLOPE, rel=1e-6)
    half_width = 1.959963984540054 * 0.01 / SLOPE
    assert result["train_equivalent_flops_low"] == pytest.approx(
        10 ** (log10_true_equivalent - half_width), rel=1e-6
    )
    assert result["train_equivalent_flops_high"] == pytest.approx(
        10 ** (log10_true_equivalent + half_width), rel=1e-6
    )


def _coverage_trial(rng, n_models, interval, sigma_fit, sigma_score, log10_true_equivalent=20.9):
    log10_flops = np.linspace(19.5, 22.0, n_models)
    rows = [
        score_row(f"m{i}", "F", x, "standard", line_score(x) + rng.normal(0, sigma_fit))
        for i, x in enumerate(log10_flops)
    ]
    noisy_score = line_score(log10_true_equivalent) + rng.normal(0, sigma_score)
    rows.append(score_row("m0", "F", log10_flops[0], "cot", noisy_score, stderr=sigma_score))
    scores = pd.DataFrame(rows)
    result = train_equivalent_flops(scores, fit_family_scaling(scores), interval=interval).iloc[0]
    true_equivalent = 10**log10_true_equivalent
    return (
        result["train_equivalent_flops_low"]
        <= true_equivalent
        <= result["train_equivalent_flops_high"]
    )


def test_delta_method_interval_covers_truth_about_95_percent():
    rng = np.random.default_rng(20240607)
    covered = [
        _coverage_trial(rng, n_models=20, interval="normal", sigma_fit=0.01, sigma_score=0.01)
        for _ in range(200)
    ]
    assert 0.88 <= np.mean(covered) <= 0.99


def test_student_t_interval_covers_truth_in_small_family():
    # Four models and a noisy fit: the normal interval covers only ~84 % here, because the
    # fit variance is estimated from two residual degrees of freedom.
    rng = np.random.default_rng(11)
    covered = [
        _coverage_trial(rng, n_models=4, interval="student-t", sigma_fit=0.03, sigma_score=0.002)
        for _ in range(200)
    ]
    assert 0.88 <= np.mean(covered) <= 0.99


def test_student_t_interval_is_wider_than_normal():
    rng = np.random.default_rng(5)
    rows = [
        score_row(f"m{i}", "F", x, "standard", line_score(x) + rng.normal(0, 0.02))
        for i, x in enumerate([19.5, 20.5, 21.5, 22.0])
    ]
    rows.append(score_row("m0", "F", 19.5, "cot", line_score(21.0)))
    scores = pd.DataFrame(rows)
    family_fits = fit_family_scaling(scores)
    normal = train_equivalent_flops(scores, family_fits, interval="normal").iloc[0]
    student = train_equivalent_flops(scores, family_fits, interval="student-t").iloc[0]
    assert student["train_equivalent_flops"] == normal["train_equivalent_flops"]
    assert student["train_equivalent_flops_low"] < normal["train_equivalent_flops_low"]
    assert student["train_equivalent_flops_high"] > normal["train_equivalent_flops_high"]


def _single_result(rows, **kwargs) -> pd.Series:
    scores = pd.DataFrame(rows)
    result = train_equivalent_flops(scores, fit_family_scaling(scores), **kwargs)
    assert no_infinities(result)
    return result.iloc[0]


def test_single_model_family_gives_nan_and_status():
    result = _single_result(
        [score_row("solo", "S", 20.0, "standard", 0.3), score_row("solo", "S", 20.0, "cot", 0.4)]
    )
    assert result["status"] == tables.STATUS_SINGLE_MODEL_FAMILY
    assert np.isnan(result["train_equivalent_flops"])


def test_equal_train_flops_gives_nan_and_status():
    result = _single_result(
        [
            score_row("e0", "E", 20.0, "standard", 0.3),
            score_row("e1", "E", 20.0, "standard", 0.35),
            score_row("e0", "E", 20.0, "cot", 0.4),
        ]
    )
    assert result["status"] == tables.STATUS_FEW_DISTINCT_FLOPS
    assert np.isnan(result["train_equivalent_flops"])


def test_negative_slope_gives_nan_and_status():
    result = _single_result(
        [
            score_row("n0", "N", 20.0, "standard", 0.5),
            score_row("n1", "N", 21.0, "standard", 0.4),
            score_row("n2", "N", 22.0, "standard", 0.3),
            score_row("n0", "N", 20.0, "cot", 0.45),
        ]
    )
    assert result["status"] == tables.STATUS_SLOPE_NOT_POSITIVE
    assert np.isnan(
        result[["train_equivalent_flops", "train_equivalent_ratio"]].astype(float)
    ).all()


def test_extrapolation_beyond_factor_is_nan():
    # Fitted span 10^19.5 .. 10^22; factor 10 allows up to 10^23. The score asks for 10^23.5.
    result = _single_result([*exact_family(), score_row("F0", "F", 19.5, "cot", line_score(23.5))])
    assert result["status"] == tables.STATUS_EXTRAPOLATED_BEYOND
    bounds = ["train_equivalent_flops", "train_equivalent_flops_low", "train_equivalent_flops_high"]
    assert np.isnan(result[bounds].astype(float)).all()


def test_extrapolation_below_factor_is_nan():
    result = _single_result([*exact_family(), score_row("F0", "F", 19.5, "cot", line_score(18.0))])
    assert result["status"] == tables.STATUS_EXTRAPOLATED_BEYOND


def test_extrapolation_within_factor_is_kept_with_status():
    result = _single_result([*exact_family(), score_row("F0", "F", 19.5, "cot", line_score(22.5))])
    assert result["status"] == tables.STATUS_EXTRAPOLATED_WITHIN
    assert result["train_equivalent_flops"] == pytest.approx(10**22.5, rel=1e-9)
    assert np.isfinite(result["train_equivalent_flops_high"])


def test_extrapolation_factor_is_a_parameter():
    rows = [*exact_family(), score_row("F0", "F", 19.5, "cot", line_score(23.5))]
    result = _single_result(rows, extrapolation_factor=100.0)
    assert result["status"] == tables.STATUS_EXTRAPOLATED_WITHIN
    assert result["train_equivalent_flops"] == pytest.approx(10**23.5, rel=1e-9)


def test_unbounded_extrapolation_never_gives_inf():
    # A nearly flat line and no extrapolation limit would put C* far beyond a double.
    rows = [*exact_family(slope=1e-4), score_row("F0", "F", 19.5, "cot", 0.9)]
    result = _single_result(rows, extrapolation_factor=float("inf"))
    assert result["status"] == tables.STATUS_EXTRAPOLATED_BEYOND
    assert np.isnan(result["train_equivalent_flops"])


def test_nan_score_stderr_uses_fit_covariance_only():
    rng = np.random.default_rng(2)
    rows = [
        score_row(f"m{i}", "F", x, "standard", line_score(x) + rng.normal(0, 0.01))
        for i, x in enumerate([19.5, 20.0, 21.0, 22.0])
    ]
    rows.append(score_row("m1", "F", 20.0, "cot", line_score(21.0), stderr=float("nan")))
    result = _single_result(rows)
    assert result["status"] == tables.STATUS_NO_SCORE_STDERR
    assert np.isnan(result["score_stderr"])
    assert 0 < result["train_equivalent_flops_low"] < result["train_equivalent_flops"]
    assert result["train_equivalent_flops"] < result["train_equivalent_flops_high"]

    # With a perfect fit and no score stderr there is no uncertainty left at all.
    exact = _single_result(
        [*exact_family(), score_row("F1", "F", 20.0, "cot", line_score(21.0), stderr=float("nan"))]
    )
    assert exact["train_equivalent_flops_low"] == pytest.approx(exact["train_equivalent_flops"])


def test_two_point_family_keeps_estimate_but_not_bounds():
    rows = [
        score_row("t0", "T", 20.0, "standard", line_score(20.0)),
        score_row("t1", "T", 21.0, "standard", line_score(21.0)),
        score_row("t0", "T", 20.0, "cot", line_score(20.5)),
    ]
    result = _single_result(rows)
    assert result["status"] == tables.STATUS_TWO_POINTS
    assert result["train_equivalent_flops"] == pytest.approx(10**20.5, rel=1e-9)
    assert np.isnan(
        result[["train_equivalent_flops_low", "train_equivalent_flops_high"]].astype(float)
    ).all()


def test_caveats_are_joined():
    rows = [
        score_row("t0", "T", 20.0, "standard", line_score(20.0)),
        score_row("t1", "T", 21.0, "standard", line_score(21.0)),
        score_row("t0", "T", 20.0, "cot", line_score(21.5)),
    ]
    result = _single_result(rows)
    assert set(statuses(result["status"])) == {
        tables.STATUS_TWO_POINTS,
        tables.STATUS_EXTRAPOLATED_WITHIN,
    }
    assert np.isfinite(result["train_equivalent_flops"])


def test_missing_baseline_row_for_model():
    rows = [*exact_family(), score_row("X", "F", 20.0, "cot", line_score(21.0))]
    result = _single_result(rows)
    assert result["status"] == tables.STATUS_NO_BASELINE_SCORE
    assert np.isnan(result["baseline_score"])
    assert result["train_equivalent_flops"] == pytest.approx(1e21, rel=1e-9)


def test_missing_score_and_missing_family_fit():
    scores = pd.DataFrame([*exact_family(), score_row("F1", "F", 20.0, "cot", float("nan"))])
    result = train_equivalent_flops(scores, fit_family_scaling(scores)).iloc[0]
    assert result["status"] == tables.STATUS_NO_SCORE
    empty_fits = fit_family_scaling(scores.iloc[:0])
    result = train_equivalent_flops(
        pd.DataFrame([*exact_family(), score_row("F1", "F", 20.0, "cot", 0.5)]), empty_fits
    ).iloc[0]
    assert result["status"] == tables.STATUS_NO_FAMILY_FIT


def test_one_row_per_model_and_optimization_and_empty_input():
    rows = [
        *exact_family(),
        score_row("F1", "F", 20.0, "cot", line_score(21.0)),
        score_row("F1", "F", 20.0, "sc", line_score(21.2)),
        score_row("F2", "F", 21.0, "cot", line_score(21.5)),
        score_row("F2", "F", 21.0, "cot", 0.9, task="arc"),  # another task: ignored
    ]
    scores = pd.DataFrame(rows)
    result = train_equivalent_flops(scores, fit_family_scaling(scores))
    assert sorted(zip(result["model"], result["optimization"], strict=True)) == [
        ("F1", "cot"),
        ("F1", "sc"),
        ("F2", "cot"),
    ]
    assert (result["baseline"] == "standard").all()
    empty = train_equivalent_flops(scores.iloc[:0], fit_family_scaling(scores.iloc[:0]))
    assert empty.empty and "train_equivalent_flops" in empty.columns


def test_duplicate_rows_are_refused():
    rows = [
        *exact_family(),
        score_row("F1", "F", 20.0, "cot", 0.5),
        score_row("F1", "F", 20.0, "cot", 0.6),
    ]
    scores = pd.DataFrame(rows)
    with pytest.raises(ValueError, match="more than one row"):
        train_equivalent_flops(scores, fit_family_scaling(scores))


# --- crossover_requests --------------------------------------------------------------------------


def _crossover_table(
    train_flops: float,
    equivalent: float,
    flops_per_request: float,
    baseline_flops_per_request: float,
    low: float = float("nan"),
    high: float = float("nan"),
    status: str = tables.STATUS_OK,
    generated_tokens_mean: float = 250.0,
):
    train_equivalent = pd.DataFrame(
        [
            {
                "model": "m",
                "family": "F",
                "optimization": "cot",
                "baseline": "standard",
                "train_flops": train_flops,
                "train_equivalent_flops": equivalent,
                "train_equivalent_flops_low": low,
                "train_equivalent_flops_high": high,
                "status": status,
            }
        ]
    )
    log10_train_flops = math.log10(train_flops)
    scores = pd.DataFrame(
        [
            score_row(
                "m",
                "F",
                log10_train_flops,
                "standard",
                0.3,
                generated_tokens_mean=50.0,
                inference_flops_per_request=baseline_flops_per_request,
            ),
            score_row(
                "m",
                "F",
                log10_train_flops,
                "cot",
                0.4,
                generated_tokens_mean=generated_tokens_mean,
                inference_flops_per_request=flops_per_request,
            ),
        ]
    )
    result = crossover_requests(train_equivalent, scores)
    assert no_infinities(result)
    return result.iloc[0]


def test_crossover_matches_hand_worked_example():
    # Model trained with T = 1e21 FLOPs; CoT reaches the score of a baseline trained with
    # C* = 3e21. CoT costs f_o = 5e12 FLOPs per request, the baseline f_b = 1e12.
    #   L_o(R) = 1e21 + 5e12 R,   L_b(R) = 3e21 + 1e12 R
    #   equal when (5e12 - 1e12) R = 3e21 - 1e21  ->  R* = 2e21 / 4e12 = 5e8 requests.
    # CoT generates 250 tokens per request: 5e8 * 250 = 1.25e11 generated tokens.
    # Bounds: C*_low = 2e21 -> (1e21) / 4e12 = 2.5e8; C*_high = 5e21 -> 4e21 / 4e12 = 1e9.
    result = _crossover_table(1e21, 3e21, 5e12, 1e12, low=2e21, high=5e21)
    assert result["crossover_status"] == tables.STATUS_OK
    assert result["crossover_requests"] == pytest.approx(5e8, rel=1e-12)
    assert result["crossover_generated_tokens"] == pytest.approx(1.25e11, rel=1e-12)
    assert result["crossover_requests_low"] == pytest.approx(2.5e8, rel=1e-12)
    assert result["crossover_requests_high"] == pytest.approx(1e9, rel=1e-12)
    assert result["flops_per_request"] == 5e12
    assert result["baseline_flops_per_request"] == 1e12


def test_crossover_lower_bound_clipped_at_zero_when_interval_admits_no_gain():
    # C*_low = 0.5e21 < T: at that end the optimization never pays, reported as 0 requests.
    result = _crossover_table(1e21, 3e21, 5e12, 1e12, low=0.5e21, high=5e21)
    assert result["crossover_requests_low"] == 0.0


def test_optimization_never_cheaper():
    result = _crossover_table(1e21, 0.8e21, 5e12, 1e12)
    assert result["crossover_status"] == tables.STATUS_NEVER_CHEAPER
    assert np.isnan(result["crossover_requests"])


def test_optimization_always_cheaper():
    result = _crossover_table(1e21, 3e21, 1e12, 1e12)
    assert result["crossover_status"] == tables.STATUS_ALWAYS_CHEAPER
    assert np.isnan(result["crossover_requests"])


def test_optimization_cheaper_above_crossover():
    # Cheaper per request but worth less training: L_o = 1e21 + 1e12 R, L_b = 0.6e21 + 3e12 R,
    # equal at R* = 0.4e21 / 2e12 = 2e8; above it the optimization wins.
    result = _crossover_table(1e21, 0.6e21, 1e12, 3e12, low=0.4e21, high=0.8e21)
    assert result["crossover_status"] == tables.STATUS_CHEAPER_ABOVE_CROSSOVER
    assert result["crossover_requests"] == pytest.approx(2e8)
    # R* falls as C* rises: low from C*_high (0.2e21 / 2e12), high from C*_low (0.6e21 / 2e12).
    assert result["crossover_requests_low"] == pytest.approx(1e8)
    assert result["crossover_requests_high"] == pytest.approx(3e8)


def test_crossover_propagates_missing_train_equivalent_and_flops():
    result = _crossover_table(
        1e21, float("nan"), 5e12, 1e12, status=tables.STATUS_SINGLE_MODEL_FAMILY
    )
    assert result["crossover_status"] == tables.STATUS_SINGLE_MODEL_FAMILY
    assert np.isnan(result["crossover_generated_tokens"])
    result = _crossover_table(1e21, 3e21, float("nan"), 1e12)
    assert result["crossover_status"] == tables.STATUS_NO_INFERENCE_FLOPS
    result = _crossover_table(1e21, 3e21, 5e12, float("nan"))
    assert result["crossover_status"] == tables.STATUS_NO_BASELINE_INFERENCE_FLOPS


def test_crossover_end_to_end_keeps_train_equivalent_columns():
    rows = [
        *exact_family(),
        score_row("F1", "F", 20.0, "cot", line_score(21.0), inference_flops_per_request=5e10),
    ]
    scores = pd.DataFrame(rows)
    train_equivalent = train_equivalent_flops(scores, fit_family_scaling(scores))
    result = crossover_requests(train_equivalent, scores)
    assert list(result.columns[: len(train_equivalent.columns)]) == list(train_equivalent.columns)
    # (1e21 - 1e20) / (5e10 - 1e10) = 9e20 / 4e10 = 2.25e10 requests.
    assert result.loc[0, "crossover_requests"] == pytest.approx(2.25e10, rel=1e-9)


# --- crossover_requests in device-seconds -------------------------------------------------------


def _seconds_crossover_table(
    seconds_per_request: float,
    baseline_seconds_per_request: float,
    training_throughput: float = 4e14,
    equivalent: float = 3e21,
    status: str = tables.STATUS_OK,
):
    """The hand-worked FLOP example above (T = 1e21, C* = 3e21 [2e21, 5e21], f_o = 5e12,
    f_b = 1e12), with measured seconds per request, crossed in FLOPs and then in seconds."""
    train_equivalent = pd.DataFrame(
        [
            {
                "model": "m",
                "family": "F",
                "optimization": "cot",
                "baseline": "standard",
                "train_flops": 1e21,
                "train_equivalent_flops": equivalent,
                "train_equivalent_flops_low": 2e21,
                "train_equivalent_flops_high": 5e21,
                "status": status,
            }
        ]
    )
    scores = pd.DataFrame(
        [
            score_row("m", "F", 21.0, "standard", 0.3, inference_flops_per_request=1e12)
            | {"seconds_per_request": baseline_seconds_per_request},
            score_row("m", "F", 21.0, "cot", 0.4, inference_flops_per_request=5e12)
            | {"seconds_per_request": seconds_per_request},
        ]
    )
    in_flops = crossover_requests(train_equivalent, scores)
    result = crossover_requests(
        in_flops, scores, cost_unit="seconds", training_throughput=training_throughput
    )
    assert no_infinities(result)
    assert list(result.columns) == [*in_flops.columns, *tables.SECONDS_CROSSOVER_COLUMNS]
    return result.iloc[0]


def test_seconds_crossover_matches_hand_worked_example():
    # Training at 4e14 FLOP/s: T = 1e21 FLOPs / 4e14 FLOP/s = 2.5e6 s, C* = 3e21 / 4e14 = 7.5e6 s.
    # CoT takes s_o = 3.0 s per request (measured), the baseline s_b = 0.5 s.
    #   L_o(R) = 2.5e6 + 3.0 R,   L_b(R) = 7.5e6 + 0.5 R
    #   equal when (3.0 - 0.5) R = 7.5e6 - 2.5e6  ->  R* = 5e6 / 2.5 = 2e6 requests.
    # Bounds: C*_low = 2e21 FLOPs = 5e6 s -> (5e6 - 2.5e6) / 2.5 = 1e6;
    #         C*_high = 5e21 FLOPs = 1.25e7 s -> (1.25e7 - 2.5e6) / 2.5 = 4e6.
    result = _seconds_crossover_table(3.0, 0.5)
    assert result["training_throughput"] == 4e14
    assert result["train_seconds"] == pytest.approx(2.5e6, rel=1e-12)
    assert result["train_equivalent_seconds"] == pytest.approx(7.5e6, rel=1e-12)
    assert result["train_equivalent_seconds_low"] == pytest.approx(5e6, rel=1e-12)
    assert result["train_equivalent_seconds_high"] == pytest.approx(1.25e7, rel=1e-12)
    assert result["seconds_per_request"] == 3.0
    assert result["baseline_seconds_per_request"] == 0.5
    assert result["crossover_status_seconds"] == tables.STATUS_OK
    assert result["crossover_requests_seconds"] == pytest.approx(2e6, rel=1e-12)
    assert result["crossover_requests_seconds_low"] == pytest.approx(1e6, rel=1e-12)
    assert result["crossover_requests_seconds_high"] == pytest.approx(4e6, rel=1e-12)
    # The FLOP crossover of the same row is untouched: 2e21 / 4e12 = 5e8 requests.
    assert result["crossover_requests"] == pytest.approx(5e8, rel=1e-12)
    assert result["crossover_status"] == tables.STATUS_OK

    # A slower trainer makes training dearer in seconds, so thinking pays for longer:
    # at 1e14 FLOP/s, T = 1e7 s, C* = 3e7 s, R* = 2e7 / 2.5 = 8e6 requests.
    slower = _seconds_crossover_table(3.0, 0.5, training_throughput=1e14)
    assert slower["train_seconds"] == pytest.approx(1e7, rel=1e-12)
    assert slower["crossover_requests_seconds"] == pytest.approx(8e6, rel=1e-12)


def test_seconds_crossover_statuses_follow_the_seconds_not_the_flops():
    # An int8-like runtime optimization: faster per request (0.25 s against 0.5 s) although
    # the same FLOPs, and worth less training (C* = 0.5e21 < T = 1e21): in FLOPs never cheaper,
    # in seconds cheaper above R* = (1e21 - 0.5e21) / 4e14 / (0.5 - 0.25) = 1.25e6 / 0.25 = 5e6.
    train_equivalent = pd.DataFrame(
        [
            {
                "model": "m",
                "family": "F",
                "optimization": "int8",
                "baseline": "standard",
                "train_flops": 1e21,
                "train_equivalent_flops": 0.5e21,
                "train_equivalent_flops_low": np.nan,
                "train_equivalent_flops_high": np.nan,
                "status": tables.STATUS_OK,
            }
        ]
    )
    scores = pd.DataFrame(
        [
            score_row("m", "F", 21.0, "standard", 0.40) | {"seconds_per_request": 0.5},
            score_row("m", "F", 21.0, "int8", 0.39) | {"seconds_per_request": 0.25},
        ]
    )
    result = crossover_requests(
        crossover_requests(train_equivalent, scores), scores, cost_unit="seconds"
    ).iloc[0]
    assert result["crossover_status"] == tables.STATUS_NEVER_CHEAPER
    assert result["crossover_status_seconds"] == tables.STATUS_CHEAPER_ABOVE_CROSSOVER
    assert result["crossover_requests_seconds"] == pytest.approx(5e6, rel=1e-12)


def test_nan_seconds_give_a_status_not_a_crash():
    # An imported cell, or one k of a sweep: no seconds of its own.
    result = _seconds_crossover_table(np.nan, 0.5)
    assert result["crossover_status_seconds"] == tables.STATUS_NO_SECONDS
    assert np.isnan(result["crossover_requests_seconds"])
    assert result["crossover_status"] == tables.STATUS_OK  # the FLOP analysis still stands
    result = _seconds_crossover_table(3.0, np.nan)
    assert result["crossover_status_seconds"] == tables.STATUS_NO_BASELINE_SECONDS
    # No train-equivalent FLOPs either: both reasons, the fit's first.
    result = _seconds_crossover_table(
        np.nan, 0.5, equivalent=np.nan, status=tables.STATUS_SINGLE_MODEL_FAMILY
    )
    assert statuses(result["crossover_status_seconds"]) == [
        tables.STATUS_SINGLE_MODEL_FAMILY,
        tables.STATUS_NO_SECONDS,
    ]
    assert result["crossover_status"] == tables.STATUS_SINGLE_MODEL_FAMILY
    for status in (tables.STATUS_NO_SECONDS, tables.STATUS_NO_BASELINE_SECONDS):
        assert status in tables.STATUS_MEANINGS


def test_train_equivalent_table_carries_both_units_from_one_fit():
    # The exact family (slope 0.06 per decade) with seconds; F1 (1e20 FLOPs) reaches with cot
    # the score of 1e21 FLOPs. vote@4 is a sweep's k row: the FLOP analysis, no seconds.
    cot = score_row("F1", "F", 20.0, "cot", line_score(21.0), inference_flops_per_request=5e10)
    vote = score_row("F1", "F", 20.0, "vote@4", line_score(21.0), inference_flops_per_request=5e10)
    rows = [row | {"seconds_per_request": 0.5} for row in exact_family()]
    rows += [cot | {"seconds_per_request": 2.5}, vote | {"seconds_per_request": np.nan}]
    scores = pd.DataFrame(rows)
    family_fits = fit_family_scaling(scores)
    table = train_equivalent_table(scores, family_fits, training_throughput=1e15)
    in_flops = crossover_requests(
        train_equivalent_flops(scores, family_fits, interval="student-t"), scores
    )
    # The FLOP columns, names and values, are what they were without the seconds.
    pd.testing.assert_frame_equal(table[in_flops.columns], in_flops)
    cot = table.set_index("optimization").loc["cot"]
    assert cot["train_equivalent_flops"] == pytest.approx(1e21, rel=1e-9)
    # C* in seconds is the same C* at 1e15 FLOP/s: 1e21 / 1e15 = 1e6 s; T = 1e20 / 1e15 = 1e5 s.
    assert cot["train_equivalent_seconds"] == pytest.approx(1e6, rel=1e-9)
    assert cot["train_seconds"] == pytest.approx(1e5, rel=1e-12)
    # R* = (1e6 - 1e5) s / (2.5 - 0.5) s = 4.5e5 requests (in FLOPs: 9e20 / 4e10 = 2.25e10).
    assert cot["crossover_requests_seconds"] == pytest.approx(4.5e5, rel=1e-9)
    assert cot["crossover_requests"] == pytest.approx(2.25e10, rel=1e-9)
    vote = table.set_index("optimization").loc["vote@4"]
    assert vote["crossover_status"] == tables.STATUS_OK
    assert vote["crossover_status_seconds"] == tables.STATUS_NO_SECONDS
    # A table with no seconds column at all (written before seconds were measured) says so too.
    without = train_equivalent_table(scores.drop(columns="seconds_per_request"), family_fits)
    assert set(without["crossover_status_seconds"]) == {tables.STATUS_NO_SECONDS}
    assert set(without["training_throughput"]) == {DEFAULT_TRAINING_THROUGHPUT}


@pytest.mark.parametrize("throughput", [0.0, -4e14, np.nan, np.inf, "fast"])
def test_training_throughput_must_be_a_positive_number(throughput):
    scores = pd.DataFrame([*exact_family(), score_row("F1", "F", 20.0, "cot", line_score(21.0))])
    train_equivalent = train_equivalent_flops(scores, fit_family_scaling(scores))
    with pytest.raises(ValueError, match="training_throughput must be a positive number"):
        crossover_requests(
            train_equivalent, scores, cost_unit="seconds", training_throughput=throughput
        )


def test_unknown_cost_unit_is_refused():
    scores = pd.DataFrame(exact_family())
    with pytest.raises(ValueError, match="cost_unit must be one of"):
        crossover_requests(pd.DataFrame(), scores, cost_unit="joules")


# --- fit_isoflop ---------------------------------------------------------------------------------


def _isoflop_scores(rng, n_points=40, alpha=0.05, beta=2e-4, delta=-0.6, noise=0.005):
    log10_flops = rng.uniform(19.0, 23.0, size=n_points)
    tokens = rng.uniform(10.0, 500.0, size=n_points)
    score = alpha * log10_flops + beta * tokens + delta + rng.normal(0, noise, size=n_points)
    return pd.DataFrame(
        [
            score_row(f"m{i}", "F", x, "cot" if i % 2 else "sc", y, generated_tokens_mean=t)
            for i, (x, t, y) in enumerate(zip(log10_flops, tokens, score, strict=True))
        ]
    )


def test_isoflop_recovers_known_parameters():
    truth = {"alpha": 0.05, "beta": 2e-4, "delta": -0.6}
    scores = _isoflop_scores(np.random.default_rng(7), **truth)
    result = fit_isoflop(scores).set_index("optimization")
    assert set(result.index) == {"cot", "sc", "all"}
    for optimization in ("cot", "sc", "all"):
        row = result.loc[optimization]
        assert row["status"] == tables.STATUS_OK
        for name, true_value in truth.items():
            stderr = row[f"{name}_stderr"]
            assert np.isfinite(stderr) and stderr > 0
            assert abs(row[name] - true_value) < 4 * stderr
    pooled = result.loc["all"]
    assert pooled["n_points"] == 40
    assert pooled["alpha"] == pytest.approx(0.05, abs=0.003)
    assert pooled["beta"] == pytest.approx(2e-4, abs=2e-5)


def test_isoflop_constant_tokens_leaves_beta_unidentified():
    rng = np.random.default_rng(1)
    log10_flops = np.linspace(19, 22, 6)
    rows = [
        score_row(
            f"m{i}",
            "F",
            x,
            "cot",
            0.05 * x - 0.6 + rng.normal(0, 0.003),
            generated_tokens_mean=120.0,
        )
        for i, x in enumerate(log10_flops)
    ]
    result = fit_isoflop(pd.DataFrame(rows)).set_index("optimization").loc["cot"]
    assert result["status"] == tables.STATUS_TOKENS_DO_NOT_VARY
    assert np.isnan(result["beta"]) and np.isnan(result["beta_stderr"])
    assert result["alpha"] == pytest.approx(0.05, abs=0.005)
    assert result["alpha_stderr"] > 0


def test_isoflop_collinear_tokens_leaves_beta_unidentified():
    log10_flops = np.linspace(19, 22, 6)
    rows = [
        score_row(f"m{i}", "F", x, "cot", 0.05 * x - 0.6, generated_tokens_mean=10 * x + 3)
        for i, x in enumerate(log10_flops)
    ]
    result = fit_isoflop(pd.DataFrame(rows)).iloc[0]
    assert result["status"] == tables.STATUS_TOKENS_COLLINEAR
    assert np.isnan(result["beta"])


def test_isoflop_point_count_statuses():
    scores = _isoflop_scores(np.random.default_rng(0), n_points=3)
    result = fit_isoflop(scores).set_index("optimization")
    # "sc" holds points 0 and 2, "cot" point 1; the pooled fit has exactly three points.
    assert result.loc["sc", "status"] == tables.STATUS_FEWER_POINTS_THAN_PARAMETERS
    assert result.loc["cot", "status"] == tables.STATUS_FEWER_POINTS_THAN_PARAMETERS
    assert np.isnan(result.loc["sc", ["alpha", "beta", "delta"]].astype(float)).all()
    assert result.loc["all", "status"] == tables.STATUS_NO_RESIDUAL_DOF
    assert np.isfinite(result.loc["all", "alpha"])
    assert np.isnan(result.loc["all", "alpha_stderr"])
    assert no_infinities(result)


def test_isoflop_group_cols_and_empty_input():
    scores = _isoflop_scores(np.random.default_rng(4))
    scores.loc[scores.index[::2], "family"] = "G"
    result = fit_isoflop(scores, group_cols=("family",))
    assert set(zip(result["family"], result["optimization"], strict=True)) >= {
        ("F", "all"),
        ("G", "all"),
    }
    assert fit_isoflop(scores.iloc[:0]).empty


# --- pareto_frontier -----------------------------------------------------------------------------


def test_pareto_frontier_hand_example():
    cells = pd.DataFrame(
        {
            "name": ["a", "b", "c", "d", "e", "f", "g"],
            "cost": [1.0, 2.0, 2.0, 3.0, 4.0, 5.0, float("nan")],
            "quality": [0.2, 0.5, 0.4, 0.5, 0.7, 0.6, 0.99],
        }
    )
    # a: cheapest.  b: better than a.  c: same cost as b, worse.  d: costs more than b for the
    # same quality.  e: best finite quality.  f: dearer and worse than e.  g: no cost.
    marked = pareto_frontier(cells, x_col="cost", y_col="quality")
    assert marked.loc[marked["on_pareto_frontier"], "name"].tolist() == ["a", "b", "e"]
    assert list(marked["name"]) == list(cells["name"])  # input order kept


def test_pareto_frontier_keeps_exact_duplicates():
    cells = pd.DataFrame({"cost": [1.0, 1.0, 2.0], "quality": [0.5, 0.5, 0.4]})
    marked = pareto_frontier(cells, x_col="cost", y_col="quality")
    assert marked["on_pareto_frontier"].tolist() == [True, True, False]


def test_missing_train_flops_for_optimized_model():
    rows = [*exact_family(), score_row("F1", "F", 20.0, "cot", line_score(21.0))]
    rows[-1]["train_flops"] = float("nan")
    scores = pd.DataFrame(rows)
    train_equivalent = train_equivalent_flops(scores, fit_family_scaling(scores))
    result = crossover_requests(train_equivalent, scores).iloc[0]
    assert result["status"] == tables.STATUS_NO_TRAIN_FLOPS
    assert result["train_equivalent_flops"] == pytest.approx(1e21, rel=1e-9)
    assert np.isnan(result["train_equivalent_ratio"])
    assert result["crossover_status"] == tables.STATUS_NO_TRAIN_FLOPS


def test_random_degenerate_tables_never_crash_or_give_inf():
    rng = np.random.default_rng(99)
    for _ in range(40):
        rows = []
        for family_index in range(rng.integers(1, 4)):
            family = f"fam{family_index}"
            for model_index in range(rng.integers(1, 5)):
                model = f"{family}-{model_index}"
                log10_flops = float(rng.choice([19.0, 20.0, 21.0, 22.0]))
                for optimization in ("standard", "cot"):
                    if rng.random() < 0.15:
                        continue  # cell never evaluated
                    score = float(rng.uniform(0.1, 0.9)) if rng.random() > 0.1 else np.nan
                    stderr = 0.01 if rng.random() > 0.3 else np.nan
                    tokens = float(rng.choice([20.0, 200.0]))
                    rows.append(
                        score_row(
                            model,
                            family,
                            log10_flops,
                            optimization,
                            score,
                            stderr=stderr,
                            generated_tokens_mean=tokens,
                            inference_flops_per_request=float(rng.choice([1e10, 5e10, np.nan])),
                        )
                    )
        scores = pd.DataFrame(rows)
        family_fits = fit_family_scaling(scores)
        train_equivalent = train_equivalent_flops(scores, family_fits)
        crossover = crossover_requests(train_equivalent, scores)
        isoflop = fit_isoflop(scores)
        for table in (family_fits, crossover, isoflop):
            assert no_infinities(table)
        known = set(tables.STATUS_MEANINGS)
        for column, table in (
            ("status", family_fits),
            ("status", crossover),
            ("crossover_status", crossover),
            ("status", isoflop),
        ):
            for value in table[column]:
                assert set(statuses(value)) <= known, value
        # A number is present exactly when its status allows it.
        missing = crossover["train_equivalent_flops"].isna()
        assert (crossover.loc[missing, "status"] != tables.STATUS_OK).all()


def test_identical_baseline_scores_count_as_flat():
    rows = [score_row(f"c{i}", "C", x, "standard", 0.4) for i, x in enumerate([20.0, 21.0, 22.0])]
    rows.append(score_row("c0", "C", 20.0, "cot", 0.5))
    scores = pd.DataFrame(rows)
    assert fit_family_scaling(scores).loc[0, "status"] == tables.STATUS_SLOPE_NOT_POSITIVE
    result = train_equivalent_flops(scores, fit_family_scaling(scores)).iloc[0]
    assert result["status"] == tables.STATUS_SLOPE_NOT_POSITIVE


def test_the_library_and_the_config_have_one_interval_default():
    """train_equivalent_flops called directly gives what the workflow's table gives."""
    import inspect

    from thinkcost.analysis.linear import DEFAULT_INTERVAL
    from thinkcost.config import load_yaml_strict

    schema = load_yaml_strict(Path(__file__).resolve().parents[1] / "config" / "schema.yaml")
    interval = schema["properties"]["analysis"]["properties"]["interval"]["default"]
    assert interval == DEFAULT_INTERVAL == "student-t"
    for function in (train_equivalent_flops, train_equivalent_table):
        assert inspect.signature(function).parameters["interval"].default == DEFAULT_INTERVAL
