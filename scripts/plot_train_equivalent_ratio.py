import pandas as pd

from thinkcost.figures.common import save_figure
from thinkcost.figures.scaling import plot_train_equivalent_ratio
from thinkcost.logs import log_to

with log_to(snakemake.log[0]):
    figure = plot_train_equivalent_ratio(
        pd.read_csv(snakemake.input.table),
        pd.read_csv(snakemake.input.scores),
        baseline=snakemake.params.baseline,
    )
    save_figure(figure, [snakemake.output.png, snakemake.output.pdf])
