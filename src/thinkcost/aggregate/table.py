"""The scores table: every cell's rows, the benchmark averages, the contract's column order.

Its columns are stated in `thinkcost.tables` (`SCORES_COLUMNS` first, extra columns after).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from thinkcost.aggregate.imports import import_row
from thinkcost.aggregate.lm_eval_files import read_json
from thinkcost.aggregate.rows import cell_row, sweep_rows
from thinkcost.tables import AVERAGE, SCORES_COLUMNS

# The columns that say which model a row is: an average row has its tasks' values.
MODEL_COLUMNS = ("model", "revision", "family", "params", "train_tokens", "train_flops")


def add_averages(scores: pd.DataFrame, tasks: list[str]) -> pd.DataFrame:
    """Append the benchmark-average rows: the unweighted mean over the configured tasks.

    An average is only written for a (model, optimization) that has every task, so that
    averages over different task sets are never compared. Its stderr treats the tasks as
    independent: sqrt(Σ stderr²) / n_tasks; its n is NaN when a task's n is unknown.

    Token counts, inference FLOPs and seconds are averaged over the tasks that have them
    (`tasks_with_token_counts` says how many): an imported table may lack a task, as the
    paper's generated lengths lack GSM8K.
    """
    rows = []
    keys = ["model", "optimization"]
    for _, group in scores[scores["task"] != AVERAGE].groupby(keys, sort=False):
        if set(group["task"]) != set(tasks):
            continue
        first = group.iloc[0]
        row = {column: first[column] for column in (*MODEL_COLUMNS, "optimization")}
        stderr = group["stderr"].to_numpy(dtype=float)
        counts = pd.to_numeric(group["n"], errors="coerce")
        row.update(
            task=AVERAGE,
            metric="mean of task metrics",
            score=group["score"].mean(),
            stderr=float(np.sqrt(np.sum(stderr**2)) / len(group)),
            n=int(counts.sum()) if counts.notna().all() else float("nan"),
            source="run" if (group["source"] == "run").all() else "import",
            tasks_in_average=len(group),
            tasks_with_token_counts=int(group["generated_tokens_mean"].notna().sum()),
        )
        for column in (
            "prompt_tokens_mean",
            "generated_tokens_mean",
            "inference_flops_per_request",
            "inference_flops_per_request_paper",
            "inference_flops_per_request_full",
            "seconds_per_request",
        ):
            row[column] = group[column].mean()
        row["unanswered"] = group["unanswered"].sum()
        row["truncated_prompts"] = group["truncated_prompts"].sum()
        if "sweep_of" in group and group["sweep_of"].notna().all():  # one k of a sweep
            row.update({column: first[column] for column in ("sweep_of", "k", "vote", "estimate")})
            row["coverage"] = group["coverage"].mean()
            row["coverage_stderr"] = float(
                np.sqrt(np.sum(group["coverage_stderr"].to_numpy(dtype=float) ** 2)) / len(group)
            )
        rows.append(row)
    averages = pd.DataFrame(rows)
    return pd.concat([scores, averages], ignore_index=True) if rows else scores


def aggregate_scores(cells: list[dict], config: dict) -> pd.DataFrame:
    """The scores table for a list of cells.

    Each cell is a dict with model, task, optimization, metric and lm_eval_task, and either the
    paths of its `results` and `cost` files (a cell that ran) or the `import` entry it is read
    from.
    """
    convention = config["analysis"]["flop_convention"]
    rows = []
    for cell in cells:
        model = config["models"][cell["model"]]
        if "import" in cell:
            rows.append(import_row(cell, model, cell["import"], convention))
        else:
            row = cell_row(cell, model, cell["results"], cell["cost"], convention)
            cost = read_json(cell["cost"])
            rows.extend(sweep_rows(row, cost, convention) if cost.get("sweep") else [row])
    scores = pd.DataFrame(rows)
    scores = add_averages(scores, list(config["tasks"]))
    extra = [c for c in scores.columns if c not in SCORES_COLUMNS]
    return scores[SCORES_COLUMNS + extra].sort_values(
        ["model", "optimization", "task"], ignore_index=True
    )
