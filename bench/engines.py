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

    .venv/bin/python bench/engines.py                            # this machine's CPU, ~6 min
    .venv/bin/python bench/engines.py --device cuda --batch-size 128   # on a GPU

vLLM must be installed (`make install-vllm`: its CPU build). Run it on an idle machine: two
CPU-heavy processes on two cores slow each other many times over.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

import hybrid_throughput as common


def main() -> None:
    options = common.parse_arguments()
    os.chdir(common.REPO)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
    torch.set_num_threads(options.threads)
    settings = common.load_settings(options)
    common.stage_missing(settings)
    questions = common.questions_by_task(settings, options.limit)
    count = sum(len(q) for q in questions.values())
    print(
        f"{count} questions ({', '.join(f'{n} {len(q)}' for n, q in questions.items())}), "
        f"{common.OPTIMIZATION}, T = {settings.max_new_tokens}, greedy; {options.device}, "
        f"{options.dtype}, {torch.get_num_threads()} threads, batch {options.batch_size}"
    )
    hf, hf_engine, _ = common.run_thinkcost(settings, questions, options, "hf", "hf")
    del hf_engine
    vllm, vllm_engine, _ = common.run_thinkcost(
        settings, questions, options, "vllm", "vllm", max_length=settings.max_new_tokens + 1792
    )
    common.print_methods([hf, vllm])
    counters = vllm_engine.counters
    print(
        f"vllm: {counters.forward_passes} engine steps, {counters.forward_tokens} tokens through "
        f"the model, {counters.reused_tokens} prompt tokens from its prefix cache"
    )
    agreements = {
        name: common.compare(hf.tasks[name], vllm.tasks[name], task_questions)
        for name, task_questions in questions.items()
    }
    common.print_agreement(agreements)
    identical = all(
        a.same_rationale == a.same_choice == a.questions and a.within_tolerance
        for a in agreements.values()
    )
    print(f"vllm_over_hf={hf.seconds / vllm.seconds:.2f} identical={str(identical).lower()}")


if __name__ == "__main__":
    main()
