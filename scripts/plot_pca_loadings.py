import pandas as pd

from thinkcost.figures.common import save_figure
from thinkcost.figures.pca import plot_pca_loadings
from thinkcost.logs import log_to

with log_to(snakemake.log[0]):
    figure = plot_pca_loadings(
        pd.read_csv(snakemake.input.loadings),
        pd.read_csv(snakemake.input.explained_variance),
        optimization=snakemake.params.optimization,
    )
    save_figure(figure, [snakemake.output.png, snakemake.output.pdf])
