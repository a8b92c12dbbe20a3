"""isoFLOP fits: score as a plane in log10 training FLOPs and generated tokens, per optimization."""

from __future__ import annotations

import warnings
from collections.abc import Iterator, Sequence

import numpy as np
import pandas as pd
from scipy import optimize

from thinkcost.analysis.frames import with_float_columns
from thinkcost.tables import (
    AVERAGE,
    ISOFLOP_COLUMNS,
    POOLED_OPTIMIZATION,
    STATUS_COVARIANCE_UNDEFINED,
    STATUS_FEW_DISTINCT_FLOPS,
    STATUS_FEWER_POINTS_THAN_PARAMETERS,
    STATUS_FIT_FAILED,
    STATUS_NO_RESIDUAL_DOF,
    STATUS_OK,
    STATUS_TOKENS_COLLINEAR,
    STATUS_TOKENS_DO_NOT_VARY,
    join_status,
)


def _isoflop_model(predictors: np.ndarray, alpha: float, beta: float, delta: float) -> np.ndarray:
    log10_flops, generated_tokens = predictors
    return alpha * log10_flops + beta * generated_tokens + delta


def _isoflop_model_without_tokens(predictors: np.ndarray, alpha: float, delta: float) -> np.ndarray:
    return alpha * predictors[0] + delta


def fit_isoflop(
    scores: pd.DataFrame, task: str = AVERAGE, group_cols: Sequence[str] = ()
) -> pd.DataFrame:
    """Fit ``score = alpha * log10(train_flops) + beta * generated_tokens_mean + delta``.

    One fit per optimization and one pooled over all optimizations (``optimization ==
    "all"``, :data:`~thinkcost.tables.POOLED_OPTIMIZATION`), each within ``group_cols`` if given
    (e.g. ``("family",)``). Fitting uses ``scipy.optimize.curve_fit`` without weights; standard
    errors are ``sqrt(diag(pcov))`` with the residual variance estimated from the fit. ``alpha``
    is score per decade of training FLOPs, ``beta`` score per generated token, ``delta`` the
    score at 1 training FLOP and no generated tokens.

    Identifiability: within one optimization the generated tokens may be constant or move in
    lockstep with model size. Then ``beta`` is NaN, ``alpha``/``delta`` come from the fit without
    the tokens term, and the status is ``"generated tokens do not vary"`` or ``"generated tokens
    collinear with log10 train_flops"``. Fewer points than parameters gives ``"fewer points than
    parameters"`` (all NaN); exactly as many gives ``"as many points as parameters: no
    uncertainty"`` (estimates kept, standard errors NaN).

    Returns one row per group with ``group_cols``, ``optimization`` and :data:`ISOFLOP_COLUMNS`.
    """
    task_rows = scores[scores["task"] == task]
    score_values = pd.to_numeric(task_rows["score"], errors="coerce")
    flops_values = pd.to_numeric(task_rows["train_flops"], errors="coerce")
    token_values = pd.to_numeric(task_rows["generated_tokens_mean"], errors="coerce")
    usable = task_rows[
        np.isfinite(score_values)
        & np.isfinite(flops_values)
        & (flops_values > 0)
        & np.isfinite(token_values)
    ]
    group_cols = list(group_cols)

    records = []
    for key, rows in _subsets(usable, group_cols):
        record = dict(key)
        record.update(
            _fit_isoflop_one(
                log10_flops=np.log10(rows["train_flops"].to_numpy(dtype=float)),
                generated_tokens=rows["generated_tokens_mean"].to_numpy(dtype=float),
                score=rows["score"].to_numpy(dtype=float),
                n_models=rows["model"].nunique(),
            )
        )
        records.append(record)
    return with_float_columns(
        pd.DataFrame(records, columns=[*group_cols, "optimization", *ISOFLOP_COLUMNS]),
        ISOFLOP_COLUMNS,
    )


def _subsets(usable: pd.DataFrame, group_cols: list[str]) -> Iterator[tuple[dict, pd.DataFrame]]:
    """Each group's rows per optimization, then pooled, with the key that names them."""
    if usable.empty:
        return
    groups = usable.groupby(group_cols, sort=True) if group_cols else [((), usable)]
    for group_key, group in groups:
        key = dict(zip(group_cols, group_key, strict=True))
        for optimization, rows in group.groupby("optimization", sort=True):
            yield key | {"optimization": optimization}, rows
        yield key | {"optimization": POOLED_OPTIMIZATION}, group


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
