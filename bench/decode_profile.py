"""Profile thinkcost's side of bench.hybrid_throughput: the hf engine under the `Hybrid`
strategy on the same questions, built the same way, without the paper's side.

    .venv/bin/python -m bench.decode_profile --tasks navigate date_understanding --limit 8 \\
        --max-new-tokens 256 [--profile cprofile|torch] [--repeats 3]

Prints per run the engine's counters (prefill, decode, scoring seconds), and with --profile the
top functions (cProfile, cumulative and own time) or operators (torch.profiler).
With --dump FILE it writes every rationale and choice log-likelihood as JSON, to compare runs.
"""

from __future__ import annotations

import cProfile
import json
import pstats
import time
from pathlib import Path

from bench.common import argument_parser, prepare, questions_by_task
from bench.methods import run_thinkcost


def main() -> None:
    parser = argument_parser(__doc__, 8, 256)
    parser.add_argument("--profile", choices=["none", "cprofile", "torch"], default="none")
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--dump", help="write rationales and log-likelihoods to this JSON file")
    options = parser.parse_args()
    settings = prepare(options)
    questions = questions_by_task(settings, options.limit)
    for repeat in range(options.repeats):
        started = time.perf_counter()
        if options.profile == "cprofile":
            profiler = cProfile.Profile()
            profiler.enable()
            ours, engine, answer_seconds = run_thinkcost(settings, questions, options)
            profiler.disable()
            stats = pstats.Stats(profiler).strip_dirs()
            stats.sort_stats("cumulative").print_stats(45)
            stats.sort_stats("tottime").print_stats(30)
        elif options.profile == "torch":
            from torch.profiler import ProfilerActivity, profile

            with profile(activities=[ProfilerActivity.CPU]) as profiler:
                ours, engine, answer_seconds = run_thinkcost(settings, questions, options)
            print(profiler.key_averages().table(sort_by="self_cpu_time_total", row_limit=30))
        else:
            ours, engine, answer_seconds = run_thinkcost(settings, questions, options)
        c = engine.counters
        print(
            f"run {repeat}: wall {time.perf_counter() - started:.2f} s, answer {answer_seconds:.2f}"
            f" | prefill {c.prefill_seconds:.2f} | decode {c.decode_seconds:.2f} | scoring "
            f"{c.scoring_seconds:.2f} | passes {c.forward_passes} decode tokens "
            f"{c.decode_tokens} generated {c.generated_tokens} drafts "
            f"{c.accepted_draft_tokens}/{c.draft_tokens}",
            flush=True,
        )
        if options.dump:
            Path(options.dump).write_text(
                json.dumps(
                    {
                        task: {"rationales": r.rationales, "logliks": r.logliks}
                        for task, r in ours.tasks.items()
                    },
                    indent=1,
                )
            )


if __name__ == "__main__":
    main()
