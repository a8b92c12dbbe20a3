import pandas as pd

from thinkcost.figures.common import save_figure
from thinkcost.figures.scaling import plot_improvement_vs_train_flops
from thinkcost.logs import log_to

with log_to(snakemake.log[0]):
    scores = pd.read_csv(snakemake.input.scores)
    figure = plot_improvement_vs_train_flops(scores, baseline=snakemake.params.baseline)
    save_figure(figure, [snakemake.output.png, snakemake.output.pdf])
