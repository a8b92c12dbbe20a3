"""Per-cell outputs → the tidy `scores.csv` (DESIGN.md's contract)."""

from __future__ import annotations

import functools
import json
import logging
import math
from pathlib import Path

import numpy as np
import pandas as pd

from thinkcost.config import TOKEN_SOURCES
from thinkcost.tables import AVERAGE, SCORES_COLUMNS

log = logging.getLogger(__name__)


class ResultsFileError(ValueError):
    """A results or cost file that cannot be read as what it claims to be."""


def train_flops(params: float, train_tokens: float) -> float:
    """C = 6·N·D (Kaplan et al.), the paper's training-compute convention."""
    return 6.0 * float(params) * float(train_tokens)


def read_json(path: str | Path) -> dict:
    path = Path(path)
    try:
        payload = json.loads(path.read_text())
    except FileNotFoundError as error:
        raise ResultsFileError(f"{path}: missing") from error
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ResultsFileError(
            f"{path}: not valid JSON ({error}); delete it and rerun the cell"
        ) from error
    if not isinstance(payload, dict):
        raise ResultsFileError(f"{path}: expected a JSON object, found {type(payload).__name__}")
    return payload


def read_lm_eval_score(path: str | Path, task: str, metric: str) -> dict:
    """Score, standard error and sample count of `task`/`metric` in an lm-eval results JSON.

    The same reader serves cells that ran here and results imported from elsewhere, so both
    are picked out of the JSON by the same task → metric mapping.
    """
    results = read_json(path)
    if "results" not in results:
        raise ResultsFileError(f"{path}: no 'results' key; is this an lm-eval results JSON?")
    if task not in results["results"]:
        raise ResultsFileError(
            f"{path}: no results for task {task!r}; it has {sorted(results['results'])}"
        )
    task_results = results["results"][task]
    key, stderr_key = _metric_keys(task_results, metric)
    if key is None:
        metrics = sorted(k for k in task_results if k != "alias" and "_stderr" not in k)
        raise ResultsFileError(f"{path}: task {task!r} has no metric {metric!r}; it has {metrics}")
    score = task_results[key]
    if not isinstance(score, (int, float)) or not math.isfinite(score):
        raise ResultsFileError(f"{path}: {task} {key} is {score!r}, not a number")
    stderr = task_results.get(stderr_key)
    stderr = float(stderr) if isinstance(stderr, (int, float)) else float("nan")
    n_samples = results.get("n-samples", {}).get(task, {})
    n = n_samples.get("effective", n_samples.get("original"))
    return {"score": float(score), "stderr": stderr, "n": int(n) if n is not None else None}


def _metric_keys(task_results: dict, metric: str) -> tuple[str | None, str]:
    """The keys of `metric` ("name,filter") and of its standard error in one task's results.

    lm-eval 0.4 writes "acc,none" and "acc_stderr,none". Files of the 0.3 era have no filters
    and write "acc" and "acc_stderr": a metric with the filter "none" reads those, since "none"
    is 0.4's name for "no filter". A filtered metric has no 0.3 counterpart.
    """
    name, _, filter_name = metric.partition(",")
    if metric in task_results:
        return metric, f"{name}_stderr,{filter_name}" if filter_name else f"{name}_stderr"
    is_0_3_file = not any("," in key for key in task_results)
    if is_0_3_file and filter_name in ("", "none") and name in task_results:
        return name, f"{name}_stderr"
    return None, ""


def _cell_columns(cell: dict, model: dict, revision: str | None) -> dict:
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
        **_cell_columns(cell, model, cost.get("revision", cell.get("revision"))),
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


def _read_jsonl(path: str | Path) -> list[dict]:
    rows = []
    with Path(path).open() as handle:
        for number, line in enumerate(handle, 1):
            if line.strip():
                try:
                    rows.append(json.loads(line))
                except json.JSONDecodeError as error:
                    raise ResultsFileError(
                        f"{path}: line {number} is not valid JSON ({error})"
                    ) from error
    return rows


def _response_text(response) -> str:
    """The generated text in one lm-eval `resps` entry ([["text"]] or [[(loglik, greedy)]])."""
    while isinstance(response, list) and response:
        response = response[0]
    return response if isinstance(response, str) else ""


def _prompt_text(arguments) -> str:
    """The prompt of an lm-eval sample: lm-eval's saved files nest it as
    {"gen_args_0": {"arg_0": prompt, …}}; the in-memory samples as [[prompt, …], …]."""
    if isinstance(arguments, dict):
        return arguments["gen_args_0"]["arg_0"]
    return arguments[0][0]


@functools.lru_cache(maxsize=8)
def _token_table(path: str) -> pd.DataFrame:
    """A token-count or scores table, read once however many cells it covers (filtered, never
    changed)."""
    return pd.read_csv(path, dtype=str, skipinitialspace=True)


def table_token_counts(spec: dict, task: str) -> tuple[float, float]:
    """Mean prompt and generated tokens of `task` from an import's `token_counts` table.

    The row is the one that matches every `where` pair and names `task` in `task_column`
    (values compared as text, surrounding spaces ignored). No row: both NaN, as for a task the
    table's author did not count; a column not named (`prompt_tokens`): NaN.
    """
    table = _token_table(spec["table"])
    selected = table
    for column, value in {**spec.get("where", {}), spec.get("task_column", "task"): task}.items():
        selected = selected[selected[column].str.strip() == str(value).strip()]
    if len(selected) > 1:
        raise ResultsFileError(
            f"{spec['table']}: {len(selected)} rows for task {task!r} and {spec.get('where')}; "
            "add a column to `where` that tells them apart"
        )
    if selected.empty:
        log.warning(
            "%s: no row for task %r and %s: its token counts are NaN",
            spec["table"],
            task,
            spec.get("where"),
        )
        return float("nan"), float("nan")
    row = selected.iloc[0]

    def number(column: str | None) -> float:
        if column is None:
            return float("nan")
        try:
            return float(row[column])
        except (TypeError, ValueError) as error:
            raise ResultsFileError(
                f"{spec['table']}: {column} of task {task!r} is {row[column]!r}, not a number"
            ) from error

    return number(spec.get("prompt_tokens")), number(spec["generated_tokens"])


def imported_token_counts(entry: dict, lm_eval_task: str) -> tuple[float, float]:
    """Mean prompt and generated tokens of an imported cell (`lm_eval_task`: the task's name
    in the imported files).

    From a thinkcost `requests.jsonl` (counts per question), from an lm-eval samples file
    counted with the model's tokenizer, from a `token_counts` table, or as given in the import
    entry (a prompt count not given is NaN).
    """
    if "token_counts" in entry:
        return table_token_counts(entry["token_counts"], lm_eval_task)
    if "samples" not in entry:
        return (
            float(entry.get("prompt_tokens_mean", float("nan"))),
            float(entry["generated_tokens_mean"]),
        )
    rows = [r for r in _read_jsonl(entry["samples"]) if r.get("task", lm_eval_task) == lm_eval_task]
    if not rows:
        raise ResultsFileError(f"{entry['samples']}: no samples for task {lm_eval_task!r}")
    if "prompt_tokens" in rows[0]:
        prompt = [r["prompt_tokens"] for r in rows]
        generated = [r["generated_tokens"] for r in rows]
    else:
        if "tokenizer" not in entry:
            raise ResultsFileError(
                f"{entry['samples']}: an lm-eval samples file needs 'tokenizer' in its import "
                "entry to count tokens with"
            )
        from transformers import AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(entry["tokenizer"])
        first_request = {}
        for row in rows:  # one row per (doc, filter); count each question once
            first_request.setdefault(row["doc_id"], row)
        prompt, generated = [], []
        for row in first_request.values():
            prompt.append(len(tokenizer(_prompt_text(row["arguments"])).input_ids))
            text = _response_text(row["resps"])
            generated.append(
                len(tokenizer(text, add_special_tokens=False).input_ids) if text else 0
            )
    return float(np.mean(prompt)), float(np.mean(generated))


def table_score(entry: dict, column: str) -> dict:
    """Score and standard error of one column of a `scores` import's table, in the row that
    matches its `where`; the standard error from the column lm-eval's flattening names
    "<task>_<metric>_stderr_<filter>", where the table has it."""
    spec = entry["scores"]
    table = _token_table(spec["table"])
    selected = table
    for key, value in spec.get("where", {}).items():
        selected = selected[selected[key].str.strip() == str(value).strip()]
    if len(selected) != 1:
        raise ResultsFileError(
            f"{spec['table']}: {len(selected)} rows match {spec.get('where')}; the `where` of "
            "a scores import must pick exactly one"
        )
    row = selected.iloc[0]

    def number(name: str) -> float:
        try:
            value = float(row[name])
        except (TypeError, ValueError) as error:
            raise ResultsFileError(
                f"{spec['table']}: {name} of {spec.get('where')} is {row[name]!r}, not a number"
            ) from error
        return value

    score = number(column)
    if not math.isfinite(score):
        raise ResultsFileError(f"{spec['table']}: {column} of {spec.get('where')} is missing")
    head, _, filter_name = column.rpartition("_")
    stderr_column = f"{head}_stderr_{filter_name}"
    stderr = number(stderr_column) if stderr_column in row.index else float("nan")
    return {"score": score, "stderr": stderr, "n": None}


def import_row(cell: dict, model: dict, entry: dict, convention: str) -> dict:
    """One scores.csv row from an imported lm-eval results JSON or scores table, shaped as a
    run row."""
    # The task's name in the imported files: renamed there (`results_task`) or its lm-eval name.
    task_in_file = cell.get("results_task", cell["lm_eval_task"])
    if "scores" in entry:
        score = table_score(entry, cell["score_column"])
    else:
        score = read_lm_eval_score(entry["results"], task_in_file, cell["metric"])
    if any(key in entry for key in TOKEN_SOURCES):
        prompt_tokens, generated_tokens = imported_token_counts(entry, task_in_file)
    else:  # a table of scores without generations: no inference cost
        prompt_tokens = generated_tokens = float("nan")
    paper_flops = 2.0 * float(model["params"]) * generated_tokens
    return {
        **_cell_columns(cell, model, cell.get("revision")),
        **score,
        "prompt_tokens_mean": prompt_tokens,
        "generated_tokens_mean": generated_tokens,
        # An import carries no model shape, so only the paper's convention can be computed.
        "inference_flops_per_request": paper_flops if convention == "paper" else float("nan"),
        "inference_flops_per_request_paper": paper_flops,
        "inference_flops_per_request_full": float("nan"),
        "seconds_per_request": float("nan"),
        "source": "import",
        "lm_eval_task": cell["lm_eval_task"],
        "unanswered": float("nan"),
        "truncated_prompts": float("nan"),
    }


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
        row = {
            column: first[column]
            for column in (
                "model",
                "revision",
                "family",
                "params",
                "train_tokens",
                "train_flops",
                "optimization",
            )
        }
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
