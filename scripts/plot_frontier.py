import pandas as pd

from thinkcost.figures.plots import plot_frontier, save_figure
from thinkcost.logs import log_to

with log_to(snakemake.log[0]):
    scores = pd.read_csv(snakemake.input.scores)
    # The cost axis is chosen as for the Pareto figure (pareto_cost_column), inside plot_frontier.
    figure = plot_frontier(scores, cost_unit=snakemake.params.cost_unit)
    save_figure(figure, [snakemake.output.png, snakemake.output.pdf])
