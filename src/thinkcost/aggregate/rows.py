"""A run cell's rows of scores.csv: its score and cost, and one row per k of a swept cell.

The columns that say which cell a row is (`cell_columns`) are the same for run and imported
cells (`aggregate.imports`).
"""

from __future__ import annotations

from pathlib import Path

from thinkcost.aggregate.lm_eval_files import ResultsFileError, read_json, read_lm_eval_score


def train_flops(params: float, train_tokens: float) -> float:
    """C = 6·N·D (Kaplan et al.), the paper's training-compute convention."""
    return 6.0 * float(params) * float(train_tokens)


def cell_columns(cell: dict, model: dict, revision: str | None) -> dict:
    """The columns that say which cell a row is, the same for run and imported cells."""
    return {
        "model": cell["model"],
        "revision": revision,
        "family": model["family"],
        "params": float(model["params"]),
        "train_tokens": float(model["train_tokens"]),
        "train_flops": train_flops(model["params"], model["train_tokens"]),
        "task": cell["task"],
        "optimization": cell["optimization"],
        "metric": cell["metric"],
    }


def cell_row(
    cell: dict, model: dict, results_path: str | Path, cost_path: str | Path, convention: str
) -> dict:
    """One scores.csv row from a run cell's results JSON and cost record."""
    cost = read_json(cost_path)
    required = ("prompt_tokens_mean", "generated_tokens_mean", "inference_flops_per_request_paper")
    missing = [key for key in required if key not in cost]
    if missing:
        raise ResultsFileError(f"{cost_path}: cost record lacks {missing}; rerun the cell")
    score = read_lm_eval_score(results_path, cost["lm_eval_task"], cell["metric"])
    return {
        **cell_columns(cell, model, cost.get("revision", cell.get("revision"))),
        **score,
        "n": score["n"] if score["n"] is not None else cost.get("n"),
        "prompt_tokens_mean": cost["prompt_tokens_mean"],
        "generated_tokens_mean": cost["generated_tokens_mean"],
        "inference_flops_per_request": cost[f"inference_flops_per_request_{convention}"],
        "inference_flops_per_request_paper": cost["inference_flops_per_request_paper"],
        "inference_flops_per_request_full": cost["inference_flops_per_request_full"],
        "seconds_per_request": cost["seconds_per_request"],
        "source": "run",
        "lm_eval_task": cost["lm_eval_task"],
        "unanswered": cost.get("unanswered", 0),
        # Questions whose prompt lost its start to fit the context (costs count what was kept).
        "truncated_prompts": cost.get("truncated_prompts", 0),
        "samples_per_request": cost.get("samples_per_request", 1),
        "forward_passes": cost.get("forward_passes"),
        "generated_tokens_per_second": cost.get("generated_tokens_per_second"),
        "device": cost.get("device"),
        "peak_memory_bytes": cost.get("peak_memory_bytes"),
    }


def sweep_rows(row: dict, cost: dict, convention: str) -> list[dict]:
    """A swept cell's rows, one per k, named `<optimization>@<k>` (from its cost record's
    `sweep`, which `inference.sweeps` wrote): the vote's expected score over every subset of k
    of the K samples, with its coverage (pass@k) and the tokens and FLOPs of k samples.

    Seconds were measured for all K samples together: the k = K row has them, the others none
    (NaN)."""
    rows = []
    drawn = cost.get("samples_per_request")
    for entry in cost["sweep"]:
        k = int(entry["k"])
        rows.append(
            {
                **row,
                "optimization": f"{row['optimization']}@{k}",
                "score": entry["score"],
                "stderr": entry["stderr"],
                "n": entry["n"],
                "prompt_tokens_mean": entry["prompt_tokens_mean"],
                "generated_tokens_mean": entry["generated_tokens_mean"],
                "inference_flops_per_request": entry[f"inference_flops_per_request_{convention}"],
                "inference_flops_per_request_paper": entry["inference_flops_per_request_paper"],
                "inference_flops_per_request_full": entry["inference_flops_per_request_full"],
                "seconds_per_request": row["seconds_per_request"] if k == drawn else float("nan"),
                "samples_per_request": k,
                "sweep_of": row["optimization"],
                "k": k,
                "vote": entry["rule"],
                "coverage": entry["coverage"],
                "coverage_stderr": entry["coverage_stderr"],
                "estimate": entry["estimate"],
            }
        )
    return rows
