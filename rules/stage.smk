# Staging runs on the submit host, the only machine with hub and registry access on most
# clusters; every evaluation job afterwards reads local files with the hub offline.
localrules:
    stage_model,
    download_bigbench,
    stage_bigbench,
    stage_hub_dataset,


rule stage_model:
    output:
        manifest="results/stage/models/{model}/manifest.json",
    log:
        "results/logs/stage_model/{model}.log",
    benchmark:
        "results/benchmarks/stage_model/{model}.tsv"
    conda:
        "../envs/evaluate.yaml"
    params:
        source=lambda wildcards: config["models"][wildcards.model]["source"],
        out_dir=lambda wildcards: get_model_dir(wildcards.model),
        download_dir="results/stage/downloads",
    script:
        "../scripts/stage_model.py"


rule download_bigbench:
    output:
        sdist=BIGBENCH_SDIST,
    log:
        "results/logs/download_bigbench.log",
    conda:
        "../envs/analysis.yaml"
    script:
        "../scripts/download_bigbench.py"


rule stage_bigbench:
    input:
        sdist=BIGBENCH_SDIST,
    output:
        tasks=get_bigbench_outputs(),
    log:
        "results/logs/stage_bigbench.log",
    conda:
        "../envs/analysis.yaml"
    params:
        tasks=[
            task["data"]["bigbench"]
            for task in config["tasks"].values()
            if "bigbench" in task.get("data", {})
        ],
    script:
        "../scripts/stage_bigbench.py"


rule stage_hub_dataset:
    output:
        marker="results/stage/data/hub/{task}.json",
    log:
        "results/logs/stage_hub_dataset/{task}.log",
    conda:
        "../envs/evaluate.yaml"
    params:
        lm_eval_task=lambda wildcards: lm_eval_task(config, wildcards.task),
        task_paths=config["evaluation"]["task_paths"],
    script:
        "../scripts/stage_hub_dataset.py"
