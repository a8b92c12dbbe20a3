from pathlib import Path

from thinkcost.logs import log_to
from thinkcost.tasks import extract_bigbench_tasks

with log_to(snakemake.log[0]):
    outputs = dict(zip(snakemake.params.tasks, map(Path, snakemake.output.tasks), strict=True))
    extract_bigbench_tasks(Path(snakemake.input.sdist), outputs)
