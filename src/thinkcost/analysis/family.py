"""Family scaling fits: each family's baseline score as a line in log10 training FLOPs.

Compute enters every fit as ``log10`` of FLOPs, so a slope is "score points per decade (factor
of ten) of training FLOPs", and every ``log10_*`` column is a base-10 logarithm.
"""

from __future__ import annotations

from dataclasses import asdict

import numpy as np
import pandas as pd

from thinkcost.analysis.frames import with_float_columns
from thinkcost.analysis.linear import fit_line
from thinkcost.tables import (
    AVERAGE,
    FAMILY_FIT_COLUMNS,
    STATUS_FEW_DISTINCT_FLOPS,
    STATUS_NO_BASELINE_SCORES,
    STATUS_OK,
    STATUS_SINGLE_MODEL_FAMILY,
    STATUS_SLOPE_NOT_POSITIVE,
    STATUS_TWO_POINTS,
)


def fit_family_scaling(
    scores: pd.DataFrame, baseline: str = "standard", task: str = AVERAGE
) -> pd.DataFrame:
    """Fit ``score = slope * log10(train_flops) + intercept`` per family, by OLS (statsmodels).

    Only rows of ``task`` under the ``baseline`` optimization with a finite score and positive
    finite ``train_flops`` enter a fit. Every family that appears in the task's rows (under any
    optimization) gets one output row, so a family without usable baseline rows is reported
    rather than silently dropped.

    Returns one row per family with columns ``family`` and :data:`FAMILY_FIT_COLUMNS`:

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
    task_rows = scores[scores["task"] == task]
    families = sorted(task_rows["family"].dropna().unique(), key=str)
    base = task_rows[task_rows["optimization"] == baseline]
    score_values = pd.to_numeric(base["score"], errors="coerce")
    flops_values = pd.to_numeric(base["train_flops"], errors="coerce")
    usable = base[np.isfinite(score_values) & np.isfinite(flops_values) & (flops_values > 0)]

    records = []
    for family in families:
        group = usable[usable["family"] == family]
        record = {"family": family, "baseline": baseline}
        record.update(
            _fit_one_family(
                log10_flops=np.log10(group["train_flops"].to_numpy(dtype=float)),
                score=group["score"].to_numpy(dtype=float),
                n_models=group["model"].nunique(),
            )
        )
        records.append(record)
    return with_float_columns(
        pd.DataFrame(records, columns=["family", *FAMILY_FIT_COLUMNS]), FAMILY_FIT_COLUMNS
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

    line = fit_line(log10_flops, score)
    record.update((name, value) for name, value in asdict(line).items() if name in record)
    if not line.rises:
        status = STATUS_SLOPE_NOT_POSITIVE
    elif line.residual_dof <= 0:
        status = STATUS_TWO_POINTS
    else:
        status = STATUS_OK
    return record | {"status": status}
