"""The evaluation grid: its cells, the cells an `imports:` entry covers, and the names they use.

A cell is one (model, task, optimization). Run cells are evaluated; imported cells are read from
existing results. Both reach the scores table, where a swept optimization is one row per k.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

# Where an import entry's token counts come from; an entry gives at most one.
TOKEN_SOURCES = ("samples", "token_counts", "generated_tokens_mean")


@dataclass(frozen=True, order=True)
class Cell:
    """One evaluation job: a model evaluated on a task under an optimization."""

    model: str
    task: str
    optimization: str


def lm_eval_task(config: dict, task: str) -> str:
    return config["tasks"][task].get("lm_eval_task", task)


def grid_optimizations(config: dict) -> list[str]:
    chosen = config.get("grid", {}).get("optimizations")
    return list(chosen) if chosen is not None else list(config["optimizations"])


def expand_grid(config: dict) -> list[Cell]:
    """Every (model, task, optimization) cell to evaluate, minus exclusions and imports."""
    excludes = config.get("grid", {}).get("exclude", [])
    imported = imported_cells(config)

    def excluded(cell: Cell) -> bool:
        return any(
            all(getattr(cell, key) == value for key, value in rule.items()) for rule in excludes
        )

    cells = [
        Cell(model, task, optimization)
        for model in config["models"]
        for task in config["tasks"]
        for optimization in grid_optimizations(config)
    ]
    return [cell for cell in cells if not excluded(cell) and cell not in imported]


def all_cells(config: dict) -> list[Cell]:
    """Run cells and imported cells together: everything that reaches the tables."""
    return sorted(set(expand_grid(config)) | imported_cells(config))


def table_optimizations(config: dict, optimization: str) -> list[str]:
    """The optimization's names in the scores table: `<name>@<k>` per k of its sweep, else its
    own name."""
    sweep = config["optimizations"][optimization].get("sweep")
    return [f"{optimization}@{k}" for k in sweep] if sweep else [optimization]


# --------------------------------------------------------------------------- imports


def imported_cells(config: dict) -> set[Cell]:
    """Cells that an `imports:` entry covers: they are read from existing results, never run."""
    cells = set()
    for entry in config.get("imports", []):
        tasks = [entry["task"]] if "task" in entry else list(config["tasks"])
        for task in tasks:
            cells.add(Cell(entry["model"], task, entry["optimization"]))
    return cells


def import_for(config: dict, cell: Cell) -> dict | None:
    """The `imports:` entry that covers `cell`, if any."""
    for entry in config.get("imports", []):
        if (entry["model"], entry["optimization"]) == (cell.model, cell.optimization) and entry.get(
            "task", cell.task
        ) == cell.task:
            return entry
    return None


def results_task(config: dict, entry: dict, task: str) -> str:
    """The name under which an imported results file holds `task`: its `results_task` rename,
    or else the task's lm-eval name."""
    renamed = entry.get("results_task")
    if isinstance(renamed, str):
        return renamed
    if isinstance(renamed, dict) and task in renamed:
        return renamed[task]
    return lm_eval_task(config, task)


def score_column(entry: dict, task: str, task_in_file: str, settings: dict) -> str:
    """The column of a `scores` import's table that holds `task`'s metric: the one named in
    `columns`, or lm-eval's results flattened, "<task in file>_<metric with ',' as '_'>"."""
    named = entry["scores"].get("columns", {})
    if task in named:
        return named[task]
    return f"{task_in_file}_{settings['metric'].replace(',', '_')}"


# --------------------------------------------------------------------------- wildcards


def wildcard_pattern(names: Iterable[str]) -> str:
    """A regex matching exactly the configured names, for Snakemake's wildcard_constraints."""
    return "|".join(re.escape(name) for name in sorted(names, key=len, reverse=True))


def bbh_task_pattern(config: dict) -> str:
    """The configured BBH tasks only, so that navigate.fewshot.jsonl is never a task's .jsonl;
    a config without BBH tasks gets a name no file has ("" would not be a valid pattern)."""
    bbh_tasks = {
        task["data"]["bbh"] for task in config["tasks"].values() if "bbh" in task.get("data", {})
    }
    return wildcard_pattern(bbh_tasks or {"no-bbh-task"})


def optimization_pattern(config: dict) -> str:
    """Configured names, and the scores table's <name>@<k> of swept ones (regime plots)."""
    rows = {row for name in config["optimizations"] for row in table_optimizations(config, name)}
    return wildcard_pattern(rows | set(config["optimizations"]))
