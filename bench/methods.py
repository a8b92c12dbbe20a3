"""Methods side by side on the same questions: thinkcost's run, each method's answers per task,
how far two methods agree, and the tables that print them."""

from __future__ import annotations

import argparse
import math
from collections.abc import Sequence
from dataclasses import dataclass, field

from bench.common import Settings, TimedEngine, Timings, argmax, cot_strategy, stopwatch

LOGLIK_TOLERANCE = {"abs_tol": 1e-3, "rel_tol": 1e-4}


@dataclass
class TaskResult:
    """One method on one task: per question its rationale and its choices' log-likelihoods."""

    rationales: list[str]
    logliks: list[list[float]]


@dataclass
class MethodResult(Timings):
    tasks: dict[str, TaskResult] = field(default_factory=dict)


def run_thinkcost(
    settings: Settings,
    questions: dict[str, list],
    options: argparse.Namespace,
    engine_name: str = "hf",
    label: str = "thinkcost",
    **engine_options,
) -> tuple[MethodResult, object, float]:
    """Our result, the engine (for its counters) and the strategy's seconds per answer call."""
    from thinkcost.engines import load_engine

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
    strategy = cot_strategy(settings)
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


def compare_tasks(
    first: MethodResult, second: MethodResult, questions: dict[str, list]
) -> dict[str, Agreement]:
    """`compare` on every task."""
    return {
        name: compare(first.tasks[name], second.tasks[name], task_questions)
        for name, task_questions in questions.items()
    }


def all_identical(agreements: dict[str, Agreement]) -> bool:
    """Every rationale and every chosen answer equal, the log-likelihoods within tolerance."""
    return all(
        a.same_rationale == a.same_choice == a.questions and a.within_tolerance
        for a in agreements.values()
    )


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
        f"{'method':13s} {'load s':>7s} {'gen s':>8s} {'score s':>8s} {'total s':>8s} "
        f"{'gen tokens':>10s} {'gen tok/s':>9s} {'questions/s':>11s}"
    )
    for m in methods:
        print(
            f"{m.name:13s} {m.load_seconds:7.2f} {m.generation_seconds:8.2f} "
            f"{m.scoring_seconds:8.2f} {m.seconds:8.2f} {m.generated_tokens:10d} "
            f"{m.tokens_per_second:9.1f} {m.questions / m.seconds:11.3f}"
        )
    print("total s = generation + scoring (model load excluded)")


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
