"""Majority@8 with one shared prefill against 8 separate requests (lm-eval's `repeats: 8`).

All methods draw 8 chain-of-thought samples of the same questions (the default config's
BBH tasks, formatted by lm-eval as the workflow's cells format them, as
bench/common.py loads them): the question, "Let's think step by step.", up to T new
tokens sampled at temperature 0.7 (no top-k, no top-p) that stop at "Q:", "Question:" or the
model's own "The answer is", one call per task as the workflow's per-task cells make it.

- **(a) shared**: thinkcost, the `Hybrid` strategy with num_samples=8 and vote="majority" on the
  hf engine: one `GenerationRequest(prompt, n=8)` per question, so the prompt is prefilled once
  and its key/value cache copied to 8 rows; then every choice scored after each rationale and
  the 8 samples' sequence log-likelihoods scored for the vote (the "scoring" seconds). Its
  prefix cache is on, as thinkcost runs it: a question that joins the batch after another has
  finished takes the lines they share (a task's preamble) from the cache ("cached tok"), so
  (b)/(a) of prefill tokens can exceed 8 when there are more rows than the batch holds.
- **(b) separate**: what lm-eval's `repeats: 8` issues, on the same engine: 8
  `GenerationRequest(prompt, n=1)` per question, each prefilled on its own. The engine's prefix
  cache (finished sequences' keys and values) would silently share most of a repeat's prefill
  with an earlier repeat that has already finished, so (b) loads the engine with
  `prefix_cache_bytes=0`; **(b') separate+cache** is the same requests with the cache on, as the
  engine would run them if handed 8 separate requests. Generation only: scoring is the same work
  as in (a) whenever the samples are.
- **(c) lm-eval**: stock lm-eval `hf` (`HFLM.generate_until`) given the 8 copies of every request
  that its evaluator makes of a `repeats: 8` request, at batch 8: `model.generate` on a static
  batch (the 8 repeats of one question, prefilled 8 times, decoded until the longest stops).
  Sampling draws from torch's global generator, seeded once, so its samples are not (a)'s.

Engine samples are seeded per (question key, sample index) (`SamplingSpec.sample_seed`); (b)
names its requests "<key>#<i>" and gives the engine a spec that seeds "<key>#<i>" as sample i of
"<key>", so (a) and (b) draw with the same seeds and should draw the same samples: the logits of
a row are computed in a different batch, so a last-bit difference may still flip a rare token.

Printed, all measured in the same run: per method the wall seconds of generation (and of scoring
for (a)), prefill tokens (through the model), forward tokens of generation (prefill + decode),
prompt tokens found in the prefix cache, generated tokens (each sample up to its stop, counted
as `Generation.tokens` counts) and generated tokens per second; the engine's prefill and decode
seconds; the ratios (b)/(a), (b')/(a) and (c)/(a) of generation seconds, prefill tokens and
forward tokens; how many samples (b) and (b') drew identical to (a)'s; and a last line

    prefill_shared_speedup=<x> forward_tokens_ratio=<y> same_samples=<true|false>

(x: (b)'s generation seconds over (a)'s; y: (b)'s forward tokens over (a)'s; same_samples:
whether every sample of (b) equals (a)'s).

    .venv/bin/python -m bench.vote_prefill                  # the measurement, < 10 min on 2 cores
    .venv/bin/python -m bench.vote_prefill --limit 2 --max-new-tokens 16 --tasks navigate  # smoke
    .venv/bin/python -m bench.vote_prefill --device cuda --batch-size 128   # on a GPU

Run it on an idle machine: two CPU-heavy processes on two cores slow each other many times over.
The staged model and task data are read from results/stage/ (staged first when missing).

Measured once on an NVIDIA H100 80GB (torch 2.11.0+cu130, transformers 5.19.0, lm-eval 0.4.13;
float32, default settings: 24 questions × 8 samples, T = 64, `--device cuda --batch-size 128`):
generation seconds (a) 27.16 (+ 2.06 scoring), (b) 30.34, (b') 25.24, (c) 42.81; prefill
tokens 2,515 against 20,120 (8.00×), forward tokens 12,565 against 30,170 (2.40×); all 192
samples of (b) and (b') equal to (a)'s; `prefill_shared_speedup=1.12 forward_tokens_ratio=2.40
same_samples=true`. On the GPU prefill is 2 % of generation and decode about 100 ms a step for
48 rows, far more than the model's own arithmetic, so per-row work on the host (a CPU
multinomial per row and step) likely bounds it and a shared prefill saves little: (b) and (b')
did the same work (no token taken from the cache) and took 30.34 and 25.24 s, so run-to-run
noise there is as large as the 12 % measured.

Measured once on the 2-core development CPU (float32, 2 threads, batch 32, defaults; 9 min 25 s
in all): generation seconds (a) 59.88 (+ 18.70 scoring), (b) 79.83, (b') 78.55, (c) 321.32;
prefill tokens 2,078 against 20,120, forward tokens 12,128 against 30,170; all 192 samples of
(b) and (b') equal to (a)'s; `prefill_shared_speedup=1.33 forward_tokens_ratio=2.49
same_samples=true`. Other processes started on the cores while (c) ran: its seconds are an
upper bound. The scoring seconds include the vote's sample scores only where the engine gave no
log-probabilities with the samples (the hf engine now always does).
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field

import torch

from bench import common
from thinkcost.engines import EngineCounters, GenerationRequest, SamplingSpec
from thinkcost.inference.questions import generation_prompt

SAMPLES = 8  # majority@8, lm-eval's repeats: 8
TEMPERATURE = 0.7
DEFAULT_LIMIT = 6  # questions per task: 24 questions, 192 samples a method
DEFAULT_MAX_NEW_TOKENS = 64
REPEAT_MARK = "#"  # (b)'s request keys: "<question key>#<sample index>"
COUNTED = (
    "forward_passes",
    "forward_tokens",
    "prefill_tokens",
    "decode_tokens",
    "reused_tokens",
    "generated_tokens",
    "prefill_seconds",
    "decode_seconds",
)


def parse_arguments() -> argparse.Namespace:
    parser = common.argument_parser(__doc__, DEFAULT_LIMIT, DEFAULT_MAX_NEW_TOKENS)
    parser.add_argument("--seed", type=int, help="sampling seed (default: the config's, 1234)")
    parser.add_argument(
        "--no-lm-eval", action="store_true", help="skip (c), stock lm-eval's generate_until"
    )
    return parser.parse_args()


# ---------------------------------------------------------------------------- results


@dataclass
class Run:
    """One method: its samples per question and what generating (and scoring) them took."""

    name: str
    load_seconds: float = 0.0
    generation_seconds: float = 0.0
    scoring_seconds: float | None = None  # (a) alone scores
    counters: dict = field(default_factory=lambda: dict.fromkeys(COUNTED, 0))
    samples: dict[str, list[str]] = field(default_factory=dict)  # question key -> 8 texts

    @property
    def tokens_per_second(self) -> float:
        return self.counters["generated_tokens"] / self.generation_seconds

    def add(self, before: EngineCounters, after: EngineCounters) -> None:
        for name in COUNTED:
            self.counters[name] += getattr(after, name) - getattr(before, name)


def snapshot(engine) -> EngineCounters:
    return EngineCounters(**engine.counters.as_dict())


class GenerationTimer(common.TimedEngine):
    """An engine whose `generate` and `score` calls are timed, its generation counted into
    `run`."""

    def __init__(self, engine, run: Run, device: str) -> None:
        super().__init__(engine, device)
        self.run = run

    def generate(self, requests, spec):
        before = snapshot(self.engine)
        generations = super().generate(requests, spec)
        self.run.generation_seconds = self.generation_seconds
        self.run.add(before, self.engine.counters)
        return generations


@dataclass(frozen=True)
class RepeatSpec(SamplingSpec):
    """Seeds the request "<key>#<i>" (n=1) as sample i of the request "<key>"."""

    def sample_seed(self, key: str, index: int) -> int:
        question, _, repeat = key.rpartition(REPEAT_MARK)
        return super().sample_seed(question, int(repeat) + index)


def sampling_spec(settings: common.Settings, seed: int, cls=SamplingSpec) -> SamplingSpec:
    return cls(
        max_new_tokens=settings.max_new_tokens,
        stop=settings.stop,
        do_sample=True,
        temperature=TEMPERATURE,
        seed=seed,
    )


# ---------------------------------------------------------------------------- (a), (b)


def load_hf(settings: common.Settings, options: argparse.Namespace, run: Run, **engine_options):
    with common.stopwatch(options.device) as load:
        engine = common.load_warm_engine(
            settings, options, 2, dtype=options.dtype, **engine_options
        )
    run.load_seconds = load[0]
    return engine


def run_shared(
    settings: common.Settings, questions: dict[str, list], options: argparse.Namespace, seed: int
) -> Run:
    """(a): majority@8 as thinkcost's cells run it, one prefill per question."""
    run = Run("(a) shared")
    engine = load_hf(settings, options, run)
    strategy = common.cot_strategy(
        settings, sampling_spec(settings, seed), num_samples=SAMPLES, vote="majority"
    )
    timed = GenerationTimer(engine, run, options.device)
    answer_seconds = 0.0
    for task_questions in questions.values():
        engine.clear_prefix_cache()  # a cell starts with an empty cache
        with common.stopwatch(options.device) as seconds:
            answers = strategy.answer(timed, task_questions)
        answer_seconds += seconds[0]
        for question, answer in zip(task_questions, answers, strict=True):
            run.samples[question.key] = [g.text for g in answer.generations]
    # The strategy's own work between the engine calls counts with scoring.
    run.scoring_seconds = answer_seconds - run.generation_seconds
    del engine
    return run


def run_separate(
    settings: common.Settings,
    questions: dict[str, list],
    options: argparse.Namespace,
    seed: int,
    prefix_cache: bool,
) -> Run:
    """(b): 8 requests of one sample per question, as lm-eval's repeats issue them."""
    run = Run("(b') separate+cache" if prefix_cache else "(b) separate")
    engine = load_hf(settings, options, run, **({} if prefix_cache else {"prefix_cache_bytes": 0}))
    spec = sampling_spec(settings, seed, RepeatSpec)
    timed = GenerationTimer(engine, run, options.device)
    for task_questions in questions.values():
        engine.clear_prefix_cache()
        requests = [
            GenerationRequest(
                generation_prompt(q.context, settings.trigger), 1, f"{q.key}{REPEAT_MARK}{i}"
            )
            for q in task_questions
            for i in range(SAMPLES)
        ]
        generations = iter(timed.generate(requests, spec))
        for question in task_questions:
            run.samples[question.key] = [next(generations)[0].text for _ in range(SAMPLES)]
    del engine
    return run


# ---------------------------------------------------------------------------- (c) lm-eval


def lm_eval_counters(recorder: common.RecordedGenerate, stop) -> dict:
    """What HFLM's `model.generate` computed: every row runs its padded context, then one token
    a step until the batch's last row stops (finished rows run on, padded)."""
    counters = dict.fromkeys(COUNTED, 0)
    for width, output in recorder.outputs:
        rows, steps = output.shape[0], output.shape[1] - width
        counters["forward_passes"] += steps
        counters["prefill_tokens"] += rows * width
        counters["decode_tokens"] += rows * max(steps - 1, 0)
        counters["forward_tokens"] += rows * (width + max(steps - 1, 0))
    counters["generated_tokens"] = recorder.generated_tokens(stop)
    return counters


def run_lm_eval(
    settings: common.Settings, questions: dict[str, list], options: argparse.Namespace, seed: int
) -> Run:
    """(c): stock lm-eval `hf`, each request copied 8 times as its evaluator does for repeats."""
    from lm_eval.api.instance import Instance
    from lm_eval.models.huggingface import HFLM

    run = Run("(c) lm-eval")
    with common.stopwatch(options.device) as load:
        lm = HFLM(
            pretrained=str(settings.model_dir),
            batch_size=SAMPLES,
            device=options.device,
            dtype=options.dtype,
        )
        warm_kwargs = {"until": [], "max_gen_toks": 2, "do_sample": False}
        warm = Instance("generate_until", {}, ("Warm up.", warm_kwargs), 0)
        lm.generate_until([warm], disable_tqdm=True)
    run.load_seconds = load[0]
    recorder = common.RecordedGenerate(lm)
    generation_kwargs = {
        "until": list(settings.stop),
        "max_gen_toks": settings.max_new_tokens,
        "do_sample": True,
        "temperature": TEMPERATURE,
        "top_k": 0,  # transformers' default top-k of 50 off, as the engine samples
    }
    torch.manual_seed(seed)  # as lm-eval's simple_evaluate seeds torch
    for task, task_questions in questions.items():
        requests = []
        for doc_id, question in enumerate(task_questions):
            prompt = generation_prompt(question.context, settings.trigger)
            request = Instance(
                request_type="generate_until",
                doc={},
                arguments=(prompt, dict(generation_kwargs)),
                idx=0,
                metadata=(task, doc_id, SAMPLES),
            )
            requests.extend([request] * SAMPLES)  # lm-eval's evaluator: [req] * req.repeats
        with common.stopwatch(options.device) as generation:
            texts = iter(lm.generate_until(requests, disable_tqdm=True))
        run.generation_seconds += generation[0]
        for question in task_questions:
            run.samples[question.key] = [next(texts) for _ in range(SAMPLES)]
    run.counters = lm_eval_counters(recorder, settings.stop)
    del lm
    return run


# ---------------------------------------------------------------------------- report


def print_runs(runs: list[Run]) -> None:
    print(
        f"{'method':20s} {'load s':>6s} {'gen s':>8s} {'score s':>8s} {'prefill tok':>11s} "
        f"{'forward tok':>11s} {'cached tok':>10s} {'gen tok':>8s} {'gen tok/s':>9s} "
        f"{'prefill s':>9s} {'decode s':>8s}"
    )
    for run in runs:
        c = run.counters
        scoring = f"{run.scoring_seconds:8.2f}" if run.scoring_seconds is not None else "       -"
        engine = run.name.startswith("(c)")
        phases = (
            f"{'-':>9s} {'-':>8s}"
            if engine
            else f"{c['prefill_seconds']:9.2f} {c['decode_seconds']:8.2f}"
        )
        print(
            f"{run.name:20s} {run.load_seconds:6.2f} {run.generation_seconds:8.2f} {scoring} "
            f"{c['prefill_tokens']:11d} {c['forward_tokens']:11d} {c['reused_tokens']:10d} "
            f"{c['generated_tokens']:8d} {run.tokens_per_second:9.1f} {phases}"
        )
    print(
        "gen s / score s: wall seconds of the generate calls / of scoring (choices and the vote's "
        "sample scores); forward tok = prefill + decode tokens of generation (scoring excluded); "
        "cached tok = prompt tokens found in the engine's prefix cache; gen tok = samples' "
        "tokens up to their stop; load s (model load + warm-up) excluded from everything else"
    )


def print_ratios(shared: Run, others: list[Run]) -> None:
    print(f"{'ratio':24s} {'gen seconds':>11s} {'prefill tokens':>14s} {'forward tokens':>14s}")
    for run in others:
        print(
            f"{run.name.split()[0] + '/(a)':24s} "
            f"{run.generation_seconds / shared.generation_seconds:11.2f} "
            f"{run.counters['prefill_tokens'] / shared.counters['prefill_tokens']:14.2f} "
            f"{run.counters['forward_tokens'] / shared.counters['forward_tokens']:14.2f}"
        )


def same_samples(first: Run, second: Run) -> tuple[int, int, list[str]]:
    """Identical samples, all samples, and the keys of the questions where any differ."""
    same = total = 0
    differing = []
    for key, texts in first.samples.items():
        pairs = list(zip(texts, second.samples[key], strict=True))
        same += sum(a == b for a, b in pairs)
        total += len(pairs)
        if any(a != b for a, b in pairs):
            differing.append(key)
    return same, total, differing


def main() -> None:
    options = parse_arguments()
    settings, questions = common.staged_questions(options)
    seed = options.seed if options.seed is not None else settings.seed
    print(
        f"{common.describe_questions(questions)} × {SAMPLES} samples, {common.OPTIMIZATION}: "
        f"trigger {settings.trigger!r}, stop {list(settings.stop)}, "
        f"T = {settings.max_new_tokens}, temperature {TEMPERATURE}, "
        f"seed {seed}; {options.device}, {options.dtype}, {torch.get_num_threads()} threads; "
        f"hf engine at batch {options.batch_size}, lm-eval at batch {SAMPLES}",
        flush=True,
    )

    shared = run_shared(settings, questions, options, seed)
    separate = run_separate(settings, questions, options, seed, prefix_cache=False)
    cached = run_separate(settings, questions, options, seed, prefix_cache=True)
    runs = [shared, separate, cached]
    if not options.no_lm_eval:
        runs.append(run_lm_eval(settings, questions, options, seed))

    print_runs(runs)
    print_ratios(shared, runs[1:])
    identical = {}
    for run in (separate, cached):
        same, total, differing = same_samples(shared, run)
        identical[run.name] = same == total
        listed = f"; questions that differ: {', '.join(differing)}" if differing else ""
        print(f"{run.name} drew {same} of {total} samples identical to (a)'s{listed}")
    if len(runs) > 3:
        same, total, _ = same_samples(shared, runs[3])
        print(f"(c) lm-eval drew {same} of {total} identical (its own generator: not expected)")

    print(
        f"prefill_shared_speedup={separate.generation_seconds / shared.generation_seconds:.2f} "
        f"forward_tokens_ratio="
        f"{separate.counters['forward_tokens'] / shared.counters['forward_tokens']:.2f} "
        f"same_samples={str(identical[separate.name]).lower()}"
    )


if __name__ == "__main__":
    main()
