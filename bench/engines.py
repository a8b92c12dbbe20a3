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
vLLM runs twice: eager (`evaluation.vllm.enforce_eager` unset on a CPU: the workflow's CPU
default, since compiling costs its load tens of seconds in every job) and compiled (vLLM's own
default, and ours on a GPU). The last line is the compiled engine's, the line before it
`vllm_eager_over_hf` the eager one's; a line between says from how many questions a cell
pays back the compile.

    .venv/bin/python -m bench.engines                            # this machine's CPU, ~8 min
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
    vllms = {}
    for label, eager in (("vllm eager", True), ("vllm compiled", False)):
        vllm, engine, _ = run_thinkcost(
            settings,
            questions,
            options,
            "vllm",
            label,
            max_length=settings.max_new_tokens + 1792,
            enforce_eager=eager,
        )
        vllms[label] = (vllm, engine.counters)
        del engine
    print_methods([hf, *(vllm for vllm, _ in vllms.values())])
    lines = []
    for label, (vllm, counters) in vllms.items():
        print(
            f"{label}: {counters.forward_passes} engine steps, {counters.forward_tokens} tokens "
            f"through the model, {counters.reused_tokens} prompt tokens from its prefix cache; "
            f"scoring computed {counters.scoring_tokens} tokens, {counters.rescored_choices} "
            "choices had rows found stale in the cache (read again as generated positions); "
            f"scoring over hf scoring: {vllm.scoring_seconds / hf.scoring_seconds:.2f} (target 2)"
        )
        agreements = compare_tasks(hf, vllm, questions)
        print_agreement(agreements)
        identical = str(all_identical(agreements)).lower()
        name = "vllm_eager_over_hf" if label == "vllm eager" else "vllm_over_hf"
        lines.append(f"{name}={hf.seconds / vllm.seconds:.2f} identical={identical}")
    (eager, _), (compiled, _) = vllms.values()
    compile_seconds = compiled.load_seconds - eager.load_seconds
    saved = (eager.seconds - compiled.seconds) / eager.questions
    if saved > 0:
        print(
            f"compiling took {compile_seconds:.0f} s more to load and saved {saved:.2f} s a "
            f"question: it pays in a cell of more than {compile_seconds / saved:.0f} questions"
        )
    print("\n".join(lines))


if __name__ == "__main__":
    main()
