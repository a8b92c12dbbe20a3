"""Reading lm-eval's output files: a results JSON's score, a samples file's rows.

The same readers serve cells that ran here and results imported from elsewhere (lm-eval 0.4
files and those of the 0.3 era); a file that cannot be read as what it claims to be raises
`ResultsFileError`, naming the file and what to do.
"""

from __future__ import annotations

import json
import math
from pathlib import Path


class ResultsFileError(ValueError):
    """A results or cost file that cannot be read as what it claims to be."""


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


def read_jsonl(path: str | Path) -> list[dict]:
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


def response_text(response) -> str:
    """The generated text in one lm-eval `resps` entry ([["text"]] or [[(loglik, greedy)]])."""
    while isinstance(response, list) and response:
        response = response[0]
    return response if isinstance(response, str) else ""


def prompt_text(arguments) -> str:
    """The prompt of an lm-eval sample: lm-eval's saved files nest it as
    {"gen_args_0": {"arg_0": prompt, …}}; the in-memory samples as [[prompt, …], …]."""
    if isinstance(arguments, dict):
        return arguments["gen_args_0"]["arg_0"]
    return arguments[0][0]
