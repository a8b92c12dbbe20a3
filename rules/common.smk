import math

from thinkcost.config import (
    TOKEN_SOURCES,
    Cell,
    all_cells,
    expand_grid,
    import_for,
    lm_eval_task,
    results_task,
    score_column,
    table_optimizations,
    wildcard_pattern,
)
from thinkcost.config.tasks import bbh_prompt_file, bbh_task_file

# ---------------------------------------------------------------------------- grid

CELLS = expand_grid(config)
TABLE_CELLS = all_cells(config)

EVALUATE = "results/evaluate/{model}/{task}/{optimization}"
BBH_STAGED = "results/stage/data/bbh/{bbh_task}"


wildcard_constraints:
    model=wildcard_pattern(config["models"]),
    task=wildcard_pattern(config["tasks"]),
    # The configured BBH tasks only, so that navigate.fewshot.jsonl is never a task's .jsonl;
    # a config without BBH tasks gets a name no file has ("" would not be a valid pattern).
    bbh_task=wildcard_pattern(
        {
            task["data"]["bbh"]
            for task in config["tasks"].values()
            if "bbh" in task.get("data", {})
        }
        or {"no-bbh-task"}
    ),
    # Configured names, and the scores table's <name>@<k> of swept ones (regime plots).
    optimization=wildcard_pattern(
        {
            row
            for name in config["optimizations"]
            for row in table_optimizations(config, name)
        }
        | set(config["optimizations"])
    ),


# ---------------------------------------------------------------------------- models


def model_needs_staging(model):
    return "path" not in config["models"][model]["source"]


def get_model_dir(model):
    """Where evaluation loads a model from: its staging directory or its local path."""
    source = config["models"][model]["source"]
    return source["path"] if "path" in source else f"results/stage/models/{model}"


def get_revision(model):
    """The revision column of the tables; None for a model without a source (all imported)."""
    source = config["models"][model].get("source")
    if source is None:
        return None
    if "hub" in source:
        return source.get("revision", "main")
    if "pypi" in source:
        return source["pypi"]
    return "local"


# ---------------------------------------------------------------------------- tasks


def get_bbh_sources(wildcards):
    """The BBH files a staged task is made from: the repository's copy, or `data.bbh_dir`."""
    data = next(
        task["data"]
        for task in config["tasks"].values()
        if task.get("data", {}).get("bbh") == wildcards.bbh_task
    )
    return {
        "questions": bbh_task_file(data["bbh_dir"], wildcards.bbh_task),
        "exemplars": bbh_prompt_file(data["bbh_dir"], wildcards.bbh_task),
    }


def get_task_data(task):
    """The staged or local data an evaluation of `task` reads, or a hub-dataset marker."""
    data = config["tasks"][task].get("data", {})
    if "bbh" in data:
        return BBH_STAGED.format(bbh_task=data["bbh"]) + ".jsonl"
    if "local" in data:
        return data["local"]
    return f"results/stage/data/hub/{task}.json"


def get_task_limit(task):
    limit = config["tasks"][task].get("limit")
    return limit if limit is not None else config["evaluation"]["limit"]


# ---------------------------------------------------------------------------- evaluate


def model_input(model):
    """What an evaluation job needs of a model: its staging manifest, or its local path."""
    if model_needs_staging(model):
        return f"results/stage/models/{model}/manifest.json"
    return get_model_dir(model)


def get_evaluate_input(wildcards):
    inputs = {
        "data": get_task_data(wildcards.task),
        "model": model_input(wildcards.model),
    }
    knobs = config["optimizations"][wildcards.optimization]
    if knobs.get("scorer"):
        inputs["scorer"] = model_input(knobs["scorer"])
    if knobs.get("assistant", {}).get("model"):
        inputs["assistant"] = model_input(knobs["assistant"]["model"])
    return inputs


def get_cell(wildcards):
    """What the evaluate script needs to know about one cell."""
    model = config["models"][wildcards.model]
    task = config["tasks"][wildcards.task]
    described = {
        "cell": {
            "model": wildcards.model,
            "task": wildcards.task,
            "optimization": wildcards.optimization,
            "revision": get_revision(wildcards.model),
            "family": model["family"],
        },
        "model_dir": get_model_dir(wildcards.model),
        "model_dtype": model.get("dtype"),
        "params": model["params"],
        "lm_eval_task": lm_eval_task(config, wildcards.task),
        "metric": task["metric"],
        "limit": get_task_limit(wildcards.task),
        "num_fewshot": get_num_fewshot(wildcards),
        "knobs": get_knobs(wildcards),
        # How jobs are grouped changes no result, so it does not invalidate a cell.
        "evaluation": {
            key: value
            for key, value in config["evaluation"].items()
            if key != "group_by_model"
        },
    }
    # A second model, only where one is named: a cell without keeps its params (not rerun).
    for role, name in (
        ("scorer", described["knobs"].get("scorer")),
        ("assistant", described["knobs"].get("assistant", {}).get("model")),
    ):
        if name:
            described[role] = {
                "model_dir": get_model_dir(name),
                "params": config["models"][name]["params"],
            }
    return described


def get_num_fewshot(wildcards):
    """Worked examples before each question: the optimization's number, or else the task's."""
    shots = config["optimizations"][wildcards.optimization]["num_fewshot"]
    return (
        shots
        if shots is not None
        else config["tasks"][wildcards.task].get("num_fewshot")
    )


def get_knobs(wildcards):
    """The optimization's knobs, with the chat template resolved: the optimization's own
    setting, or else the model's."""
    knobs = dict(config["optimizations"][wildcards.optimization])
    if knobs["apply_chat_template"] is None:
        model = config["models"][wildcards.model]
        knobs["apply_chat_template"] = model["apply_chat_template"]
    return knobs


def get_evaluate_group(wildcards):
    """One cluster job per model when `evaluation.group_by_model` is set (none otherwise)."""
    if config["evaluation"]["group_by_model"]:
        return f"evaluate_{wildcards.model}"
    return None


# ---------------------------------------------------------------------------- resources
# What an evaluation job asks the cluster for grows with the model: a 160M and a 14B model must
# not ask for the same thing. Each retry (a job killed for memory or time, or preempted) asks for
# twice as much. A cluster overrides any of these in its profile (set-resources), not here.


def get_engine(wildcards):
    knobs = config["optimizations"][wildcards.optimization]
    return knobs["engine"] or config["evaluation"]["engine"]


def get_evaluate_env(wildcards):
    """The conda environment of an evaluation job (--sdm conda): vLLM's for its engine."""
    if get_engine(wildcards) == "vllm":
        return "../envs/vllm.yaml"
    return "../envs/evaluate.yaml"


def get_evaluate_gpus(wildcards):
    """GPUs for a model held in 16-bit with room for activations: one up to ~30B parameters;
    under vLLM, the tensor-parallel size it is split over."""
    if get_engine(wildcards) == "vllm":
        return config["evaluation"]["vllm"]["tensor_parallel_size"]
    params = config["models"][wildcards.model]["params"]
    return max(1, math.ceil(params * 2 * 1.3 / 70e9))


def get_evaluate_mem_mb(wildcards, attempt):
    """Host memory: the weights once in float32 (loading, or CPU inference) plus 2 GB."""
    params = config["models"][wildcards.model]["params"]
    return int((2000 + params * 4 * 1.2 / 1e6) * 2 ** (attempt - 1))


def get_evaluate_runtime(wildcards, attempt):
    """Minutes: 30 plus 30 per billion parameters per 1000 questions, doubled per retry."""
    params = config["models"][wildcards.model]["params"]
    questions = get_task_limit(wildcards.task) or 1000
    return int((30 + 30 * params / 1e9 * questions / 1000) * 2 ** (attempt - 1))


# ---------------------------------------------------------------------------- tables


def get_table_cells():
    """Every cell that reaches the scores table: run cells with their output files, imported
    cells with their import entry."""
    cells = []
    for cell in TABLE_CELLS:
        described = {
            **cell.__dict__,
            "metric": config["tasks"][cell.task]["metric"],
            "lm_eval_task": lm_eval_task(config, cell.task),
            "revision": get_revision(cell.model),
        }
        entry = import_for(config, cell)
        if entry is not None:
            described["import"] = entry
            described["results_task"] = results_task(config, entry, cell.task)
            if "scores" in entry:
                described["score_column"] = score_column(
                    entry,
                    cell.task,
                    described["results_task"],
                    config["tasks"][cell.task],
                )
        else:
            directory = EVALUATE.format(**cell.__dict__)
            described["results"] = f"{directory}/results.json"
            described["cost"] = f"{directory}/cost.json"
        cells.append(described)
    return cells


def get_aggregate_input(wildcards):
    cells = get_table_cells()
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


def get_regime_pairs():
    """(model, optimization) pairs to draw regime plots for: every optimization other than the
    baseline, on every chosen model that has it and the baseline for every task."""
    cells = set(TABLE_CELLS)
    baseline = config["analysis"]["baseline"]
    models = config["analysis"]["regime_models"] or list(config["models"])

    def complete(model, optimization):
        return all(Cell(model, task, optimization) in cells for task in config["tasks"])

    def costed(model, optimization):
        """Not only imported scores without token counts: a regime plot needs a cost."""
        entries = [
            import_for(config, Cell(model, task, optimization))
            for task in config["tasks"]
        ]
        return any(
            entry is None or any(key in entry for key in TOKEN_SOURCES)
            for entry in entries
        )

    return [
        (model, row_name)
        for model in models
        for optimization in config["optimizations"]
        if optimization != baseline
        and complete(model, optimization)
        and complete(model, baseline)
        and costed(model, optimization)
        # A swept optimization is one scores row, and one regime plot, per k.
        for row_name in table_optimizations(config, optimization)
    ]


def get_pca_settings():
    """The PCA stage's settings, resolved: the optimization whose scores are decomposed (the
    baseline unless named) and the tasks (all unless listed)."""
    pca = config["analysis"]["pca"]
    return {
        "optimization": pca["optimization"] or config["analysis"]["baseline"],
        "tasks": pca["tasks"] or list(config["tasks"]),
        "reference_family": pca["reference_family"],
        "n_components": pca["n_components"],
    }


def get_pca_outputs():
    """The PCA stage's tables and figures, when at least three models have the decomposed
    optimization on every task (fewer place no one on a shared axis; the gain regression needs
    three). A grid of one model, as the default one, has none."""
    settings = get_pca_settings()
    cells = set(TABLE_CELLS)
    models = [
        model
        for model in config["models"]
        if all(
            Cell(model, task, settings["optimization"]) in cells
            for task in settings["tasks"]
        )
    ]
    if len(models) < 3:
        return []
    return [
        "results/fits/pca_components.csv",
        "results/fits/pca_gain_fits.csv",
        *expand(
            "figures/pca_{figure}.{ext}",
            figure=["loadings", "compute", "gain"],
            ext=["png", "pdf"],
        ),
    ]


def get_final_output():
    summary = [
        *("improvement", "isoflop", "train_equivalent_ratio", "pareto", "frontier"),
        # The same against the measured seconds per question; and every regime plot in one
        # figure, in the unit figures/regime/ is not drawn in.
        *("pareto_seconds", "frontier_seconds"),
        {"flops": "regime_seconds", "seconds": "regime_flops"}[
            config["analysis"]["cost_unit"]
        ],
    ]
    # The cells are products in their own right: as targets, a deleted cell is rerun (Snakemake
    # would otherwise treat it as an intermediate file of an up-to-date table and skip it).
    cells = [
        f"{EVALUATE.format(**cell.__dict__)}/{name}"
        for cell in CELLS
        for name in ("results.json", "cost.json")
    ]
    return [
        *cells,
        "results/tables/scores.csv",
        "results/tables/train_equivalent.csv",
        "results/fits/family_scaling.csv",
        "results/fits/isoflop.csv",
        *expand("figures/{figure}.{ext}", figure=summary, ext=["png", "pdf"]),
        *[
            f"figures/regime/{model}.{optimization}.{ext}"
            for model, optimization in get_regime_pairs()
            for ext in ("png", "pdf")
        ],
        *get_pca_outputs(),
    ]
