# thinkcost: when is an inference-time optimization worth more than extra training?
# The pipeline, in order: stage → evaluate → aggregate → fit → plot. See README.md.
from snakemake.utils import min_version

from thinkcost.config import validate_config

min_version("9.0")


# A --configfile replaces the default experiment instead of being merged into it (Snakemake
# would otherwise add config/paper.yaml's models to the default model, task by task).
if not workflow.overwrite_configfiles:

    configfile: "config/config.yaml"


report: "report/workflow.rst"


# Our own validator rather than snakemake.utils.validate: same schema and defaults, but its
# errors name the key at fault in one line, it refuses duplicate keys, and it checks what a
# schema cannot (undefined optimizations, unknown lm-eval tasks, missing paths).
validate_config(
    config,
    f"{workflow.basedir}/config/schema.yaml",
    configfiles=workflow.configfiles,
    workflow_dir=workflow.basedir,
)


include: "rules/common.smk"
include: "rules/stage.smk"
include: "rules/evaluate.smk"
include: "rules/aggregate.smk"
include: "rules/fit.smk"
include: "rules/pca.smk"
include: "rules/plot.smk"


rule all:
    input:
        get_final_output(),
