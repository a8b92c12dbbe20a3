# thinkcost: when is an inference-time optimization worth more than extra training?
# The pipeline, in order: stage → evaluate → aggregate. See README.md and ../shared/DESIGN.md.
from snakemake.utils import min_version

from thinkcost.config import validate_config

min_version("9.0")


configfile: "config/config.yaml"


# Our own validator rather than snakemake.utils.validate: same schema and defaults, but its
# errors name the key at fault in one line, it refuses duplicate keys, and it checks what a
# schema cannot (undefined optimizations, unknown lm-eval tasks, missing paths).
validate_config(
    config, f"{workflow.basedir}/config/schema.yaml", configfiles=workflow.configfiles
)


include: "rules/common.smk"
include: "rules/stage.smk"
include: "rules/evaluate.smk"
include: "rules/aggregate.smk"


rule all:
    input:
        get_final_output(),
