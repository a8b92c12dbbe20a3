"""Observational scaling: capability components from benchmark scores, across families.

The paper's first experiment, after Ruan et al.'s *Observational Scaling Laws*: a principal
component analysis of the model × benchmark matrix of scores places models of every family on
one capability scale. The definition the paper used, which `tests/test_pca.py` reproduces on its
own data: scikit-learn's PCA of the raw scores (centred, not standardised), three components,
loadings = components × √(explained variance).

On that scale:
- `family_fit`: per family with two or more models, PC1 = w·log10 C + b by OLS, with standard
  errors (ObsScaling's family fit; the family scaling fits' line, `linear.fit_line`);
- `equivalent_compute`: the training compute a model of a reference family would need for a
  given PC1 ("f-equivalent" compute), with delta-method bounds (`linear.invert_line`, as for
  train-equivalent FLOPs);
- `gain_fit`: an optimization's gain over the baseline regressed on PC1 across all models, with
  a confidence band: where chain of thought or voting starts to pay on the shared axis.

Where a number cannot be computed (one model, constant compute, a flat fit) it is NaN with a
status saying why, never an exception.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd

from thinkcost.analysis.linear import LineFit, fit_line, invert_line
from thinkcost.tables import (
    AVERAGE,
    STATUS_CONSTANT_COMPUTE,
    STATUS_FLAT,
    STATUS_NO_PC1,
    STATUS_NO_REFERENCE_FIT,
    STATUS_OK,
    STATUS_REFERENCE_NOT_IN_PCA,
    STATUS_REFERENCE_UNUSABLE,
    STATUS_TOO_FEW,
)

N_COMPONENTS = 3


@dataclass
class CapabilityComponents:
    """A PCA of a model × benchmark matrix: each model's component scores, each benchmark's
    loadings, the explained variance ratio, and the models left out for a missing score."""

    scores: pd.DataFrame  # models × pc_1 …
    loadings: pd.DataFrame  # benchmarks × pc_1 …
    explained_variance_ratio: pd.Series  # pc_1 …
    dropped: list

    @property
    def pc1(self) -> pd.Series:
        return self.scores["pc_1"]


def capability_components(
    matrix: pd.DataFrame, n_components: int = N_COMPONENTS
) -> CapabilityComponents:
    """PCA of `matrix` (rows: models, columns: benchmark scores), rows with a missing score
    left out and listed. Each component's sign is fixed so that its loadings sum to a positive
    number: a higher PC1 is a more capable model."""
    from sklearn.decomposition import PCA

    numeric = matrix.apply(pd.to_numeric, errors="coerce")
    complete = numeric.dropna()
    dropped = [index for index in numeric.index if index not in complete.index]
    n_components = min(n_components, len(complete.columns), max(len(complete) - 1, 0))
    if n_components < 1:
        raise ValueError(
            f"a PCA needs at least two models with every score; {len(complete)} of "
            f"{len(numeric)} have them"
        )
    pca = PCA(n_components=n_components).fit(complete.to_numpy(dtype=float))
    names = [f"pc_{i + 1}" for i in range(n_components)]
    signs = np.where(pca.components_.sum(axis=1) < 0, -1.0, 1.0)
    components = pca.components_ * signs[:, None]
    loadings = components.T * np.sqrt(pca.explained_variance_)
    scores = (complete.to_numpy(dtype=float) - pca.mean_) @ components.T
    return CapabilityComponents(
        scores=pd.DataFrame(scores, index=complete.index, columns=names),
        loadings=pd.DataFrame(loadings, index=complete.columns, columns=names),
        explained_variance_ratio=pd.Series(pca.explained_variance_ratio_, index=names),
        dropped=dropped,
    )


def family_fit(pc1: pd.Series, log10_compute: pd.Series) -> dict:
    """PC1 = w·log10 C + b by OLS over one family's models (:func:`fit_line`), with standard
    errors and their covariance; NaN and a status where it cannot be fitted."""
    data = pd.DataFrame({"pc1": pc1, "x": log10_compute}).dropna()
    record = {
        "n_models": len(data),
        "slope": math.nan,
        "intercept": math.nan,
        "slope_stderr": math.nan,
        "intercept_stderr": math.nan,
        # The covariance of slope and intercept; pca_family_fits.csv's name for it.
        "covariance": math.nan,
        "residual_dof": max(len(data) - 2, 0),
        "status": STATUS_OK,
    }
    if len(data) < 2:
        return {**record, "status": STATUS_TOO_FEW}
    if data["x"].nunique() < 2:
        return {**record, "status": STATUS_CONSTANT_COMPUTE}
    line = fit_line(data["x"].to_numpy(), data["pc1"].to_numpy())
    record.update((name, value) for name, value in asdict(line).items() if name in record)
    record["covariance"] = line.cov_slope_intercept
    if not line.rises:
        record["status"] = STATUS_FLAT
    return record


def equivalent_compute(pc1: float, fit: dict, confidence: float = 0.95) -> dict:
    """log10 C at which the reference family's fit reaches `pc1` (f-equivalent compute), with
    delta-method bounds from the fit's covariance (:func:`invert_line` at its default interval,
    Student-t on the residual degrees of freedom; none when the fit has no standard errors)."""
    if fit["status"] != STATUS_OK or not np.isfinite(pc1):
        status = fit["status"] if fit["status"] != STATUS_OK else STATUS_NO_PC1
        return {"log10_compute": math.nan, "low": math.nan, "high": math.nan, "status": status}
    line = LineFit(
        slope=fit["slope"],
        intercept=fit["intercept"],
        slope_stderr=fit["slope_stderr"],
        intercept_stderr=fit["intercept_stderr"],
        cov_slope_intercept=fit["covariance"],
        residual_dof=fit["residual_dof"],
    )
    inversion = invert_line(pc1, line, confidence)
    return {
        "log10_compute": inversion.x,
        "low": inversion.low,
        "high": inversion.high,
        "status": STATUS_OK,
    }


def gain_fit(gain: pd.Series, pc1: pd.Series, confidence: float = 0.95) -> dict:
    """An optimization's gain over the baseline regressed on PC1 across models (OLS), with a
    function giving the fitted gain and its confidence band at any PC1, and the PC1 at which
    the fitted gain crosses zero (where the optimization starts to pay, if the slope is
    positive)."""
    data = pd.DataFrame({"gain": gain, "pc1": pc1}).dropna()
    if len(data) < 3 or data["pc1"].nunique() < 2:
        return {
            "n_models": len(data),
            "slope": math.nan,
            "intercept": math.nan,
            "slope_stderr": math.nan,
            "pays_from_pc1": math.nan,
            "band": None,
            "status": STATUS_TOO_FEW if len(data) < 3 else STATUS_CONSTANT_COMPUTE,
        }
    line = fit_line(data["pc1"].to_numpy(), data["gain"].to_numpy())

    def band(x) -> pd.DataFrame:
        x = np.atleast_1d(np.asarray(x, dtype=float))
        mean, low, high = line.band(x, confidence)
        return pd.DataFrame({"pc1": x, "gain": mean, "low": low, "high": high})

    return {
        "n_models": len(data),
        "slope": line.slope,
        "intercept": line.intercept,
        "slope_stderr": line.slope_stderr,
        "pays_from_pc1": -line.intercept / line.slope if line.slope > 0 else math.nan,
        "band": band,
        "status": STATUS_OK,
    }


# --------------------------------------------------------------------------- the workflow's stage


def score_matrix(scores: pd.DataFrame, optimization: str, tasks: list[str]) -> pd.DataFrame:
    """The model × task matrix of `optimization`'s scores (scores.csv rows), one column per task
    in `tasks`' order; a model that lacks a task has NaN there (and the PCA leaves it out)."""
    rows = scores[(scores["optimization"] == optimization) & scores["task"].isin(tasks)]
    matrix = rows.pivot_table(index="model", columns="task", values="score", aggfunc="first")
    return matrix.reindex(columns=tasks).sort_index()


def model_compute(scores: pd.DataFrame) -> pd.DataFrame:
    """Each model's family and training compute C = 6·N·D, as the scores table has them."""
    columns = ["model", "family", "train_flops"]
    return scores[columns].drop_duplicates("model").set_index("model").sort_index()


def observational_scaling(
    scores: pd.DataFrame,
    optimization: str,
    tasks: list[str],
    reference_family: str | None = None,
    n_components: int = N_COMPONENTS,
    confidence: float = 0.95,
) -> dict[str, pd.DataFrame]:
    """The PCA stage on a scores table: the components of `optimization`'s scores over `tasks`,
    each family's fit of PC1 on log10 training FLOPs, and every model's f-equivalent compute in
    `reference_family` (default: the family with the most models whose fit succeeded).

    Returns the tables the workflow writes: `components` (one row per model), `loadings`,
    `explained_variance`, `dropped` and `family_fits`.
    """
    matrix = score_matrix(scores, optimization, tasks)
    missing_tasks = [task for task in tasks if task not in set(scores["task"])]
    if missing_tasks:
        raise ValueError(f"the scores table has no task {', '.join(map(repr, missing_tasks))}")
    pca = capability_components(matrix, n_components)
    table = model_compute(scores).loc[pca.scores.index].copy()
    table["log10_train_flops"] = np.log10(table["train_flops"].astype(float))
    table = table.join(pca.scores)

    family_fits = pd.DataFrame(
        [
            {"family": family, **family_fit(members["pc_1"], members["log10_train_flops"])}
            for family, members in table.groupby("family", sort=True)
        ]
    )
    if reference_family is None:
        reference_family = _default_reference(family_fits)
    family_fits["reference"] = family_fits["family"] == reference_family

    equivalent = _equivalent_compute_in(reference_family, family_fits, table["pc_1"], confidence)
    table["reference_family"] = reference_family
    table["equivalent_log10_flops"] = equivalent["log10_compute"]
    table["equivalent_log10_flops_low"] = equivalent["low"]
    table["equivalent_log10_flops_high"] = equivalent["high"]
    table["equivalent_status"] = equivalent["status"]
    return {
        "components": table.reset_index(),
        "loadings": pca.loadings.rename_axis("task").reset_index(),
        "explained_variance": pca.explained_variance_ratio.rename("explained_variance_ratio")
        .rename_axis("component")
        .reset_index(),
        "dropped": _dropped(matrix, pca.dropped, tasks),
        "family_fits": family_fits,
    }


def _default_reference(family_fits: pd.DataFrame) -> str | None:
    """The family with the most models whose fit succeeded (ties: the first by name)."""
    ok = family_fits[family_fits["status"] == STATUS_OK]
    if ok.empty:
        return None
    return ok.sort_values(["n_models", "family"], ascending=[False, True])["family"].iloc[0]


def _equivalent_compute_in(
    reference_family: str | None, family_fits: pd.DataFrame, pc1: pd.Series, confidence: float
) -> pd.DataFrame:
    """Each PC1's f-equivalent compute in `reference_family`, or the status saying why not."""
    if reference_family not in set(family_fits["family"]):
        if reference_family is None:
            status = STATUS_NO_REFERENCE_FIT
        else:
            status = STATUS_REFERENCE_NOT_IN_PCA.format(family=reference_family)
        nan = {"log10_compute": math.nan, "low": math.nan, "high": math.nan, "status": status}
        return pd.DataFrame([nan] * len(pc1), index=pc1.index)
    reference = family_fits.set_index("family").loc[reference_family].to_dict()
    equivalents = []
    for value in pc1:
        result = equivalent_compute(value, reference, confidence)
        if result["status"] != STATUS_OK:
            result["status"] = STATUS_REFERENCE_UNUSABLE.format(
                family=reference_family, status=result["status"]
            )
        equivalents.append(result)
    return pd.DataFrame(equivalents, index=pc1.index)


def _dropped(matrix: pd.DataFrame, dropped: list, tasks: list[str]) -> pd.DataFrame:
    """The models the PCA left out, each with the tasks it lacks."""
    missing = matrix.loc[dropped]
    return pd.DataFrame(
        {
            "model": dropped,
            "missing_tasks": [
                " ".join(task for task in tasks if pd.isna(missing.loc[model, task]))
                for model in dropped
            ],
        }
    )


def optimization_gains(
    scores: pd.DataFrame, baseline: str, components: pd.DataFrame
) -> pd.DataFrame:
    """Each optimization's gain in average score over `baseline`, per model with both, beside
    the model's PC1; the gain's standard error treats the two averages as independent."""
    average = scores[scores["task"] == AVERAGE].set_index(["model", "optimization"])
    pc1 = components.set_index("model")["pc_1"]
    rows = []
    for (model, optimization), row in average.iterrows():
        if optimization == baseline or model not in pc1.index:
            continue
        if (model, baseline) not in average.index:
            continue
        base = average.loc[(model, baseline)]
        rows.append(
            {
                "model": model,
                "family": row["family"],
                "optimization": optimization,
                "gain": float(row["score"]) - float(base["score"]),
                "gain_stderr": float(np.hypot(row["stderr"], base["stderr"])),
                "pc_1": float(pc1.loc[model]),
            }
        )
    columns = ["model", "family", "optimization", "gain", "gain_stderr", "pc_1"]
    return pd.DataFrame(rows, columns=columns).sort_values(["optimization", "pc_1"])


def gain_fits(gains: pd.DataFrame, confidence: float = 0.95) -> pd.DataFrame:
    """`gain_fit` per optimization: slope, intercept, the slope's standard error and the PC1
    from which the fitted gain is positive, with a status."""
    rows = []
    for optimization, group in gains.groupby("optimization", sort=True):
        fit = gain_fit(group["gain"], group["pc_1"], confidence)
        rows.append({"optimization": optimization, **{k: v for k, v in fit.items() if k != "band"}})
    columns = [
        "optimization",
        "n_models",
        "slope",
        "intercept",
        "slope_stderr",
        "pays_from_pc1",
        "status",
    ]
    return pd.DataFrame(rows, columns=columns)
