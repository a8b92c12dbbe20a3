"""The two engines side by side: hf (transformers, ours) and vllm (vLLM's offline engine).

Both run the `cot` cells' method (the `Hybrid` strategy: a greedy rationale of up to T tokens,
"The answer is:", every choice scored) on the same questions of the default tasks, one call per
task as the workflow's cells make it, each engine loaded once. Printed, all from one run: load,
generation and scoring seconds, generated tokens per second and questions per second per
engine; per task, identical rationales, identical chosen answers and the largest
log-likelihood difference; and a last line

    vllm_over_hf=<x> identical=<true|false>

(the hf engine's generation + scoring seconds over vLLM's, model loads excluded; identical =
every rationale and every chosen answer equal, log-likelihoods within abs 1e-3 or rel 1e-4).

    .venv/bin/python -m bench.engines                            # this machine's CPU, ~6 min
    .venv/bin/python -m bench.engines --device cuda --batch-size 128   # on a GPU

vLLM must be installed (`make install-vllm`: its CPU build). Run it on an idle machine: two
CPU-heavy processes on two cores slow each other many times over.
"""

from __future__ import annotations

import torch

from bench.common import (
    DEFAULT_LIMIT,
    OPTIMIZATION,
    argument_parser,
    describe_questions,
    staged_questions,
)
from bench.methods import (
    all_identical,
    compare_tasks,
    print_agreement,
    print_methods,
    run_thinkcost,
)


def main() -> None:
    options = argument_parser(__doc__, DEFAULT_LIMIT, None).parse_args()
    settings, questions = staged_questions(options)
    print(
        f"{describe_questions(questions)}, "
        f"{OPTIMIZATION}, T = {settings.max_new_tokens}, greedy; {options.device}, "
        f"{options.dtype}, {torch.get_num_threads()} threads, batch {options.batch_size}"
    )
    hf, hf_engine, _ = run_thinkcost(settings, questions, options, "hf", "hf")
    del hf_engine
    vllm, vllm_engine, _ = run_thinkcost(
        settings, questions, options, "vllm", "vllm", max_length=settings.max_new_tokens + 1792
    )
    print_methods([hf, vllm])
    counters = vllm_engine.counters
    print(
        f"vllm: {counters.forward_passes} engine steps, {counters.forward_tokens} tokens through "
        f"the model, {counters.reused_tokens} prompt tokens from its prefix cache; scoring "
        f"computed {counters.scoring_tokens} tokens, {counters.rescored_choices} choices again "
        "(their rows found stale in the cache)"
    )
    ratio = vllm.scoring_seconds / hf.scoring_seconds
    print(f"vllm scoring over hf scoring: {ratio:.2f} (target 2)")
    agreements = compare_tasks(hf, vllm, questions)
    print_agreement(agreements)
    identical = all_identical(agreements)
    print(f"vllm_over_hf={hf.seconds / vllm.seconds:.2f} identical={str(identical).lower()}")


if __name__ == "__main__":
    main()
