"""The observational-scaling figures: the PCA's loadings, PC1 against training compute per
family, and each optimization's gain against PC1 (see `thinkcost.analysis.pca`)."""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from thinkcost.analysis.pca import gain_fit
from thinkcost.tables import STATUS_OK

GAIN_BAND_POINTS = 100


def _components(table: pd.DataFrame) -> list[str]:
    return [column for column in table.columns if column.startswith("pc_")]


def plot_pca_loadings(
    loadings: pd.DataFrame, explained_variance: pd.DataFrame, optimization: str
) -> Figure:
    """Heatmap of the loadings (task × component), each cell printed, on a diverging scale
    centred at zero; each component's column is labelled with its explained variance."""
    components = _components(loadings)
    values = loadings[components].to_numpy(dtype=float)
    ratio = explained_variance.set_index("component")["explained_variance_ratio"]
    fig = Figure(figsize=(1.4 * len(components) + 3.0, 0.45 * len(loadings) + 1.6))
    fig.set_layout_engine("constrained")
    ax = fig.subplots()
    bound = float(np.nanmax(np.abs(values))) or 1.0
    image = ax.imshow(values, cmap="RdBu_r", vmin=-bound, vmax=bound, aspect="auto")
    for (i, j), value in np.ndenumerate(values):
        ax.text(
            j,
            i,
            f"{value:.3f}",
            ha="center",
            va="center",
            fontsize="small",
            color="white" if abs(value) > 0.6 * bound else "black",
        )
    ax.set_xticks(range(len(components)))
    ax.set_xticklabels([f"PC{c.split('_')[1]}\n({ratio[c]:.0%} of variance)" for c in components])
    ax.set_yticks(range(len(loadings)))
    ax.set_yticklabels(loadings["task"])
    ax.set_title(f"PCA loadings of {optimization} scores", fontsize="medium")
    fig.colorbar(image, ax=ax, label="loading (component × √explained variance, score units)")
    return fig


def plot_pca_compute(components: pd.DataFrame, family_fits: pd.DataFrame) -> Figure:
    """PC1 against log10 training FLOPs, one colour per family, with each family's fitted line
    (PC1 = w·log10 C + b) over its models' range; the reference family's line is solid and
    thicker, the others dashed."""
    fig = Figure(figsize=(6.4, 4.4), layout="constrained")
    ax = fig.subplots()
    fits = family_fits.set_index("family")
    for index, (family, rows) in enumerate(components.groupby("family", sort=True)):
        color = f"C{index % 10}"
        ax.scatter(
            rows["log10_train_flops"],
            rows["pc_1"],
            color=color,
            label=str(family),
            gid=f"family:{family}",
            zorder=3,
        )
        fit = fits.loc[family] if family in fits.index else None
        if fit is None or fit["status"] != STATUS_OK:
            continue
        x = np.linspace(rows["log10_train_flops"].min(), rows["log10_train_flops"].max(), 2)
        reference = bool(fit.get("reference", False))
        ax.plot(
            x,
            fit["slope"] * x + fit["intercept"],
            color=color,
            linestyle="-" if reference else "--",
            linewidth=2.2 if reference else 1.2,
            gid=f"fit:{family}",
        )
    reference = family_fits.loc[family_fits["reference"].astype(bool), "family"]
    if len(reference):
        ax.set_title(f"solid line: reference family {reference.iloc[0]}", fontsize="medium")
    ax.set_xlabel("log10 training FLOPs (6·N·D, FLOPs)")
    ax.set_ylabel("PC1 (capability, score units)")
    ax.legend(title="family", fontsize="small")
    return fig


def plot_pca_gain(gains: pd.DataFrame, baseline: str, confidence: float = 0.95) -> Figure:
    """One panel per optimization: its gain in average score over the baseline against PC1,
    each model with its standard error, the OLS line with its confidence band, and the PC1
    from which the fitted gain is positive (where the fit says so)."""
    optimizations = list(dict.fromkeys(gains["optimization"]))
    n_panels = max(len(optimizations), 1)
    fig = Figure(figsize=(4.2 * n_panels, 3.8), layout="constrained")
    axes = fig.subplots(1, n_panels, sharey=True, squeeze=False)[0]
    for ax, optimization in zip(axes, optimizations, strict=False):
        rows = gains[gains["optimization"] == optimization]
        errors = rows["gain_stderr"].where(np.isfinite(rows["gain_stderr"]))
        ax.errorbar(
            rows["pc_1"],
            rows["gain"],
            yerr=errors,
            fmt="o",
            color="tab:orange",
            ecolor="grey",
            capsize=2,
            gid="models",
        )
        fit = gain_fit(rows["gain"], rows["pc_1"], confidence)
        if fit["status"] == STATUS_OK:
            band = fit["band"](
                np.linspace(rows["pc_1"].min(), rows["pc_1"].max(), GAIN_BAND_POINTS)
            )
            ax.plot(band["pc1"], band["gain"], color="tab:blue", gid="fit")
            ax.fill_between(
                band["pc1"],
                band["low"],
                band["high"],
                color="tab:blue",
                alpha=0.2,
                gid="band",
                label=f"{confidence:.0%} confidence band",
            )
            if np.isfinite(fit["pays_from_pc1"]):
                outside = not rows["pc_1"].min() <= fit["pays_from_pc1"] <= rows["pc_1"].max()
                ax.axvline(
                    fit["pays_from_pc1"],
                    color="tab:green",
                    linestyle=":",
                    gid="pays_from",
                    label=f"gain > 0 from PC1 = {fit['pays_from_pc1']:.3g}"
                    + (" (extrapolated)" if outside else ""),
                )
            ax.legend(fontsize="x-small")
        else:
            ax.text(
                0.5,
                0.95,
                f"no fit: {fit['status']}",
                transform=ax.transAxes,
                ha="center",
                va="top",
                fontsize="small",
            )
        ax.axhline(0.0, color="grey", linestyle="--", linewidth=1, gid="zero")
        ax.set_title(f"{optimization} − {baseline}", fontsize="medium")
        ax.set_xlabel("PC1 (capability, score units)")
    axes[0].set_ylabel(f"gain over {baseline} (average score)")
    if not optimizations:
        axes[0].set_title(
            f"no model has both {baseline} and another optimization", fontsize="medium"
        )
    return fig
