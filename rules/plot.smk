# Seconds of pandas/SciPy/matplotlib: run on the submit host rather than wait in a queue.
localrules:
    plot_regime,
    plot_regime_overview,
    plot_improvement,
    plot_isoflop,
    plot_train_equivalent_ratio,
    plot_pareto,
    plot_pareto_seconds,
    plot_frontier,
    plot_frontier_seconds,


rule plot_regime:
    input:
        table="results/tables/train_equivalent.csv",
    output:
        png=report(
            "figures/regime/{model}.{optimization}.png",
            caption="../report/regime.rst",
            category="Regime plots",
            labels={"model": "{model}", "optimization": "{optimization}"},
        ),
        pdf="figures/regime/{model}.{optimization}.pdf",
    log:
        "results/logs/plot_regime/{model}.{optimization}.log",
    conda:
        "../envs/analysis.yaml"
    params:
        cost_unit=config["analysis"]["cost_unit"],
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
            "figures/pareto.png",
            caption="../report/pareto.rst",
            category="Summary",
            labels={"figure": "score vs inference FLOPs"},
        ),
        pdf="figures/pareto.pdf",
    log:
        "results/logs/plot_pareto.log",
    conda:
        "../envs/analysis.yaml"
    params:
        cost_unit="flops",
    script:
        "../scripts/plot_pareto.py"


rule plot_pareto_seconds:
    input:
        scores="results/tables/scores.csv",
    output:
        png=report(
            "figures/pareto_seconds.png",
            caption="../report/pareto_seconds.rst",
            category="Summary",
            labels={"figure": "score vs seconds per question"},
        ),
        pdf="figures/pareto_seconds.pdf",
    log:
        "results/logs/plot_pareto_seconds.log",
    conda:
        "../envs/analysis.yaml"
    params:
        cost_unit="seconds",
    script:
        "../scripts/plot_pareto.py"


rule plot_frontier:
    input:
        scores="results/tables/scores.csv",
    output:
        png=report(
            "figures/frontier.png",
            caption="../report/frontier.rst",
            category="Summary",
            labels={"figure": "inference scaling frontier"},
        ),
        pdf="figures/frontier.pdf",
    log:
        "results/logs/plot_frontier.log",
    conda:
        "../envs/analysis.yaml"
    params:
        cost_unit="flops",
    script:
        "../scripts/plot_frontier.py"


rule plot_frontier_seconds:
    input:
        scores="results/tables/scores.csv",
    output:
        png=report(
            "figures/frontier_seconds.png",
            caption="../report/frontier_seconds.rst",
            category="Summary",
            labels={"figure": "inference scaling frontier in seconds"},
        ),
        pdf="figures/frontier_seconds.pdf",
    log:
        "results/logs/plot_frontier_seconds.log",
    conda:
        "../envs/analysis.yaml"
    params:
        cost_unit="seconds",
    script:
        "../scripts/plot_frontier.py"
