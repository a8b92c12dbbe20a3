from thinkcost.logs import log_to
from thinkcost.staging import stage_model

with log_to(snakemake.log[0]):
    stage_model(snakemake.params.source, snakemake.params.out_dir, snakemake.params.download_dir)
