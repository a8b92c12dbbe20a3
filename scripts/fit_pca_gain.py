import pandas as pd

from thinkcost.analysis.pca import gain_fits, optimization_gains
from thinkcost.logs import log_to

with log_to(snakemake.log[0]):
    gains = optimization_gains(
        pd.read_csv(snakemake.input.scores),
        baseline=snakemake.params.baseline,
        components=pd.read_csv(snakemake.input.components),
    )
    gains.to_csv(snakemake.output.gains, index=False)
    gain_fits(gains, confidence=snakemake.params.confidence).to_csv(
        snakemake.output.fits, index=False
    )
