"""Imported cells: scores.csv rows from results made elsewhere, and their token counts.

An import's score comes from an lm-eval results JSON or from a column of a scores table; its
token counts from a thinkcost `requests.jsonl`, an lm-eval samples file (counted with the
model's tokenizer), a token-count table, or the numbers given in the import entry.
"""

from __future__ import annotations

import functools
import logging
import math

import numpy as np
import pandas as pd

from thinkcost.aggregate.lm_eval_files import (
    ResultsFileError,
    prompt_text,
    read_jsonl,
    read_lm_eval_score,
    response_text,
)
from thinkcost.aggregate.rows import cell_columns
from thinkcost.config import TOKEN_SOURCES

log = logging.getLogger(__name__)


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
    rows = [r for r in read_jsonl(entry["samples"]) if r.get("task", lm_eval_task) == lm_eval_task]
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
            prompt.append(len(tokenizer(prompt_text(row["arguments"])).input_ids))
            text = response_text(row["resps"])
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
        **cell_columns(cell, model, cell.get("revision")),
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
