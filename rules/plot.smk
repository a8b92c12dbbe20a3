# Seconds of pandas/SciPy/matplotlib: run on the submit host rather than wait in a queue (the
# regime rules say so themselves: their names depend on the config).
localrules:
    plot_regime_overview,
    plot_improvement,
    plot_isoflop,
    plot_train_equivalent_ratio,
    plot_pareto,
    plot_frontier,


# How the report labels the cost figures, by unit.
PARETO_LABELS = {
    "flops": "score vs inference FLOPs",
    "seconds": "score vs seconds per question",
}
FRONTIER_LABELS = {
    "flops": "inference scaling frontier",
    "seconds": "inference scaling frontier in seconds",
}


# One job per model draws all of that model's regime plots. When it plans, Snakemake walks every
# job downstream of each cell that must run, and a job per figure (475 of them in a grid of 25
# models and 20 optimizations) made that walk ten times as long. `snakemake
# figures/regime/{model}.{optimization}.png` still rebuilds a figure, with its model's others.
# A rule's outputs cannot vary with its wildcards, so models that differ in their optimizations
# (imports that cover some of them only) get a rule per set: plot_regime, plot_regime_2, ...
for index, (regime_optimizations, regime_models) in enumerate(
    get_regime_groups().items()
):

    rule:
        name:
            "plot_regime" if index == 0 else f"plot_regime_{index + 1}"
        input:
            table="results/tables/train_equivalent.csv",
        output:
            png=[
                report(
                    f"figures/regime/{{model}}.{optimization}.png",
                    caption="../report/regime.rst",
                    category="Regime plots",
                    labels={"model": "{model}", "optimization": optimization},
                )
                for optimization in regime_optimizations
            ],
            pdf=[
                f"figures/regime/{{model}}.{optimization}.pdf"
                for optimization in regime_optimizations
            ],
        log:
            "results/logs/plot_regime/{model}.log",
        wildcard_constraints:
            model=wildcard_pattern(regime_models),
        localrule: True
        conda:
            "../envs/analysis.yaml"
        params:
            cost_unit=config["analysis"]["cost_unit"],
            optimizations=list(regime_optimizations),
        script:
            "../scripts/plot_regime.py"


# Every regime plot in one figure, in the unit the figures/regime/ plots are not in.
rule plot_regime_overview:
    input:
        table="results/tables/train_equivalent.csv",
    output:
        png=report(
            "figures/regime_{unit}.png",
            caption="../report/regime_overview.rst",
            category="Summary",
            labels={"figure": "regime plots in {unit}"},
        ),
        pdf="figures/regime_{unit}.pdf",
    log:
        "results/logs/plot_regime_overview/{unit}.log",
    wildcard_constraints:
        unit="flops|seconds",
    conda:
        "../envs/analysis.yaml"
    params:
        models=config["analysis"]["regime_models"],
    script:
        "../scripts/plot_regime_overview.py"


rule plot_improvement:
    input:
        scores="results/tables/scores.csv",
    output:
        png=report(
            "figures/improvement.png",
            caption="../report/improvement.rst",
            category="Summary",
            labels={"figure": "improvement vs training FLOPs"},
        ),
        pdf="figures/improvement.pdf",
    log:
        "results/logs/plot_improvement.log",
    conda:
        "../envs/analysis.yaml"
    params:
        baseline=config["analysis"]["baseline"],
    script:
        "../scripts/plot_improvement.py"


rule plot_isoflop:
    input:
        scores="results/tables/scores.csv",
        fits="results/fits/isoflop.csv",
    output:
        png=report(
            "figures/isoflop.png",
            caption="../report/isoflop.rst",
            category="Summary",
            labels={"figure": "isoFLOP fit"},
        ),
        pdf="figures/isoflop.pdf",
    log:
        "results/logs/plot_isoflop.log",
    conda:
        "../envs/analysis.yaml"
    script:
        "../scripts/plot_isoflop.py"


rule plot_train_equivalent_ratio:
    input:
        scores="results/tables/scores.csv",
        table="results/tables/train_equivalent.csv",
    output:
        png=report(
            "figures/train_equivalent_ratio.png",
            caption="../report/train_equivalent_ratio.rst",
            category="Summary",
            labels={"figure": "train-equivalent ratio"},
        ),
        pdf="figures/train_equivalent_ratio.pdf",
    log:
        "results/logs/plot_train_equivalent_ratio.log",
    conda:
        "../envs/analysis.yaml"
    params:
        baseline=config["analysis"]["baseline"],
    script:
        "../scripts/plot_train_equivalent_ratio.py"


rule plot_pareto:
    input:
        scores="results/tables/scores.csv",
    output:
        png=report(
            "figures/pareto_{unit}.png",
            caption="../report/pareto.rst",
            category="Summary",
            labels=lambda wildcards: {"figure": PARETO_LABELS[wildcards.unit]},
        ),
        pdf="figures/pareto_{unit}.pdf",
    log:
        "results/logs/plot_pareto/{unit}.log",
    wildcard_constraints:
        unit="flops|seconds",
    conda:
        "../envs/analysis.yaml"
    script:
        "../scripts/plot_pareto.py"


rule plot_frontier:
    input:
        scores="results/tables/scores.csv",
    output:
        png=report(
            "figures/frontier_{unit}.png",
            caption="../report/frontier.rst",
            category="Summary",
            labels=lambda wildcards: {"figure": FRONTIER_LABELS[wildcards.unit]},
        ),
        pdf="figures/frontier_{unit}.pdf",
    log:
        "results/logs/plot_frontier/{unit}.log",
    wildcard_constraints:
        unit="flops|seconds",
    conda:
        "../envs/analysis.yaml"
    script:
        "../scripts/plot_frontier.py"
