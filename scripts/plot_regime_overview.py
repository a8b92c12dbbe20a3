import pandas as pd

from thinkcost.figures.common import save_figure
from thinkcost.figures.regime import plot_regime_overview
from thinkcost.logs import log_to

with log_to(snakemake.log[0]):
    figure = plot_regime_overview(
        pd.read_csv(snakemake.input.table),
        cost_unit=snakemake.wildcards.unit,
        models=snakemake.params.models,
    )
    save_figure(figure, [snakemake.output.png, snakemake.output.pdf])
