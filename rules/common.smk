# Input functions: each one line into thinkcost.config, where the logic is tested with pytest.
from thinkcost.config import (
    Cell,
    all_cells,
    expand_grid,
    lm_eval_task,
)
from thinkcost.config.analysis import (
    pca_models,
    pca_settings,
    regime_groups,
    regime_pairs,
)
from thinkcost.config.grid import (
    bbh_task_pattern,
    optimization_pattern,
    wildcard_pattern,
)
from thinkcost.config.paths import (
    BBH_STAGED,
    EVALUATE,
    aggregate_inputs,
    bbh_sources,
    model_dir,
    table_cells,
)
from thinkcost.config.spec import (
    cell_spec,
    evaluate_conda_env,
    evaluate_gpus,
    evaluate_group,
    evaluate_inputs,
    evaluate_mem_mb,
    evaluate_runtime,
    shared_conda_env,
)

# ---------------------------------------------------------------------------- grid

CELLS = expand_grid(config)
TABLE_CELLS = all_cells(config)
# (model, optimization) of every regime plot: read by rule all and by the plotting rules.
REGIME_PAIRS = regime_pairs(config, TABLE_CELLS)


wildcard_constraints:
    model=wildcard_pattern(config["models"]),
    task=wildcard_pattern(config["tasks"]),
    bbh_task=bbh_task_pattern(config),
    optimization=optimization_pattern(config),


def cell_of(wildcards):
    return Cell(wildcards.model, wildcards.task, wildcards.optimization)


# ---------------------------------------------------------------------------- stage


def get_model_source(wildcards):
    return config["models"][wildcards.model]["source"]


def get_model_dir(wildcards):
    return model_dir(config, wildcards.model)


def get_bbh_sources(wildcards):
    return bbh_sources(config, wildcards.bbh_task)


def get_lm_eval_task(wildcards):
    return lm_eval_task(config, wildcards.task)


# ---------------------------------------------------------------------------- evaluate
# A job's resources grow with its model, and double with each retry (thinkcost.config.spec).


def get_evaluate_input(wildcards):
    return evaluate_inputs(config, cell_of(wildcards))


def get_cell(wildcards):
    return cell_spec(config, cell_of(wildcards)).as_params()


def get_evaluate_group(wildcards):
    return evaluate_group(config, wildcards.model)


def get_evaluate_env(wildcards):
    return evaluate_conda_env(config, wildcards.optimization)


# Snakemake resolves a directive that is a plain value once per rule, but calls a function once
# per job, inspecting its signature each time: with 10,000 cells that is a fifth of planning. So
# the evaluate rule's conda environment and group are functions only where cells differ.
def evaluate_env_directive():
    return shared_conda_env(config) or get_evaluate_env


def evaluate_group_directive():
    return get_evaluate_group if config["evaluation"]["group_by_model"] else None


def get_evaluate_gpus(wildcards):
    return evaluate_gpus(config, cell_of(wildcards))


def get_evaluate_mem_mb(wildcards, attempt):
    return evaluate_mem_mb(config, wildcards.model, attempt)


def get_evaluate_runtime(wildcards, attempt):
    return evaluate_runtime(config, cell_of(wildcards), attempt)


# ---------------------------------------------------------------------------- tables


def get_table_cells():
    return table_cells(config, TABLE_CELLS)


def get_aggregate_input(wildcards):
    return aggregate_inputs(get_table_cells())


def get_regime_groups():
    return regime_groups(REGIME_PAIRS)


def get_pca_settings():
    return pca_settings(config)


def get_pca_outputs():
    """The PCA stage's tables and figures, when at least three models have the decomposed
    optimization on every task (fewer place no one on a shared axis; the gain regression needs
    three). A grid of one model, as the default one, has none."""
    if len(pca_models(config, TABLE_CELLS)) < 3:
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
        *("improvement", "isoflop", "train_equivalent_ratio"),
        # Against inference FLOPs and against the measured seconds per question.
        *expand(
            "{figure}_{unit}", figure=["pareto", "frontier"], unit=["flops", "seconds"]
        ),
        # Every regime plot in one figure, in the unit figures/regime/ is not drawn in.
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
            for model, optimization in REGIME_PAIRS
            for ext in ("png", "pdf")
        ],
        *get_pca_outputs(),
    ]
