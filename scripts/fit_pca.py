import pandas as pd

from thinkcost.analysis.pca import observational_scaling
from thinkcost.logs import log_to

settings = snakemake.params.pca
with log_to(snakemake.log[0]):
    tables = observational_scaling(
        pd.read_csv(snakemake.input.scores),
        optimization=settings["optimization"],
        tasks=settings["tasks"],
        reference_family=settings["reference_family"],
        n_components=settings["n_components"],
        confidence=snakemake.params.confidence,
    )
    for name, table in tables.items():
        table.to_csv(snakemake.output[name], index=False)
