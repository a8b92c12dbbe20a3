import pandas as pd

from thinkcost.analysis.train_equivalent import train_equivalent_table
from thinkcost.logs import log_to

analysis = snakemake.params.analysis
with log_to(snakemake.log[0]):
    table = train_equivalent_table(
        pd.read_csv(snakemake.input.scores),
        pd.read_csv(snakemake.input.fits),
        baseline=analysis["baseline"],
        extrapolation_factor=analysis["extrapolation_factor"],
        confidence=analysis["confidence"],
        interval=analysis["interval"],
        training_throughput=analysis["training_throughput"],
    )
    table.to_csv(snakemake.output.table, index=False)
