import pandas as pd

from thinkcost.logs import log_to
from thinkcost.plots import plot_pareto, save_figure

with log_to(snakemake.log[0]):
    save_figure(
        plot_pareto(pd.read_csv(snakemake.input.scores)),
        [snakemake.output.png, snakemake.output.pdf],
    )
