import pandas as pd

from thinkcost.analysis.family import fit_family_scaling
from thinkcost.logs import log_to

with log_to(snakemake.log[0]):
    scores = pd.read_csv(snakemake.input.scores)
    fits = fit_family_scaling(scores, baseline=snakemake.params.baseline)
    fits.to_csv(snakemake.output.fits, index=False)
