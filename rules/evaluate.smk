rule evaluate:
    input:
        unpack(get_evaluate_input),
    output:
        results=f"{EVALUATE}/results.json",
        samples=f"{EVALUATE}/samples.jsonl",
        requests=f"{EVALUATE}/requests.jsonl",
        cost=f"{EVALUATE}/cost.json",
    log:
        "results/logs/evaluate/{model}/{task}/{optimization}.log",
    benchmark:
        "results/benchmarks/evaluate/{model}/{task}/{optimization}.tsv"
    group:
        evaluate_group_directive()
    conda:
        evaluate_env_directive()
    threads: 2
    resources:
        mem_mb=get_evaluate_mem_mb,
        runtime=get_evaluate_runtime,
        gpu=get_evaluate_gpus,
    params:
        cell=get_cell,
    script:
        "../scripts/evaluate.py"
