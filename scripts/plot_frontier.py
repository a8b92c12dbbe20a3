import pandas as pd

from thinkcost.figures.common import save_figure
from thinkcost.figures.frontier import plot_frontier
from thinkcost.logs import log_to

with log_to(snakemake.log[0]):
    scores = pd.read_csv(snakemake.input.scores)
    # The cost axis is chosen as for the Pareto figure (pareto_cost_column), inside plot_frontier.
    figure = plot_frontier(scores, cost_unit=snakemake.wildcards.unit)
    save_figure(figure, [snakemake.output.png, snakemake.output.pdf])
