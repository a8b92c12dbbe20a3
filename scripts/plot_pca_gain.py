import pandas as pd

from thinkcost.figures.common import save_figure
from thinkcost.figures.pca import plot_pca_gain
from thinkcost.logs import log_to

with log_to(snakemake.log[0]):
    figure = plot_pca_gain(
        pd.read_csv(snakemake.input.gains),
        baseline=snakemake.params.baseline,
        confidence=snakemake.params.confidence,
    )
    save_figure(figure, [snakemake.output.png, snakemake.output.pdf])
