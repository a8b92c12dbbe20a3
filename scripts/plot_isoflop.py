import pandas as pd

from thinkcost.figures.common import save_figure
from thinkcost.figures.scaling import plot_isoflop
from thinkcost.logs import log_to

with log_to(snakemake.log[0]):
    figure = plot_isoflop(pd.read_csv(snakemake.input.scores), pd.read_csv(snakemake.input.fits))
    save_figure(figure, [snakemake.output.png, snakemake.output.pdf])
