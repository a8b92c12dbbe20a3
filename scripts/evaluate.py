import torch

from thinkcost.evaluate.cell import evaluate_cell
from thinkcost.logs import log_to

# The guard: the vllm engine starts its engine process with spawn, which re-imports this script.
if __name__ == "__main__":
    cell = snakemake.params.cell
    with log_to(snakemake.log[0]):
        torch.set_num_threads(snakemake.threads)
        evaluate_cell(
            model_dir=cell["model_dir"],
            model_dtype=cell["model_dtype"],
            task=cell["lm_eval_task"],
            metric=cell["metric"],
            params=cell["params"],
            knobs=cell["knobs"],
            evaluation=cell["evaluation"],
            limit=cell["limit"],
            num_fewshot=cell["num_fewshot"],
            cell=cell["cell"],
            results_path=snakemake.output.results,
            samples_path=snakemake.output.samples,
            requests_path=snakemake.output.requests,
            cost_path=snakemake.output.cost,
            scorer=cell.get("scorer"),
            assistant=cell.get("assistant"),
        )
