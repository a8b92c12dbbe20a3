"""The `analysis:` section resolved for the stages after the tables: what the PCA decomposes."""

from __future__ import annotations

from thinkcost.config.grid import Cell


def pca_settings(config: dict) -> dict:
    """The PCA stage's settings, resolved: the optimization whose scores are decomposed (the
    baseline unless named) and the tasks (all unless listed)."""
    pca = config["analysis"]["pca"]
    return {
        "optimization": pca["optimization"] or config["analysis"]["baseline"],
        "tasks": pca["tasks"] or list(config["tasks"]),
        "reference_family": pca["reference_family"],
        "n_components": pca["n_components"],
    }


def pca_models(config: dict, cells: list[Cell]) -> list[str]:
    """The models that have, among `cells` (`grid.all_cells`), the decomposed optimization on
    every task the PCA reads."""
    settings = pca_settings(config)
    cells = set(cells)
    return [
        model
        for model in config["models"]
        if all(Cell(model, task, settings["optimization"]) in cells for task in settings["tasks"])
    ]
