import pandas as pd

from thinkcost.figures.common import save_figure
from thinkcost.figures.pca import plot_pca_compute
from thinkcost.logs import log_to

with log_to(snakemake.log[0]):
    figure = plot_pca_compute(
        pd.read_csv(snakemake.input.components), pd.read_csv(snakemake.input.family_fits)
    )
    save_figure(figure, [snakemake.output.png, snakemake.output.pdf])
