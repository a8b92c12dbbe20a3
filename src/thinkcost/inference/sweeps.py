"""k sweeps of a cell: every sample judged by the task's own metric, then every k ≤ K.

A cell that draws K samples per question (`num_samples: K, sweep: [1, 2, 4, …]`) is worth one
scores-table row per k, each with its own cost, without running anything again: each sample's
answer is judged alone by lm-eval's own `process_results` (multiple choice: the sample's choice
log-likelihoods; free form: its text through the metric's filter), and `thinkcost.inference.voting`
averages the vote over every subset of k samples. Cost per k: the prompt prefilled once, k/K of
the samples' generated and answer tokens (the expectation over subsets).
"""

from __future__ import annotations

import re
import string
from collections.abc import Callable, Sequence

import numpy as np

from thinkcost.inference.costs import (
    ModelShape,
    RequestCost,
    request_flops,
    scorer_flops,
    tokens_flops,
)
from thinkcost.inference.voting import SampledQuestion, sweep


def _filter_ensemble(task, filter_name: str):
    for ensemble in getattr(task, "_filters", []):
        if ensemble.name == filter_name:
            return ensemble
    raise KeyError(f"task {task.task_name} has no filter {filter_name!r}")


def answer_extractor(task, filter_name: str, doc: dict | None = None) -> Callable[[str], str]:
    """What the task's filter `filter_name` extracts from one generated text (GSM8K's number)."""
    ensemble = _filter_ensemble(task, filter_name)

    def extract(text: str) -> str:
        responses = [[text]]
        for make in ensemble.filters:
            responses = list(make().apply(responses, [doc]))
        response = responses[0]
        while isinstance(response, (list, tuple)) and response:
            response = response[0]
        return response if isinstance(response, str) else str(response)

    return extract


def vote_key(task, metric_name: str) -> Callable[[str], str]:
    """Answers that the metric cannot tell apart vote together: exact_match's own options
    (regexes_to_ignore, ignore_case, ignore_punctuation, ignore_numbers) applied, so "1." and
    "1" are one answer where the metric ignores a final period."""
    options = getattr(task, "_metric_fn_kwargs", {}).get(metric_name, {})
    removed = "".join(
        chars
        for flag, chars in (
            ("ignore_punctuation", string.punctuation),
            ("ignore_numbers", string.digits),
        )
        if options.get(flag)
    )

    def key(answer: str) -> str:
        for pattern in options.get("regexes_to_ignore") or ():
            answer = re.sub(pattern, "", answer)
        if options.get("ignore_case"):
            answer = answer.lower()
        return answer.translate(str.maketrans("", "", removed))

    return key


def judged_samples(task, sample: dict, record: dict, metric: str) -> SampledQuestion:
    """One question's samples, each judged alone by the task's metric (`name,filter`)."""
    name, _, filter_name = metric.partition(",")
    doc = sample["doc"]
    if "choice_loglik" in record:  # multiple choice: lm-eval scores the sample's log-likelihoods
        correct = [
            bool(task.process_results(doc, [(ll, False) for ll in row])[name])
            for row in record["choice_loglik"]
        ]
        answers = record["answers"]
    else:  # free form: each text through the metric's filter, judged as lm-eval would
        extract = answer_extractor(task, filter_name or "none", doc)
        texts = [g["text"] for g in sample["thinkcost_generations"]]
        correct = [bool(task.process_results(doc, [extract(text)])[name]) for text in texts]
        answers = record["answers"]  # what the cell's own vote counted
    return SampledQuestion(tuple(answers), tuple(record["scores"]), tuple(correct))


def cell_sweep(
    tasks: dict,
    samples: Sequence[dict],
    sampled: dict,
    costs: Sequence[RequestCost],
    shape: ModelShape,
    metric: str,
    ks: Sequence[int],
    rule: str,
    seed: int,
    scorer: ModelShape | None = None,
) -> list[dict]:
    """The sweep rows of one cell: per k, the vote's expected score and coverage with their
    standard errors, and the mean tokens and FLOPs per question of drawing k samples.

    `tasks` maps lm-eval task names to Task objects; `samples` are lm-eval's per-document
    samples (one per filter); `sampled` the adapter's per-question samples, keyed (task, doc).
    """
    judged = []
    seen = set()
    for sample in samples:
        key = (sample["task"], sample["doc_id"])
        if key in seen or key not in sampled or "scores" not in sampled[key]:
            continue
        seen.add(key)
        judged.append(judged_samples(tasks[sample["task"]], sample, sampled[key], metric))
    if not judged:
        raise ValueError("no question has scored samples to sweep over (num_samples > 1?)")
    rows = sweep(judged, ks, rule, seed=seed)
    for row in rows:
        row.update(subset_costs(costs, shape, row["k"], scorer))
    return rows


def subset_costs(
    costs: Sequence[RequestCost], shape: ModelShape, k: int, scorer: ModelShape | None = None
) -> dict:
    """Mean tokens and FLOPs per question of k of each question's K samples: each prompt once,
    k/K of the samples' branches (the expectation over subsets of k); a separate scorer's
    likewise (its prompt once, k/K of what it scored)."""
    generated, paper, full = [], [], []
    for cost in costs:
        share = k / len(cost.generated)
        prefill = tokens_flops(shape, 0, cost.prompt_tokens)
        generated.append(share * cost.generated_tokens)
        paper.append(share * request_flops(cost, shape, "paper"))
        full.append(prefill + share * (request_flops(cost, shape, "full") - prefill))
        if scorer is not None and cost.scorer_tokens:
            prompt = cost.scorer_prompt_tokens
            read = prompt + share * sum(cost.scorer_tokens)
            paper[-1] += 2.0 * scorer.params * read
            scorer_prefill = tokens_flops(scorer, 0, prompt)
            full[-1] += scorer_prefill + share * (
                scorer_flops(cost, scorer, "full") - scorer_prefill
            )
    return {
        "prompt_tokens_mean": float(np.mean([c.prompt_tokens for c in costs])),
        "generated_tokens_mean": float(np.mean(generated)),
        "inference_flops_per_request_paper": float(np.mean(paper)),
        "inference_flops_per_request_full": float(np.mean(full)),
    }
