import pandas as pd

from thinkcost.logs import log_to
from thinkcost.pca_plots import plot_pca_compute
from thinkcost.plots import save_figure

with log_to(snakemake.log[0]):
    figure = plot_pca_compute(
        pd.read_csv(snakemake.input.components), pd.read_csv(snakemake.input.family_fits)
    )
    save_figure(figure, [snakemake.output.png, snakemake.output.pdf])
