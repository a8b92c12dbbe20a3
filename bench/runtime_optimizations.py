"""Runtime optimizations side by side: precision, int8, torch.compile, prompt-lookup drafts.

Every variant is a fresh `hf` engine answering the same questions (the default config's BBH
tasks, formatted by lm-eval as the workflow's cells format them, as bench/common.py
loads them) under the `cot` optimization: the question, "Let's think step by step.", a greedy
rationale of up to T new tokens that stops at "Q:", "Question:" or the model's own "The answer
is", then "The answer is:" and every choice scored by log-likelihood (the `Hybrid` strategy, one
call per task as the workflow's per-task cells make it, the prefix cache cleared per task).

Variants (engine options; everything else as the baseline):

- **baseline**: float32, not compiled ("eager"), transformers' default attention (sdpa), no
  prompt-lookup drafts (`draft_tokens=0`);
- **lookup**: float32 + prompt-lookup drafts (`draft_tokens=4`): greedy decoding verifies up to 4
  tokens copied from the prompt or the rationale per step; acceptance rate = accepted ÷
  proposed draft tokens (the engine's counters);
- **bf16**, **fp16** (CUDA): the weights and the arithmetic in half precision;
- **int8**: on a CPU torch's dynamic quantization of every linear layer (int8 weights, activations
  quantized on the fly); on CUDA bitsandbytes' 8-bit loader; **int4** (CUDA): bitsandbytes' 4-bit;
- **compile**: `torch.compile` of the forward the engine calls. Run twice over the same questions:
  the first pass ("compile 1st") pays the graph compilations, the second ("compile") is the
  steady state and is the one compared; the compiling calls' seconds are reported apart
  ("compile warm-up s", `engine.runtime()`), the tiny warm-up generation after the load included;
- **attn-eager** (CUDA): transformers' eager attention against the baseline's sdpa;
  **flash-attn2** (CUDA): FlashAttention-2, in bfloat16 (it takes no float32), so compare it
  with bf16.

A variant the machine cannot run (no bitsandbytes, no flash-attn, a dtype the device refuses) is
skipped with the reason printed; one that fails while running prints its traceback and the others
go on.

Printed per variant: the load seconds (the model load + a 2-token warm-up generation, excluded
from everything else), the generation and scoring wall seconds (device synchronized), the useful
generated tokens (each rationale up to its stop) and generated tokens per second, seconds per
question ((generation + scoring) ÷ questions), accuracy (lm-eval's own `acc`: the task's
`process_results` on the chosen answers' log-likelihoods against `doc_to_target`), the model's
resident bytes (`engine.runtime()["model_memory_bytes"]`: weights and buffers as stored, int8
counting one byte), the load memory and the peak memory, and the acceptance rate. Memory: on CUDA
the allocator's bytes after the load and warm-up minus before ("alloc MiB") and
`torch.cuda.max_memory_allocated` (reset before each variant's load: weights, activations,
key/value and prefix caches; "peak MiB"); on a CPU the resident set after the load and warm-up
minus before ("RSS MiB"; "anon MiB" the anonymous part of it: a float32 checkpoint's weights are
its safetensors file mapped, resident once a forward has read them, while converted or quantized
weights are anonymous copies) and the resident set's high-water mark while the variant ran
minus the resident set before its load ("peak RSS", the mark reset through
/proc/self/clear_refs). A throwaway baseline engine is loaded, warmed up and dropped first, so
one-time imports, library pages and the CUDA context are charged to no variant; between
variants the engine is deleted, garbage collected and freed memory returned (malloc_trim,
`torch.cuda.empty_cache`), yet on a CPU an allocator may still hand a variant memory an earlier
one freed without growing the resident set: the CPU figures are approximate, the model's
resident bytes are as `engine.runtime()` counts them.

Then per variant its ratios to the baseline: speedup (the baseline's generation + scoring
seconds over the variant's), generated tokens/s, model bytes and peak memory; how many chosen
answers and rationales equal the baseline's; the accuracy difference; and a last line

    best_speedup=<x>(<variant>) int8_memory_ratio=<y> accuracy_delta_int8=<z>

(x: the largest speedup; y: int8's model bytes over the baseline's; z: int8's accuracy minus the
baseline's, as a fraction; "n/a" where int8 did not run).

    .venv/bin/python -m bench.runtime_optimizations                  # the measurement, < 10 min
    .venv/bin/python -m bench.runtime_optimizations --limit 2 --max-new-tokens 16 --threads 1 \\
        --tasks navigate --variants baseline lookup int8              # a smoke test
    .venv/bin/python -m bench.runtime_optimizations --device cuda --batch-size 128   # on a GPU

Run it on an idle machine: two CPU-heavy processes on two cores slow each other many times over.
The staged model and task data are read from results/stage/ (staged first when missing).

Measured once on an NVIDIA H100 80GB (torch 2.11.0+cu130, transformers 5.19.0, lm-eval 0.4.13;
`--device cuda --batch-size 128 --limit 24`: 96 questions, T = 128; logs in bench/results-gpu/,
ignored by git): baseline 15.24 s (14.23 generating, 756 generated tokens/s, 0.159 s a question,
acc 0.396, model 513 MiB, peak 2138 MiB); lookup 7.35 s, speedup 2.08, acceptance 0.501, all 96
rationales identical to the baseline's; bf16 43.14 s (0.35×, acc 0.385, 54/96 rationales and
83/96 answers as the baseline's, model 257 MiB, peak 0.53×); fp16 36.98 s (0.41×, acc 0.406);
attn-eager 18.79 s (0.81×, outputs identical); flash-attn2, int8 and int4 skipped (flash_attn
and bitsandbytes not installed there); `best_speedup=2.08(lookup) int8_memory_ratio=n/a
accuracy_delta_int8=n/a`. Half precision is ~3× slower than float32 there, as in
bench/hybrid_throughput.py's bf16 run (decode is bound by per-step work, not the weights). In an
earlier call compile's first pass had not finished after about 4 minutes and was cut off.
Measured once on the 2-core development CPU (defaults: 32 questions, T = 128, 2 threads, torch
2.13.0+cpu; 8 min 30 s in all): baseline 41.23 s (91.9 generated tokens/s, acc 0.406, weights
513 MiB); lookup 1.40× (acceptance 0.463, all 32 rationales identical); bf16 2.00× (acc 0.438,
257 MiB, 28/32 answers as the baseline's); int8 3.22× (acc 0.312, 236 MiB, 16/32 answers);
compile 1.03× in the steady state after 307.84 s of warm-up (5 graphs); `best_speedup=3.22(int8)
int8_memory_ratio=0.46 accuracy_delta_int8=-0.094`.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import gc
import importlib.util
import math
import traceback
from dataclasses import dataclass, field

import torch

from bench import common
from thinkcost.engines import ScoreRequest
from thinkcost.engines.hf.runtime import RuntimeSettingError
from thinkcost.inference.questions import Question
from thinkcost.inference.strategies import Hybrid

DEFAULT_LIMIT = 8  # questions per task: 32 questions
DEFAULT_MAX_NEW_TOKENS = 128
DRAFT_TOKENS = 4
MIB = 1 << 20


@dataclass(frozen=True)
class Variant:
    name: str
    options: dict  # engine options over the baseline's
    needs: str | None = None  # a module it needs on CUDA (bitsandbytes, flash_attn)


BASELINE = Variant("baseline", {})
VARIANTS = {
    variant.name: variant
    for variant in (
        BASELINE,
        Variant("lookup", {"draft_tokens": DRAFT_TOKENS}),
        Variant("bf16", {"dtype": "bfloat16"}),
        Variant("fp16", {"dtype": "float16"}),
        Variant("int8", {"quantization": "int8"}, needs="bitsandbytes"),
        Variant("int4", {"quantization": "int4"}, needs="bitsandbytes"),
        Variant("compile", {"compile": True}),
        Variant("attn-eager", {"attn_implementation": "eager"}),
        Variant(
            "flash-attn2",
            {"attn_implementation": "flash_attention_2", "dtype": "bfloat16"},
            needs="flash_attn",
        ),
    )
}
DEFAULT_VARIANTS = {
    "cpu": ("baseline", "lookup", "bf16", "int8", "compile"),
    "cuda": (
        "baseline",
        "lookup",
        "bf16",
        "fp16",
        "int8",
        "int4",
        "compile",
        "attn-eager",
        "flash-attn2",
    ),
}
ENGINE_DEFAULTS = {"dtype": "float32", "draft_tokens": 0, "compile": False}


def parse_arguments() -> argparse.Namespace:
    # The dtype is each variant's own.
    parser = common.argument_parser(__doc__, DEFAULT_LIMIT, DEFAULT_MAX_NEW_TOKENS, dtype=False)
    parser.add_argument(
        "--variants",
        nargs="+",
        choices=list(VARIANTS),
        help="variants to run (the baseline always runs first); default on a CPU: "
        f"{' '.join(DEFAULT_VARIANTS['cpu'])}; on CUDA: {' '.join(DEFAULT_VARIANTS['cuda'])}",
    )
    return parser.parse_args()


# ---------------------------------------------------------------------------- questions


@dataclass
class Task:
    """One task's questions, its lm-eval task object and documents (for `acc`)."""

    questions: list[Question]
    docs: list[dict]
    lm_eval_task: object

    def accuracy(self, index: int, scores: list[tuple[float, bool]]) -> float:
        """lm-eval's `acc` of one question: its `process_results` against `doc_to_target`."""
        return float(self.lm_eval_task.process_results(self.docs[index], scores)["acc"])


def load_task(task: str, settings: common.Settings, limit: int | None) -> Task:
    """The task's first `limit` questions as the other benchmarks load them, with their
    documents."""
    loaded, documents = common.lm_eval_documents(task, settings, limit)
    return Task([q for q, _ in documents], [doc for _, doc in documents], loaded)


# ---------------------------------------------------------------------------- memory


def proc_status(field_name: str) -> int | None:
    """A /proc/self/status memory field (VmRSS, VmHWM) in bytes; None off Linux."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith(field_name + ":"):
                    return int(line.split()[1]) * 1024  # kB
    except OSError:
        pass
    return None


def release_memory(device: str) -> None:
    gc.collect()
    if device.startswith("cuda"):
        torch.cuda.empty_cache()
    # glibc keeps freed memory mapped: hand it back, so the next variant's RSS is its own.
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").malloc_trim(0)


def reset_peak(device: str) -> bool:
    """Reset the peak-memory mark: CUDA's allocator statistics, or the process's resident-set
    high-water mark (writing 5 to /proc/self/clear_refs). False where it cannot be reset."""
    if device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
        return True
    try:
        with open("/proc/self/clear_refs", "w") as clear_refs:
            clear_refs.write("5")
        return True
    except OSError:
        return False


def memory_now(device: str) -> int | None:
    if device.startswith("cuda"):
        return int(torch.cuda.memory_allocated())
    return proc_status("VmRSS")


def difference(after: int | None, before: int | None) -> int | None:
    return after - before if after is not None and before is not None else None


def memory_peak(device: str) -> int | None:
    if device.startswith("cuda"):
        return int(torch.cuda.max_memory_allocated())
    return proc_status("VmHWM")


# ---------------------------------------------------------------------------- results


@dataclass
class Result(common.Timings):
    """One variant (or one pass of it) over every question."""

    dtype: str = ""
    attention: str = ""
    correct: float = 0.0
    model_bytes: int = 0
    resident_bytes: int | None = None  # memory after the load and warm-up minus before
    anon_bytes: int | None = None  # CPU: of which anonymous (not the checkpoint's file pages)
    peak_bytes: int | None = None  # peak while the variant ran minus before its load
    draft_tokens: int = 0
    accepted_draft_tokens: int = 0
    compile_warmup_seconds: float | None = None
    compiled_graphs: int | None = None
    compiled_calls: int | None = None
    rationales: dict[str, str] = field(default_factory=dict)
    chosen: dict[str, int] = field(default_factory=dict)

    @property
    def accuracy(self) -> float:
        return self.correct / self.questions if self.questions else math.nan

    @property
    def acceptance(self) -> float | None:
        return self.accepted_draft_tokens / self.draft_tokens if self.draft_tokens else None


def answer_all(
    engine,
    strategy: Hybrid,
    tasks: dict[str, Task],
    device: str,
    result: Result,
) -> None:
    """One pass over every task's questions, timed and counted into `result`."""
    timed = common.TimedEngine(engine, device)
    drafted = engine.counters.draft_tokens
    accepted = engine.counters.accepted_draft_tokens
    answer_seconds = 0.0
    for name, task in tasks.items():
        engine.clear_prefix_cache()  # a cell starts with an empty cache
        with common.stopwatch(device) as seconds:
            answers = strategy.answer(timed, task.questions)
        answer_seconds += seconds[0]
        if engine.compiled is not None:  # compiling takes minutes: show where it stands
            print(
                f"  {result.name}: {name} in {seconds[0]:.2f} s; graphs compiled so far "
                f"{engine.compiled.graphs} in {engine.compiled.warmup_seconds:.2f} s",
                flush=True,
            )
        for index, (question, answer) in enumerate(zip(task.questions, answers, strict=True)):
            result.rationales[question.key] = answer.generations[0].text
            result.chosen[question.key] = common.argmax([ll for ll, _ in answer.scores])
            result.correct += task.accuracy(index, answer.scores)
        result.generated_tokens += sum(g.tokens for a in answers for g in a.generations)
        result.questions += len(task.questions)
    result.generation_seconds = timed.generation_seconds
    # The strategy's own work between the engine calls counts with scoring.
    result.scoring_seconds = answer_seconds - timed.generation_seconds
    result.draft_tokens = engine.counters.draft_tokens - drafted
    result.accepted_draft_tokens = engine.counters.accepted_draft_tokens - accepted


def skip_reason(variant: Variant, device: str) -> str | None:
    if variant.needs is None or not device.startswith("cuda"):
        return None
    if importlib.util.find_spec(variant.needs) is None:
        return f"{variant.needs} is not installed"
    return None


def run_variant(
    variant: Variant,
    settings: common.Settings,
    tasks: dict[str, Task],
    options: argparse.Namespace,
) -> list[Result]:
    """A fresh engine with the variant's options over every question (twice when compiled)."""
    device = options.device
    engine_options = {**ENGINE_DEFAULTS, **variant.options}
    release_memory(device)
    before, before_anon = memory_now(device), proc_status("RssAnon")
    peak_reset = reset_peak(device)
    with common.stopwatch(device) as load:
        # The warm-up is not counted: a compiled forward's first graphs are in
        # compile_warmup_seconds too.
        engine = common.load_warm_engine(settings, options, **engine_options)
    release_memory(device)  # what the load freed (int8: the float32 copy it quantized) goes back
    resident, anon = memory_now(device), proc_status("RssAnon")
    strategy = common.cot_strategy(settings)
    runtime = engine.runtime()
    config = engine.model.config
    first = Result(
        variant.name,
        dtype=runtime["dtype"] + (f"+{runtime['quantization']}" if runtime["quantization"] else ""),
        attention=str(getattr(config, "_attn_implementation", "?")),
        load_seconds=load[0],
        model_bytes=runtime["model_memory_bytes"],
        resident_bytes=difference(resident, before),
        anon_bytes=None if device.startswith("cuda") else difference(anon, before_anon),
    )
    passes = [first]
    if engine.compiled is not None:
        first.name = f"{variant.name} 1st"
    answer_all(engine, strategy, tasks, device, first)
    if engine.compiled is not None:
        record = engine.runtime()
        first.compile_warmup_seconds = record["compile_warmup_seconds"]
        first.compiled_graphs = record["compiled_graphs"]
        first.compiled_calls = record["compiled_calls"]
        steady = Result(
            variant.name,
            dtype=first.dtype,
            attention=first.attention,
            load_seconds=first.load_seconds,
            model_bytes=first.model_bytes,
            resident_bytes=first.resident_bytes,
            anon_bytes=first.anon_bytes,
        )
        answer_all(engine, strategy, tasks, device, steady)
        record = engine.runtime()
        steady.compile_warmup_seconds = (
            record["compile_warmup_seconds"] - first.compile_warmup_seconds
        )
        steady.compiled_graphs = record["compiled_graphs"] - first.compiled_graphs
        steady.compiled_calls = record["compiled_calls"] - first.compiled_calls
        passes.append(steady)
    peak = memory_peak(device)
    for result in passes:
        if peak_reset and peak is not None and before is not None:
            result.peak_bytes = peak - (0 if device.startswith("cuda") else before)
    del engine, strategy
    release_memory(device)
    return passes


def prime(settings: common.Settings, options: argparse.Namespace) -> None:
    """Load, warm up and drop a baseline engine: what the first load of a process costs once
    (imports, library pages, thread pools, CUDA context) is then charged to no variant."""
    engine = common.load_warm_engine(settings, options, **ENGINE_DEFAULTS)
    engine.score([ScoreRequest("Warm up.", (" yes", " no"))])
    del engine
    release_memory(options.device)


def attempt(
    variant: Variant,
    settings: common.Settings,
    tasks: dict[str, Task],
    options: argparse.Namespace,
) -> tuple[list[Result], str | None]:
    """The variant's passes, or why it did not run: the machine cannot run it (skipped), or it
    failed (its traceback). The baseline's failure ends the run."""
    reason = skip_reason(variant, options.device)
    if reason is not None:
        return [], reason
    try:
        return run_variant(variant, settings, tasks, options), None
    except (RuntimeSettingError, ImportError, ValueError) as error:
        if variant is BASELINE:
            raise
        reason = f"{type(error).__name__}: {error}"
    except Exception:
        if variant is BASELINE:
            raise
        reason = "failed:\n" + traceback.format_exc()
    release_memory(options.device)
    return [], reason


# ---------------------------------------------------------------------------- report


def mib(value: int | None) -> str:
    return f"{value / MIB:.1f}" if value is not None else "-"


def print_results(results: list[Result], device: str) -> None:
    cuda = device.startswith("cuda")
    resident_name, peak_name = ("alloc MiB", "peak MiB") if cuda else ("RSS MiB", "peak RSS")
    print(
        f"{'variant':12s} {'dtype':14s} {'attn':>10s} {'load s':>7s} {'gen s':>8s} "
        f"{'score s':>8s} {'gen tok':>8s} {'gen tok/s':>9s} {'s/question':>10s} {'acc':>6s} "
        f"{'model MiB':>9s} {resident_name:>9s} {'anon MiB':>8s} {peak_name:>8s} {'accept':>6s}"
    )
    for r in results:
        acceptance = f"{r.acceptance:6.3f}" if r.acceptance is not None else f"{'-':>6s}"
        print(
            f"{r.name:12s} {r.dtype:14s} {r.attention:>10s} {r.load_seconds:7.2f} "
            f"{r.generation_seconds:8.2f} {r.scoring_seconds:8.2f} {r.generated_tokens:8d} "
            f"{r.tokens_per_second:9.1f} {r.seconds / r.questions:10.3f} {r.accuracy:6.3f} "
            f"{mib(r.model_bytes):>9s} {mib(r.resident_bytes):>9s} {mib(r.anon_bytes):>8s} "
            f"{mib(r.peak_bytes):>8s} "
            f"{acceptance}"
        )
    memory = (
        "alloc MiB: CUDA allocator bytes after the load and warm-up minus before; peak MiB: "
        "torch.cuda.max_memory_allocated while the variant ran, reset before its load"
        if cuda
        else "RSS MiB: resident set after the load and warm-up minus before (anon MiB: of it, "
        "anonymous memory; the rest is mostly the checkpoint's file pages, mapped); peak RSS: "
        "the resident set's high-water mark while the variant ran minus the resident set "
        "before its load (approximate: freed memory may be reused without growing it)"
    )
    print(
        "load s: model load + a 2-token warm-up (excluded from the rest); gen s / score s: wall "
        "seconds of the generate calls / of scoring and the strategy around them; gen tok: "
        "rationales up to their stop; s/question: (gen s + score s) / questions; acc: lm-eval's "
        "acc; model MiB: weights and buffers as stored (engine.runtime()); "
        f"{memory}; accept: accepted / proposed prompt-lookup draft tokens"
    )
    for r in results:
        if r.compile_warmup_seconds is not None:
            print(
                f"{r.name}: {r.compiled_calls} compiled-forward calls, {r.compiled_graphs} graphs "
                f"compiled in {r.compile_warmup_seconds:.2f} s (those calls' wall seconds)"
            )


def print_ratios(baseline: Result, results: list[Result]) -> None:
    print(
        f"{'variant/baseline':16s} {'speedup':>7s} {'tok/s':>6s} {'model mem':>9s} "
        f"{'peak mem':>8s} {'same answer':>11s} {'same rationale':>14s} {'Δacc':>7s}"
    )
    for r in results:
        peak = (
            f"{r.peak_bytes / baseline.peak_bytes:8.2f}"
            if r.peak_bytes and baseline.peak_bytes
            else f"{'-':>8s}"
        )
        same_answer = sum(r.chosen[key] == choice for key, choice in baseline.chosen.items())
        same_rationale = sum(r.rationales[key] == text for key, text in baseline.rationales.items())
        n = baseline.questions
        print(
            f"{r.name:16s} {baseline.seconds / r.seconds:7.2f} "
            f"{r.tokens_per_second / baseline.tokens_per_second:6.2f} "
            f"{r.model_bytes / baseline.model_bytes:9.2f} {peak} "
            f"{f'{same_answer}/{n}':>11s} {f'{same_rationale}/{n}':>14s} "
            f"{r.accuracy - baseline.accuracy:+7.3f}"
        )
    print(
        "speedup: the baseline's gen + score seconds over the variant's; tok/s, model mem, "
        "peak mem: the variant's over the baseline's; same answer / rationale: questions whose "
        "chosen answer / rationale equals the baseline's"
    )


def main() -> None:
    options = parse_arguments()
    settings = common.prepare(options)
    common.stage_missing(settings)
    device_kind = "cuda" if options.device.startswith("cuda") else "cpu"
    names = options.variants or DEFAULT_VARIANTS[device_kind]
    names = ["baseline", *dict.fromkeys(name for name in names if name != "baseline")]

    tasks = {
        name: load_task(task, settings, options.limit) for name, task in settings.tasks.items()
    }
    from thinkcost.evaluate.cell import device_name

    questions = {name: task.questions for name, task in tasks.items()}
    print(
        f"{common.describe_questions(questions)}, "
        f"{common.OPTIMIZATION}: trigger {settings.trigger!r}, answer prefix "
        f"{settings.answer_prefix!r}, stop {list(settings.stop)}, T = {settings.max_new_tokens}, "
        f"greedy; {device_name(options.device)}, {torch.get_num_threads()} threads, torch "
        f"{torch.__version__}; hf engine at batch {options.batch_size}; variants {names}",
        flush=True,
    )

    with common.stopwatch(options.device) as seconds:
        prime(settings, options)
    print(
        f"a throwaway baseline engine loaded, warmed up and dropped in {seconds[0]:.2f} s, so "
        "one-time imports and library pages are charged to no variant",
        flush=True,
    )
    results: list[Result] = []
    skipped: list[str] = []
    for name in names:
        passes, reason = attempt(VARIANTS[name], settings, tasks, options)
        if reason is not None:
            skipped.append(f"{name}: {reason}")
            print(f"skipped {name}: {reason}", flush=True)
            continue
        results.extend(passes)
        last = passes[-1]
        print(
            f"{last.name}: {last.seconds:.2f} s ({last.generation_seconds:.2f} generating), "
            f"{last.tokens_per_second:.1f} tok/s, acc {last.accuracy:.3f}",
            flush=True,
        )

    baseline = results[0]
    print_results(results, options.device)
    compared = [r for r in results[1:] if not r.name.endswith(" 1st")]
    if compared:
        print_ratios(baseline, compared)
    for line in skipped:
        print(f"skipped {line.splitlines()[0]}")  # again, after the tables

    best = max(compared, key=lambda r: baseline.seconds / r.seconds, default=None)
    int8 = next((r for r in compared if r.name == "int8"), None)
    print(
        "best_speedup="
        + (f"{baseline.seconds / best.seconds:.2f}({best.name})" if best else "n/a")
        + " int8_memory_ratio="
        + (f"{int8.model_bytes / baseline.model_bytes:.2f}" if int8 else "n/a")
        + " accuracy_delta_int8="
        + (f"{int8.accuracy - baseline.accuracy:+.3f}" if int8 else "n/a")
    )


if __name__ == "__main__":
    main()
