import pandas as pd

from thinkcost.figures.common import save_figure
from thinkcost.figures.cost import plot_pareto
from thinkcost.logs import log_to

with log_to(snakemake.log[0]):
    scores = pd.read_csv(snakemake.input.scores)
    # FLOPs under a convention every row has, or the measured seconds per question.
    figure = plot_pareto(scores, cost_unit=snakemake.wildcards.unit)
    save_figure(figure, [snakemake.output.png, snakemake.output.pdf])
