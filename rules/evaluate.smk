rule evaluate:
    input:
        unpack(get_evaluate_input),
    output:
        results=f"{EVALUATE}/results.json",
        samples=f"{EVALUATE}/samples.jsonl",
        requests=f"{EVALUATE}/requests.jsonl",
        cost=f"{EVALUATE}/cost.json",
    params:
        cell=get_cell,
    threads: 2
    log:
        "results/logs/evaluate/{model}/{task}/{optimization}.log",
    benchmark:
        "results/benchmarks/evaluate/{model}/{task}/{optimization}.tsv"
    conda:
        "../envs/evaluate.yaml"
    script:
        "../scripts/evaluate.py"
