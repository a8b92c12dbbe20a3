from pathlib import Path

from thinkcost.logs import log_to
from thinkcost.tasks import BIGBENCH_REQUIREMENT, download_verified, find_sdist

with log_to(snakemake.log[0]):
    url, sha256 = find_sdist(*BIGBENCH_REQUIREMENT)
    download_verified(url, sha256, Path(snakemake.output.sdist))
