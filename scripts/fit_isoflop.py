import pandas as pd

from thinkcost.analysis.isoflop import fit_isoflop
from thinkcost.logs import log_to

with log_to(snakemake.log[0]):
    fit_isoflop(pd.read_csv(snakemake.input.scores)).to_csv(snakemake.output.fits, index=False)
