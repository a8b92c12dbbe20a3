"""Scaling fits, train-equivalent FLOPs, crossover request counts and isoFLOP fits.

Every function here is pure: it takes DataFrames plus the names of the columns to use and returns
a new tidy DataFrame. Nothing reads or writes files, so pytest can reach all of it without
Snakemake.

Conventions used throughout:

* Compute enters every fit as ``log10`` of FLOPs. A slope is therefore "score points per decade
  (factor of ten) of training FLOPs", and every ``log10_*`` column is a base-10 logarithm.
* Costs come in one of :data:`COST_UNITS`: ``"flops"`` (training FLOPs, inference FLOPs per
  request) or ``"seconds"`` (device-seconds: training FLOPs divided by a stated training
  throughput in FLOP/s, inference at its measured seconds per request). The scaling fits are
  always on log10 training FLOPs; only the crossovers are computed in either unit.
* Numbers that cannot be computed are NaN, never ``inf``, and the row's status column says why.
  A status is ``"ok"`` or one or more of the strings in :data:`STATUS_MEANINGS`, joined by
  ``"; "`` when several caveats apply to the same row (e.g. a two-point family whose estimate is
  also a mild extrapolation). Test for a reason with ``status.str.split("; ")``, not equality.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence

import numpy as np
import pandas as pd
import statsmodels.api as sm
from scipy import optimize, stats

from thinkcost.tables import (
    CROSSOVER_COLUMNS,
    FAMILY_FIT_COLUMNS,
    ISOFLOP_COLUMNS,
    POOLED_OPTIMIZATION,
    SECONDS_CROSSOVER_COLUMNS,
    STATUS_ALWAYS_CHEAPER,
    STATUS_BOUNDS_NOT_FINITE,
    STATUS_CHEAPER_ABOVE_CROSSOVER,
    STATUS_COVARIANCE_UNDEFINED,
    STATUS_EXTRAPOLATED_BEYOND,
    STATUS_EXTRAPOLATED_WITHIN,
    STATUS_FEW_DISTINCT_FLOPS,
    STATUS_FEWER_POINTS_THAN_PARAMETERS,
    STATUS_FIT_FAILED,
    STATUS_NEVER_CHEAPER,
    STATUS_NO_BASELINE_INFERENCE_FLOPS,
    STATUS_NO_BASELINE_SCORE,
    STATUS_NO_BASELINE_SCORES,
    STATUS_NO_BASELINE_SECONDS,
    STATUS_NO_FAMILY_FIT,
    STATUS_NO_INFERENCE_FLOPS,
    STATUS_NO_RESIDUAL_DOF,
    STATUS_NO_SCORE,
    STATUS_NO_SCORE_STDERR,
    STATUS_NO_SECONDS,
    STATUS_NO_TRAIN_FLOPS,
    STATUS_OK,
    STATUS_SINGLE_MODEL_FAMILY,
    STATUS_SLOPE_NOT_POSITIVE,
    STATUS_TOKENS_COLLINEAR,
    STATUS_TOKENS_DO_NOT_VARY,
    STATUS_TWO_POINTS,
    TRAIN_EQUIVALENT_COLUMNS,
    cost_columns,
    join_status,
)

# The quantile of every interval on train-equivalent FLOPs unless told otherwise: Student-t keeps
# its coverage in families of few models (config/schema.yaml's analysis.interval has the same).
DEFAULT_INTERVAL = "student-t"

# Family-fit statuses under which the line cannot be inverted at all.
_UNUSABLE_FIT_STATUSES = frozenset(
    {
        STATUS_NO_BASELINE_SCORES,
        STATUS_SINGLE_MODEL_FAMILY,
        STATUS_FEW_DISTINCT_FLOPS,
        STATUS_SLOPE_NOT_POSITIVE,
    }
)

# FLOP/s of the training hardware, to put training in device-seconds: an H100 SXM's dense bf16
# peak (989 TFLOP/s) at 40 % model FLOPs utilisation, 3.96e14, rounded.
DEFAULT_TRAINING_THROUGHPUT = 4.0e14


def check_training_throughput(training_throughput: float) -> float:
    """``training_throughput`` as a float, or an error when it is not a positive finite number."""
    try:
        value = float(training_throughput)
    except (TypeError, ValueError):
        value = float("nan")
    if not (math.isfinite(value) and value > 0):
        raise ValueError(
            f"training_throughput must be a positive number of FLOP/s, got {training_throughput!r}"
        )
    return value


_COUNT_COLUMNS = frozenset({"n_models", "n_points", "n_flop_values", "residual_dof"})
_TEXT_COLUMNS = frozenset({"baseline", "status", "crossover_status", "crossover_status_seconds"})


def _with_float_columns(frame: pd.DataFrame, columns: Sequence[str]) -> pd.DataFrame:
    """Give value columns a numeric dtype even when the table is empty (object otherwise)."""
    for col in columns:
        if col in _TEXT_COLUMNS:
            continue
        frame[col] = frame[col].astype("int64" if col in _COUNT_COLUMNS else "float64")
    return frame


def _finite(value: object) -> bool:
    try:
        return math.isfinite(float(value))
    except (TypeError, ValueError):
        return False


def _unique_lookup(
    frame: pd.DataFrame, key_cols: Sequence[str], what: str
) -> dict[tuple, pd.Series]:
    """Map key tuples to rows, refusing duplicate keys (they would make the answer arbitrary)."""
    duplicated = frame.duplicated(subset=list(key_cols), keep=False)
    if duplicated.any():
        examples = frame.loc[duplicated, list(key_cols)].drop_duplicates().head(5)
        raise ValueError(
            f"{what}: more than one row per {tuple(key_cols)}, e.g. "
            f"{examples.to_dict(orient='records')}"
        )
    return {tuple(row[col] for col in key_cols): row for _, row in frame.iterrows()}


# --- 1. Family scaling fit -----------------------------------------------------------------------


def fit_family_scaling(
    scores: pd.DataFrame,
    baseline: str = "standard",
    task: str = "average",
    score_col: str = "score",
    flops_col: str = "train_flops",
    family_col: str = "family",
    model_col: str = "model",
    optimization_col: str = "optimization",
    task_col: str = "task",
) -> pd.DataFrame:
    """Fit ``score = slope * log10(train_flops) + intercept`` per family, by OLS (statsmodels).

    Only rows with ``task_col == task`` and ``optimization_col == baseline`` and a finite score
    and positive finite ``flops_col`` enter a fit. Every family that appears in the task's rows
    (under any optimization) gets one output row, so a family without usable baseline rows is
    reported rather than silently dropped.

    Returns one row per family with columns ``family_col`` and :data:`FAMILY_FIT_COLUMNS`:

    * ``slope``: score points per decade (factor of ten) of training FLOPs; ``intercept``: the
      score at 1 FLOP (log10 = 0). Their standard errors and covariance are OLS's (residual
      variance estimated from the fit, ``residual_dof = n_points - 2`` degrees of freedom).
    * ``r_squared``, ``residual_stderr`` (sqrt of the residual variance).
    * ``log10_flops_min``/``log10_flops_max``: the fitted span, which later decides what counts
      as extrapolation.
    * ``status``: ``"ok"``, ``"no baseline scores for this family"``, ``"single-model family"``,
      ``"fewer than two distinct train_flops"`` (slope and intercept NaN),
      ``"slope not positive"`` (slope and intercept kept, but they cannot be inverted), or
      ``"two points: no uncertainty"`` (exact line kept; stderr, covariance and residual
      stderr NaN).
    """
    task_rows = scores[scores[task_col] == task]
    families = sorted(task_rows[family_col].dropna().unique(), key=str)
    base = task_rows[task_rows[optimization_col] == baseline]
    score_values = pd.to_numeric(base[score_col], errors="coerce")
    flops_values = pd.to_numeric(base[flops_col], errors="coerce")
    usable = base[np.isfinite(score_values) & np.isfinite(flops_values) & (flops_values > 0)]

    records = []
    for family in families:
        group = usable[usable[family_col] == family]
        record = {family_col: family, "baseline": baseline}
        record.update(
            _fit_one_family(
                log10_flops=np.log10(group[flops_col].to_numpy(dtype=float)),
                score=group[score_col].to_numpy(dtype=float),
                n_models=group[model_col].nunique(),
            )
        )
        records.append(record)
    return _with_float_columns(
        pd.DataFrame(records, columns=[family_col, *FAMILY_FIT_COLUMNS]), FAMILY_FIT_COLUMNS
    )


def _fit_one_family(log10_flops: np.ndarray, score: np.ndarray, n_models: int) -> dict:
    n_points = len(score)
    n_flop_values = len(np.unique(log10_flops))
    nan = float("nan")
    record = {
        "n_models": n_models,
        "n_points": n_points,
        "n_flop_values": n_flop_values,
        "slope": nan,
        "intercept": nan,
        "slope_stderr": nan,
        "intercept_stderr": nan,
        "cov_slope_intercept": nan,
        "residual_dof": max(n_points - 2, 0),
        "r_squared": nan,
        "residual_stderr": nan,
        "log10_flops_min": float(log10_flops.min()) if n_points else nan,
        "log10_flops_max": float(log10_flops.max()) if n_points else nan,
    }
    if n_points == 0:
        return record | {"status": STATUS_NO_BASELINE_SCORES}
    if n_models < 2:
        return record | {"status": STATUS_SINGLE_MODEL_FAMILY}
    if n_flop_values < 2:
        return record | {"status": STATUS_FEW_DISTINCT_FLOPS}

    design = sm.add_constant(log10_flops, has_constant="add")
    # statsmodels warns (and divides by zero) when a two-point fit has no residual degrees of
    # freedom; that case is handled explicitly below, so the warnings carry no information.
    with warnings.catch_warnings(), np.errstate(divide="ignore", invalid="ignore"):
        warnings.simplefilter("ignore")
        result = sm.OLS(score, design).fit()
        intercept, slope = (float(value) for value in result.params)
        r_squared = float(result.rsquared)
        record.update(slope=slope, intercept=intercept)
        record["r_squared"] = r_squared if math.isfinite(r_squared) else nan
        if result.df_resid > 0:
            covariance = np.asarray(result.cov_params(), dtype=float)
            record.update(
                intercept_stderr=float(np.sqrt(covariance[0, 0])),
                slope_stderr=float(np.sqrt(covariance[1, 1])),
                cov_slope_intercept=float(covariance[0, 1]),
                residual_stderr=float(np.sqrt(result.scale)),
            )

    # Identical scores give a slope of rounding noise (~1e-17) that may come out positive.
    if not slope > 0 or np.ptp(score) == 0:
        status = STATUS_SLOPE_NOT_POSITIVE
    elif result.df_resid <= 0:
        status = STATUS_TWO_POINTS
    else:
        status = STATUS_OK
    return record | {"status": status}


# --- 2. Train-equivalent FLOPs -------------------------------------------------------------------


def train_equivalent_flops(
    scores: pd.DataFrame,
    family_fits: pd.DataFrame,
    baseline: str = "standard",
    task: str = "average",
    extrapolation_factor: float = 10.0,
    confidence: float = 0.95,
    interval: str = DEFAULT_INTERVAL,
    score_col: str = "score",
    stderr_col: str = "stderr",
    flops_col: str = "train_flops",
    family_col: str = "family",
    model_col: str = "model",
    optimization_col: str = "optimization",
    task_col: str = "task",
) -> pd.DataFrame:
    """Invert each family's scaling fit at every optimized score.

    The train-equivalent FLOPs ``C*`` of model *m* under optimization *o* are the training FLOPs a
    baseline model of *m*'s family would need, on the fitted line, to reach *o*'s score:
    ``log10 C* = (score - intercept) / slope``.

    Uncertainty (delta method): the gradient of ``log10 C*`` with respect to
    ``(slope, intercept, score)`` is ``(-log10 C* / slope, -1 / slope, 1 / slope)``. Its
    variance combines the fit's covariance of (slope, intercept) with the score's own
    ``stderr**2`` (the optimized score is not part of the fit, so the two are independent). The
    interval is symmetric on ``log10 C*`` (``confidence``, default 95 %) and is exponentiated,
    so it is asymmetric in FLOPs. ``interval="normal"`` uses the normal quantile (1.96 for 95 %).
    ``interval="student-t"`` uses a Student-t quantile with Welch-Satterthwaite degrees of
    freedom (fit variance on ``residual_dof`` degrees of freedom, score variance treated as
    known), which keeps coverage near nominal for families of three to five models where the
    normal interval is too narrow.

    Returns one row per (model, optimization != baseline) in ``scores`` for ``task``, with the
    identifier columns ``model_col``, ``family_col``, ``optimization_col`` followed by
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
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must lie in (0, 1), got {confidence!r}")
    if interval not in ("normal", "student-t"):
        raise ValueError(f"interval must be 'normal' or 'student-t', got {interval!r}")

    task_rows = scores[scores[task_col] == task]
    optimized = task_rows[task_rows[optimization_col] != baseline]
    baseline_rows = _unique_lookup(
        task_rows[task_rows[optimization_col] == baseline], [model_col], "baseline scores"
    )
    _unique_lookup(optimized, [model_col, optimization_col], "optimized scores")
    fits_by_family = _unique_lookup(family_fits, [family_col], "family fits")
    log10_factor = math.log10(extrapolation_factor)
    two_sided_tail = 0.5 + confidence / 2

    records = []
    for _, row in optimized.iterrows():
        model = row[model_col]
        family = row[family_col]
        score = float(row[score_col]) if _finite(row[score_col]) else float("nan")
        score_stderr = (
            float(row[stderr_col])
            if stderr_col in row.index and _finite(row[stderr_col])
            else float("nan")
        )
        train_flops = float(row[flops_col]) if _finite(row[flops_col]) else float("nan")
        baseline_row = baseline_rows.get((model,))
        baseline_score = (
            float(baseline_row[score_col])
            if baseline_row is not None and _finite(baseline_row[score_col])
            else float("nan")
        )
        record = {
            model_col: model,
            family_col: family,
            optimization_col: row[optimization_col],
            "baseline": baseline,
            "train_flops": train_flops,
            "score": score,
            "score_stderr": score_stderr,
            "baseline_score": baseline_score,
        }
        record.update(
            _invert_family_fit(
                score=score,
                score_stderr=score_stderr,
                baseline_score=baseline_score,
                train_flops=train_flops,
                fit=fits_by_family.get((family,)),
                log10_factor=log10_factor,
                two_sided_tail=two_sided_tail,
                interval=interval,
            )
        )
        records.append(record)

    columns = [model_col, family_col, optimization_col, *TRAIN_EQUIVALENT_COLUMNS]
    return _with_float_columns(pd.DataFrame(records, columns=columns), TRAIN_EQUIVALENT_COLUMNS)


def _invert_family_fit(
    score: float,
    score_stderr: float,
    baseline_score: float,
    train_flops: float,
    fit: pd.Series | None,
    log10_factor: float,
    two_sided_tail: float,
    interval: str,
) -> dict:
    nan = float("nan")
    record = {
        "train_equivalent_flops": nan,
        "train_equivalent_flops_low": nan,
        "train_equivalent_flops_high": nan,
        "train_equivalent_ratio": nan,
        "log10_train_equivalent_flops": nan,
        "log10_train_equivalent_flops_stderr": nan,
        "baseline_train_equivalent_flops": nan,
    }
    caveats = [] if math.isfinite(baseline_score) else [STATUS_NO_BASELINE_SCORE]
    if not (math.isfinite(train_flops) and train_flops > 0):
        caveats.append(STATUS_NO_TRAIN_FLOPS)
    if fit is None:
        return record | {"status": join_status([STATUS_NO_FAMILY_FIT, *caveats])}
    if fit["status"] in _UNUSABLE_FIT_STATUSES:
        return record | {"status": join_status([fit["status"], *caveats])}
    slope = float(fit["slope"])
    intercept = float(fit["intercept"])
    if not (math.isfinite(slope) and math.isfinite(intercept) and slope > 0):
        # A hand-made fits table could carry "ok" next to an unusable line.
        return record | {"status": join_status([STATUS_SLOPE_NOT_POSITIVE, *caveats])}
    if not math.isfinite(score):
        return record | {"status": join_status([STATUS_NO_SCORE, *caveats])}

    log10_equivalent = (score - intercept) / slope
    fitted_min = float(fit["log10_flops_min"])
    fitted_max = float(fit["log10_flops_max"])
    if not fitted_min - log10_factor <= log10_equivalent <= fitted_max + log10_factor:
        return record | {"status": join_status([STATUS_EXTRAPOLATED_BEYOND, *caveats])}
    equivalent_flops = _power_of_ten_or_nan(log10_equivalent)
    if not math.isfinite(equivalent_flops):
        # Only reachable with extrapolation_factor=inf: the number does not fit in a double.
        return record | {"status": join_status([STATUS_EXTRAPOLATED_BEYOND, *caveats])}
    if not fitted_min <= log10_equivalent <= fitted_max:
        caveats.insert(0, STATUS_EXTRAPOLATED_WITHIN)
    record.update(
        log10_train_equivalent_flops=log10_equivalent,
        train_equivalent_flops=equivalent_flops,
        train_equivalent_ratio=(
            equivalent_flops / train_flops
            if math.isfinite(train_flops) and train_flops > 0
            else nan
        ),
    )
    if math.isfinite(baseline_score):
        log10_baseline_equivalent = (baseline_score - intercept) / slope
        # Only an overflow guard: this column is diagnostic and carries no status of its own.
        if abs(log10_baseline_equivalent) < 300:
            record["baseline_train_equivalent_flops"] = 10.0**log10_baseline_equivalent

    slope_variance = float(fit["slope_stderr"]) ** 2
    intercept_variance = float(fit["intercept_stderr"]) ** 2
    slope_intercept_covariance = float(fit["cov_slope_intercept"])
    if not all(
        math.isfinite(value)
        for value in (slope_variance, intercept_variance, slope_intercept_covariance)
    ):
        caveats.insert(0, STATUS_TWO_POINTS)
        return record | {"status": join_status(caveats)}

    # Delta method: gradient of log10 C* = (score - intercept) / slope.
    d_slope = -log10_equivalent / slope
    d_intercept = -1.0 / slope
    d_score = 1.0 / slope
    fit_variance = (
        d_slope**2 * slope_variance
        + d_intercept**2 * intercept_variance
        + 2 * d_slope * d_intercept * slope_intercept_covariance
    )
    fit_variance = max(fit_variance, 0.0)  # rounding can push a perfect fit's variance below 0
    if math.isfinite(score_stderr):
        score_variance = d_score**2 * score_stderr**2
    else:
        score_variance = 0.0
        caveats.append(STATUS_NO_SCORE_STDERR)
    total_variance = fit_variance + score_variance
    log10_stderr = math.sqrt(total_variance)

    critical_value = float(stats.norm.ppf(two_sided_tail))
    if interval == "student-t" and fit_variance > 0:
        residual_dof = float(fit["residual_dof"])
        effective_dof = total_variance**2 / (fit_variance**2 / residual_dof)
        critical_value = float(stats.t.ppf(two_sided_tail, effective_dof))

    half_width = critical_value * log10_stderr
    low = _power_of_ten_or_nan(log10_equivalent - half_width)
    high = _power_of_ten_or_nan(log10_equivalent + half_width)
    if not (math.isfinite(low) and math.isfinite(high)):
        caveats.append(STATUS_BOUNDS_NOT_FINITE)
    record.update(
        log10_train_equivalent_flops_stderr=log10_stderr,
        train_equivalent_flops_low=low,
        train_equivalent_flops_high=high,
    )
    return record | {"status": join_status(caveats)}


def _power_of_ten_or_nan(exponent: float) -> float:
    # 10**308 is the largest finite double; beyond it a bound would be inf, which the tables
    # must never contain.
    if not math.isfinite(exponent) or exponent > 308:
        return float("nan")
    return 10.0**exponent


# --- 3. Crossover request counts -----------------------------------------------------------------


def crossover_requests(
    train_equivalent: pd.DataFrame,
    scores: pd.DataFrame,
    baseline: str = "standard",
    flops_col: str = "inference_flops_per_request",
    task: str = "average",
    generated_tokens_col: str = "generated_tokens_mean",
    model_col: str = "model",
    optimization_col: str = "optimization",
    task_col: str = "task",
    cost_unit: str = "flops",
    seconds_col: str = "seconds_per_request",
    training_throughput: float = DEFAULT_TRAINING_THROUGHPUT,
) -> pd.DataFrame:
    """Request count at which spending at inference stops paying off.

    Lifetime cost of the two ways to reach the optimized score with model *m*:

    * use *m* with optimization *o* for R requests: ``L_o(R) = T + R * f_o``;
    * train a baseline model of the same size with the train-equivalent compute ``C*`` (the
      paper's same-N assumption) and use it at the baseline's cost: ``L_b(R) = C* + R * f_b``.

    With ``cost_unit="flops"`` (the default), ``T`` is ``train_flops``, ``C*`` is
    ``train_equivalent_flops``, and ``f_o`` and ``f_b`` are ``flops_col`` of *m*'s (task, o) and
    (task, baseline) rows. With ``cost_unit="seconds"`` every cost is in device-seconds:
    ``T = train_flops / training_throughput`` and ``C* = train_equivalent_flops /
    training_throughput`` (``training_throughput`` in FLOP/s, the user's statement of what
    their training hardware sustains: peak × MFU), and ``f_o``, ``f_b`` are the measured
    ``seconds_col``. The fit behind ``C*`` is the same either way; only its price changes.

    With ``saved = C* - T`` and ``extra = f_o - f_b`` the lines meet at ``R* = saved / extra``:

    * ``saved > 0, extra > 0``: ``"ok"``; the optimization is cheaper for R < R*.
    * ``saved > 0, extra <= 0``: ``"optimization always cheaper"``; NaN (no crossover; ``inf``
      has no place in a table).
    * ``saved <= 0, extra >= 0``: ``"optimization never cheaper"``; NaN.
    * ``saved <= 0, extra < 0``: ``"optimization cheaper above crossover"``; R* is reported and
      the optimization wins for R > R* (or always, ``"optimization always cheaper"``, when
      ``saved == 0``).
    * ``C*`` NaN: the status repeats the train-equivalent ``status`` (and adds a missing cost
      per request, below); a missing ``f_o`` or ``f_b`` gives ``"no inference flops per
      request"`` or ``"no baseline inference flops for this model"`` (in seconds: ``"no
      seconds measured"``, ``"no baseline seconds measured for this model"``: imported cells,
      and the k rows of a swept optimization, have none); a missing ``train_flops`` gives
      ``"no train_flops for this model"``.

    Bounds come from ``train_equivalent_flops_low``/``_high`` (R* is monotone in C*, so the
    interval maps endpoint to endpoint). An endpoint at which the optimization would win at no
    request count (``"ok"`` case) or at every request count (``"cheaper above"`` case) is
    reported as 0 requests. Costs per request are treated as exact.

    Returns a copy of ``train_equivalent`` with columns added. In FLOPs,
    :data:`CROSSOVER_COLUMNS` (``crossover_generated_tokens`` multiplies by the optimization's
    ``generated_tokens_col``). In seconds, :data:`SECONDS_CROSSOVER_COLUMNS` (the roles of
    :func:`cost_columns`, and the ``training_throughput`` they assume), so a table can carry
    both units.
    """
    columns = cost_columns(cost_unit)
    if cost_unit == "flops":
        per_request_col = flops_col
        scale = 1.0
        added_columns = CROSSOVER_COLUMNS
        missing = (STATUS_NO_INFERENCE_FLOPS, STATUS_NO_BASELINE_INFERENCE_FLOPS)
    else:
        per_request_col = seconds_col
        scale = 1.0 / check_training_throughput(training_throughput)
        added_columns = SECONDS_CROSSOVER_COLUMNS
        missing = (STATUS_NO_SECONDS, STATUS_NO_BASELINE_SECONDS)

    task_rows = scores[scores[task_col] == task]
    rows_by_key = _unique_lookup(task_rows, [model_col, optimization_col], "scores")
    records = []
    for _, row in train_equivalent.iterrows():
        optimization_row = rows_by_key.get((row[model_col], row[optimization_col]))
        baseline_row = rows_by_key.get((row[model_col], baseline))
        per_request = _float_or_nan(optimization_row, per_request_col)
        baseline_per_request = _float_or_nan(baseline_row, per_request_col)
        train_cost = float(row["train_flops"]) * scale
        equivalent = {
            bound: float(row[f"train_equivalent_flops{bound}"]) * scale
            for bound in ("", "_low", "_high")
        }
        record = {
            columns["per_request"]: per_request,
            columns["baseline_per_request"]: baseline_per_request,
        }
        if cost_unit == "seconds":
            record.update(
                training_throughput=1.0 / scale,
                **{
                    columns["train"]: train_cost,
                    columns["equivalent"]: equivalent[""],
                    columns["equivalent_low"]: equivalent["_low"],
                    columns["equivalent_high"]: equivalent["_high"],
                },
            )
        crossover = _crossover_one(
            train_cost=train_cost,
            equivalent=equivalent[""],
            equivalent_low=equivalent["_low"],
            equivalent_high=equivalent["_high"],
            equivalent_status=str(row["status"]),
            per_request=per_request,
            baseline_per_request=baseline_per_request,
            missing_statuses=missing,
        )
        for role in ("crossover", "crossover_low", "crossover_high", "status"):
            record[columns[role]] = crossover[role]
        if cost_unit == "flops":
            generated_tokens_mean = _float_or_nan(optimization_row, generated_tokens_col)
            record["generated_tokens_mean"] = generated_tokens_mean
            for suffix in ("", "_low", "_high"):
                record[f"crossover_generated_tokens{suffix}"] = (
                    record[f"crossover_requests{suffix}"] * generated_tokens_mean
                )
        records.append(record)

    added = _with_float_columns(
        pd.DataFrame(records, columns=added_columns, index=train_equivalent.index),
        added_columns,
    )
    result = train_equivalent.drop(
        columns=[col for col in added_columns if col in train_equivalent.columns]
    )
    return pd.concat([result, added], axis=1)


def _float_or_nan(row: pd.Series | None, col: str) -> float:
    if row is None or col not in row.index or not _finite(row[col]):
        return float("nan")
    return float(row[col])


def _crossover_one(
    train_cost: float,
    equivalent: float,
    equivalent_low: float,
    equivalent_high: float,
    equivalent_status: str,
    per_request: float,
    baseline_per_request: float,
    missing_statuses: tuple[str, str] = (
        STATUS_NO_INFERENCE_FLOPS,
        STATUS_NO_BASELINE_INFERENCE_FLOPS,
    ),
) -> dict:
    """The crossover of one row, in whatever unit its costs share (all four in one unit)."""
    nan = float("nan")
    record = {"crossover": nan, "crossover_low": nan, "crossover_high": nan}
    no_per_request = [
        status
        for status, value in zip(missing_statuses, (per_request, baseline_per_request), strict=True)
        if not math.isfinite(value)
    ]
    if not math.isfinite(equivalent):
        return record | {"status": join_status([equivalent_status, *no_per_request])}
    if not (math.isfinite(train_cost) and train_cost > 0):
        return record | {"status": STATUS_NO_TRAIN_FLOPS}
    if no_per_request:
        return record | {"status": no_per_request[0]}

    extra_per_request = per_request - baseline_per_request

    def requests_at(equivalent_cost: float) -> float:
        # Clipped at 0: an interval endpoint on the other side of the training cost means "the
        # optimization may win at no (or at every) request count", i.e. a crossover at 0.
        if not math.isfinite(equivalent_cost):
            return nan
        return max((equivalent_cost - train_cost) / extra_per_request, 0.0)

    saved_train_cost = equivalent - train_cost
    if saved_train_cost > 0:
        if extra_per_request <= 0:
            return record | {"status": STATUS_ALWAYS_CHEAPER}
        return {
            "crossover": requests_at(equivalent),
            "crossover_low": requests_at(equivalent_low),
            "crossover_high": requests_at(equivalent_high),
            "status": STATUS_OK,
        }
    if extra_per_request >= 0:
        return record | {"status": STATUS_NEVER_CHEAPER}
    if saved_train_cost == 0:
        return record | {"status": STATUS_ALWAYS_CHEAPER}
    # Cheaper per request but dearer to train: R* falls as C* rises, so the endpoints swap.
    return {
        "crossover": requests_at(equivalent),
        "crossover_low": requests_at(equivalent_high),
        "crossover_high": requests_at(equivalent_low),
        "status": STATUS_CHEAPER_ABOVE_CROSSOVER,
    }


# --- 4. isoFLOP fit ------------------------------------------------------------------------------


def _isoflop_model(predictors: np.ndarray, alpha: float, beta: float, delta: float) -> np.ndarray:
    log10_flops, generated_tokens = predictors
    return alpha * log10_flops + beta * generated_tokens + delta


def _isoflop_model_without_tokens(predictors: np.ndarray, alpha: float, delta: float) -> np.ndarray:
    return alpha * predictors[0] + delta


def fit_isoflop(
    scores: pd.DataFrame,
    optimization_col: str = "optimization",
    task: str = "average",
    score_col: str = "score",
    flops_col: str = "train_flops",
    generated_tokens_col: str = "generated_tokens_mean",
    model_col: str = "model",
    task_col: str = "task",
    group_cols: Sequence[str] = (),
    pooled_label: str = POOLED_OPTIMIZATION,
) -> pd.DataFrame:
    """Fit ``score = alpha * log10(train_flops) + beta * generated_tokens + delta``.

    One fit per optimization and one pooled over all optimizations (``optimization_col ==
    pooled_label``, default ``"all"``), each within ``group_cols`` if given (e.g.
    ``("family",)``). Fitting uses ``scipy.optimize.curve_fit`` without weights; standard
    errors are ``sqrt(diag(pcov))`` with the residual variance estimated from the fit. ``alpha``
    is score per decade of training FLOPs, ``beta`` score per generated token, ``delta`` the
    score at 1 training FLOP and no generated tokens.

    Identifiability: within one optimization the generated tokens may be constant or move in
    lockstep with model size. Then ``beta`` is NaN, ``alpha``/``delta`` come from the fit without
    the tokens term, and the status is ``"generated tokens do not vary"`` or ``"generated tokens
    collinear with log10 train_flops"``. Fewer points than parameters gives ``"fewer points than
    parameters"`` (all NaN); exactly as many gives ``"as many points as parameters: no
    uncertainty"`` (estimates kept, standard errors NaN).

    Returns one row per group with ``group_cols``, ``optimization_col`` and
    :data:`ISOFLOP_COLUMNS`.
    """
    task_rows = scores[scores[task_col] == task]
    score_values = pd.to_numeric(task_rows[score_col], errors="coerce")
    flops_values = pd.to_numeric(task_rows[flops_col], errors="coerce")
    token_values = pd.to_numeric(task_rows[generated_tokens_col], errors="coerce")
    usable = task_rows[
        np.isfinite(score_values)
        & np.isfinite(flops_values)
        & (flops_values > 0)
        & np.isfinite(token_values)
    ]
    group_cols = list(group_cols)

    def subsets():
        if usable.empty:
            return
        groups = usable.groupby(group_cols, sort=True) if group_cols else [((), usable)]
        for group_key, group in groups:
            key = dict(zip(group_cols, group_key, strict=True))
            for optimization, rows in group.groupby(optimization_col, sort=True):
                yield key | {optimization_col: optimization}, rows
            yield key | {optimization_col: pooled_label}, group

    records = []
    for key, rows in subsets():
        record = dict(key)
        record.update(
            _fit_isoflop_one(
                log10_flops=np.log10(rows[flops_col].to_numpy(dtype=float)),
                generated_tokens=rows[generated_tokens_col].to_numpy(dtype=float),
                score=rows[score_col].to_numpy(dtype=float),
                n_models=rows[model_col].nunique(),
            )
        )
        records.append(record)
    return _with_float_columns(
        pd.DataFrame(records, columns=[*group_cols, optimization_col, *ISOFLOP_COLUMNS]),
        ISOFLOP_COLUMNS,
    )


def _fit_isoflop_one(
    log10_flops: np.ndarray, generated_tokens: np.ndarray, score: np.ndarray, n_models: int
) -> dict:
    nan = float("nan")
    n_points = len(score)
    record = {
        "n_points": n_points,
        "n_models": n_models,
        "alpha": nan,
        "beta": nan,
        "delta": nan,
        "alpha_stderr": nan,
        "beta_stderr": nan,
        "delta_stderr": nan,
        "residual_stderr": nan,
        "log10_flops_min": float(log10_flops.min()) if n_points else nan,
        "log10_flops_max": float(log10_flops.max()) if n_points else nan,
        "generated_tokens_min": float(generated_tokens.min()) if n_points else nan,
        "generated_tokens_max": float(generated_tokens.max()) if n_points else nan,
    }
    if n_points < 3:
        return record | {"status": STATUS_FEWER_POINTS_THAN_PARAMETERS}

    if len(np.unique(log10_flops)) < 2:
        # Without spread in training compute alpha is undefined, whatever the tokens do.
        return record | {"status": STATUS_FEW_DISTINCT_FLOPS}
    identifiability = _tokens_identifiability(log10_flops, generated_tokens)
    if identifiability == STATUS_OK:
        model, n_parameters = _isoflop_model, 3
        predictors = np.vstack([log10_flops, generated_tokens])
        design = np.column_stack([log10_flops, generated_tokens, np.ones(n_points)])
    else:
        model, n_parameters = _isoflop_model_without_tokens, 2
        predictors = np.vstack([log10_flops])
        design = np.column_stack([log10_flops, np.ones(n_points)])

    # The model is linear, so least squares gives the exact optimum; curve_fit starts there and
    # is kept because it returns the covariance the design asks for. "trf" rather than the
    # default "lm": started at an exact zero-residual optimum, "lm" reports an infinite
    # covariance.
    initial_guess = np.linalg.lstsq(design, score, rcond=None)[0]
    try:
        with warnings.catch_warnings():
            # curve_fit warns when pcov cannot be estimated (no residual dof); checked below.
            warnings.simplefilter("ignore", optimize.OptimizeWarning)
            parameters, covariance = optimize.curve_fit(
                model, predictors, score, p0=initial_guess, method="trf"
            )
    except (RuntimeError, ValueError, np.linalg.LinAlgError):
        return record | {"status": join_status([identifiability, STATUS_FIT_FAILED])}

    residual_dof = n_points - n_parameters
    names = ["alpha", "beta", "delta"] if n_parameters == 3 else ["alpha", "delta"]
    for name, value in zip(names, parameters, strict=True):
        record[name] = float(value)
    reasons = [identifiability]
    if residual_dof <= 0:
        reasons.append(STATUS_NO_RESIDUAL_DOF)
    elif not np.all(np.isfinite(covariance)):
        reasons.append(STATUS_COVARIANCE_UNDEFINED)
    else:
        for name, variance in zip(names, np.diag(covariance), strict=True):
            record[f"{name}_stderr"] = float(np.sqrt(variance)) if variance >= 0 else nan
        residuals = score - model(predictors, *parameters)
        record["residual_stderr"] = float(np.sqrt(np.sum(residuals**2) / residual_dof))
    return record | {"status": join_status(reasons)}


def _tokens_identifiability(log10_flops: np.ndarray, generated_tokens: np.ndarray) -> str:
    """Whether beta can be separated from alpha and delta in this subset."""
    token_spread = np.ptp(generated_tokens)
    token_scale = max(float(np.max(np.abs(generated_tokens))), 1.0)
    # Token means are averages of integers over many samples; a relative spread below 1e-9 is
    # floating-point noise, not variation a slope could be fitted to.
    if token_spread <= 1e-9 * token_scale:
        return STATUS_TOKENS_DO_NOT_VARY

    # Standardize columns so that the rank test is not fooled by tokens (~1e2) and log10 FLOPs
    # (~2e1) living on different scales.
    def standardized(values: np.ndarray) -> np.ndarray:
        spread = np.std(values)
        return (values - values.mean()) / spread if spread > 0 else values - values.mean()

    centred = np.column_stack([standardized(log10_flops), standardized(generated_tokens)])
    singular_values = np.linalg.svd(centred, compute_uv=False)
    if singular_values[-1] <= 1e-8 * max(singular_values[0], 1e-300):
        return STATUS_TOKENS_COLLINEAR
    return STATUS_OK


# --- Pareto frontier -----------------------------------------------------------------------------


def train_equivalent_table(
    scores: pd.DataFrame,
    family_fits: pd.DataFrame,
    baseline: str = "standard",
    extrapolation_factor: float = 10.0,
    confidence: float = 0.95,
    interval: str = DEFAULT_INTERVAL,
    task: str = "average",
    training_throughput: float = DEFAULT_TRAINING_THROUGHPUT,
) -> pd.DataFrame:
    """`results/tables/train_equivalent.csv`: train-equivalent FLOPs with their bounds, then
    the crossover request counts that follow from them (DESIGN.md's contract), in FLOPs
    (:data:`CROSSOVER_COLUMNS`) and in device-seconds at ``training_throughput`` FLOP/s
    (:data:`SECONDS_CROSSOVER_COLUMNS`)."""
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
