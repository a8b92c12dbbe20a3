"""Rule aggregate_scores: every cell's results and cost records → results/tables/scores.csv."""

from thinkcost.aggregate import aggregate_scores
from thinkcost.logs import log_to

with log_to(snakemake.log[0]):
    scores = aggregate_scores(snakemake.params.cells, snakemake.config)
    scores.to_csv(snakemake.output.scores, index=False)
