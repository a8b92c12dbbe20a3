"""Configuration: loading with the schema's defaults, checks by feature, and the evaluation grid.

- `loading`: strict YAML and the JSON schema; `errors`: ConfigError.
- checks, one module a feature: `references` (names defined), `imports`, `knobs`, `models`
  (sources, budgets), `task_checks` (tasks and their data); `tasks` is the lm-eval task index.
- the grid: `grid` (cells, imports, wildcards), `paths` (where files are), `spec` (a run cell
  resolved for its job), `analysis` (the analysis stages' settings).

Everything here runs when Snakemake parses the workflow, so it must be cheap and must fail with a
message that names the offending key or file before any job is planned. The names below are the
package's public surface, used by the Snakefile, the stages and the tests.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

from thinkcost.config.errors import ConfigError
from thinkcost.config.grid import (
    TOKEN_SOURCES,
    Cell,
    all_cells,
    expand_grid,
    import_for,
    lm_eval_task,
    results_task,
    score_column,
    table_optimizations,
)
from thinkcost.config.imports import check_import_files
from thinkcost.config.knobs import check_knobs, resolve_auto_engine
from thinkcost.config.loading import apply_schema, load_yaml_strict
from thinkcost.config.models import (
    check_budgets,
    check_model_paths,
    check_sources,
    network_sources,
)
from thinkcost.config.references import check_references
from thinkcost.config.spec import CellSpec, cell_spec
from thinkcost.config.task_checks import (
    check_task_data,
    check_task_names,
    check_task_paths,
    resolve_bbh_tasks,
)


def validate_config(
    config: dict,
    schema_path: str | os.PathLike,
    base_dir: str | os.PathLike = ".",
    check_tasks: bool = True,
    configfiles: Iterable[str | os.PathLike] = (),
    workflow_dir: str | os.PathLike | None = None,
) -> dict:
    """Schema (with defaults) plus the checks a schema cannot express. Returns `config`.

    `configfiles` are re-read strictly, because the YAML loader that produced `config` kept
    only the last of two duplicate keys. `workflow_dir` holds the shipped data (data/bbh); by
    default the directory above the schema's.
    """
    base_dir = Path(base_dir)
    for path in configfiles:
        load_yaml_strict(path)
    apply_schema(config, schema_path)
    resolve_auto_engine(config)
    check_references(config)
    check_sources(config)
    check_knobs(config)
    # Paths must exist now, not halfway through the grid.
    check_model_paths(config, base_dir)
    check_task_data(config, base_dir)
    check_import_files(config, base_dir)
    check_task_paths(config, base_dir)
    resolve_bbh_tasks(
        config, base_dir, Path(workflow_dir or Path(schema_path).resolve().parents[1])
    )
    check_budgets(config, base_dir)
    if check_tasks:
        check_task_names(config, base_dir)
    return config


__all__ = [
    "TOKEN_SOURCES",
    "Cell",
    "CellSpec",
    "ConfigError",
    "all_cells",
    "apply_schema",
    "cell_spec",
    "expand_grid",
    "import_for",
    "lm_eval_task",
    "load_yaml_strict",
    "network_sources",
    "results_task",
    "score_column",
    "table_optimizations",
    "validate_config",
]
