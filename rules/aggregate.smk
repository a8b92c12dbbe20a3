# Seconds of pandas/SciPy/matplotlib: run on the submit host rather than wait in a queue.
localrules:
    aggregate_scores,


rule aggregate_scores:
    input:
        unpack(get_aggregate_input),
    output:
        scores="results/tables/scores.csv",
    log:
        "results/logs/aggregate_scores.log",
    conda:
        "../envs/analysis.yaml"
    params:
        cells=get_table_cells(),
    script:
        "../scripts/aggregate_scores.py"
