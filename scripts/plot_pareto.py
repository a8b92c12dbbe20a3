import pandas as pd

from thinkcost.figures.plots import pareto_cost_column, plot_pareto, save_figure
from thinkcost.logs import log_to

with log_to(snakemake.log[0]):
    scores = pd.read_csv(snakemake.input.scores)
    # FLOPs under a convention every row has, or the measured seconds per question.
    x_col = pareto_cost_column(scores, cost_unit=snakemake.params.cost_unit)
    figure = plot_pareto(scores, x_col=x_col)
    save_figure(figure, [snakemake.output.png, snakemake.output.pdf])
