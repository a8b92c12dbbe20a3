"""Checks of the `imports:` entries: each names defined things, one source of scores and of token
counts, and the files and table rows it reads exist."""

from __future__ import annotations

import csv
import difflib
from pathlib import Path

from thinkcost.config.errors import ConfigError, check_defined
from thinkcost.config.grid import TOKEN_SOURCES, results_task, score_column


def check_import_entries(config: dict) -> None:
    """Every import entry names a defined model, task and optimization, and gives exactly one
    source of scores and (unless a table of scores alone) one of token counts."""
    for i, entry in enumerate(config["imports"]):
        check_defined("model", entry["model"], config["models"], f"imports[{i}].model")
        if "task" in entry:
            check_defined("task", entry["task"], config["tasks"], f"imports[{i}].task")
        check_defined(
            "optimization",
            entry["optimization"],
            config["optimizations"],
            f"imports[{i}].optimization",
        )
        _check_sources(config, entry, i)
        renamed = entry.get("results_task")
        if isinstance(renamed, str) and "task" not in entry:
            raise ConfigError(
                f"imports[{i}].results_task: a single name needs 'task' (the task it renames); "
                "for an entry covering every task, map task names to names in the file"
            )
        if isinstance(renamed, dict):
            for task in renamed:
                check_defined("task", task, config["tasks"], f"imports[{i}].results_task")


def _check_sources(config: dict, entry: dict, i: int) -> None:
    score_sources = [key for key in ("results", "scores") if key in entry]
    if len(score_sources) != 1:
        raise ConfigError(
            f"imports[{i}]: give exactly one of 'results' (an lm-eval results JSON) or "
            "'scores' (a CSV table of scores, one row per model)"
            + (f"; it gives {' and '.join(score_sources)}" if score_sources else "")
        )
    if "scores" in entry:
        for task in entry["scores"]["columns"]:
            check_defined("task", task, config["tasks"], f"imports[{i}].scores.columns")
    token_sources = [key for key in TOKEN_SOURCES if key in entry]
    # A table of scores often comes without generations (a capability measurement, as
    # for the PCA): its cells then simply have no inference cost.
    if len(token_sources) != 1 and not ("scores" in entry and not token_sources):
        given = f"; it gives {', '.join(token_sources)}" if token_sources else ""
        raise ConfigError(
            f"imports[{i}]: give exactly one of 'samples' (a samples file with the "
            "generations), 'token_counts' (a table of mean counts per task) or "
            "'generated_tokens_mean' (with optional 'prompt_tokens_mean'); without token "
            f"counts the import has no inference cost{given}"
        )


def check_import_files(config: dict, base_dir: Path) -> None:
    """The files an import reads exist, and its tables have the columns and row it names."""
    for i, entry in enumerate(config["imports"]):
        for key in ("results", "samples"):
            if key in entry and not (base_dir / entry[key]).exists():
                raise ConfigError(f"imports[{i}].{key}: {entry[key]!r} does not exist")
        if "token_counts" in entry:
            check_token_table(entry["token_counts"], base_dir, f"imports[{i}].token_counts")
        if "scores" in entry:
            tasks = [entry["task"]] if "task" in entry else list(config["tasks"])
            columns = [
                score_column(entry, task, results_task(config, entry, task), config["tasks"][task])
                for task in tasks
            ]
            check_table_row(
                entry["scores"]["table"],
                entry["scores"]["where"],
                columns,
                base_dir,
                f"imports[{i}].scores",
            )


def check_token_table(spec: dict, base_dir: Path, where: str) -> None:
    """A `token_counts` table must exist, have the columns it names and a row for `where`."""
    named = [
        spec["task_column"],
        spec["generated_tokens"],
        *([spec["prompt_tokens"]] if "prompt_tokens" in spec else []),
    ]
    check_table_row(spec["table"], spec["where"], named, base_dir, where)


def check_table_row(table: str, where_pairs: dict, named: list[str], base_dir: Path, where: str):
    """A CSV table an import reads must exist, have the columns it is asked for (`named` and
    those of `where_pairs`) and at least one row matching `where_pairs`."""
    path = base_dir / table
    if not path.is_file():
        raise ConfigError(f"{where}.table: {table!r} does not exist")
    with path.open(newline="") as handle:
        # As the aggregation reads it (pandas' skipinitialspace): "a, b" holds "a" and "b".
        reader = csv.DictReader(handle, skipinitialspace=True)
        columns = reader.fieldnames or []
        missing = [column for column in [*where_pairs, *named] if column not in columns]
        if missing:
            shown = ", ".join(columns) if len(columns) <= 30 else f"{len(columns)} columns"
            close = difflib.get_close_matches(missing[0], columns, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise ConfigError(
                f"{where}: {table} has no column {', '.join(map(repr, missing))}; "
                f"it has {shown}{hint}"
            )
        wanted = {column: str(value).strip() for column, value in where_pairs.items()}
        if not any(
            all((row[column] or "").strip() == value for column, value in wanted.items())
            for row in reader
        ):
            raise ConfigError(f"{where}.where: no row of {table} matches {wanted}")
