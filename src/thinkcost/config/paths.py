"""Where the workflow's files are: staged models and data, a cell's outputs, the tables' inputs.

Snakemake's rules and input functions (rules/common.smk) take their paths from here.
"""

from __future__ import annotations

from thinkcost.config.grid import (
    Cell,
    import_for,
    lm_eval_task,
    results_task,
    score_column,
)
from thinkcost.config.tasks import bbh_prompt_file, bbh_task_file

EVALUATE = "results/evaluate/{model}/{task}/{optimization}"
STAGED_MODEL = "results/stage/models/{model}"
BBH_STAGED = "results/stage/data/bbh/{bbh_task}"
HUB_DATASET = "results/stage/data/hub/{task}.json"


# --------------------------------------------------------------------------- models


def model_needs_staging(config: dict, model: str) -> bool:
    return "path" not in config["models"][model]["source"]


def model_dir(config: dict, model: str) -> str:
    """Where evaluation loads a model from: its staging directory or its local path."""
    source = config["models"][model].get("source", {})
    return source["path"] if "path" in source else STAGED_MODEL.format(model=model)


def model_input(config: dict, model: str) -> str:
    """What an evaluation job needs of a model: its staging manifest, or its local path."""
    if model_needs_staging(config, model):
        return f"{STAGED_MODEL.format(model=model)}/manifest.json"
    return model_dir(config, model)


def revision(config: dict, model: str) -> str | None:
    """The revision column of the tables; None for a model without a source (all imported)."""
    source = config["models"][model].get("source")
    if source is None:
        return None
    if "hub" in source:
        return source.get("revision", "main")
    if "pypi" in source:
        return source["pypi"]
    return "local"


# --------------------------------------------------------------------------- tasks


def bbh_sources(config: dict, bbh_task: str) -> dict[str, str]:
    """The BBH files a staged task is made from: the repository's copy, or `data.bbh_dir`."""
    data = next(
        task["data"]
        for task in config["tasks"].values()
        if task.get("data", {}).get("bbh") == bbh_task
    )
    return {
        "questions": bbh_task_file(data["bbh_dir"], bbh_task),
        "exemplars": bbh_prompt_file(data["bbh_dir"], bbh_task),
    }


def task_data(config: dict, task: str) -> str:
    """The staged or local data an evaluation of `task` reads, or a hub-dataset marker."""
    data = config["tasks"][task].get("data", {})
    if "bbh" in data:
        return BBH_STAGED.format(bbh_task=data["bbh"]) + ".jsonl"
    if "local" in data:
        return data["local"]
    return HUB_DATASET.format(task=task)


def task_limit(config: dict, task: str) -> int | None:
    limit = config["tasks"][task].get("limit")
    return limit if limit is not None else config["evaluation"]["limit"]


# --------------------------------------------------------------------------- tables


def table_cells(config: dict, cells: list[Cell]) -> list[dict]:
    """Each cell that reaches the scores table (`grid.all_cells`) described for the aggregation:
    a run cell with its output files, an imported cell with its import entry."""
    described_cells = []
    for cell in cells:
        described = {
            **cell.__dict__,
            "metric": config["tasks"][cell.task]["metric"],
            "lm_eval_task": lm_eval_task(config, cell.task),
            "revision": revision(config, cell.model),
        }
        entry = import_for(config, cell)
        if entry is not None:
            described["import"] = entry
            described["results_task"] = results_task(config, entry, cell.task)
            if "scores" in entry:
                described["score_column"] = score_column(
                    entry, cell.task, described["results_task"], config["tasks"][cell.task]
                )
        else:
            directory = EVALUATE.format(**cell.__dict__)
            described["results"] = f"{directory}/results.json"
            described["cost"] = f"{directory}/cost.json"
        described_cells.append(described)
    return described_cells


def aggregate_inputs(cells: list[dict]) -> dict[str, list[str]]:
    """The files the scores table is made from, given `table_cells`: each run cell's results
    and cost, and every file an import reads."""
    imported = [cell["import"] for cell in cells if "import" in cell]
    return {
        "results": [cell["results"] for cell in cells if "results" in cell],
        "cost": [cell["cost"] for cell in cells if "cost" in cell],
        "imported": sorted(
            {e[key] for e in imported for key in ("results", "samples") if key in e}
            | {e["token_counts"]["table"] for e in imported if "token_counts" in e}
            | {e["scores"]["table"] for e in imported if "scores" in e}
        ),
    }
