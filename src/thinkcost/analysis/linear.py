"""The one linear-fit core: a line fitted by OLS with its covariance, and its delta-method inverse.

The family scaling fits (score on log10 training FLOPs), the PCA's family fits (PC1 on log10
training FLOPs) and the PCA's gain fits (gain on PC1) are all :func:`fit_line`; the
train-equivalent FLOPs and the PCA's f-equivalent compute are both :func:`invert_line`, reading
the line backwards from a y to the x at which it is reached.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import numpy as np
import statsmodels.api as sm
from scipy import stats

# The quantile of every interval on an inverted line unless told otherwise: Student-t keeps its
# coverage in families of few models (config/schema.yaml's analysis.interval has the same).
DEFAULT_INTERVAL = "student-t"
INTERVALS = ("normal", "student-t")


@dataclass(frozen=True)
class LineFit:
    """``y = slope * x + intercept``: the estimates, their standard errors and covariance (NaN
    without residual degrees of freedom), and the quality of the fit."""

    slope: float
    intercept: float
    slope_stderr: float = math.nan
    intercept_stderr: float = math.nan
    cov_slope_intercept: float = math.nan
    residual_dof: int = 0
    r_squared: float = math.nan
    residual_stderr: float = math.nan
    # Identical y give a slope of rounding noise (~1e-17) that may come out positive.
    y_constant: bool = False

    @property
    def rises(self) -> bool:
        """Whether y grows with x, so that the line can be read backwards."""
        return self.slope > 0 and not self.y_constant

    @property
    def has_covariance(self) -> bool:
        return all(
            math.isfinite(value)
            for value in (self.slope_stderr, self.intercept_stderr, self.cov_slope_intercept)
        )

    def x_at(self, y: float) -> float:
        """The x at which the line reaches ``y``."""
        return (y - self.intercept) / self.slope

    def band(self, x, confidence: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The fitted mean at each ``x`` and its confidence band (Student-t on the residual
        degrees of freedom)."""
        x = np.atleast_1d(np.asarray(x, dtype=float))
        mean = self.intercept + self.slope * x
        variance = (
            self.intercept_stderr**2
            + 2 * x * self.cov_slope_intercept
            + x**2 * self.slope_stderr**2
        )
        half_width = stats.t.ppf(0.5 + confidence / 2, self.residual_dof) * np.sqrt(variance)
        return mean, mean - half_width, mean + half_width


def fit_line(x: np.ndarray, y: np.ndarray) -> LineFit:
    """OLS of ``y`` on ``x`` (statsmodels). Needs two distinct x; with exactly two points the
    line is exact and its standard errors, covariance and residual spread are NaN."""
    x = np.asarray(x, dtype=float)
    y = np.asarray(y, dtype=float)
    design = sm.add_constant(x, has_constant="add")
    # statsmodels warns (and divides by zero) when a two-point fit has no residual degrees of
    # freedom; that case gives NaN below, so the warnings carry no information.
    with warnings.catch_warnings(), np.errstate(divide="ignore", invalid="ignore"):
        warnings.simplefilter("ignore")
        result = sm.OLS(y, design).fit()
        intercept, slope = (float(value) for value in result.params)
        r_squared = float(result.rsquared)
        spread = {}
        if result.df_resid > 0:
            covariance = np.asarray(result.cov_params(), dtype=float)
            spread = {
                "intercept_stderr": float(np.sqrt(covariance[0, 0])),
                "slope_stderr": float(np.sqrt(covariance[1, 1])),
                "cov_slope_intercept": float(covariance[0, 1]),
                "residual_stderr": float(np.sqrt(result.scale)),
            }
    return LineFit(
        slope=slope,
        intercept=intercept,
        residual_dof=max(len(y) - 2, 0),
        r_squared=r_squared if math.isfinite(r_squared) else math.nan,
        y_constant=bool(np.ptp(y) == 0),
        **spread,
    )


@dataclass(frozen=True)
class Inversion:
    """Where a line reaches a y: ``x``, its delta-method standard error and the symmetric
    interval ``[low, high]`` (NaN when the fit has no covariance)."""

    x: float
    x_stderr: float
    low: float
    high: float


def check_interval(confidence: float, interval: str) -> None:
    """Refuse a confidence outside (0, 1) or an interval other than :data:`INTERVALS`."""
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must lie in (0, 1), got {confidence!r}")
    if interval not in INTERVALS:
        raise ValueError(f"interval must be 'normal' or 'student-t', got {interval!r}")


def invert_line(
    y: float,
    line: LineFit,
    confidence: float,
    interval: str = DEFAULT_INTERVAL,
    y_stderr: float = math.nan,
) -> Inversion:
    """Read ``line`` backwards at ``y``: ``x = (y - intercept) / slope``, with delta-method bounds.

    The gradient of ``x`` with respect to ``(slope, intercept, y)`` is ``(-x / slope, -1 / slope,
    1 / slope)``. Its variance combines the fit's covariance of (slope, intercept) with
    ``y_stderr**2`` (y is not part of the fit, so the two are independent; a NaN ``y_stderr``
    counts as an exact y). The interval is symmetric on x at ``confidence``: ``"normal"`` uses
    the normal quantile, ``"student-t"`` a Student-t quantile with Welch-Satterthwaite degrees
    of freedom (fit variance on ``residual_dof`` degrees of freedom, y's variance treated as
    known), which keeps coverage near nominal in fits of three to five points.
    """
    x = line.x_at(y)
    if not line.has_covariance:
        return Inversion(x=x, x_stderr=math.nan, low=math.nan, high=math.nan)
    d_slope = -x / line.slope
    d_intercept = -1.0 / line.slope
    d_y = 1.0 / line.slope
    fit_variance = (
        d_slope**2 * line.slope_stderr**2
        + d_intercept**2 * line.intercept_stderr**2
        + 2 * d_slope * d_intercept * line.cov_slope_intercept
    )
    fit_variance = max(fit_variance, 0.0)  # rounding can push a perfect fit's variance below 0
    y_variance = d_y**2 * y_stderr**2 if math.isfinite(y_stderr) else 0.0
    total_variance = fit_variance + y_variance
    x_stderr = math.sqrt(total_variance)

    two_sided_tail = 0.5 + confidence / 2
    critical_value = float(stats.norm.ppf(two_sided_tail))
    if interval == "student-t" and fit_variance > 0:
        effective_dof = total_variance**2 / (fit_variance**2 / float(line.residual_dof))
        critical_value = float(stats.t.ppf(two_sided_tail, effective_dof))
    half_width = critical_value * x_stderr
    return Inversion(x=x, x_stderr=x_stderr, low=x - half_width, high=x + half_width)
