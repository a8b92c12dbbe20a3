"""The table contract: the columns of every table the stages write, and their status strings.

`results/tables/scores.csv` (one row per model × task × optimization, written by `aggregate`),
the fits under `results/fits/` and `results/tables/train_equivalent.csv` (written by `analysis`)
are read by every later stage and by users' own notebooks. Their column names and the strings
of their status columns are stated here once, and every stage imports them from here.

A status is ``"ok"`` or one or more of the strings in :data:`STATUS_MEANINGS`, joined by
``"; "`` when several caveats apply to the same row (the PCA's two templates are listed by
their pattern). Test for a reason with ``status.str.split("; ")``, not equality.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

# --- scores.csv ----------------------------------------------------------------------------------
# The name of the benchmark average's rows in the `task` column.
AVERAGE = "average"

# The contract's columns first, in this order; extra columns follow.
SCORES_COLUMNS = [
    "model",
    "revision",
    "family",
    "params",
    "train_tokens",
    "train_flops",
    "task",
    "optimization",
    "metric",
    "score",
    "stderr",
    "n",
    "prompt_tokens_mean",
    "generated_tokens_mean",
    "inference_flops_per_request",
    "seconds_per_request",
    "source",
]

# --- Status strings ------------------------------------------------------------------------------
# They are part of the output contract (results/tables/*.csv), so they live in one place.
STATUS_OK = "ok"
STATUS_SEPARATOR = "; "

# fit_family_scaling
STATUS_NO_BASELINE_SCORES = "no baseline scores for this family"
STATUS_SINGLE_MODEL_FAMILY = "single-model family"
STATUS_FEW_DISTINCT_FLOPS = "fewer than two distinct train_flops"
STATUS_SLOPE_NOT_POSITIVE = "slope not positive"
STATUS_TWO_POINTS = "two points: no uncertainty"

# train_equivalent_flops
STATUS_NO_FAMILY_FIT = "no baseline fit for this family"
STATUS_NO_SCORE = "no score"
STATUS_EXTRAPOLATED_BEYOND = "extrapolated beyond fitted range"
STATUS_EXTRAPOLATED_WITHIN = "extrapolated (within factor)"
STATUS_NO_BASELINE_SCORE = "no baseline score for this model"
STATUS_NO_SCORE_STDERR = "no score stderr: bounds from fit only"
STATUS_BOUNDS_NOT_FINITE = "confidence bounds not finite"
STATUS_NO_TRAIN_FLOPS = "no train_flops for this model"

# crossover_requests
STATUS_NEVER_CHEAPER = "optimization never cheaper"
STATUS_ALWAYS_CHEAPER = "optimization always cheaper"
STATUS_CHEAPER_ABOVE_CROSSOVER = "optimization cheaper above crossover"
STATUS_NO_INFERENCE_FLOPS = "no inference flops per request"
STATUS_NO_BASELINE_INFERENCE_FLOPS = "no baseline inference flops for this model"
STATUS_NO_SECONDS = "no seconds measured"
STATUS_NO_BASELINE_SECONDS = "no baseline seconds measured for this model"

# fit_isoflop
STATUS_FEWER_POINTS_THAN_PARAMETERS = "fewer points than parameters"
STATUS_NO_RESIDUAL_DOF = "as many points as parameters: no uncertainty"
STATUS_TOKENS_DO_NOT_VARY = "generated tokens do not vary"
STATUS_TOKENS_COLLINEAR = "generated tokens collinear with log10 train_flops"
STATUS_FIT_FAILED = "fit failed"
STATUS_COVARIANCE_UNDEFINED = "covariance could not be estimated"

# observational_scaling and gain_fit (the PCA). Its family fit is fit_family_scaling's on PC1, and
# two of its reasons are fit_family_scaling's in other words: STATUS_CONSTANT_COMPUTE is
# STATUS_FEW_DISTINCT_FLOPS, STATUS_FLAT is STATUS_SLOPE_NOT_POSITIVE.
STATUS_TOO_FEW = "fewer than two models"
STATUS_CONSTANT_COMPUTE = "fewer than two distinct training-compute values"
STATUS_FLAT = "slope not positive: PC1 does not grow with compute"
STATUS_NO_PC1 = "no PC1"
STATUS_NO_REFERENCE_FIT = "no family with a fit"
# Templates: the reference family's name (and, in the second, its fit's status) filled in.
STATUS_REFERENCE_NOT_IN_PCA = "no model of family {family!r} in the PCA"
STATUS_REFERENCE_UNUSABLE = "reference family {family}: {status}"

STATUS_MEANINGS: dict[str, str] = {
    STATUS_OK: "All numbers in the row were computed as documented.",
    STATUS_NO_BASELINE_SCORES: "The family has no finite baseline score with positive train_flops.",
    STATUS_SINGLE_MODEL_FAMILY: "Only one model in the family: no scaling fit is possible.",
    STATUS_FEW_DISTINCT_FLOPS: "All baseline models share one train_flops value: no slope.",
    STATUS_SLOPE_NOT_POSITIVE: (
        "The family's score does not rise with train_flops, so the fit cannot be inverted."
    ),
    STATUS_TWO_POINTS: (
        "Exactly two points: the line is exact, its covariance is undefined, so bounds are NaN."
    ),
    STATUS_NO_FAMILY_FIT: "The model's family has no row in the family fits.",
    STATUS_NO_SCORE: "The optimized score is missing.",
    STATUS_EXTRAPOLATED_BEYOND: (
        "The train-equivalent FLOPs fall more than extrapolation_factor outside the fitted range."
    ),
    STATUS_EXTRAPOLATED_WITHIN: (
        "The train-equivalent FLOPs lie outside the fitted range but within extrapolation_factor."
    ),
    STATUS_NO_BASELINE_SCORE: "The model has no baseline row; baseline_score is NaN.",
    STATUS_NO_SCORE_STDERR: "The score's stderr is missing; bounds reflect the fit alone.",
    STATUS_BOUNDS_NOT_FINITE: "A confidence bound overflowed and was set to NaN.",
    STATUS_NO_TRAIN_FLOPS: (
        "The model's train_flops are missing: train_equivalent_ratio and the crossover are NaN."
    ),
    STATUS_NEVER_CHEAPER: (
        "The optimization saves no training compute and costs at least as much per request."
    ),
    STATUS_ALWAYS_CHEAPER: (
        "The optimization saves training compute and costs no more per request: no crossover."
    ),
    STATUS_CHEAPER_ABOVE_CROSSOVER: (
        "The optimization needs more training FLOPs but is cheaper per request; it wins only "
        "above crossover_requests."
    ),
    STATUS_NO_INFERENCE_FLOPS: "The optimization's inference FLOPs per request are missing.",
    STATUS_NO_BASELINE_INFERENCE_FLOPS: (
        "The model's baseline inference FLOPs per request are missing."
    ),
    STATUS_NO_SECONDS: (
        "The optimization's seconds per request were not measured (an imported cell, or one k "
        "of a swept optimization, whose seconds were measured for all K samples together)."
    ),
    STATUS_NO_BASELINE_SECONDS: "The model's baseline seconds per request were not measured.",
    STATUS_FEWER_POINTS_THAN_PARAMETERS: "Fewer points than fitted parameters: nothing is fitted.",
    STATUS_NO_RESIDUAL_DOF: "As many points as parameters: exact fit, standard errors are NaN.",
    STATUS_TOKENS_DO_NOT_VARY: (
        "generated tokens are constant, so beta is not identifiable; alpha and delta come from "
        "the fit without the tokens term."
    ),
    STATUS_TOKENS_COLLINEAR: (
        "generated tokens are a linear function of log10 train_flops, so beta is not "
        "identifiable; alpha and delta come from the fit without the tokens term."
    ),
    STATUS_FIT_FAILED: "scipy.optimize.curve_fit did not converge.",
    STATUS_COVARIANCE_UNDEFINED: (
        "curve_fit returned a non-finite covariance although there are residual degrees of "
        "freedom; estimates kept, standard errors NaN."
    ),
    STATUS_TOO_FEW: (
        "Fewer than two models with a PC1 and training compute (fewer than three for a gain "
        "fit): nothing is fitted."
    ),
    STATUS_CONSTANT_COMPUTE: "All models share one x value (training compute or PC1): no slope.",
    STATUS_FLAT: "PC1 does not rise with training compute, so the fit cannot be inverted.",
    STATUS_NO_PC1: "The model has no PC1, so it has no f-equivalent compute.",
    STATUS_NO_REFERENCE_FIT: "No family's PC1 fit succeeded: there is no reference family.",
    STATUS_REFERENCE_NOT_IN_PCA: "The named reference family has no model in the PCA.",
    STATUS_REFERENCE_UNUSABLE: (
        "The reference family's fit has the status named: no f-equivalent compute."
    ),
}

FAMILY_FIT_COLUMNS = [
    "baseline",
    "n_models",
    "n_points",
    "n_flop_values",
    "slope",
    "intercept",
    "slope_stderr",
    "intercept_stderr",
    "cov_slope_intercept",
    "residual_dof",
    "r_squared",
    "residual_stderr",
    "log10_flops_min",
    "log10_flops_max",
    "status",
]

TRAIN_EQUIVALENT_COLUMNS = [
    "baseline",
    "train_flops",
    "score",
    "score_stderr",
    "baseline_score",
    "train_equivalent_flops",
    "train_equivalent_flops_low",
    "train_equivalent_flops_high",
    "train_equivalent_ratio",
    "log10_train_equivalent_flops",
    "log10_train_equivalent_flops_stderr",
    "baseline_train_equivalent_flops",
    "status",
]

# --- Cost units ----------------------------------------------------------------------------------
COST_UNITS = ("flops", "seconds")


def cost_columns(cost_unit: str) -> dict[str, str]:
    """The train_equivalent table's columns of one cost unit, by role.

    ``"flops"`` names the columns the table has always had; ``"seconds"`` the same roles with
    ``seconds`` in their names (``train_seconds``, ``train_equivalent_seconds_low``,
    ``crossover_requests_seconds``, ``crossover_status_seconds``, …), so a table carries both
    analyses side by side and every column says its unit.
    """
    if cost_unit == "flops":
        names = {
            "train": "train_flops",
            "equivalent": "train_equivalent_flops",
            "per_request": "flops_per_request",
            "baseline_per_request": "baseline_flops_per_request",
            "crossover": "crossover_requests",
            "status": "crossover_status",
        }
    elif cost_unit == "seconds":
        names = {
            "train": "train_seconds",
            "equivalent": "train_equivalent_seconds",
            "per_request": "seconds_per_request",
            "baseline_per_request": "baseline_seconds_per_request",
            "crossover": "crossover_requests_seconds",
            "status": "crossover_status_seconds",
        }
    else:
        raise ValueError(f"cost_unit must be one of {COST_UNITS}, got {cost_unit!r}")
    for role in ("equivalent", "crossover"):
        for bound in ("low", "high"):
            names[f"{role}_{bound}"] = f"{names[role]}_{bound}"
    return names


CROSSOVER_COLUMNS = [
    "flops_per_request",
    "baseline_flops_per_request",
    "generated_tokens_mean",
    "crossover_requests",
    "crossover_requests_low",
    "crossover_requests_high",
    "crossover_generated_tokens",
    "crossover_generated_tokens_low",
    "crossover_generated_tokens_high",
    "crossover_status",
]

ISOFLOP_COLUMNS = [
    "n_points",
    "n_models",
    "alpha",
    "beta",
    "delta",
    "alpha_stderr",
    "beta_stderr",
    "delta_stderr",
    "residual_stderr",
    "log10_flops_min",
    "log10_flops_max",
    "generated_tokens_min",
    "generated_tokens_max",
    "status",
]

# What crossover_requests(cost_unit="seconds") adds: the stated throughput, training and the
# train-equivalent compute in device-seconds, measured seconds per request, and the crossover.
SECONDS_CROSSOVER_COLUMNS = [
    "training_throughput",
    "train_seconds",
    "train_equivalent_seconds",
    "train_equivalent_seconds_low",
    "train_equivalent_seconds_high",
    "seconds_per_request",
    "baseline_seconds_per_request",
    "crossover_requests_seconds",
    "crossover_requests_seconds_low",
    "crossover_requests_seconds_high",
    "crossover_status_seconds",
]

POOLED_OPTIMIZATION = "all"


def join_status(reasons: Iterable[str]) -> str:
    """Combine status reasons into one string; no reasons means ``"ok"``."""
    kept = [reason for reason in reasons if reason and reason != STATUS_OK]
    return STATUS_SEPARATOR.join(dict.fromkeys(kept)) if kept else STATUS_OK


# --- Reading cells -------------------------------------------------------------------------------
def is_finite(value: object) -> bool:
    """Whether a table cell holds a finite number (not NaN, None, text or an infinity)."""
    try:
        return math.isfinite(float(value))
    except (TypeError, ValueError):
        return False


def finite_float(value: object) -> float:
    """A table cell as a float, NaN unless it holds a finite number."""
    return float(value) if is_finite(value) else float("nan")
