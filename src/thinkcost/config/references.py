"""Checks that every optimization, model, task and family the config names is one it defines."""

from __future__ import annotations

from thinkcost.config.errors import ConfigError, check_defined
from thinkcost.config.imports import check_import_entries


def check_references(config: dict) -> None:
    """Every optimization, model and task named anywhere must be defined: the grid's, the
    imports' (with the rest of each import entry), then the analysis'."""
    _check_grid(config)
    check_import_entries(config)
    _check_analysis(config)


def _check_grid(config: dict) -> None:
    optimizations = config["optimizations"]
    check_defined(
        "optimization", config["analysis"]["baseline"], optimizations, "analysis.baseline"
    )
    for i, name in enumerate(config["grid"].get("optimizations") or []):
        check_defined("optimization", name, optimizations, f"grid.optimizations[{i}]")
    for i, rule in enumerate(config["grid"]["exclude"]):
        for key, section in (
            ("model", "models"),
            ("task", "tasks"),
            ("optimization", "optimizations"),
        ):
            if key in rule:
                check_defined(key, rule[key], config[section], f"grid.exclude[{i}].{key}")


def _check_analysis(config: dict) -> None:
    optimizations = config["optimizations"]
    pca = config["analysis"]["pca"]
    if pca["optimization"] is not None:
        check_defined(
            "optimization", pca["optimization"], optimizations, "analysis.pca.optimization"
        )
        if optimizations[pca["optimization"]].get("sweep"):
            raise ConfigError(
                f"analysis.pca.optimization: {pca['optimization']!r} is swept over k; decompose "
                "an optimization with one score per task"
            )
    families = sorted({model["family"] for model in config["models"].values()})
    if pca["reference_family"] is not None:
        check_defined("family", pca["reference_family"], families, "analysis.pca.reference_family")
    for i, task in enumerate(pca["tasks"] or []):
        check_defined("task", task, config["tasks"], f"analysis.pca.tasks[{i}]")
    for name in config["analysis"].get("regime_models") or []:
        check_defined("model", name, config["models"], "analysis.regime_models")
