import pandas as pd

from thinkcost.figures.plots import plot_regime, save_figure, select_row
from thinkcost.logs import log_to

with log_to(snakemake.log[0]):
    table = pd.read_csv(snakemake.input.table)
    row = select_row(
        table, model=snakemake.wildcards.model, optimization=snakemake.wildcards.optimization
    )
    figure = plot_regime(row, cost_unit=snakemake.params.cost_unit)
    save_figure(figure, [snakemake.output.png, snakemake.output.pdf])
