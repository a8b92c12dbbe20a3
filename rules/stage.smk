# Staging runs on the submit host, the only machine with hub and registry access on most
# clusters; every evaluation job afterwards reads local files with the hub offline.
localrules:
    stage_model,
    stage_bbh,
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
        source=get_model_source,
        out_dir=get_model_dir,
        download_dir="results/stage/downloads",
    script:
        "../scripts/stage_model.py"


# BIG-Bench Hard's questions and 3-shot CoT exemplars as lm-eval reads them (one JSON row each).
rule stage_bbh:
    input:
        unpack(get_bbh_sources),
    output:
        questions=f"{BBH_STAGED}.jsonl",
        exemplars=f"{BBH_STAGED}.fewshot.jsonl",
    log:
        "results/logs/stage_bbh/{bbh_task}.log",
    conda:
        "../envs/analysis.yaml"
    script:
        "../scripts/stage_bbh.py"


rule stage_hub_dataset:
    output:
        marker="results/stage/data/hub/{task}.json",
    log:
        "results/logs/stage_hub_dataset/{task}.log",
    conda:
        "../envs/evaluate.yaml"
    params:
        lm_eval_task=get_lm_eval_task,
        task_paths=config["evaluation"]["task_paths"],
    script:
        "../scripts/stage_hub_dataset.py"
