# Seconds of pandas/SciPy/matplotlib: run on the submit host rather than wait in a queue.
localrules:
    fit_family_scaling,
    fit_train_equivalent,
    fit_isoflop,


rule fit_family_scaling:
    input:
        scores="results/tables/scores.csv",
    output:
        fits="results/fits/family_scaling.csv",
    log:
        "results/logs/fit_family_scaling.log",
    benchmark:
        "results/benchmarks/fit_family_scaling.tsv"
    conda:
        "../envs/analysis.yaml"
    params:
        baseline=config["analysis"]["baseline"],
    script:
        "../scripts/fit_family_scaling.py"


rule fit_train_equivalent:
    input:
        scores="results/tables/scores.csv",
        fits="results/fits/family_scaling.csv",
    output:
        table="results/tables/train_equivalent.csv",
    log:
        "results/logs/fit_train_equivalent.log",
    benchmark:
        "results/benchmarks/fit_train_equivalent.tsv"
    conda:
        "../envs/analysis.yaml"
    params:
        analysis=config["analysis"],
    script:
        "../scripts/fit_train_equivalent.py"


rule fit_isoflop:
    input:
        scores="results/tables/scores.csv",
    output:
        fits="results/fits/isoflop.csv",
    log:
        "results/logs/fit_isoflop.log",
    benchmark:
        "results/benchmarks/fit_isoflop.tsv"
    conda:
        "../envs/analysis.yaml"
    script:
        "../scripts/fit_isoflop.py"
