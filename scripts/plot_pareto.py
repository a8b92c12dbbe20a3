import pandas as pd

from thinkcost.logs import log_to
from thinkcost.plots import plot_pareto, save_figure

with log_to(snakemake.log[0]):
    # The full convention: under the paper's, direct scoring costs 0 FLOPs and has no place on a
    # log axis.
    figure = plot_pareto(
        pd.read_csv(snakemake.input.scores), x_col="inference_flops_per_request_full"
    )
    save_figure(figure, [snakemake.output.png, snakemake.output.pdf])
