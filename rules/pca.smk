# Observational scaling (the paper's experiment 1, after Ruan et al.): a PCA of the model × task
# scores of one optimization puts every family on one capability axis, PC1. Seconds of
# scikit-learn and statsmodels: run on the submit host.
localrules:
    fit_pca,
    fit_pca_gain,
    plot_pca_loadings,
    plot_pca_compute,
    plot_pca_gain,


rule fit_pca:
    input:
        scores="results/tables/scores.csv",
    output:
        components="results/fits/pca_components.csv",
        loadings="results/fits/pca_loadings.csv",
        explained_variance="results/fits/pca_explained_variance.csv",
        dropped="results/fits/pca_dropped.csv",
        family_fits="results/fits/pca_family_fits.csv",
    log:
        "results/logs/fit_pca.log",
    conda:
        "../envs/analysis.yaml"
    params:
        pca=get_pca_settings(),
        confidence=config["analysis"]["confidence"],
    script:
        "../scripts/fit_pca.py"


rule fit_pca_gain:
    input:
        scores="results/tables/scores.csv",
        components="results/fits/pca_components.csv",
    output:
        gains="results/fits/pca_gains.csv",
        fits="results/fits/pca_gain_fits.csv",
    log:
        "results/logs/fit_pca_gain.log",
    conda:
        "../envs/analysis.yaml"
    params:
        baseline=config["analysis"]["baseline"],
        confidence=config["analysis"]["confidence"],
    script:
        "../scripts/fit_pca_gain.py"


rule plot_pca_loadings:
    input:
        loadings="results/fits/pca_loadings.csv",
        explained_variance="results/fits/pca_explained_variance.csv",
    output:
        png=report(
            "figures/pca_loadings.png",
            caption="../report/pca_loadings.rst",
            category="Observational scaling",
            labels={"figure": "PCA loadings"},
        ),
        pdf="figures/pca_loadings.pdf",
    log:
        "results/logs/plot_pca_loadings.log",
    conda:
        "../envs/analysis.yaml"
    params:
        optimization=get_pca_settings()["optimization"],
    script:
        "../scripts/plot_pca_loadings.py"


rule plot_pca_compute:
    input:
        components="results/fits/pca_components.csv",
        family_fits="results/fits/pca_family_fits.csv",
    output:
        png=report(
            "figures/pca_compute.png",
            caption="../report/pca_compute.rst",
            category="Observational scaling",
            labels={"figure": "PC1 vs training FLOPs"},
        ),
        pdf="figures/pca_compute.pdf",
    log:
        "results/logs/plot_pca_compute.log",
    conda:
        "../envs/analysis.yaml"
    script:
        "../scripts/plot_pca_compute.py"


rule plot_pca_gain:
    input:
        gains="results/fits/pca_gains.csv",
    output:
        png=report(
            "figures/pca_gain.png",
            caption="../report/pca_gain.rst",
            category="Observational scaling",
            labels={"figure": "gain vs PC1"},
        ),
        pdf="figures/pca_gain.pdf",
    log:
        "results/logs/plot_pca_gain.log",
    conda:
        "../envs/analysis.yaml"
    params:
        baseline=config["analysis"]["baseline"],
        confidence=config["analysis"]["confidence"],
    script:
        "../scripts/plot_pca_gain.py"
