rule aggregate_scores:
    input:
        results=[cell["results"] for cell in get_table_cells()],
        cost=[cell["cost"] for cell in get_table_cells()],
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
