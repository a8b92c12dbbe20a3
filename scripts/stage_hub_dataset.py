from thinkcost.logs import log_to
from thinkcost.staging import stage_lm_eval_task

with log_to(snakemake.log[0]):
    stage_lm_eval_task(
        snakemake.params.lm_eval_task, snakemake.params.task_paths, snakemake.output.marker
    )
