"""Train-equivalent FLOPs: each family's scaling fit read backwards at every optimized score.

Numbers that cannot be computed are NaN, never ``inf``, and the row's status says why (see
:data:`thinkcost.tables.STATUS_MEANINGS`).
"""

from __future__ import annotations

import math

import pandas as pd

from thinkcost.analysis.crossover import DEFAULT_TRAINING_THROUGHPUT, crossover_requests
from thinkcost.analysis.frames import cell_float, unique_lookup, with_float_columns
from thinkcost.analysis.linear import DEFAULT_INTERVAL, LineFit, check_interval, invert_line
from thinkcost.tables import (
    AVERAGE,
    STATUS_BOUNDS_NOT_FINITE,
    STATUS_EXTRAPOLATED_BEYOND,
    STATUS_EXTRAPOLATED_WITHIN,
    STATUS_FEW_DISTINCT_FLOPS,
    STATUS_NO_BASELINE_SCORE,
    STATUS_NO_BASELINE_SCORES,
    STATUS_NO_FAMILY_FIT,
    STATUS_NO_SCORE,
    STATUS_NO_SCORE_STDERR,
    STATUS_NO_TRAIN_FLOPS,
    STATUS_SINGLE_MODEL_FAMILY,
    STATUS_SLOPE_NOT_POSITIVE,
    STATUS_TWO_POINTS,
    TRAIN_EQUIVALENT_COLUMNS,
    finite_float,
    join_status,
)

# Family-fit statuses under which the line cannot be inverted at all.
_UNUSABLE_FIT_STATUSES = frozenset(
    {
        STATUS_NO_BASELINE_SCORES,
        STATUS_SINGLE_MODEL_FAMILY,
        STATUS_FEW_DISTINCT_FLOPS,
        STATUS_SLOPE_NOT_POSITIVE,
    }
)


def train_equivalent_flops(
    scores: pd.DataFrame,
    family_fits: pd.DataFrame,
    baseline: str = "standard",
    task: str = AVERAGE,
    extrapolation_factor: float = 10.0,
    confidence: float = 0.95,
    interval: str = DEFAULT_INTERVAL,
) -> pd.DataFrame:
    """Invert each family's scaling fit at every optimized score.

    The train-equivalent FLOPs ``C*`` of model *m* under optimization *o* are the training FLOPs a
    baseline model of *m*'s family would need, on the fitted line, to reach *o*'s score:
    ``log10 C* = (score - intercept) / slope``. Its bounds are :func:`invert_line`'s (the delta
    method on the fit's covariance and the score's ``stderr``, symmetric on ``log10 C*`` at
    ``confidence``, ``interval`` ``"normal"`` or ``"student-t"``), exponentiated, so they are
    asymmetric in FLOPs.

    Returns one row per (model, optimization != baseline) in ``scores`` for ``task``, with the
    identifier columns ``model``, ``family``, ``optimization`` followed by
    :data:`TRAIN_EQUIVALENT_COLUMNS`. ``train_equivalent_ratio = train_equivalent_flops /
    train_flops``; ``baseline_train_equivalent_flops`` is the same inversion applied to the
    model's own baseline score, which shows how far the model sits off its family's line.

    ``status`` is ``"ok"`` or, joined by ``"; "``:

    * the family fit's status when the fit cannot be inverted (``"single-model family"``,
      ``"fewer than two distinct train_flops"``, ``"slope not positive"``,
      ``"no baseline scores for this family"``), or ``"no baseline fit for this family"``,
      or ``"no score"``: all numbers NaN;
    * ``"extrapolated beyond fitted range"``: ``C*`` lies more than ``extrapolation_factor``
      outside ``[10**log10_flops_min, 10**log10_flops_max]``; all numbers NaN;
    * ``"extrapolated (within factor)"``: outside the fitted span but within the factor; kept;
    * ``"two points: no uncertainty"``: point estimate kept, bounds NaN;
    * ``"no score stderr: bounds from fit only"``: bounds use the fit covariance alone;
    * ``"no baseline score for this model"``: only ``baseline_score`` is NaN;
    * ``"no train_flops for this model"``: ``train_equivalent_ratio`` (and later the crossover)
      is NaN;
    * ``"confidence bounds not finite"``: a bound overflowed and is NaN.
    """
    if not extrapolation_factor >= 1:
        raise ValueError(f"extrapolation_factor must be >= 1, got {extrapolation_factor!r}")
    check_interval(confidence, interval)

    task_rows = scores[scores["task"] == task]
    optimized = task_rows[task_rows["optimization"] != baseline]
    baseline_rows = unique_lookup(
        task_rows[task_rows["optimization"] == baseline], ["model"], "baseline scores"
    )
    unique_lookup(optimized, ["model", "optimization"], "optimized scores")
    fits_by_family = unique_lookup(family_fits, ["family"], "family fits")
    log10_factor = math.log10(extrapolation_factor)

    records = []
    for _, row in optimized.iterrows():
        record = _scores_of(row, baseline_rows.get((row["model"],)), baseline)
        fit = fits_by_family.get((row["family"],))
        record.update(_invert_family_fit(record, fit, log10_factor, confidence, interval))
        records.append(record)

    columns = ["model", "family", "optimization", *TRAIN_EQUIVALENT_COLUMNS]
    return with_float_columns(pd.DataFrame(records, columns=columns), TRAIN_EQUIVALENT_COLUMNS)


def _scores_of(row: pd.Series, baseline_row: pd.Series | None, baseline: str) -> dict:
    """An optimized row's identifiers and the numbers its inversion starts from."""
    return {
        "model": row["model"],
        "family": row["family"],
        "optimization": row["optimization"],
        "baseline": baseline,
        "train_flops": finite_float(row["train_flops"]),
        "score": finite_float(row["score"]),
        "score_stderr": cell_float(row, "stderr"),
        "baseline_score": cell_float(baseline_row, "score"),
    }


def _invert_family_fit(
    values: dict, fit: pd.Series | None, log10_factor: float, confidence: float, interval: str
) -> dict:
    """The inversion's columns and status for one row, whose score, score_stderr,
    baseline_score and train_flops are in ``values``; a number it does not reach is left out
    (the table has it NaN)."""
    caveats = [] if math.isfinite(values["baseline_score"]) else [STATUS_NO_BASELINE_SCORE]
    train_flops = values["train_flops"]
    if not (math.isfinite(train_flops) and train_flops > 0):
        caveats.append(STATUS_NO_TRAIN_FLOPS)
    line = _usable_line(fit)
    if isinstance(line, str):
        return {"status": join_status([line, *caveats])}
    score = values["score"]
    if not math.isfinite(score):
        return {"status": join_status([STATUS_NO_SCORE, *caveats])}

    log10_equivalent = line.x_at(score)
    equivalent_flops = _power_of_ten_or_nan(log10_equivalent)
    fitted_min = float(fit["log10_flops_min"])
    fitted_max = float(fit["log10_flops_max"])
    # A number beyond 10**308 (reachable with extrapolation_factor=inf) does not fit in a double.
    if not (
        fitted_min - log10_factor <= log10_equivalent <= fitted_max + log10_factor
        and math.isfinite(equivalent_flops)
    ):
        return {"status": join_status([STATUS_EXTRAPOLATED_BEYOND, *caveats])}
    if not fitted_min <= log10_equivalent <= fitted_max:
        caveats.insert(0, STATUS_EXTRAPOLATED_WITHIN)
    record = dict(
        log10_train_equivalent_flops=log10_equivalent,
        train_equivalent_flops=equivalent_flops,
        train_equivalent_ratio=(
            equivalent_flops / train_flops
            if math.isfinite(train_flops) and train_flops > 0
            else float("nan")
        ),
        baseline_train_equivalent_flops=_baseline_equivalent(values["baseline_score"], line),
    )
    if not line.has_covariance:
        return record | {"status": join_status([STATUS_TWO_POINTS, *caveats])}
    bounds, caveats = _bounds(score, values["score_stderr"], line, confidence, interval, caveats)
    return record | bounds | {"status": join_status(caveats)}


def _usable_line(fit: pd.Series | None) -> LineFit | str:
    """The family's fitted line, or the status that says why it cannot be inverted."""
    if fit is None:
        return STATUS_NO_FAMILY_FIT
    if fit["status"] in _UNUSABLE_FIT_STATUSES:
        return fit["status"]
    line = LineFit(
        slope=float(fit["slope"]),
        intercept=float(fit["intercept"]),
        slope_stderr=float(fit["slope_stderr"]),
        intercept_stderr=float(fit["intercept_stderr"]),
        cov_slope_intercept=float(fit["cov_slope_intercept"]),
        residual_dof=float(fit["residual_dof"]),
    )
    if not (math.isfinite(line.slope) and math.isfinite(line.intercept) and line.rises):
        # A hand-made fits table could carry "ok" next to an unusable line.
        return STATUS_SLOPE_NOT_POSITIVE
    return line


def _baseline_equivalent(baseline_score: float, line: LineFit) -> float:
    if not math.isfinite(baseline_score):
        return float("nan")
    log10_baseline_equivalent = line.x_at(baseline_score)
    # Only an overflow guard: this column is diagnostic and carries no status of its own.
    if abs(log10_baseline_equivalent) < 300:
        return 10.0**log10_baseline_equivalent
    return float("nan")


def _bounds(
    score: float,
    score_stderr: float,
    line: LineFit,
    confidence: float,
    interval: str,
    caveats: list[str],
) -> tuple[dict, list[str]]:
    """The delta-method bounds in FLOPs, and the caveats with those the bounds add."""
    inversion = invert_line(score, line, confidence, interval, y_stderr=score_stderr)
    caveats = caveats if math.isfinite(score_stderr) else [*caveats, STATUS_NO_SCORE_STDERR]
    low = _power_of_ten_or_nan(inversion.low)
    high = _power_of_ten_or_nan(inversion.high)
    if not (math.isfinite(low) and math.isfinite(high)):
        caveats = [*caveats, STATUS_BOUNDS_NOT_FINITE]
    bounds = {
        "log10_train_equivalent_flops_stderr": inversion.x_stderr,
        "train_equivalent_flops_low": low,
        "train_equivalent_flops_high": high,
    }
    return bounds, caveats


def _power_of_ten_or_nan(exponent: float) -> float:
    # 10**308 is the largest finite double; beyond it a bound would be inf, which the tables
    # must never contain.
    if not math.isfinite(exponent) or exponent > 308:
        return float("nan")
    return 10.0**exponent


def train_equivalent_table(
    scores: pd.DataFrame,
    family_fits: pd.DataFrame,
    baseline: str = "standard",
    extrapolation_factor: float = 10.0,
    confidence: float = 0.95,
    interval: str = DEFAULT_INTERVAL,
    task: str = AVERAGE,
    training_throughput: float = DEFAULT_TRAINING_THROUGHPUT,
) -> pd.DataFrame:
    """`results/tables/train_equivalent.csv`: train-equivalent FLOPs with their bounds, then
    the crossover request counts that follow from them, in FLOPs
    (:data:`~thinkcost.tables.CROSSOVER_COLUMNS`) and in device-seconds at
    ``training_throughput`` FLOP/s (:data:`~thinkcost.tables.SECONDS_CROSSOVER_COLUMNS`)."""
    table = train_equivalent_flops(
        scores,
        family_fits,
        baseline=baseline,
        task=task,
        extrapolation_factor=extrapolation_factor,
        confidence=confidence,
        interval=interval,
    )
    table = crossover_requests(table, scores, baseline=baseline, task=task)
    return crossover_requests(
        table,
        scores,
        baseline=baseline,
        task=task,
        cost_unit="seconds",
        training_throughput=training_throughput,
    )
