from pathlib import Path

import torch

from thinkcost.config.spec import CellSpec
from thinkcost.evaluate.cell import evaluate_cell
from thinkcost.evaluate.outputs import CellOutputs
from thinkcost.logs import log_to

# The guard: the vllm engine starts its engine process with spawn, which re-imports this script.
if __name__ == "__main__":
    output = snakemake.output
    with log_to(snakemake.log[0]):
        torch.set_num_threads(snakemake.threads)
        evaluate_cell(
            CellSpec.from_params(snakemake.params.cell),
            CellOutputs(*map(Path, (output.results, output.samples, output.requests, output.cost))),
        )
