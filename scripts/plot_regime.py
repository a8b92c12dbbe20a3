import pandas as pd

from thinkcost.figures.common import save_figure, select_row
from thinkcost.figures.regime import plot_regime
from thinkcost.logs import log_to

# One job draws every regime plot of one model, in the order of its output lists.
with log_to(snakemake.log[0]):
    table = pd.read_csv(snakemake.input.table)
    model = snakemake.wildcards.model
    figures = zip(
        snakemake.params.optimizations, snakemake.output.png, snakemake.output.pdf, strict=True
    )
    for optimization, png, pdf in figures:
        row = select_row(table, model=model, optimization=optimization)
        save_figure(plot_regime(row, cost_unit=snakemake.params.cost_unit), [png, pdf])
