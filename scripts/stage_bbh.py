from pathlib import Path

from thinkcost.config.tasks import stage_bbh_task
from thinkcost.logs import log_to

with log_to(snakemake.log[0]):
    stage_bbh_task(
        Path(snakemake.input.questions).parents[1],
        snakemake.wildcards.bbh_task,
        Path(snakemake.output.questions),
        Path(snakemake.output.exemplars),
    )
