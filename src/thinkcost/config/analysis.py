"""The `analysis:` section resolved for the stages after the tables: regime plots and the PCA."""

from __future__ import annotations

from thinkcost.config.grid import TOKEN_SOURCES, Cell, import_for, table_optimizations


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


def regime_pairs(config: dict, cells: list[Cell]) -> list[tuple[str, str]]:
    """(model, optimization) pairs to draw regime plots for: every optimization other than the
    baseline, on every chosen model that has it and the baseline for every task among `cells`
    (`grid.all_cells`), and a cost to put against the training compute (not only imported
    scores without token counts). A swept optimization is one scores row, and one plot, per k."""
    cells = set(cells)
    baseline = config["analysis"]["baseline"]

    def complete(model: str, optimization: str) -> bool:
        return all(Cell(model, task, optimization) in cells for task in config["tasks"])

    def costed(model: str, optimization: str) -> bool:
        entries = [import_for(config, Cell(model, task, optimization)) for task in config["tasks"]]
        return any(entry is None or any(key in entry for key in TOKEN_SOURCES) for entry in entries)

    return [
        (model, row_name)
        for model in config["analysis"]["regime_models"] or list(config["models"])
        for optimization in config["optimizations"]
        if optimization != baseline
        and complete(model, optimization)
        and complete(model, baseline)
        and costed(model, optimization)
        for row_name in table_optimizations(config, optimization)
    ]


def regime_groups(pairs: list[tuple[str, str]]) -> dict[tuple[str, ...], list[str]]:
    """The models of `pairs` grouped by the optimizations they have regime plots for (in the
    pairs' order): one plotting rule per group, since a rule's outputs cannot vary with its
    wildcards, and one job per model."""
    groups: dict[tuple[str, ...], list[str]] = {}
    for model in dict.fromkeys(model for model, _ in pairs):
        optimizations = tuple(o for m, o in pairs if m == model)
        groups.setdefault(optimizations, []).append(model)
    return groups
