import pandas as pd

from thinkcost.logs import log_to
from thinkcost.pca_plots import plot_pca_loadings
from thinkcost.plots import save_figure

with log_to(snakemake.log[0]):
    figure = plot_pca_loadings(
        pd.read_csv(snakemake.input.loadings),
        pd.read_csv(snakemake.input.explained_variance),
        optimization=snakemake.params.optimization,
    )
    save_figure(figure, [snakemake.output.png, snakemake.output.pdf])
